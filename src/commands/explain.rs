//! `convlearn explain MODEL IMAGE --layer L --channel C --at X,Y`

use std::path::PathBuf;

use anyhow::Result;
use convlearn::device::inference_device;
use convlearn::interpret::{explain, read_model_image};
use convlearn::model_file::SavedModel;

/// Arguments of `explain`.
#[derive(clap::Args)]
pub struct Args {
    /// A saved model.
    model: PathBuf,
    /// The image to run through it.
    image: PathBuf,
    /// Conv layer, counted from 1.
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
    let model = SavedModel::load(&args.model, &device)?;
    let image = read_model_image(&model, &args.image)?;
    let (x, y) = args.at;
    let explanation = explain(&model, &image, args.layer, args.channel, y, x, &device)?;
    if args.json {
        super::print_json(&serde_json::to_value(explanation.to_json())?);
    } else {
        println!("{explanation}");
    }
    Ok(())
}
