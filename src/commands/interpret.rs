//! `convlearn interpret MODEL DATA -o DIR`: what a trained model gets wrong on the validation part of
//! its data — confusion matrix, most confused pairs, top losses, most uncertain predictions, and for
//! multi-label models per-tag scores and F2 against the threshold.

use std::path::PathBuf;

use anyhow::Result;
use convlearn::data::PhotoSet;
use convlearn::device::inference_device;
use convlearn::interpret::{interpret, matrix_table, tag_table};
use convlearn::model_file::SavedModel;
use serde_json::json;

/// Arguments of `interpret`.
#[derive(clap::Args)]
pub struct Args {
    /// A model saved by `convlearn train`.
    model: PathBuf,
    /// The data it was trained on (the same options as `train`; the same --valid-pct and --seed give
    /// the same validation images).
    #[command(flatten)]
    source: super::data_args::DataArgs,
    /// Folder for the figures and tables.
    #[arg(short, long, default_value = "interpret")]
    output: PathBuf,
    /// Also score with test-time augmentation: the image and N augmented copies averaged.
    #[arg(long, value_name = "N", default_value_t = 0, num_args = 0..=1, default_missing_value = "4", value_parser = super::flags::tta)]
    tta: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs `interpret`.
pub fn run(args: Args) -> Result<()> {
    let device = inference_device();
    let model = SavedModel::load(&args.model, &device)?;
    let split = args
        .source
        .photos()?
        .split(args.source.valid_pct, args.source.seed)?;
    let p = &model.meta.preprocess;
    let valid = PhotoSet::decode(
        &split.valid,
        &split.classes,
        p.channels,
        p.height,
        "decoding validation images",
        !args.json,
    )
    .with(p.crop, model.meta.augment);
    if !valid.skipped.is_empty() {
        eprintln!(
            "{} file(s) could not be decoded and were skipped",
            valid.skipped.len()
        );
    }
    let report = interpret(&model, &valid, args.tta, &args.output, &device)?;
    if args.json {
        super::print_json(&json!(report));
        return Ok(());
    }
    let s = report.scores;
    match (s.f2, report.threshold) {
        (Some(f2), Some(t)) => println!(
            "{} validation images: F2 {f2:.4}, accuracy per tag {:.2}% at threshold {t:.2}",
            report.images,
            100.0 * s.accuracy
        ),
        _ => println!(
            "{} validation images: accuracy {:.2}%",
            report.images,
            100.0 * s.accuracy
        ),
    }
    if let Some(tta) = report.scores_tta {
        match tta.f2 {
            Some(f2) => println!(
                "with test-time augmentation ({} copies): F2 {f2:.4}",
                args.tta
            ),
            None => println!(
                "with test-time augmentation ({} copies): accuracy {:.2}%",
                args.tta,
                100.0 * tta.accuracy
            ),
        }
    }
    if let Some((t, f2)) = report.best_threshold {
        println!("best threshold on these images: {t:.2} (F2 {f2:.4})");
    }
    if let Some(m) = &report.confusion_matrix {
        println!(
            "\nconfusion matrix:\n{}",
            matrix_table(&model.meta.classes, m)
        );
    }
    if !report.tags.is_empty() {
        println!("\nper tag:\n{}", tag_table(&report.tags));
    }
    if report.most_confused.is_empty() {
        println!("no confusions");
    } else {
        println!("most confused (actual → predicted, times):");
        for c in &report.most_confused {
            println!("  {} → {}: {}", c.actual, c.predicted, c.count);
        }
    }
    println!("\ntop losses:");
    for (path, actual, predicted, loss) in report.top_losses.iter().take(5) {
        println!(
            "  {:.3}  {}  actual: {actual}  predicted: {predicted}",
            loss,
            path.display()
        );
    }
    println!("most uncertain:");
    for (path, actual, predicted, u) in report.most_uncertain.iter().take(5) {
        println!(
            "  {:.2}  {}  actual: {actual}  predicted: {predicted}",
            u,
            path.display()
        );
    }
    println!("\nwritten:");
    for f in &report.files {
        println!("  {}", f.display());
    }
    Ok(())
}
