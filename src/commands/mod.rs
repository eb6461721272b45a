//! One file per subcommand.

pub mod activations;
pub mod bench;
pub mod data_args;
pub mod demo;
pub mod explain;
pub mod export;
pub mod flags;
pub mod heatmap;
pub mod interpret;
pub mod interrupt;
pub mod kernel;
pub mod kernels;
pub mod lr_find;
pub mod predict;
pub mod serve;
pub mod spreadsheet;
pub mod train;

/// Parses `--precision`.
pub fn parse_precision(s: &str) -> Result<convlearn::engine::Precision, String> {
    use convlearn::engine::Precision;
    Precision::parse(s).ok_or_else(|| {
        format!(
            "unknown precision '{s}' (known: {})",
            Precision::NAMES.join(", ")
        )
    })
}

/// Sets the engine's precision for the process; says so on stderr when this CPU cannot do bf16,
/// and when the device is a GPU, where the precision does not apply.
pub fn use_precision(precision: convlearn::engine::Precision) {
    use convlearn::device::{DeviceKind, current_device};
    use convlearn::engine::{Precision, bf16_hardware, set_precision};
    let device = current_device();
    let chosen = set_precision(precision);
    if precision != Precision::Fp32 && device != DeviceKind::Cpu {
        eprintln!(
            "note: --precision {} selects convlearn's CPU products; on {} burn computes in fp32",
            precision.name(),
            device.name()
        );
    } else if chosen != precision {
        eprintln!(
            "note: --precision {}: this CPU's bf16 products: {}; computing in fp32",
            precision.name(),
            bf16_hardware()
        );
    }
}

/// Parses `--device`.
pub fn parse_device(s: &str) -> Result<convlearn::device::DeviceKind, String> {
    convlearn::device::DeviceKind::parse(s).map_err(|e| e.to_string())
}

/// Selects `--device`, else the one `CONVLEARN_DEVICE` names: an error naming the flag or the
/// variable when this binary cannot compute there.
pub fn use_device(flag: Option<convlearn::device::DeviceKind>) -> convlearn::Result<()> {
    use convlearn::device::{device_from_environment, select_device};
    match flag {
        Some(kind) => select_device(kind)
            .map_err(|e| convlearn::Error::Invalid(format!("--device {}: {e}", kind.name()))),
        None => select_device(device_from_environment()?),
    }
}

/// Parses "A,B" into two numbers (for `--at`).
pub fn parse_pair(s: &str) -> Result<(usize, usize), String> {
    let (a, b) = s
        .split_once(',')
        .ok_or_else(|| format!("expected two numbers separated by a comma, like 3,5; got '{s}'"))?;
    let num = |t: &str| {
        t.trim()
            .parse::<usize>()
            .map_err(|_| format!("'{t}' is not a non-negative whole number (in '{s}')"))
    };
    Ok((num(a)?, num(b)?))
}

/// Refuses outputs that are the same file as an input or as each other (`(flag, path)` pairs),
/// before any work starts.
pub fn check_outputs(
    inputs: &[(&str, &std::path::Path)],
    outputs: &[(&str, &std::path::Path)],
) -> anyhow::Result<()> {
    Ok(convlearn::output_file::check_outputs(inputs, outputs)?)
}

/// A path for JSON output: JSON strings are Unicode, so bytes of a file name that are not UTF-8
/// become U+FFFD (the text output shows the same lossy form).
pub fn json_path(path: &std::path::Path) -> serde_json::Value {
    serde_json::Value::String(path.to_string_lossy().into_owned())
}

/// Prints one JSON object on stdout.
pub fn print_json(value: &serde_json::Value) {
    println!("{}", serde_json::to_string(value).expect("JSON serialises"));
}

/// The backbone `--arch NAME` names, or an error listing the known ones.
pub fn backbone(name: &str) -> anyhow::Result<convlearn::models::BackboneKind> {
    use convlearn::models::BackboneKind;
    BackboneKind::parse(name).ok_or_else(|| {
        let known: Vec<&str> = BackboneKind::ALL.iter().map(|(n, _)| *n).collect();
        anyhow::anyhow!("unknown --arch '{name}' (known: {})", known.join(", "))
    })
}

/// The classifier and the image of a command taking `MODEL IMAGE`, or `--pretrained WEIGHTS IMAGE`
/// (with `--arch`): the classifier, the image's path and the model's (or weights') path.
pub fn model_and_image<'a>(
    paths: &'a [std::path::PathBuf],
    pretrained: Option<&'a std::path::Path>,
    arch: Option<&str>,
) -> anyhow::Result<(
    convlearn::Classifier,
    &'a std::path::Path,
    &'a std::path::Path,
)> {
    use convlearn::Classifier;
    Ok(match (pretrained, paths) {
        (Some(weights), [image]) => {
            let arch = arch.map(backbone).transpose()?;
            (Classifier::pretrained(weights, arch)?, image, weights)
        }
        (None, [model, image]) => (Classifier::load(model)?, image, model),
        (Some(_), _) => anyhow::bail!("with --pretrained WEIGHTS, give one image"),
        (None, _) => {
            anyhow::bail!("give a model file and an image (or --pretrained WEIGHTS and an image)")
        }
    })
}
