//! The learner: losses, schedules, metrics, the training loop and its record.

mod fit;
mod history;
mod loss;
mod metrics;
mod progress;
mod schedule;

pub use fit::{FitConfig, Learner};
pub use history::{EpochRecord, History};
pub use loss::{bce_with_logits, cross_entropy};
pub use metrics::{accuracy, argmax_rows};
pub use progress::Progress;
pub use schedule::OneCycle;
