//! `convlearn kernels MODEL -o kernels.png`, or `convlearn kernels --pretrained WEIGHTS …`: what the
//! first layer's kernels learned, as pictures; with `--layer L --channel C --images DIR`, the
//! pictures of a folder that excite one deeper channel most.

use std::path::PathBuf;

use anyhow::{Result, bail};
use convlearn::Classifier;
use convlearn::device::inference_device;
use convlearn::interpret::{image_files, render_first_kernels, render_top_patches, top_patches};
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
    /// Instead of the first kernels: the pictures that excite this layer's --channel most, by the
    /// name `activations` shows (e.g. "conv2 + ReLU", "features.7").
    #[arg(long, requires_all = ["channel", "images"])]
    layer: Option<String>,
    /// The channel of --layer (0-based).
    #[arg(long, requires = "layer")]
    channel: Option<usize>,
    /// The folder of pictures to search for --layer (sub-folders included).
    #[arg(long, value_name = "DIR", requires = "layer")]
    images: Option<PathBuf>,
    /// How many pictures to show for --layer.
    #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u64).range(1..=100))]
    top: u64,
    /// The most pictures of --images to read.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..))]
    limit: u64,
    /// Where to write the picture.
    #[arg(short, long, default_value = "kernels.png")]
    output: PathBuf,
    /// Print one JSON object: the layer, its shape, the kernels' order and norms (with --layer:
    /// the pictures, their values, positions and regions).
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
    if let (Some(layer), Some(channel), Some(dir)) = (&args.layer, args.channel, &args.images) {
        let images = image_files(dir, args.limit as usize)?;
        // The figure may not replace one of the pictures it is drawn from.
        let inputs: Vec<(&str, &std::path::Path)> =
            images.iter().map(|p| ("--images", p.as_path())).collect();
        super::check_outputs(&inputs, &[("--output", &args.output)])?;
        let model = classifier.model();
        let top = top_patches(
            model,
            &images,
            layer,
            channel,
            args.top as usize,
            &inference_device(),
        )?;
        for (path, why) in &top.skipped {
            eprintln!("warning: {} left out: {why}", path.display());
        }
        render_top_patches(model, &top, &args.output)?;
        if args.json {
            let mut out = json!(top);
            out["output"] = super::json_path(&args.output);
            super::print_json(&out);
        } else {
            println!(
                "{layer}, channel {channel}: the {} strongest of {} pictures in {}, drawn in {}",
                top.patches.len(),
                top.images,
                dir.display(),
                args.output.display()
            );
            for p in &top.patches {
                let [y, x, h, w] = p.region;
                println!(
                    "  {:>9.4}  {}  (at {},{}; pixels {h}×{w} from {y},{x})",
                    p.activation,
                    p.image.display(),
                    p.position[0],
                    p.position[1]
                );
            }
        }
        return Ok(());
    }
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
