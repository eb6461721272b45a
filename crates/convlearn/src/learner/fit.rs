//! The training loop: one-cycle Adam over mini-batches, with validation, progress, NaN detection.

use std::time::Instant;

use burn::module::Module;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Tensor};

use super::{EpochRecord, History, OneCycle, Progress, accuracy, argmax_rows, cross_entropy};
use crate::data::{Batcher, ImageSet, Normalization};
use crate::error::{Error, Result};
use crate::host::values;
use crate::models::Network;

/// How to train.
#[derive(Clone, Debug)]
pub struct FitConfig {
    /// Passes over the training set.
    pub epochs: usize,
    /// Images per optimiser step.
    pub batch_size: usize,
    /// Peak learning rate of the one-cycle schedule.
    pub max_lr: f64,
    /// Decoupled weight decay (0 = none).
    pub weight_decay: f64,
    /// Seed of the shuffling order.
    pub seed: u64,
    /// Show progress bars and per-epoch lines on stderr.
    pub verbose: bool,
}

impl Default for FitConfig {
    fn default() -> Self {
        Self {
            epochs: 3,
            batch_size: 64,
            max_lr: 1e-2,
            weight_decay: 0.0,
            seed: 42,
            verbose: true,
        }
    }
}

/// A model being trained, with the normalisation its inputs get.
pub struct Learner {
    /// The network, on the training (autodiff) device.
    pub model: Network,
    /// Applied to 0..1 pixels.
    pub normalization: Normalization,
    /// The autodiff device.
    pub device: Device,
}

impl Learner {
    /// Wraps a network created on `device` (which must have autodiff enabled).
    pub fn new(model: Network, normalization: Normalization, device: Device) -> Self {
        Self {
            model,
            normalization,
            device,
        }
    }

    fn eval_batcher(&self, batch_size: usize) -> Batcher {
        Batcher {
            normalization: self.normalization.clone(),
            batch_size,
            device: self.device.clone().without_autodiff(),
        }
    }

    /// Logits `[len, classes]` (row-major, host) of every image of `set`, in inference mode.
    pub fn predict_logits(&self, set: &ImageSet, batch_size: usize) -> Vec<f32> {
        let model = self.model.valid();
        let batcher = self.eval_batcher(batch_size);
        let mut out = Vec::new();
        for idx in batcher.epoch_indices(set.len(), None) {
            let logits = model.forward(batcher.batch(set, &idx).images);
            out.extend(values(logits));
        }
        out
    }

    /// Mean cross-entropy and accuracy on `set`.
    pub fn evaluate(&self, set: &ImageSet, batch_size: usize) -> (f64, f64) {
        let model = self.model.valid();
        let batcher = self.eval_batcher(batch_size);
        let (mut loss_sum, mut predictions) = (0.0, Vec::with_capacity(set.len()));
        for idx in batcher.epoch_indices(set.len(), None) {
            let batch = batcher.batch(set, &idx);
            let logits: Tensor<2> = model.forward(batch.images);
            let classes = logits.dims()[1];
            let loss = cross_entropy(logits.clone(), batch.targets).into_scalar::<f32>() as f64;
            loss_sum += loss * idx.len() as f64;
            predictions.extend(argmax_rows(&values(logits), classes));
        }
        (
            loss_sum / set.len().max(1) as f64,
            accuracy(&predictions, &set.labels),
        )
    }

    /// Trains with Adam and a one-cycle schedule, validating after each epoch. A NaN or infinite loss
    /// stops training with an error naming the epoch and batch; the weights from before that batch stay
    /// in `self.model`.
    pub fn fit_one_cycle(
        &mut self,
        train: &ImageSet,
        valid: &ImageSet,
        cfg: &FitConfig,
    ) -> Result<History> {
        if train.is_empty() {
            return Err(Error::Invalid("the training set is empty".into()));
        }
        let batcher = Batcher {
            normalization: self.normalization.clone(),
            batch_size: cfg.batch_size,
            device: self.device.clone(),
        };
        let per_epoch = batcher.num_batches(train.len());
        let schedule = OneCycle::new(cfg.max_lr, per_epoch * cfg.epochs);
        let mut adam = AdamConfig::new();
        if cfg.weight_decay > 0.0 {
            adam = adam.with_weight_decay(Some(WeightDecayConfig::new(cfg.weight_decay as f32)));
        }
        let mut optim = adam.init();
        let mut history = History {
            steps_per_epoch: per_epoch,
            ..History::default()
        };
        let mut step = 0;
        for epoch in 1..=cfg.epochs {
            let start = Instant::now();
            let bar = Progress::new(
                per_epoch as u64,
                &format!("epoch {epoch}/{}", cfg.epochs),
                cfg.verbose,
            );
            let mut loss_sum = 0.0;
            for (b, idx) in batcher
                .epoch_indices(train.len(), Some(cfg.seed + epoch as u64))
                .iter()
                .enumerate()
            {
                let batch = batcher.batch(train, idx);
                let model = self.model.clone();
                let loss = cross_entropy(model.forward(batch.images), batch.targets);
                let value = loss.clone().into_scalar::<f32>() as f64;
                if !value.is_finite() {
                    bar.finish();
                    return Err(Error::Training(format!(
                        "the loss became {value} at epoch {epoch}, batch {} of {per_epoch} (learning rate {:.2e}); \
                         training stopped and the weights from before this batch were kept — try a lower learning rate",
                        b + 1,
                        schedule.lr(step)
                    )));
                }
                let grads = GradientsParams::from_grads(loss.backward(), &model);
                let lr = schedule.lr(step);
                self.model = optim.step(lr, model, grads);
                loss_sum += value;
                history.batch_losses.push((step, value));
                history.learning_rates.push((step, lr));
                step += 1;
                bar.step(format!("loss {:.4}", loss_sum / (b + 1) as f64));
            }
            bar.finish();
            let (valid_loss, valid_accuracy) = self.evaluate(valid, 500);
            let record = EpochRecord {
                epoch,
                train_loss: loss_sum / per_epoch as f64,
                valid_loss,
                valid_accuracy,
                seconds: start.elapsed().as_secs_f64(),
            };
            if cfg.verbose {
                eprintln!(
                    "epoch {epoch}/{}: train loss {:.4}, valid loss {:.4}, valid accuracy {:.2}% ({:.1} s)",
                    cfg.epochs,
                    record.train_loss,
                    record.valid_loss,
                    100.0 * record.valid_accuracy,
                    record.seconds
                );
            }
            history.epochs.push(record);
        }
        Ok(history)
    }
}
