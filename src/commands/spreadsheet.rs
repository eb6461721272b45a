//! `convlearn spreadsheet MODEL IMAGE -o net.xlsx`: a plain CNN on one picture as a live workbook.

use std::path::PathBuf;

use anyhow::Result;
use convlearn::Classifier;
use convlearn::interpret::{read_model_image, write_workbook};
use serde_json::json;

/// Arguments of `spreadsheet`.
#[derive(clap::Args)]
pub struct Args {
    /// A plain CNN saved by convlearn (the spreadsheet preset, or another small one).
    model: PathBuf,
    /// The picture to run through it.
    image: PathBuf,
    /// Where to write the workbook (.xlsx).
    #[arg(short, long, default_value = "network.xlsx")]
    output: PathBuf,
    /// Print one JSON object: the formula count, where each layer starts, the output cells and
    /// the values the workbook holds for them.
    #[arg(long)]
    json: bool,
}

/// Runs `spreadsheet`.
pub fn run(args: Args) -> Result<()> {
    super::check_outputs(
        &[
            ("MODEL", args.model.as_path()),
            ("IMAGE", args.image.as_path()),
        ],
        &[("--output", &args.output)],
    )?;
    let classifier = Classifier::load(&args.model)?;
    let model = classifier.model();
    let input = read_model_image(model, &args.image)?;
    let report = write_workbook(model, &input, &args.output)?;
    if args.json {
        let mut out = json!(report);
        out["output"] = super::json_path(&args.output);
        super::print_json(&out);
    } else {
        let layers: Vec<String> = report
            .layers
            .iter()
            .map(|(n, c)| format!("{n} at {c}"))
            .collect();
        println!(
            "{}: {} formulas ({}) written to {}",
            args.image.display(),
            report.formulas,
            layers.join(", "),
            args.output.display()
        );
    }
    Ok(())
}
