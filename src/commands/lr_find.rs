//! `convlearn lr-find DATA [--pretrained WEIGHTS] … -o lr.png`: the learning-rate finder alone.

use std::path::PathBuf;

use anyhow::Result;
use convlearn::learner::{FitConfig, lr_find};
use convlearn::models::ModelPreset;
use convlearn::recipes::{head_lr_find, scratch_learner};
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
    let finder = match &a.pretrained {
        // The sweep `train --pretrained` runs to choose the head's rate.
        Some(weights) => head_lr_find(&a.source.photos()?, &a.transfer_config(weights)?)?,
        None => {
            let defaults = FitConfig::default();
            let fit = FitConfig {
                batch_size: a.batch_size.unwrap_or(defaults.batch_size),
                seed: a.source.seed,
                ..defaults
            };
            let preset = a
                .arch
                .as_deref()
                .map_or(Ok(ModelPreset::default()), ModelPreset::parse)?;
            let (train, _) = a
                .source
                .scratch_images(a.data.as_deref(), a.size.map(|s| s.0))?;
            let mut learner = scratch_learner(preset, &train, fit.seed)?;
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
