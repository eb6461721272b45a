//! A model file's metadata checked against itself and against the file's size before anything is
//! built from it: a crafted file (a million channels, an empty mean, a 100 000-px input) gets an
//! error naming the field instead of a panic or an allocation of what it claims.

use std::path::Path;

use crate::error::{Error, Result};
use crate::model_file::ModelMeta;
use crate::models::{ArchSpec, CnnSpec};

/// The largest input side a model may declare, in pixels.
pub const INPUT_SIDE_MAX: usize = 2048;

/// The most classes (outputs) a model may declare.
const CLASSES_MAX: usize = 100_000;

/// The most kernels in one conv layer, or units in one dense layer, of a plain CNN.
const WIDTH_MAX: usize = 65_536;

/// The widest kernel of a plain CNN.
const KERNEL_MAX: usize = 31;

/// How far a plain CNN's parameters (as 4-byte floats) may exceed the file they come from: a
/// network that does not fit its file is built, so that loading can list every misfit tensor, but
/// crafted metadata cannot make it allocate more than this beyond what the file holds.
const PARAMETER_SLACK: u64 = 256 << 20;

/// Checks `meta` (read from the model file `path` of `file_len` bytes): every field in range, the
/// fields consistent with each other, and a plain CNN's parameters within 256 MiB of
/// what the file holds (each is stored as a 4-byte float).
pub fn check_meta(meta: &ModelMeta, path: &Path, file_len: u64) -> Result<()> {
    let bad = |m: String| Err(Error::format(path, format!("model metadata: {m}")));
    let p = &meta.preprocess;
    if p.channels != 1 && p.channels != 3 {
        return bad(format!("input channels {} (expected 1 or 3)", p.channels));
    }
    for (what, side) in [("height", p.height), ("width", p.width)] {
        if side == 0 || side > INPUT_SIDE_MAX {
            return bad(format!(
                "input {what} {side} (expected 1 to {INPUT_SIDE_MAX})"
            ));
        }
    }
    let n = &p.normalization;
    if n.mean.len() != p.channels || n.std.len() != p.channels {
        return bad(format!(
            "normalisation has {} means and {} standard deviations for {} channels",
            n.mean.len(),
            n.std.len(),
            p.channels
        ));
    }
    if !n.mean.iter().all(|m| m.is_finite()) || !n.std.iter().all(|s| s.is_finite() && *s > 0.0) {
        return bad(format!(
            "normalisation {:?} / {:?} (means must be finite, standard deviations positive)",
            n.mean, n.std
        ));
    }
    if !(0.0..=1.0).contains(&meta.threshold) {
        return bad(format!("threshold {} (expected 0 to 1)", meta.threshold));
    }
    let classes = meta.arch.classes();
    if classes == 0 || classes > CLASSES_MAX {
        return bad(format!("{classes} outputs (expected 1 to {CLASSES_MAX})"));
    }
    if meta.classes.len() != classes {
        return bad(format!(
            "lists {} class names for {classes} outputs",
            meta.classes.len()
        ));
    }
    match &meta.arch {
        ArchSpec::Plain { spec, .. } => check_plain(spec, meta, file_len).or_else(bad),
        ArchSpec::Pretrained { head, .. } => {
            if head.hidden > WIDTH_MAX {
                return bad(format!("head width {} (at most {WIDTH_MAX})", head.hidden));
            }
            Ok(())
        }
    }
}

fn check_plain(spec: &CnnSpec, meta: &ModelMeta, file_len: u64) -> std::result::Result<(), String> {
    let p = &meta.preprocess;
    if (spec.channels, spec.height, spec.width) != (p.channels, p.height, p.width) {
        return Err(format!(
            "the network takes {}×{}×{} inputs, the preparation makes {}×{}×{}",
            spec.channels, spec.height, spec.width, p.channels, p.height, p.width
        ));
    }
    for (i, c) in spec.convs.iter().enumerate() {
        if c.out == 0 || c.out > WIDTH_MAX || c.kernel > KERNEL_MAX || c.padding > c.kernel {
            return Err(format!(
                "conv layer {} has {} kernels of {}×{} with padding {} (at most {WIDTH_MAX} \
                 kernels of up to {KERNEL_MAX}×{KERNEL_MAX}, padding at most the kernel's side)",
                i + 1,
                c.out,
                c.kernel,
                c.kernel,
                c.padding
            ));
        }
        if c.pool > 16 {
            return Err(format!("conv layer {} pools {}×{}", i + 1, c.pool, c.pool));
        }
    }
    if let Some(&h) = spec.hidden.iter().find(|&&h| h == 0 || h > WIDTH_MAX) {
        return Err(format!(
            "a dense layer of {h} units (expected 1 to {WIDTH_MAX})"
        ));
    }
    let (maps, flat) = spec.shapes().map_err(|e| e.to_string())?;
    // Parameters: each conv's kernels and biases, then each dense layer's weights and biases.
    let mut inputs = spec.channels;
    let mut params: u64 = 0;
    let mut add = |n: Option<u64>| n.and_then(|n| params.checked_add(n)).map(|s| params = s);
    for (c, &(out, _, _)) in spec.convs.iter().zip(&maps) {
        let k = (c.kernel * c.kernel) as u64;
        add((out as u64)
            .checked_mul(inputs as u64)
            .and_then(|v| v.checked_mul(k)))
        .and(add(Some(out as u64)))
        .ok_or("too many parameters")?;
        inputs = out;
    }
    let mut width = flat;
    for &units in spec.hidden.iter().chain([&spec.classes]) {
        add((width as u64).checked_mul(units as u64))
            .and(add(Some(units as u64)))
            .ok_or("too many parameters")?;
        width = units;
    }
    if params.saturating_mul(4) > file_len.saturating_add(PARAMETER_SLACK) {
        return Err(format!(
            "the network has {params} parameters ({} bytes as floats), far more than the file's \
             {file_len} bytes hold",
            params.saturating_mul(4)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{Crop, Normalization, Preprocess};
    use crate::models::ModelPreset;

    fn meta() -> ModelMeta {
        let spec = ModelPreset::SimpleCnn.spec(1, 28, 28, 10);
        let preprocess = Preprocess {
            channels: 1,
            height: 28,
            width: 28,
            normalization: Normalization::mnist(),
            crop: Crop::None,
        };
        let arch = ArchSpec::Plain {
            preset: "simple_cnn".into(),
            spec,
        };
        ModelMeta::new(
            arch,
            (0..10).map(|i| i.to_string()).collect(),
            preprocess,
            false,
        )
    }

    fn refusal(m: &ModelMeta, file_len: u64) -> String {
        check_meta(m, Path::new("m.safetensors"), file_len)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn honest_metadata_passes_and_crafted_fields_are_named() {
        check_meta(&meta(), Path::new("m"), 421_642 * 4).unwrap();
        // A dense layer of 65 536 units after simple_cnn's 3136 features: 320 + 18 496 +
        // (3136 + 1)·65 536 + (65 536 + 1)·10 = 206 260 618 parameters, 825 MB, in a 1 KB file.
        let mut m = meta();
        if let ArchSpec::Plain { spec, .. } = &mut m.arch {
            spec.hidden[0] = 65_536;
        }
        assert!(refusal(&m, 1024).contains("206260618 parameters"));
        check_meta(&m, Path::new("m"), 206_260_618 * 4).unwrap();

        let mut m = meta();
        m.preprocess.channels = 7;
        assert!(refusal(&m, 1 << 30).contains("input channels 7"));
        let mut m = meta();
        m.preprocess.normalization.mean.clear();
        assert!(refusal(&m, 1 << 30).contains("0 means"));
        let mut m = meta();
        m.preprocess.normalization.std[0] = f32::NAN;
        assert!(refusal(&m, 1 << 30).contains("standard deviations positive"));
        let mut m = meta();
        m.preprocess.height = 100_000;
        assert!(refusal(&m, 1 << 30).contains("input height 100000"));
        let mut m = meta();
        m.classes.pop();
        assert!(refusal(&m, 1 << 30).contains("9 class names for 10 outputs"));
        let mut m = meta();
        m.threshold = 2.0;
        assert!(refusal(&m, 1 << 30).contains("threshold 2"));
        let mut m = meta();
        if let ArchSpec::Plain { spec, .. } = &mut m.arch {
            spec.convs[0].out = 1_000_000;
        }
        assert!(refusal(&m, 1 << 30).contains("1000000 kernels"));
        let mut m = meta();
        if let ArchSpec::Plain { spec, .. } = &mut m.arch {
            spec.height = 14;
        }
        assert!(refusal(&m, 1 << 30).contains("takes 1×14×28 inputs"));
    }
}
