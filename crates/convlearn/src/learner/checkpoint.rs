//! Checkpoints: the model and where training stood, written atomically at the end of every epoch,
//! so an interrupted run can continue with the same schedule position (`--resume`).
//!
//! The optimiser's moment estimates are not stored: a resumed run restarts them (AdamW rebuilds
//! them within a few steps); weights, layer-group state, the chosen rate and the schedule position
//! are restored exactly.

use std::path::Path;

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::History;
use crate::error::{Error, Result};
use crate::model_file::SavedModel;

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
