//! `convlearn train mnist --data DIR --epochs 3` (and `train shapes`, the generated dataset).

use std::path::PathBuf;

use anyhow::{Result, bail};
use convlearn::data::{Mnist, generate_shapes, shared_data_dir};
use convlearn::learner::FitConfig;
use convlearn::models::ModelPreset;
use convlearn::recipes::train_classifier;
use serde_json::json;

/// Arguments of `train`.
#[derive(clap::Args)]
pub struct Args {
    /// The dataset: `mnist` (IDX files in --data) or `shapes` (generated, no download).
    dataset: String,
    /// MNIST's directory (default: $CONVLEARN_DATA/data/mnist, i.e. ../shared/data/mnist).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Architecture: simple_cnn (conv32-conv64-fc128) or spreadsheet (fast.ai's 2-kernel Excel network).
    #[arg(long, default_value = "simple_cnn")]
    arch: String,
    /// Passes over the training set.
    #[arg(long, default_value_t = 3)]
    epochs: usize,
    /// Peak learning rate of the one-cycle schedule (Adam).
    #[arg(long, default_value_t = 1e-2)]
    lr: f64,
    /// Images per step.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Use only the first N training images (quick experiments).
    #[arg(long)]
    limit: Option<usize>,
    /// Shuffling seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Where to save the model (default: <dataset>-<arch>.safetensors).
    #[arg(long)]
    save: Option<PathBuf>,
    /// Where to write the loss curve (default: <dataset>-<arch>-loss.png).
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Print one JSON object on stdout (progress still goes to stderr).
    #[arg(long)]
    json: bool,
}

/// Runs `train`.
pub fn run(args: Args) -> Result<()> {
    let preset = ModelPreset::parse(&args.arch)?;
    let (train, valid) = match args.dataset.as_str() {
        "mnist" => {
            let dir = args
                .data
                .clone()
                .unwrap_or_else(|| shared_data_dir().join("data/mnist"));
            let m = Mnist::load(&dir)?;
            (m.train, m.test)
        }
        "shapes" => (generate_shapes(6000, 28, 1), generate_shapes(1200, 28, 2)),
        other => bail!("unknown dataset '{other}': expected mnist or shapes"),
    };
    let train = match args.limit {
        Some(n) => train.take(n),
        None => train,
    };
    let fit = FitConfig {
        epochs: args.epochs,
        batch_size: args.batch_size,
        max_lr: args.lr,
        seed: args.seed,
        ..FitConfig::default()
    };
    eprintln!(
        "training {} on {} {} images ({} held out), {} epochs, batch {}, one-cycle Adam peaking at {}",
        preset.name(),
        train.len(),
        args.dataset,
        valid.len(),
        fit.epochs,
        fit.batch_size,
        fit.max_lr
    );
    let (model, report) = train_classifier(preset, &train, &valid, &fit)?;
    let stem = format!("{}-{}", args.dataset, preset.name());
    let save = args
        .save
        .unwrap_or_else(|| PathBuf::from(format!("{stem}.safetensors")));
    let plot = args
        .plot
        .unwrap_or_else(|| PathBuf::from(format!("{stem}-loss.png")));
    model.save(&save)?;
    report.history.plot_loss(&plot)?;
    if args.json {
        super::print_json(&json!({
            "test_accuracy": report.valid_accuracy,
            "valid_accuracy": report.valid_accuracy,
            "valid_loss": report.valid_loss,
            "epochs": report.epochs,
            "seconds": report.seconds,
            "images_per_second": report.images_per_second,
            "train_images": report.train_images,
            "test_images": report.valid_images,
            "architecture": report.architecture,
            "model": save,
            "loss_png": plot,
        }));
    } else {
        println!(
            "{}: {:.2}% accuracy on {} held-out images after {} epochs, {:.1} s ({:.0} training images/s)",
            preset.name(),
            100.0 * report.valid_accuracy,
            report.valid_images,
            report.epochs,
            report.seconds,
            report.images_per_second
        );
        println!(
            "model saved to {}; loss curve in {}",
            save.display(),
            plot.display()
        );
    }
    Ok(())
}
