//! `convlearn predict MODEL IMAGE… [--top K]`

use std::path::PathBuf;

use anyhow::Result;
use convlearn::device::inference_device;
use convlearn::interpret::predict_image;
use convlearn::model_file::SavedModel;
use serde_json::json;

/// Arguments of `predict`.
#[derive(clap::Args)]
pub struct Args {
    /// A model saved by `convlearn train` or `convlearn demo`.
    model: PathBuf,
    /// One or more images; each is resized and normalised as the model expects.
    #[arg(required = true)]
    images: Vec<PathBuf>,
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
    let model = SavedModel::load(&args.model, &device)?;
    let mut results = Vec::new();
    for image in &args.images {
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
        super::print_json(&json!({ "model": args.model, "results": results }));
    }
    Ok(())
}
