//! `convlearn kernels MODEL -o kernels.png`, or `convlearn kernels --pretrained WEIGHTS …`: what the
//! first layer's kernels learned, as pictures.

use std::path::PathBuf;

use anyhow::{Result, bail};
use convlearn::Classifier;
use convlearn::interpret::render_first_kernels;
use serde_json::json;

/// Arguments of `kernels`.
#[derive(clap::Args)]
pub struct Args {
    /// A model saved by convlearn (omit it with --pretrained).
    model: Option<PathBuf>,
    /// An ImageNet model from raw pretrained weights instead.
    #[arg(long, value_name = "WEIGHTS", conflicts_with = "model")]
    pretrained: Option<PathBuf>,
    /// The architecture of --pretrained (recognised from the tensor names when omitted).
    #[arg(long)]
    arch: Option<String>,
    /// Where to write the picture.
    #[arg(short, long, default_value = "kernels.png")]
    output: PathBuf,
    /// Print one JSON object: the layer, its shape, the kernels' order and norms.
    #[arg(long)]
    json: bool,
}

/// Runs `kernels`.
pub fn run(args: Args) -> Result<()> {
    let (classifier, source) = match (&args.model, &args.pretrained) {
        (Some(model), None) => (Classifier::load(model)?, model),
        (None, Some(weights)) => {
            let arch = args.arch.as_deref().map(super::backbone).transpose()?;
            (Classifier::pretrained(weights, arch)?, weights)
        }
        _ => bail!("give a model file (or --pretrained WEIGHTS)"),
    };
    super::check_outputs(
        &[("MODEL", source.as_path())],
        &[("--output", &args.output)],
    )?;
    let kernels = render_first_kernels(classifier.model(), &args.output)?;
    if args.json {
        let mut out = json!(kernels);
        out["output"] = super::json_path(&args.output);
        super::print_json(&out);
    } else {
        let [n, cin, kh, kw] = kernels.shape;
        println!(
            "{}: {n} kernels {kh}×{kw}×{cin}, largest norm first, drawn in {}",
            kernels.layer,
            args.output.display()
        );
    }
    Ok(())
}
