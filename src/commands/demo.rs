//! `convlearn demo`: the main job, needing no downloaded data.

use std::path::PathBuf;

use anyhow::Result;
use convlearn::learner::FitConfig;
use convlearn::recipes::run_demo;
use serde_json::json;

/// Arguments of `demo`.
#[derive(clap::Args)]
pub struct Args {
    /// Folder for the model and the PNGs.
    #[arg(short, long, default_value = "convlearn-demo")]
    output: PathBuf,
    /// Epochs of training.
    #[arg(long, default_value_t = 3, value_parser = super::flags::epochs)]
    epochs: usize,
    /// Print one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

/// Runs `demo`.
pub fn run(args: Args) -> Result<()> {
    eprintln!(
        "generating 6000 training and 1200 validation images of 6 shapes (28×28, random place, size, noise)…"
    );
    let fit = FitConfig {
        epochs: args.epochs,
        ..FitConfig::default()
    };
    let r = run_demo(&args.output, &fit)?;
    if args.json {
        super::print_json(&json!({
            "valid_accuracy": r.training.valid_accuracy,
            "epochs": r.training.epochs,
            "seconds": r.training.seconds,
            "images_per_second": r.training.images_per_second,
            "model": super::json_path(&r.model),
            "kernel_png": super::json_path(&r.kernel_png),
            "activations_png": super::json_path(&r.activations_png),
            "loss_png": super::json_path(&r.loss_png),
        }));
        return Ok(());
    }
    let m = r.model.display();
    let s = r.sample_png.display();
    println!(
        "trained the small CNN on generated shapes: {:.1}% validation accuracy after {} epochs ({:.1} s, {:.0} images/s)\n",
        100.0 * r.training.valid_accuracy,
        r.training.epochs,
        r.training.seconds,
        r.training.images_per_second
    );
    println!("wrote:");
    println!("  {m}  the model (weights + classes + preprocessing)");
    println!(
        "  {}  what the bottom-edge kernel does: response, ReLU, max-pool",
        r.kernel_png.display()
    );
    println!(
        "  {}  every layer's feature maps for {s}",
        r.activations_png.display()
    );
    println!("  {}  the loss while training\n", r.loss_png.display());
    println!(
        "the strongest activation of the first layer's kernel 0, computed by hand:\n{}\n",
        r.explanation
    );
    println!("what to try next:");
    println!("  convlearn predict {m} {s}");
    println!("  convlearn explain {m} {s} --layer 1 --channel 5 --at 10,12");
    println!("  convlearn heatmap {m} {s} -o heat.png   # where it looked (Grad-CAM)");
    println!("  convlearn kernels {m} -o kernels.png   # what the first kernels learned");
    println!("  convlearn serve --model {m}   # all of it in the browser");
    println!(
        "  convlearn kernel ../shared/data/images/chelsea.png --kernel top-sobel --at 40,40 -o cat-edges.png"
    );
    println!(
        "  convlearn train mnist --data ../shared/data/mnist --epochs 3   # real data: ≥99% test accuracy"
    );
    println!(
        "  convlearn train mnist --arch spreadsheet                          # fast.ai's 2-kernel spreadsheet network"
    );
    println!(
        "  convlearn predict --pretrained ../shared/weights/mobilenet_v2_imagenet_from_tflite.safetensors ../shared/data/images/cat.bmp"
    );
    println!(
        "  convlearn train ../shared/data/hymenoptera --pretrained ../shared/weights/mobilenet_v2_imagenet_from_tflite.safetensors"
    );
    Ok(())
}
