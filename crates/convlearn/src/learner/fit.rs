//! The learner: a network with its metadata, layer groups that can be frozen, and the training loop
//! (AdamW, a schedule, per-group rates, validation each epoch, progress, NaN detection, checkpoints).

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::optim::lr_scheduler::module_lr_scheduler::ModuleLrScheduler;
use burn::optim::{GradientsParams, ModuleOptimizer, OptimizerRecord};
use burn::tensor::{Bytes, Device, Tensor};
use serde::{Deserialize, Serialize};

use super::groups::{group_params, set_trainable};
use super::{CheckpointEvery, TrainingState, write_checkpoint};
use super::{
    EpochRecord, FeatureSet, History, LayerRates, Progress, Schedule, Scores, SetPredictions,
    adamw_with_momentum, loss_for, predict_set, probabilities, score, stop_requested,
};
use crate::data::{Batcher, ImageSource, Normalization};
use crate::error::{Error, Result};
use crate::host::values;
use crate::model_file::{ModelMeta, SavedModel};
use crate::models::Network;

/// How to train.
#[derive(Clone, Debug)]
pub struct FitConfig {
    /// Passes over the training set.
    pub epochs: usize,
    /// Images per optimiser step.
    pub batch_size: usize,
    /// Peak learning rate(s) per layer group.
    pub lr: LayerRates,
    /// The schedule.
    pub schedule: Schedule,
    /// Decoupled weight decay (AdamW; 0 = plain Adam).
    pub weight_decay: f64,
    /// Seed of the shuffling order and of augmentation.
    pub seed: u64,
    /// Epochs already done (a resumed run starts after them, at the same schedule position).
    pub start_epoch: usize,
    /// Batches of epoch `start_epoch + 1` already done (a run resumed from a mid-epoch checkpoint).
    pub start_batch: usize,
    /// With a checkpoint file ([`Learner::checkpoint`]), also write it during an epoch this often
    /// (it is always written at an epoch's end).
    pub checkpoint_every: Option<CheckpointEvery>,
    /// Show progress bars and per-epoch lines on stderr.
    pub verbose: bool,
}

impl Default for FitConfig {
    fn default() -> Self {
        Self {
            epochs: 3,
            batch_size: 64,
            lr: LayerRates::Single(1e-2),
            schedule: Schedule::OneCycle,
            weight_decay: 0.0,
            seed: 42,
            start_epoch: 0,
            start_batch: 0,
            checkpoint_every: None,
            verbose: true,
        }
    }
}

/// A model's loss and scores on a labelled set.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Evaluation {
    /// Mean loss (cross-entropy or binary cross-entropy).
    pub loss: f64,
    /// Accuracy (and F2 for multi-label) at the model's threshold.
    pub scores: Scores,
}

/// A model being trained.
pub struct Learner {
    /// The network, on the training (autodiff) device.
    pub model: Network,
    /// Architecture, classes and preprocessing (saved with the weights).
    pub meta: ModelMeta,
    /// The autodiff device.
    pub device: Device,
    /// Layer groups before this index are frozen.
    pub frozen_before: usize,
    /// Body BatchNorms run in eval mode (running statistics fixed) while training.
    pub bn_freeze: bool,
    /// Everything recorded so far, over all phases.
    pub history: History,
    /// Where to write a checkpoint (atomically) at the end of each epoch, during one as
    /// [`FitConfig::checkpoint_every`] says, and when a stop is asked for.
    pub checkpoint: Option<PathBuf>,
    /// AdamW's state from a checkpoint ([`super::Checkpoint::optimizer`]): the next
    /// [`Learner::fit`] that starts mid-phase continues with it.
    pub optimizer_state: Option<Vec<u8>>,
    /// What the checkpoint records besides the weights (phase, rate); `epochs_done` and `history`
    /// are filled in as training goes.
    pub state: TrainingState,
}

impl Learner {
    /// Wraps a network created on `device` (which must have autodiff enabled); everything trains.
    pub fn new(model: Network, meta: ModelMeta, device: Device) -> Self {
        Self {
            model,
            meta,
            device,
            frozen_before: 0,
            bn_freeze: false,
            history: History::default(),
            checkpoint: None,
            optimizer_state: None,
            state: TrainingState::default(),
        }
    }

    /// Continues from the checkpoint at `path`, which must belong to this run
    /// ([`super::resume_checkpoint`] checks the network, data and `self.state.settings`): takes
    /// its network, optimiser state and history, and returns where training stood.
    pub fn resume_from(&mut self, path: &Path) -> Result<TrainingState> {
        let saved = super::resume_checkpoint(path, &self.meta, &self.state.settings, &self.device)?;
        self.model = saved.model.network;
        self.optimizer_state = saved.optimizer;
        self.history = saved.state.history.clone();
        Ok(saved.state)
    }

    /// Number of layer groups.
    pub fn num_groups(&self) -> usize {
        self.model.layout().num_groups()
    }

    /// Freezes the layer groups before `n`.
    pub fn freeze_to(&mut self, n: usize) {
        self.frozen_before = n.min(self.num_groups() - 1);
        self.model = set_trainable(self.model.clone(), self.frozen_before, self.bn_freeze);
    }

    /// Only the head trains.
    pub fn freeze(&mut self) {
        self.freeze_to(self.num_groups() - 1);
    }

    /// Every group trains.
    pub fn unfreeze(&mut self) {
        self.freeze_to(0);
    }

    /// Runs every body BatchNorm in eval mode (`true`) or lets unfrozen ones update their statistics.
    pub fn bn_freeze(&mut self, on: bool) {
        self.bn_freeze = on;
        self.model = set_trainable(self.model.clone(), self.frozen_before, on);
    }

    /// The trained model, ready to save or predict with.
    pub fn saved_model(&self) -> SavedModel {
        SavedModel {
            meta: self.meta.clone(),
            network: self.model.valid(),
        }
    }

    fn batcher(&self, batch_size: usize, normalization: Normalization, train: bool) -> Batcher {
        let device = if train {
            self.device.clone()
        } else {
            self.device.clone().without_autodiff()
        };
        Batcher {
            normalization,
            batch_size,
            device,
        }
    }

    /// Probabilities on `set`, as each item is and averaged with `copies` randomly augmented
    /// versions (test-time augmentation with the source's training augmentation).
    pub fn predict_tta(
        &self,
        set: &dyn ImageSource,
        copies: usize,
        batch_size: usize,
        seed: u64,
    ) -> SetPredictions {
        predict_set(
            &self.model.valid(),
            &self.meta,
            set,
            copies,
            batch_size,
            seed,
            &self.device.clone().without_autodiff(),
        )
    }

    /// Mean loss and scores on `set`.
    pub fn evaluate(&self, set: &dyn ImageSource, batch_size: usize) -> Evaluation {
        self.evaluate_with(set, batch_size, false)
    }

    fn evaluate_with(
        &self,
        set: &dyn ImageSource,
        batch_size: usize,
        features: bool,
    ) -> Evaluation {
        self.evaluate_counting(set, batch_size, features).0
    }

    /// The evaluation, on the items that could be read, and how many could not.
    fn evaluate_counting(
        &self,
        set: &dyn ImageSource,
        batch_size: usize,
        features: bool,
    ) -> (Evaluation, usize) {
        let run = self.run_over(set, batch_size, features);
        let labels = set.labels().select(&run.items);
        let scores = score(
            &run.probs,
            labels.view(),
            set.classes().len(),
            self.meta.threshold,
        );
        let evaluation = Evaluation {
            loss: run.loss,
            scores,
        };
        (evaluation, run.unreadable)
    }

    /// Probabilities `[len, outputs]` of the head on precomputed activations.
    pub fn predict_features(&self, set: &FeatureSet) -> Vec<f32> {
        self.run_over(set, 256, true).probs
    }

    /// Mean loss and probabilities over the items of `set` that can be read.
    fn run_over(&self, set: &dyn ImageSource, batch_size: usize, features: bool) -> RunOver {
        let model = self.model.valid();
        let norm = self.normalization_for(features);
        let batcher = self.batcher(batch_size, norm, false);
        let mut run = RunOver::default();
        let mut loss_sum = 0.0;
        for idx in batcher.epoch_indices(set.len(), None) {
            let batch = batcher.batch(set, &idx);
            run.unreadable += batch.unreadable.len();
            if batch.indices.is_empty() {
                continue;
            }
            let logits = forward(&model, batch.images, features);
            let loss = loss_for(logits.clone(), batch.targets).into_scalar::<f32>() as f64;
            loss_sum += loss * batch.indices.len() as f64;
            run.probs
                .extend(values(probabilities(logits, self.meta.multi_label)));
            run.items.extend(batch.indices);
        }
        run.loss = loss_sum / run.items.len().max(1) as f64;
        run
    }

    /// The normalisation of the learner's inputs: the model's for images, none for precomputed
    /// activations.
    pub(crate) fn normalization_for(&self, features: bool) -> Normalization {
        if features {
            Normalization::identity(1)
        } else {
            self.meta.preprocess.normalization.clone()
        }
    }

    /// Trains on `train`, validating on `valid` after each epoch; losses, rates and epoch metrics go
    /// to [`Learner::history`]. A NaN or infinite loss stops training with an error naming the epoch
    /// and batch; the weights from before that batch stay.
    pub fn fit(
        &mut self,
        train: &dyn ImageSource,
        valid: &dyn ImageSource,
        cfg: &FitConfig,
    ) -> Result<()> {
        self.fit_inner(train, valid, cfg, false)
    }

    /// Trains only the head on body activations computed once ([`Learner::precompute`]).
    pub fn fit_head(
        &mut self,
        train: &FeatureSet,
        valid: &FeatureSet,
        cfg: &FitConfig,
    ) -> Result<()> {
        if self.frozen_before + 1 != self.num_groups() {
            return Err(Error::Invalid(
                "precompute trains the head alone: freeze the body first".into(),
            ));
        }
        self.fit_inner(train, valid, cfg, true)
    }

    /// The body's pooled activations for every item of `set` that can be read (no augmentation),
    /// computed once.
    pub fn precompute(
        &self,
        set: &dyn ImageSource,
        batch_size: usize,
        title: &str,
        verbose: bool,
    ) -> Result<FeatureSet> {
        let Network::Pretrained(p) = self.model.valid() else {
            return Err(Error::Invalid("precompute needs a pretrained body".into()));
        };
        let batcher = self.batcher(
            batch_size,
            self.meta.preprocess.normalization.clone(),
            false,
        );
        let order = batcher.epoch_indices(set.len(), None);
        let bar = Progress::new(order.len() as u64, title, verbose);
        let (mut features, mut items) = (Vec::new(), Vec::new());
        let mut dim = 0;
        batcher.for_each(set, &order, None, |_, batch| -> Result<()> {
            bar.step(String::new());
            if batch.indices.is_empty() {
                return Ok(());
            }
            let pooled = p.head.pool(p.body.forward(batch.images));
            dim = pooled.dims()[1];
            features.extend(values(pooled));
            items.extend(batch.indices);
            Ok(())
        })?;
        bar.finish();
        let left_out = set.len() - items.len();
        if left_out > 0 && verbose {
            eprintln!(
                "warning: {left_out} photo(s) could not be read any more and were left out of the precomputed activations"
            );
        }
        Ok(FeatureSet {
            values: features,
            dim,
            targets: set.labels().select(&items),
            classes: set.classes().to_vec(),
        })
    }

    fn fit_inner(
        &mut self,
        train: &dyn ImageSource,
        valid: &dyn ImageSource,
        cfg: &FitConfig,
        features: bool,
    ) -> Result<()> {
        if train.is_empty() {
            return Err(Error::Invalid("the training set is empty".into()));
        }
        let groups = group_params(&self.model);
        let rates = cfg.lr.per_group(groups.len())?;
        // With the whole body frozen, it runs on the plain device (no autodiff bookkeeping) and only
        // its pooled output enters the graph: the same result, much faster.
        let frozen_body = match (&self.model, features) {
            (Network::Pretrained(_), false) if self.frozen_before + 1 == self.num_groups() => {
                match self.model.valid() {
                    Network::Pretrained(p) => Some(p.body),
                    Network::Plain(_) => None,
                }
            }
            _ => None,
        };
        let batcher = self.batcher(
            cfg.batch_size,
            self.normalization_for(features),
            frozen_body.is_none(),
        );
        let per_epoch = batcher.num_batches(train.len());
        let (mut optim, momentum) = adamw_with_momentum(cfg.weight_decay);
        let saved_optimizer = self.optimizer_state.take();
        // Only a phase resumed part-way continues with the checkpoint's moments; a phase that
        // starts at its beginning starts them afresh, as the uninterrupted run did.
        if let Some(bytes) = saved_optimizer.filter(|_| cfg.start_epoch > 0 || cfg.start_batch > 0)
        {
            optim = restore_optimizer(optim, bytes)?;
        }
        self.history.steps_per_epoch = per_epoch;
        // Steps are numbered over the learner's whole history; a resumed phase already holds
        // `start_epoch` epochs and `start_batch` batches of it.
        let done_before = cfg.start_epoch * per_epoch + cfg.start_batch.min(per_epoch);
        let offset = self.history.batch_losses.len().saturating_sub(done_before);
        let mut last_checkpoint = Instant::now();
        for epoch in cfg.start_epoch + 1..=cfg.epochs {
            let first = if epoch == cfg.start_epoch + 1 {
                cfg.start_batch.min(per_epoch)
            } else {
                0
            };
            let start = Instant::now();
            let bar = Progress::new(
                per_epoch as u64,
                &format!("epoch {epoch}/{}", cfg.epochs),
                cfg.verbose,
            );
            // A resumed epoch's loss so far, summed in the order the steps added it.
            let recorded = &self.history.batch_losses;
            let mut loss_sum = recorded[recorded.len().saturating_sub(first)..]
                .iter()
                .fold(0.0, |sum, &(_, loss)| sum + loss);
            let order = batcher.epoch_indices(train.len(), Some(cfg.seed + epoch as u64));
            let augment =
                (!features).then_some(cfg.seed.wrapping_mul(31).wrapping_add(epoch as u64));
            let step0 = (epoch - 1) * per_epoch;
            let mut unreadable = 0;
            batcher.for_each_from(train, &order, first, augment, |b, batch| -> Result<()> {
                let step = step0 + b;
                unreadable += batch.unreadable.len();
                if batch.indices.is_empty() {
                    bar.finish();
                    let why = batch.unreadable.first().map_or("", |(_, why)| why.as_str());
                    return Err(Error::Training(format!(
                        "epoch {epoch}, batch {} of {per_epoch}: none of its {} photos can be read \
                         any more (the first: {why}); were the files moved or the disk removed?",
                        b + 1,
                        batch.unreadable.len()
                    )));
                }
                // Dropout draws from the device's generator: seeded per step, so a resumed run
                // draws what an uninterrupted one would.
                self.device.seed(step_seed(cfg.seed, offset + step));
                let factor = cfg.schedule.factor(step, cfg.epochs, per_epoch);
                momentum.set(cfg.schedule.momentum(step, cfg.epochs, per_epoch));
                let model = self.model.clone();
                let (logits, targets) = match (&frozen_body, &model) {
                    (Some(body), Network::Pretrained(p)) => {
                        let pooled = p.head.pool(body.forward(batch.images));
                        let pooled = Tensor::<2>::from_data(pooled.into_data(), &self.device);
                        (p.head.forward_pooled(pooled), batch.targets.to_device(&self.device))
                    }
                    _ => (forward(&model, batch.images, features), batch.targets),
                };
                let loss = loss_for(logits, targets);
                let value = loss.clone().into_scalar::<f32>() as f64;
                if !value.is_finite() {
                    bar.finish();
                    return Err(Error::Training(format!(
                        "the loss became {value} at epoch {epoch}, batch {} of {per_epoch} (learning rate {:.2e}); \
                         training stopped and the weights from before this batch were kept{} — try a lower learning rate",
                        b + 1,
                        rates.last().copied().unwrap_or(0.0) * factor,
                        self.checkpoint.as_ref().map(|p| format!(" (last good checkpoint: {})", p.display())).unwrap_or_default()
                    )));
                }
                let grads = GradientsParams::from_grads(loss.backward(), &model);
                let mut lrs = ModuleLrScheduler::new(rates[0] * factor);
                for (g, group) in groups.iter().enumerate().skip(1) {
                    lrs = lrs.with_group(group.clone(), rates[g] * factor);
                }
                self.model = optim.step(lrs.step(), model, grads);
                loss_sum += value;
                self.history.batch_losses.push((offset + step, value));
                self.history.learning_rates.push((offset + step, rates.last().copied().unwrap_or(0.0) * factor));
                self.history.momentums.push((offset + step, momentum.get()));
                bar.step(format!("loss {:.4}", loss_sum / (b + 1) as f64));
                let done = b + 1;
                let stop = stop_requested();
                let due = cfg
                    .checkpoint_every
                    .is_some_and(|every| every.due(done, per_epoch, last_checkpoint.elapsed()));
                if let Some(path) = self.checkpoint.clone().filter(|_| stop || due) {
                    self.write_checkpoint_at(&path, epoch - 1, done, &optim)?;
                    last_checkpoint = Instant::now();
                }
                if stop {
                    bar.finish();
                    return Err(self.interrupted(format!(
                        "epoch {epoch}/{}, after batch {done} of {per_epoch}",
                        cfg.epochs
                    )));
                }
                Ok(())
            })?;
            bar.finish();
            let (eval, unreadable_valid) = self.evaluate_counting(valid, 256, features);
            let record = EpochRecord {
                unreadable: unreadable + unreadable_valid,
                epoch: self.history.epochs.len() + 1,
                train_loss: loss_sum / per_epoch as f64,
                valid_loss: eval.loss,
                valid_accuracy: eval.scores.accuracy,
                valid_f2: eval.scores.f2,
                seconds: start.elapsed().as_secs_f64(),
            };
            if cfg.verbose {
                let f2 = record
                    .valid_f2
                    .map(|f| format!(", F2 {f:.4} at threshold {}", self.meta.threshold))
                    .unwrap_or_default();
                let unreadable = match record.unreadable {
                    0 => String::new(),
                    n => format!(
                        "; {n} photo(s) could not be read any more and were left out ({unreadable} in training, {unreadable_valid} in validation)"
                    ),
                };
                eprintln!(
                    "epoch {epoch}/{}: train loss {:.4}, valid loss {:.4}, valid accuracy {:.2}%{f2} ({:.1} s){unreadable}",
                    cfg.epochs,
                    record.train_loss,
                    record.valid_loss,
                    100.0 * record.valid_accuracy,
                    record.seconds
                );
            }
            self.history.epochs.push(record);
            if let Some(path) = self.checkpoint.clone() {
                self.write_checkpoint_at(&path, epoch, 0, &optim)?;
                last_checkpoint = Instant::now();
            }
            // At the last epoch's end there is nothing left to stop: the run finishes.
            if stop_requested() && epoch < cfg.epochs {
                return Err(self.interrupted(format!("the end of epoch {epoch}/{}", cfg.epochs)));
            }
        }
        Ok(())
    }

    /// Writes the checkpoint: the model, `optim`'s state and the position `epochs_done` epochs and
    /// `batches_done` batches into the current phase.
    fn write_checkpoint_at(
        &mut self,
        path: &std::path::Path,
        epochs_done: usize,
        batches_done: usize,
        optim: &ModuleOptimizer,
    ) -> Result<()> {
        self.state.epochs_done = epochs_done;
        self.state.batches_done = batches_done;
        self.state.history = self.history.clone();
        let optimizer = optim
            .to_record()
            .into_bytes()
            .map_err(|e| Error::Training(format!("cannot serialise the optimiser's state: {e}")))?;
        write_checkpoint(path, &self.saved_model(), &mut self.state, Some(&optimizer))
    }

    /// The error of a run stopped at `position` on request.
    fn interrupted(&self, position: String) -> Error {
        let checkpoint = self.checkpoint.clone();
        let saved = checkpoint
            .as_ref()
            .map_or(" (this run has no checkpoint)".to_string(), |p| {
                format!("; checkpoint written to {}", p.display())
            });
        Error::Interrupted {
            message: format!("training interrupted at {position}{saved}"),
            checkpoint,
        }
    }
}

/// The seed of the device's generator at global step `step` of a run seeded with `seed`.
fn step_seed(seed: u64, step: usize) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(
        (step as u64)
            .wrapping_add(1)
            .wrapping_mul(0xBF58_476D_1CE4_E5B9),
    )
}

/// `optim` continuing from a checkpoint's saved state.
fn restore_optimizer(optim: ModuleOptimizer, bytes: Vec<u8>) -> Result<ModuleOptimizer> {
    let bad = |e: &dyn std::fmt::Display| {
        Error::Training(format!(
            "the checkpoint's optimiser state cannot be read: {e}"
        ))
    };
    let record = OptimizerRecord::from_bytes(Bytes::from_bytes_vec(bytes)).map_err(|e| bad(&e))?;
    Ok(optim.load_record(record))
}

/// What a pass over a set gives: the mean loss and the probabilities `[items, outputs]` of the
/// items that could be read, which items those are, and how many could not be.
#[derive(Default)]
struct RunOver {
    loss: f64,
    probs: Vec<f32>,
    items: Vec<usize>,
    unreadable: usize,
}

/// Logits from images (or, with `features`, from precomputed pooled activations `[b, f, 1, 1]`).
pub(crate) fn forward(model: &Network, x: Tensor<4>, features: bool) -> Tensor<2> {
    match (model, features) {
        (Network::Pretrained(p), true) => p.head.forward_pooled(x.flatten(1, 3)),
        _ => model.forward(x),
    }
}
