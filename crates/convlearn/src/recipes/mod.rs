//! Whole workflows, each one call: train a CNN from scratch, fine-tune a pretrained one on a folder
//! of photos, and the built-in demo.

mod builder;
mod demo;
mod scratch;
mod transfer;
mod transfer_report;

use std::path::Path;

use crate::error::Result;
use crate::model_file::SavedModel;

pub use builder::FineTune;
pub use demo::{DemoReport, run_demo};
pub use scratch::{
    TrainReport, scratch_learner, scratch_photos, train_classifier, train_classifier_watched,
    train_classifier_with,
};
pub use transfer::{
    MAX_HEAD_LR, MAX_UNFROZEN_LR, TransferConfig, TransferRun, fine_tune, head_lr_find, prepare,
    size_warning,
};
pub use transfer_report::{PhaseReport, TransferReport};

/// Saves a finished run's model to `save` and then removes the run's checkpoint, which the model
/// replaces: the checkpoint goes only once the model is durably written, so a failure leaves one of
/// the two. A checkpoint that cannot be removed is reported, not an error.
pub fn save_replacing_checkpoint(model: &SavedModel, save: &Path, checkpoint: &Path) -> Result<()> {
    model.save(save)?;
    match std::fs::remove_file(checkpoint) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => eprintln!(
            "warning: the model is saved, but its checkpoint {} could not be removed: {e}",
            checkpoint.display()
        ),
        _ => {}
    }
    Ok(())
}
