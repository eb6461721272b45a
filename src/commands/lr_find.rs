//! `convlearn lr-find DATA [--pretrained WEIGHTS] … -o lr.png`: the learning-rate finder alone.

use std::path::PathBuf;

use anyhow::{Result, bail};
use convlearn::data::{Mnist, generate_shapes, shared_data_dir};
use convlearn::learner::{FitConfig, lr_find};
use convlearn::models::ModelPreset;
use convlearn::recipes::{prepare, scratch_learner};
use serde_json::json;

/// Arguments of `lr-find`.
#[derive(clap::Args)]
pub struct Args {
    /// The same data and model options as `train`.
    #[command(flatten)]
    train: super::train::Args,
    /// Where to write the loss-versus-rate plot.
    #[arg(short, long, default_value = "lr_find.png")]
    output: PathBuf,
}

/// Runs `lr-find`.
pub fn run(args: Args) -> Result<()> {
    let a = &args.train;
    let inputs: Vec<(&str, &std::path::Path)> = [
        ("--pretrained", a.pretrained.as_deref()),
        ("--csv", a.source.csv.as_deref()),
    ]
    .into_iter()
    .filter_map(|(flag, path)| Some((flag, path?)))
    .collect();
    super::check_outputs(&inputs, &[("--output", &args.output)])?;
    let fit = FitConfig {
        batch_size: a.batch_size.unwrap_or(32),
        seed: a.source.seed,
        ..FitConfig::default()
    };
    let finder = match &a.pretrained {
        Some(weights) => {
            let mut cfg = a.transfer_config(weights)?;
            cfg.verbose = true;
            let mut run = prepare(&a.source.photos()?, &cfg)?;
            lr_find(&mut run.learner, &run.train, &fit)?
        }
        None => {
            let preset = ModelPreset::parse(a.arch.as_deref().unwrap_or("simple_cnn"))?;
            let train = match a.source.name() {
                "mnist" => {
                    Mnist::load(
                        &a.data
                            .clone()
                            .unwrap_or_else(|| shared_data_dir().join("data/mnist")),
                    )?
                    .train
                }
                "shapes" => generate_shapes(6000, 28, 1),
                other => bail!(
                    "unknown dataset '{other}': expected mnist, shapes, or a folder with --pretrained"
                ),
            };
            let mut learner = scratch_learner(preset, &train)?;
            lr_find(&mut learner, &train, &fit)?
        }
    };
    finder.plot(&args.output)?;
    if a.json {
        super::print_json(&json!({
            "suggestion": finder.suggestion,
            "min_loss_lr": finder.min_loss_lr,
            "steepest_lr": finder.steepest_lr,
            "steps": finder.lrs.len(),
            "output": super::json_path(&args.output),
        }));
    } else {
        println!(
            "suggested learning rate {:.1e} (lowest loss at {:.1e}, steepest descent at {:.1e}, {} steps); plot in {}",
            finder.suggestion,
            finder.min_loss_lr,
            finder.steepest_lr,
            finder.lrs.len(),
            args.output.display()
        );
    }
    Ok(())
}
