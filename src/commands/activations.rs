//! `convlearn activations MODEL IMAGE -o OUT.png`

use std::path::PathBuf;

use anyhow::Result;
use convlearn::device::inference_device;
use convlearn::interpret::{Scores, read_model_image, render_activations};
use convlearn::model_file::SavedModel;
use serde_json::json;

/// Arguments of `activations`.
#[derive(clap::Args)]
pub struct Args {
    /// A saved model.
    model: PathBuf,
    /// The image to run through it.
    image: PathBuf,
    /// Where to write the figure.
    #[arg(short, long, default_value = "activations.png")]
    output: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs `activations`.
pub fn run(args: Args) -> Result<()> {
    super::check_outputs(
        &[("MODEL", &args.model), ("IMAGE", &args.image)],
        &[("--output", &args.output)],
    )?;
    let device = inference_device();
    let model = SavedModel::load(&args.model, &device)?;
    let image = read_model_image(&model, &args.image)?;
    let outputs = render_activations(&model, &image, &args.output, &device)?;
    let probs = outputs.probabilities.clone();
    let best = probs
        .iter()
        .enumerate()
        .fold(0, |b, (i, &p)| if p > probs[b] { i } else { b });
    if args.json {
        let classes: serde_json::Map<String, serde_json::Value> = model
            .meta
            .classes
            .iter()
            .zip(&probs)
            .map(|(c, p)| (c.clone(), json!(p)))
            .collect();
        let source = args.image.display().to_string();
        let predictions = Scores::new(&model.meta, outputs, &source)?.all();
        super::print_json(&json!({
            "output": args.output,
            "probabilities": classes,
            "predictions": predictions,
            "predicted": model.meta.classes[best],
        }));
    } else {
        println!(
            "activations written to {}; predicted '{}' ({:.1}%)",
            args.output.display(),
            model.meta.classes[best],
            100.0 * probs[best]
        );
    }
    Ok(())
}
