//! Whole workflows, each one call: train a CNN from scratch, fine-tune a pretrained one on a folder
//! of photos, and the built-in demo.

mod builder;
mod demo;
mod scratch;
mod transfer;

pub use builder::FineTune;
pub use demo::{DemoReport, run_demo};
pub use scratch::{TrainReport, scratch_learner, train_classifier, train_classifier_with};
pub use transfer::{
    MAX_HEAD_LR, MAX_UNFROZEN_LR, PhaseReport, TransferConfig, TransferReport, TransferRun,
    fine_tune, prepare, size_warning,
};
