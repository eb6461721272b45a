//! `convlearn explain MODEL IMAGE --layer L --channel C --at X,Y`, or `convlearn explain --pretrained
//! WEIGHTS IMAGE …`: the arithmetic of one activation (a plain CNN's any conv layer, a pretrained
//! network's first).

use std::path::PathBuf;

use anyhow::Result;
use convlearn::device::inference_device;
use convlearn::interpret::{explain, read_model_image};

/// Arguments of `explain`.
#[derive(clap::Args)]
pub struct Args {
    /// A model saved by convlearn, then the image to run through it (with --pretrained: the
    /// image only).
    #[arg(required = true, num_args = 1..=2, value_name = "MODEL IMAGE")]
    paths: Vec<PathBuf>,
    /// An ImageNet model from raw pretrained weights instead (its first layer is explained).
    #[arg(long, value_name = "WEIGHTS")]
    pretrained: Option<PathBuf>,
    /// The architecture of --pretrained (recognised from the tensor names when omitted).
    #[arg(long)]
    arch: Option<String>,
    /// Conv layer, counted from 1 (a pretrained network: 1 only).
    #[arg(long, default_value_t = 1)]
    layer: usize,
    /// Kernel (output channel) of that layer, counted from 0.
    #[arg(long, default_value_t = 0)]
    channel: usize,
    /// Column and row of the activation, as X,Y (counted from 0), as `kernel --at` takes them.
    #[arg(long, value_parser = super::parse_pair, default_value = "0,0")]
    at: (usize, usize),
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs `explain`.
pub fn run(args: Args) -> Result<()> {
    let device = inference_device();
    let (classifier, image, _) = super::model_and_image(
        &args.paths,
        args.pretrained.as_deref(),
        args.arch.as_deref(),
    )?;
    let model = classifier.model();
    let image = read_model_image(model, image)?;
    let (x, y) = args.at;
    let explanation = explain(model, &image, args.layer, args.channel, y, x, &device)?;
    if args.json {
        super::print_json(&serde_json::to_value(explanation.to_json())?);
    } else {
        println!("{explanation}");
    }
    Ok(())
}
