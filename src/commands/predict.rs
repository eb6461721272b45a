//! `convlearn predict MODEL IMAGE… [--top K]`, or `convlearn predict --pretrained WEIGHTS IMAGE…`

use std::path::PathBuf;

use anyhow::{Result, bail};
use convlearn::Classifier;
use serde_json::json;

/// Arguments of `predict`.
#[derive(clap::Args)]
pub struct Args {
    /// A model saved by convlearn, then one or more images (with --pretrained: images only).
    #[arg(required = true, value_name = "MODEL IMAGE…")]
    paths: Vec<PathBuf>,
    /// Predict ImageNet classes with raw pretrained weights (a torchvision state dict, .safetensors or
    /// .pth); class names come from the `<name>.labels.txt` beside them.
    #[arg(long, value_name = "WEIGHTS")]
    pretrained: Option<PathBuf>,
    /// The architecture of --pretrained (recognised from the tensor names when omitted).
    #[arg(long)]
    arch: Option<String>,
    /// How many classes to show per image (single-label models).
    #[arg(long, default_value_t = 3, value_parser = super::flags::positive)]
    top: usize,
    /// Multi-label models: show every tag whose probability exceeds this (default: the threshold
    /// saved with the model, chosen on its validation set).
    #[arg(long, value_parser = super::flags::probability)]
    threshold: Option<f32>,
    /// Test-time augmentation: average the prediction of the image and N augmented copies.
    #[arg(long, value_name = "N", default_value_t = 0, num_args = 0..=1, default_missing_value = "4", value_parser = super::flags::tta)]
    tta: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs `predict`.
pub fn run(args: Args) -> Result<()> {
    if let Some(t) = args.threshold.filter(|t| !(0.0..1.0).contains(t)) {
        bail!("--threshold {t} is not a probability between 0 and 1");
    }
    let (classifier, images, source) = match &args.pretrained {
        Some(weights) => {
            let arch = args.arch.as_deref().map(super::backbone).transpose()?;
            let classifier = Classifier::pretrained(weights, arch)?;
            (classifier, args.paths.as_slice(), weights)
        }
        None => {
            if args.paths.len() < 2 {
                bail!(
                    "give a model file and at least one image (or --pretrained WEIGHTS and images)"
                );
            }
            let classifier = Classifier::load(&args.paths[0])?;
            (classifier, &args.paths[1..], &args.paths[0])
        }
    };
    let classifier = classifier.with_tta(args.tta, Classifier::TTA_SEED);
    let meta = &classifier.model().meta;
    let threshold = meta
        .multi_label
        .then(|| args.threshold.unwrap_or(meta.threshold));
    let mut results = Vec::new();
    for image in images {
        let scores = classifier.predict_file(image)?;
        let ranked = match threshold {
            Some(t) => scores.above(t),
            None => scores.top(args.top),
        };
        if !args.json {
            let line: Vec<String> = ranked
                .iter()
                .map(|p| format!("{} {:.1}%", p.class, 100.0 * p.probability))
                .collect();
            let line = match (threshold, line.is_empty()) {
                (Some(t), true) => format!("no tag above {t:.2}"),
                _ => line.join(", "),
            };
            println!("{}: {line}", image.display());
        }
        results.push(json!({ "image": super::json_path(image), "predictions": ranked }));
    }
    if args.json {
        super::print_json(&json!({
            "model": super::json_path(source),
            "multi_label": meta.multi_label,
            "threshold": threshold,
            "tta": args.tta,
            "results": results,
        }));
    }
    Ok(())
}
