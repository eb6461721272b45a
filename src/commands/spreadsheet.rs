//! `convlearn spreadsheet MODEL IMAGE -o net.xlsx` (a plain CNN on one picture as a live workbook)
//! and `convlearn spreadsheet --import conv-example.xlsx -o lesson.safetensors` (fast.ai's lesson
//! workbook as a model, with its picture beside it).

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use convlearn::Classifier;
use convlearn::interpret::{import_lesson_workbook, read_model_image, write_workbook};
use serde_json::json;

/// Arguments of `spreadsheet`.
#[derive(clap::Args)]
pub struct Args {
    /// A plain CNN saved by convlearn (the spreadsheet preset, or another small one), then the
    /// picture to run through it.
    #[arg(num_args = 0..=2, value_name = "MODEL IMAGE")]
    paths: Vec<PathBuf>,
    /// Read fast.ai's lesson workbook (conv-example.xlsx) into a model of the spreadsheet
    /// architecture instead; its input grid is written beside the model as `<stem>.input.png`.
    #[arg(long, value_name = "WORKBOOK", conflicts_with = "paths")]
    import: Option<PathBuf>,
    /// Where to write the workbook (.xlsx; default network.xlsx), or with --import the model
    /// (default lesson.safetensors).
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Print one JSON object: the formula count, where each layer starts, the output cells and
    /// the values the workbook holds for them (with --import: the files and the sheet's output).
    #[arg(long)]
    json: bool,
}

/// Runs `spreadsheet`.
pub fn run(args: Args) -> Result<()> {
    if let Some(workbook) = &args.import {
        return import(workbook, args.output.as_deref(), args.json);
    }
    let [model_path, image] = args.paths.as_slice() else {
        bail!("give a model and a picture (or --import conv-example.xlsx)");
    };
    let output = args.output.clone().unwrap_or_else(|| "network.xlsx".into());
    super::check_outputs(
        &[("MODEL", model_path.as_path()), ("IMAGE", image.as_path())],
        &[("--output", &output)],
    )?;
    let classifier = Classifier::load(model_path)?;
    let model = classifier.model();
    let input = read_model_image(model, image)?;
    let report = write_workbook(model, &input, &output)?;
    if args.json {
        let mut out = json!(report);
        out["output"] = super::json_path(&output);
        super::print_json(&out);
    } else {
        let layers: Vec<String> = report
            .layers
            .iter()
            .map(|(n, c)| format!("{n} at {c}"))
            .collect();
        println!(
            "{}: {} formulas ({}) written to {}",
            image.display(),
            report.formulas,
            layers.join(", "),
            output.display()
        );
    }
    Ok(())
}

fn import(workbook: &Path, output: Option<&Path>, json: bool) -> Result<()> {
    let model_path = output.map_or_else(|| PathBuf::from("lesson.safetensors"), Path::to_path_buf);
    let stem = model_path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let picture = model_path.with_file_name(format!("{stem}.input.png"));
    super::check_outputs(
        &[("--import", workbook)],
        &[
            ("--output", &model_path),
            ("the input picture beside --output", &picture),
        ],
    )?;
    let lesson = import_lesson_workbook(workbook)?;
    lesson.model.save(&model_path)?;
    lesson.save_input(&picture)?;
    if json {
        super::print_json(&json!({
            "model": super::json_path(&model_path),
            "input": super::json_path(&picture),
            "sheet_output": lesson.output,
        }));
    } else {
        println!(
            "the lesson's network saved to {} and its picture to {} (the sheet's output, EN4: {})",
            model_path.display(),
            picture.display(),
            lesson.output
        );
    }
    Ok(())
}
