//! Watching training as it goes: a [`Watcher`] is told after every step and every epoch (fastai's
//! `after_batch` and `after_epoch` callbacks), with the network as it stands.

use super::EpochRecord;
use crate::models::Network;

/// One optimiser step, just taken.
pub struct StepEvent<'a> {
    /// The epoch, 1-based.
    pub epoch: usize,
    /// Epochs in this call to [`super::Learner::fit`].
    pub epochs: usize,
    /// Batches of this epoch done, this one included.
    pub batch: usize,
    /// Batches per epoch.
    pub batches_per_epoch: usize,
    /// The step's number over the learner's whole history, 0-based.
    pub step: usize,
    /// The batch's training loss.
    pub loss: f64,
    /// The rate the last layer group trained at.
    pub learning_rate: f64,
    /// The network after the step.
    pub network: &'a Network,
}

/// Told what training does, as it does it. Both methods do nothing unless overridden; they run on
/// the training thread, so they should be quick (copy what is needed and return).
pub trait Watcher: Send {
    /// After each optimiser step.
    fn after_step(&mut self, _step: &StepEvent<'_>) {}

    /// After each epoch's validation.
    fn after_epoch(&mut self, _record: &EpochRecord, _network: &Network) {}
}
