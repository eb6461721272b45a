//! `convlearn`: a thin command line over the convlearn library. Each subcommand parses its
//! arguments, calls the library, and prints (text, or one JSON object with `--json`).

mod allocator;
mod commands;

use clap::{Parser, Subcommand};

/// Understand, train, fine-tune and inspect convolutional image classifiers.
#[derive(Parser)]
#[command(name = "convlearn", version, about, long_about = None)]
struct Cli {
    /// The precision of the convolutions' matrix products: fp32, or bf16 operands summed in fp32
    /// (AVX512-BF16; weights, optimiser and BatchNorm stay fp32, as PyTorch's autocast does).
    #[arg(long, global = true, default_value = "fp32", value_parser = commands::parse_precision)]
    precision: convlearn::engine::Precision,
    /// The device to compute on: cpu, or wgpu / cuda in a binary built with that cargo feature
    /// (default: CONVLEARN_DEVICE, else cpu).
    #[arg(long, global = true, value_parser = commands::parse_device)]
    device: Option<convlearn::device::DeviceKind>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a small CNN on generated shapes and write kernel, activation and loss PNGs (no download needed).
    Demo(commands::demo::Args),
    /// Show what one kernel does to a picture: response, ReLU, max-pool, and the arithmetic of a pixel.
    Kernel(commands::kernel::Args),
    /// Train a CNN from scratch (`mnist`, generated `shapes`) or fine-tune a pretrained one on a folder of photos.
    Train(commands::train::Args),
    /// Sweep the learning rate and suggest one (writes a PNG of loss against rate).
    LrFind(commands::lr_find::Args),
    /// Predict the class of images with a saved model.
    Predict(commands::predict::Args),
    /// What a trained model gets wrong: confusion matrix, top losses, uncertain predictions, per-tag scores.
    Interpret(commands::interpret::Args),
    /// Time the benchmark workloads (images/s, peak memory); bench/compare sets them against PyTorch.
    Bench(commands::bench::Args),
    /// Serve the kernel playground and network explorer on a local web page.
    Serve(commands::serve::Args),
    /// Print the arithmetic behind one activation of a conv layer (the spreadsheet view).
    Explain(commands::explain::Args),
    /// Show where the network looked for a class (Grad-CAM), drawn over the picture.
    Heatmap(commands::heatmap::Args),
    /// Draw what the first layer's kernels learned, one tile per kernel, or the pictures that
    /// excite a deeper channel most.
    Kernels(commands::kernels::Args),
    /// Write a plain CNN on one picture as a live spreadsheet (formulas and their values).
    Spreadsheet(commands::spreadsheet::Args),
    /// Export a model to ONNX, for onnxruntime, tract and other runtimes.
    Export(commands::export::Args),
    /// Draw every layer's feature maps for an image, plus the final probabilities.
    Activations(commands::activations::Args),
}

fn main() {
    allocator::configure();
    let cli = Cli::parse();
    if let Err(e) = commands::use_device(cli.device) {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
    commands::use_precision(cli.precision);
    if !matches!(cli.command, Command::Serve(_))
        && let Err(e) = convlearn::device::compute_on_this_thread()
    {
        eprintln!("warning: the main thread does not compute with rayon's threads: {e}");
    }
    let result = match cli.command {
        Command::Demo(a) => commands::demo::run(a),
        Command::Kernel(a) => commands::kernel::run(a),
        Command::Train(a) => commands::train::run(a),
        Command::LrFind(a) => commands::lr_find::run(a),
        Command::Predict(a) => commands::predict::run(a),
        Command::Export(a) => commands::export::run(a),
        Command::Interpret(a) => commands::interpret::run(a),
        Command::Serve(a) => commands::serve::run(a),
        Command::Bench(a) => commands::bench::run(a),
        Command::Explain(a) => commands::explain::run(a),
        Command::Heatmap(a) => commands::heatmap::run(a),
        Command::Kernels(a) => commands::kernels::run(a),
        Command::Spreadsheet(a) => commands::spreadsheet::run(a),
        Command::Activations(a) => commands::activations::run(a),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
