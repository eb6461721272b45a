//! The learner: layer groups, losses, schedules, metrics, the training loop, the LR finder.

mod checkpoint;
mod features;
mod fit;
mod groups;
mod history;
mod loss;
mod lr_find;
mod metrics;
mod progress;
mod rates;
mod schedule;

pub use checkpoint::{STATE_KEY, TrainingState, read_checkpoint, write_checkpoint};
pub use features::FeatureSet;
pub use fit::{FitConfig, Learner};
pub use groups::{group_params, set_trainable};
pub use history::{EpochRecord, History};
pub use loss::{bce_with_logits, cross_entropy};
pub use lr_find::{LrFinder, lr_find};
pub use metrics::{accuracy, argmax_rows};
pub use progress::Progress;
pub use rates::LayerRates;
pub use schedule::{OneCycle, Schedule};
