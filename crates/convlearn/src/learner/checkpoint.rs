//! Checkpoints: the model and where training stood, written atomically at the end of every epoch,
//! so an interrupted run can continue with the same schedule position (`--resume`).
//!
//! A checkpoint also holds the run's settings; `--resume` refuses a checkpoint of another run
//! ([`resume_checkpoint`]). The optimiser's moment estimates are not stored: a resumed run restarts them (AdamW rebuilds
//! them within a few steps); weights, layer-group state, the chosen rate and the schedule position
//! are restored exactly.

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::History;
use crate::error::{Error, Result};
use crate::model_file::{ModelMeta, SavedModel};

/// What a run was asked to do (`"epochs" → "3"`, `"weights" → "resnet34.pth"`…), kept in its
/// checkpoints so that `--resume` with other settings is refused with every difference named.
pub type RunSettings = BTreeMap<String, String>;

/// The [`RunSettings`] of `(name, value)` pairs.
pub fn run_settings<const N: usize>(pairs: [(&str, String); N]) -> RunSettings {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// The metadata key of the training state in a checkpoint file.
pub const STATE_KEY: &str = "convlearn_training_state";

/// Where training stood when a checkpoint was written.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TrainingState {
    /// Phase of the recipe (0 = frozen, 1 = unfrozen; 0 for training from scratch).
    pub phase: usize,
    /// Epochs of that phase completed.
    pub epochs_done: usize,
    /// The learning rate the recipe chose (so a resumed run does not search again).
    pub lr: Option<f64>,
    /// Everything recorded so far.
    pub history: History,
    /// The settings of the run that wrote the checkpoint.
    #[serde(default)]
    pub settings: RunSettings,
}

/// Writes `model` and `state` to `path` (atomically: a reader sees the old or the new file, whole).
pub fn write_checkpoint(path: &Path, model: &SavedModel, state: &TrainingState) -> Result<()> {
    let json = serde_json::to_string(state).expect("state serialises");
    model.save_with(path, &[(STATE_KEY, json)])
}

/// Reads a checkpoint: the model (on `device`) and the training state.
pub fn read_checkpoint(path: &Path, device: &Device) -> Result<(SavedModel, TrainingState)> {
    let json = SavedModel::read_metadata_entry(path, STATE_KEY)?.ok_or_else(|| {
        Error::format(path, "is a model but not a checkpoint (no training state)")
    })?;
    let state = serde_json::from_str(&json)
        .map_err(|e| Error::format(path, format!("training state is malformed: {e}")))?;
    Ok((SavedModel::load(path, device)?, state))
}

/// Reads the checkpoint at `path` for `--resume`: it must exist, and the run it belongs to must be
/// this one — the same network and data (`meta`, the new run's model metadata) and the same
/// `settings`. Anything else is an error listing each difference, so a resumed run never trains
/// one network under another's name or a schedule of another length.
pub fn resume_checkpoint(
    path: &Path,
    meta: &ModelMeta,
    settings: &RunSettings,
    device: &Device,
) -> Result<(SavedModel, TrainingState)> {
    if !path.is_file() {
        return Err(Error::Invalid(format!(
            "--resume: there is no checkpoint at {} (one is written after every epoch; without \
             --resume the run starts afresh)",
            path.display()
        )));
    }
    let (model, state) = read_checkpoint(path, device)?;
    let mut differences = meta_differences(&model.meta, meta);
    let keys: std::collections::BTreeSet<&String> =
        state.settings.keys().chain(settings.keys()).collect();
    for key in keys {
        let (was, now) = (state.settings.get(key), settings.get(key));
        if was != now {
            let show = |v: Option<&String>| v.map_or("(not set)".to_string(), |v| format!("'{v}'"));
            differences.push(format!(
                "{key}: checkpoint {}, this run {}",
                show(was),
                show(now)
            ));
        }
    }
    if differences.is_empty() {
        return Ok((model, state));
    }
    Err(Error::Invalid(format!(
        "--resume: {} belongs to another run; nothing was trained or written. It differs in:\n  {}\n\
         Resume with the checkpoint's settings, or train afresh without --resume (or with another --save).",
        path.display(),
        differences.join("\n  ")
    )))
}

/// How the model of a checkpoint (`was`) differs from the one a new run builds (`now`).
fn meta_differences(was: &ModelMeta, now: &ModelMeta) -> Vec<String> {
    let mut out = Vec::new();
    if was.arch != now.arch {
        out.push(format!(
            "architecture: checkpoint {} ({} outputs), this run {} ({} outputs)",
            was.arch.name(),
            was.arch.classes(),
            now.arch.name(),
            now.arch.classes()
        ));
    }
    if was.classes != now.classes {
        out.push(format!(
            "classes: checkpoint {} ({}), this run {} ({})",
            was.classes.len(),
            abbreviate(&was.classes),
            now.classes.len(),
            abbreviate(&now.classes)
        ));
    }
    let (a, b) = (&was.preprocess, &now.preprocess);
    // The input size is the architecture's (from scratch) or a setting (`--size`, which may
    // change between phases), so only the channels are compared here.
    if a.channels != b.channels {
        out.push(format!(
            "input channels: checkpoint {}, this run {}",
            a.channels, b.channels
        ));
    }
    if a.normalization != b.normalization || a.crop != b.crop {
        out.push(format!(
            "input preparation (the data's statistics or the crop): checkpoint {:?} {:?}, this run {:?} {:?}",
            a.normalization, a.crop, b.normalization, b.crop
        ));
    }
    if was.multi_label != now.multi_label {
        out.push(format!(
            "labels: checkpoint {}, this run {}",
            kind(was.multi_label),
            kind(now.multi_label)
        ));
    }
    out
}

fn kind(multi_label: bool) -> &'static str {
    if multi_label {
        "several per image"
    } else {
        "one per image"
    }
}

fn abbreviate(names: &[String]) -> String {
    let shown: Vec<&str> = names.iter().take(4).map(String::as_str).collect();
    let more = if names.len() > 4 { ", …" } else { "" };
    format!("{}{more}", shown.join(", "))
}
