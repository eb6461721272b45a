//! The learner: layer groups, losses, schedules, metrics, the training loop, the LR finder.

mod checkpoint;
mod evaluate;
mod features;
mod fit;
mod groups;
mod history;
mod loss;
mod lr_find;
mod metrics;
mod multi_label;
mod optimizer;
mod predict_set;
mod rates;
mod schedule;
mod step;
mod stop;
mod watch;

pub use crate::progress::Progress;
pub use checkpoint::{
    Checkpoint, CheckpointEvery, RunSettings, STATE_KEY, TrainingState, read_checkpoint,
    resume_checkpoint, run_settings, write_checkpoint,
};
pub use evaluate::Evaluation;
pub use features::FeatureSet;
pub use fit::{FitConfig, Learner};
pub use groups::{group_params, set_trainable};
pub use history::{EpochRecord, History};
pub use loss::{bce_with_logits, cross_entropy, loss_for, probabilities};
pub use lr_find::{LrFinder, lr_find, lr_find_head};
pub use metrics::{Scores, accuracy, argmax_rows, score};
pub use multi_label::{
    TagReport, accuracy_at, best_threshold, fbeta, sweep_thresholds, tag_reports, threshold_sweep,
};
pub use optimizer::{CyclingAdamW, Momentum, adamw_with_momentum};
pub use predict_set::{SetPredictions, predict_set};
pub use rates::LayerRates;
pub use schedule::{OneCycle, Schedule};
pub use stop::{stop_flag, stop_requested};
pub use watch::{StepEvent, Watcher};
