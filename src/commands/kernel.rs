//! `convlearn kernel IMAGE --kernel K -o OUT.png`

use std::path::PathBuf;

use anyhow::Result;
use convlearn::data::{image_to_maps, load_image};
use convlearn::kernels::{
    Kernel, KernelFigure, PRESETS, Padding, arithmetic_at, render_kernel_figure,
};
use serde_json::json;

/// Arguments of `kernel`.
#[derive(clap::Args)]
pub struct Args {
    /// The picture (PNG, JPEG, BMP, GIF).
    image: PathBuf,
    /// A preset name or a literal matrix such as "-1 -1 -1; 0 0 0; 1 1 1" (channels separated by '|').
    #[arg(short, long, default_value = "bottom-edge", long_help = kernel_help())]
    kernel: String,
    /// Where to write the figure.
    #[arg(short, long, default_value = "kernel.png")]
    output: PathBuf,
    /// Max-pool window after the ReLU (0 to skip).
    #[arg(long, default_value_t = 2)]
    pool: usize,
    /// Render responses in grayscale instead of green (positive) / red (negative).
    #[arg(long)]
    gray: bool,
    /// `gray`: convert to luminance; `rgb`: keep three channels and apply a 3×3×3 kernel.
    #[arg(long, default_value = "gray", value_parser = ["gray", "rgb"])]
    channels: String,
    /// Border handling: valid (no padding, output shrinks), zero (pad with 0, size kept), replicate
    /// (repeat the edge pixels, size kept).
    #[arg(long, default_value = "valid", value_parser = padding)]
    padding: String,
    /// Print the arithmetic of output pixel X,Y (column, row).
    #[arg(long, value_parser = super::parse_pair)]
    at: Option<(usize, usize)>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

fn kernel_help() -> String {
    format!(
        "A preset — {} — or a literal matrix of any odd size: {}",
        PRESETS.join(", "),
        convlearn::kernels::LITERAL_SYNTAX
    )
}

/// Runs `kernel`.
pub fn run(args: Args) -> Result<()> {
    super::check_outputs(&[("IMAGE", &args.image)], &[("--output", &args.output)])?;
    let kernel = Kernel::from_spec(&args.kernel)?;
    let padding = Padding::parse(&args.padding)?;
    let channels = if args.channels == "rgb" || kernel.channels == 3 {
        3
    } else {
        1
    };
    let input = image_to_maps(&load_image(&args.image)?, channels, None)?;
    let figure = KernelFigure::compute(input, &kernel, padding, args.pool)?;
    render_kernel_figure(&figure, args.gray, &args.output)?;
    let arithmetic = match args.at {
        Some((x, y)) => Some(arithmetic_at(
            &figure.input,
            &figure.kernel,
            0.0,
            padding,
            y,
            x,
        )?),
        None => None,
    };
    let (lo, hi) = figure.response.range();
    if args.json {
        super::print_json(&json!({
            "output": super::json_path(&args.output),
            "input": [figure.input.channels, figure.input.height, figure.input.width],
            "kernel": [figure.kernel.channels, figure.kernel.height, figure.kernel.width],
            "response": [figure.response.height, figure.response.width],
            "response_min": lo,
            "response_max": hi,
            "pooled": figure.pooled.as_ref().map(|p| [p.height, p.width]),
            "at": arithmetic.as_ref().map(|a| json!({
                "x": a.x, "y": a.y,
                "windows": a.channels.iter().map(|c| &c.window).collect::<Vec<_>>(),
                "products": a.channels.iter().map(|c| &c.products).collect::<Vec<_>>(),
                "sum": a.total, "relu": a.relu,
            })),
        }));
    } else {
        println!(
            "{}×{}×{} kernel on a {}×{} image: response {}×{} from {lo:.3} to {hi:.3}; figure written to {}",
            figure.kernel.channels,
            figure.kernel.height,
            figure.kernel.width,
            figure.input.width,
            figure.input.height,
            figure.response.width,
            figure.response.height,
            args.output.display()
        );
        if let Some(a) = arithmetic {
            println!("{a}");
        }
    }
    Ok(())
}

/// `--padding`: checked by the library's parser, so `same` gets its explanation.
fn padding(s: &str) -> Result<String, String> {
    Padding::parse(s)
        .map(|_| s.to_string())
        .map_err(|e| e.to_string())
}
