//! `convlearn export MODEL -o model.onnx`, or `convlearn export --pretrained WEIGHTS -o model.onnx`

use std::path::PathBuf;

use anyhow::{Result, bail};
use convlearn::Classifier;
use convlearn::device::inference_device;
use convlearn::export::{OnnxOptions, samples};
use serde_json::json;

/// Arguments of `export`.
#[derive(clap::Args)]
pub struct Args {
    /// A model saved by convlearn (or none, with --pretrained).
    #[arg(value_name = "MODEL")]
    model: Option<PathBuf>,
    /// Export an ImageNet model made from raw pretrained weights (as `predict --pretrained`).
    #[arg(long, value_name = "WEIGHTS", conflicts_with = "model")]
    pretrained: Option<PathBuf>,
    /// The architecture of --pretrained (recognised from the tensor names when omitted).
    #[arg(long, requires = "pretrained")]
    arch: Option<String>,
    /// The ONNX file to write.
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,
    /// End in Softmax (one label per image) or Sigmoid (several), as the model's task says, with
    /// the output `probabilities`; without it the output is `logits`.
    #[arg(long)]
    probabilities: bool,
    /// Fix the batch dimension (default: dynamic, `N`).
    #[arg(long, value_name = "N", value_parser = super::flags::positive)]
    batch: Option<usize>,
    /// Also write DIR/input.npy (8 random inputs, then each --sample-image as `predict` reads it,
    /// already normalised) and DIR/output.npy (convlearn's outputs for them), to check another
    /// runtime against convlearn on the same numbers.
    #[arg(long, value_name = "DIR")]
    samples: Option<PathBuf>,
    /// Images to add to --samples.
    #[arg(long, value_name = "IMAGE", num_args = 1.., requires = "samples")]
    sample_images: Vec<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs `export`.
pub fn run(args: Args) -> Result<()> {
    let source = match (&args.model, &args.pretrained) {
        (Some(m), None) => m.clone(),
        (None, Some(w)) => w.clone(),
        _ => bail!("give a model file to export (or --pretrained WEIGHTS)"),
    };
    let sample_files = args
        .samples
        .as_ref()
        .map(|d| [d.join("input.npy"), d.join("output.npy")]);
    let mut inputs = vec![("MODEL", source.as_path())];
    inputs.extend(
        args.sample_images
            .iter()
            .map(|p| ("--sample-images", p.as_path())),
    );
    let mut outputs = vec![("--output", args.output.as_path())];
    if let Some([i, o]) = &sample_files {
        outputs.extend([("--samples", i.as_path()), ("--samples", o.as_path())]);
    }
    super::check_outputs(&inputs, &outputs)?;
    let classifier = match &args.pretrained {
        Some(weights) => {
            let arch = args.arch.as_deref().map(super::backbone).transpose()?;
            Classifier::pretrained(weights, arch)?
        }
        None => Classifier::load(&source)?,
    };
    let options = OnnxOptions {
        probabilities: args.probabilities,
        batch: args.batch,
    };
    classifier.export_onnx(&args.output, &options)?;
    let model = classifier.model();
    let written = match &args.samples {
        Some(dir) => {
            let device = inference_device();
            let s = samples(model, &args.sample_images, 8, 42, &options, &device)?;
            Some((s.write(dir)?, s.input_shape[0]))
        }
        None => None,
    };
    let p = &model.meta.preprocess;
    if args.json {
        super::print_json(&json!({
            "model": super::json_path(&source),
            "onnx": super::json_path(&args.output),
            "architecture": model.meta.arch.name(),
            "input": [args.batch, p.channels, p.height, p.width],
            "output": if args.probabilities { "probabilities" } else { "logits" },
            "classes": model.meta.classes.len(),
            "samples": written.as_ref().map(|(files, n)| json!({
                "input": super::json_path(&files[0]),
                "output": super::json_path(&files[1]),
                "items": n,
            })),
        }));
    } else {
        println!(
            "{}: {} exported to {} (input [{}, {}, {}, {}], output {} [N, {}])",
            source.display(),
            model.meta.arch.name(),
            args.output.display(),
            args.batch.map_or("N".to_string(), |b| b.to_string()),
            p.channels,
            p.height,
            p.width,
            if args.probabilities {
                "probabilities"
            } else {
                "logits"
            },
            model.meta.classes.len()
        );
        if let Some((files, n)) = &written {
            println!(
                "{n} sample inputs and convlearn's outputs: {} and {}",
                files[0].display(),
                files[1].display()
            );
        }
    }
    Ok(())
}
