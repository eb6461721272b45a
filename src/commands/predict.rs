//! `convlearn predict MODEL IMAGE… [--top K]`, or `convlearn predict --pretrained WEIGHTS IMAGE…`

use std::path::PathBuf;

use anyhow::{Result, bail};
use convlearn::device::inference_device;
use convlearn::interpret::predict_image;
use convlearn::model_file::SavedModel;
use convlearn::models::{BackboneKind, PretrainedWeights};
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
    /// How many classes to show per image.
    #[arg(long, default_value_t = 3)]
    top: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs `predict`.
pub fn run(args: Args) -> Result<()> {
    let device = inference_device();
    let (model, images, source) = match &args.pretrained {
        Some(weights) => {
            let arch = match &args.arch {
                Some(a) => Some(
                    BackboneKind::parse(a)
                        .ok_or_else(|| anyhow::anyhow!("unknown --arch '{a}'"))?,
                ),
                None => None,
            };
            let model = PretrainedWeights::open(weights, arch)?.imagenet_model(&device)?;
            (model, args.paths.clone(), weights.clone())
        }
        None => {
            if args.paths.len() < 2 {
                bail!(
                    "give a model file and at least one image (or --pretrained WEIGHTS and images)"
                );
            }
            let model = SavedModel::load(&args.paths[0], &device)?;
            (model, args.paths[1..].to_vec(), args.paths[0].clone())
        }
    };
    let mut results = Vec::new();
    for image in &images {
        let ranked = predict_image(&model, image, args.top, &device)?;
        if !args.json {
            let line: Vec<String> = ranked
                .iter()
                .map(|p| format!("{} {:.1}%", p.class, 100.0 * p.probability))
                .collect();
            println!("{}: {}", image.display(), line.join(", "));
        }
        results.push(json!({ "image": image, "predictions": ranked }));
    }
    if args.json {
        super::print_json(&json!({ "model": source, "results": results }));
    }
    Ok(())
}
