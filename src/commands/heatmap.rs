//! `convlearn heatmap MODEL IMAGE [--class NAME] [--layer NAME] -o heat.png`, or
//! `convlearn heatmap --pretrained WEIGHTS IMAGE …`: Grad-CAM, where the network looked.

use std::path::PathBuf;

use anyhow::Result;
use convlearn::device::inference_device;
use convlearn::interpret::{grad_cam, read_model_image, render_heatmap};
use serde_json::json;

/// Arguments of `heatmap`.
#[derive(clap::Args)]
pub struct Args {
    /// A model saved by convlearn, then the image (with --pretrained: the image only).
    #[arg(required = true, num_args = 1..=2, value_name = "MODEL IMAGE")]
    paths: Vec<PathBuf>,
    /// An ImageNet model from raw pretrained weights instead (as `predict --pretrained` takes them).
    #[arg(long, value_name = "WEIGHTS")]
    pretrained: Option<PathBuf>,
    /// The architecture of --pretrained (recognised from the tensor names when omitted).
    #[arg(long)]
    arch: Option<String>,
    /// The class whose evidence to show (default: the most probable; any tag of a multi-label
    /// model).
    #[arg(long)]
    class: Option<String>,
    /// The feature map to differentiate, by the name `activations` shows (default: the last one
    /// of a pretrained body, the last convolution's output of a plain CNN).
    #[arg(long)]
    layer: Option<String>,
    /// Where to write the picture with the map over it.
    #[arg(short, long, default_value = "heatmap.png")]
    output: PathBuf,
    /// Print one JSON object: the class, its probability and logit, the layer, and the map at the
    /// layer's resolution.
    #[arg(long)]
    json: bool,
}

/// Runs `heatmap`.
pub fn run(args: Args) -> Result<()> {
    let (classifier, image, model_path) = super::model_and_image(
        &args.paths,
        args.pretrained.as_deref(),
        args.arch.as_deref(),
    )?;
    super::check_outputs(
        &[("MODEL", model_path), ("IMAGE", image)],
        &[("--output", &args.output)],
    )?;
    let model = classifier.model();
    let input = read_model_image(model, image)?;
    let heat = grad_cam(
        model,
        &input,
        args.class.as_deref(),
        args.layer.as_deref(),
        &inference_device(),
    )?;
    render_heatmap(&heat, &input, &args.output)?;
    if args.json {
        let mut out = json!(heat);
        out["image"] = super::json_path(image);
        out["output"] = super::json_path(&args.output);
        super::print_json(&out);
    } else {
        println!(
            "{}: {} {:.1}% — Grad-CAM on {} ({}×{}) written to {}",
            image.display(),
            heat.class,
            100.0 * heat.probability,
            heat.layer,
            heat.heatmap.first().map_or(0, Vec::len),
            heat.heatmap.len(),
            args.output.display()
        );
    }
    Ok(())
}
