//! What the page's training view draws: after every step of a run, its loss and the first layer's
//! kernels as they stand; after every epoch, the validation scores. A [`Watcher`] fills it in.

use std::sync::{Arc, Mutex};

use convlearn::host::values;
use convlearn::learner::{EpochRecord, StepEvent, Watcher};
use convlearn::models::Network;
use serde::Serialize;

/// First-layer kernels recorded per step, at most (the spreadsheet network has 2).
pub const MAX_KERNELS: usize = 8;

/// One step.
#[derive(Clone, Debug, Serialize)]
pub struct StepView {
    /// Step number in the run, 0-based.
    pub step: usize,
    /// Epoch, 1-based.
    pub epoch: usize,
    /// The batch's loss.
    pub loss: f64,
    /// The rate it trained at.
    pub learning_rate: f64,
    /// The first layer's kernels after the step: `[kernel][input channel][row][column]`.
    pub kernels: Vec<Vec<Vec<Vec<f32>>>>,
}

/// One epoch's validation.
#[derive(Clone, Debug, Serialize)]
pub struct EpochView {
    /// Epoch, 1-based.
    pub epoch: usize,
    /// Mean training loss.
    pub train_loss: f64,
    /// Validation loss.
    pub valid_loss: f64,
    /// Validation accuracy (0–1).
    pub valid_accuracy: f64,
}

/// Everything recorded about the current (or last) run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TrainingLog {
    /// Runs started since the server started: 0 before the first.
    pub run: u64,
    /// Steps the run will take.
    pub total_steps: usize,
    /// Every step so far.
    pub steps: Vec<StepView>,
    /// Every epoch so far.
    pub epochs: Vec<EpochView>,
}

/// Shared between the training thread and the requests.
pub type SharedLog = Arc<Mutex<TrainingLog>>;

/// Records into a [`SharedLog`].
pub struct LogWatcher(pub SharedLog);

/// The first convolution's weights as `[kernel][channel][row][column]` (the first
/// [`MAX_KERNELS`]).
fn first_kernels(network: &Network) -> Vec<Vec<Vec<Vec<f32>>>> {
    let Some((_, conv)) = network.first_conv() else {
        return Vec::new();
    };
    let [out, cin, kh, kw] = conv.weight.dims();
    let w = values(conv.weight.val());
    (0..out.min(MAX_KERNELS))
        .map(|o| {
            (0..cin)
                .map(|c| {
                    (0..kh)
                        .map(|y| {
                            let at = ((o * cin + c) * kh + y) * kw;
                            w[at..at + kw].to_vec()
                        })
                        .collect()
                })
                .collect()
        })
        .collect()
}

impl Watcher for LogWatcher {
    fn after_step(&mut self, e: &StepEvent<'_>) {
        let kernels = first_kernels(e.network);
        let mut log = self.0.lock().expect("not poisoned");
        let step = log.steps.len();
        log.total_steps = e.epochs * e.batches_per_epoch;
        log.steps.push(StepView {
            step,
            epoch: e.epoch,
            loss: e.loss,
            learning_rate: e.learning_rate,
            kernels,
        });
    }

    fn after_epoch(&mut self, r: &EpochRecord, _network: &Network) {
        let mut log = self.0.lock().expect("not poisoned");
        let epoch = log.epochs.len() + 1;
        log.epochs.push(EpochView {
            epoch,
            train_loss: r.train_loss,
            valid_loss: r.valid_loss,
            valid_accuracy: r.valid_accuracy,
        });
    }
}
