//! The learner: a network with its metadata, layer groups that can be frozen, and the training loop
//! (AdamW, a schedule, per-group rates, validation each epoch, progress, NaN detection, checkpoints).

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::optim::{ModuleOptimizer, OptimizerRecord};
use burn::tensor::{Bytes, Device};

use super::groups::set_trainable;
use super::step::{NotFinite, Stepper};
use super::{CheckpointEvery, TrainingState, write_checkpoint};
use super::{EpochRecord, FeatureSet, History, LayerRates, Progress, Schedule, stop_requested};
use super::{StepEvent, Watcher};
use crate::data::{Batch, Batcher, ImageSource, Normalization};
use crate::error::{Error, Result};
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
    /// Seed of the shuffling order, augmentation and dropout (and, from scratch, of the initial
    /// weights). Dropout and new weights come from burn's random generator, one for the whole
    /// process: a run repeats bit for bit when no other thread of the process trains or builds a
    /// network at the same time.
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
    /// Told after every step and epoch ([`Watcher`]).
    pub watcher: Option<Box<dyn Watcher>>,
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
            watcher: None,
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

    /// The training loop: epochs of steps, each epoch ended by a validation pass and a checkpoint.
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
        let (mut phase, batcher) = self.begin_phase(train.len(), cfg, features)?;
        for epoch in cfg.start_epoch + 1..=cfg.epochs {
            let start = Instant::now();
            let (loss_sum, unreadable) =
                self.train_epoch(&mut phase, &batcher, train, cfg, epoch)?;
            self.end_epoch(&mut phase, valid, cfg, epoch, start, loss_sum, unreadable)?;
        }
        Ok(())
    }

    /// The optimiser (continuing with the checkpoint's moments when resumed part-way), the rates
    /// per group and the batcher of one call to [`Learner::fit`].
    fn begin_phase(
        &mut self,
        train_len: usize,
        cfg: &FitConfig,
        features: bool,
    ) -> Result<(Phase, Batcher)> {
        let mut stepper = Stepper::new(self, cfg.weight_decay, features);
        let rates = cfg.lr.per_group(stepper.num_groups())?;
        let batcher = stepper.batcher(self, cfg.batch_size, self.normalization_for(features));
        let per_epoch = batcher.num_batches(train_len);
        // Only a phase resumed part-way continues with the checkpoint's moments; a phase that
        // starts at its beginning starts them afresh, as the uninterrupted run did.
        let saved_optimizer = self.optimizer_state.take();
        if let Some(bytes) = saved_optimizer.filter(|_| cfg.start_epoch > 0 || cfg.start_batch > 0)
        {
            stepper.optim = restore_optimizer(stepper.optim, bytes)?;
        }
        self.history.steps_per_epoch = per_epoch;
        // Steps are numbered over the learner's whole history; a resumed phase already holds
        // `start_epoch` epochs and `start_batch` batches of it.
        let done_before = cfg.start_epoch * per_epoch + cfg.start_batch.min(per_epoch);
        let phase = Phase {
            stepper,
            rates,
            per_epoch,
            offset: self.history.batch_losses.len().saturating_sub(done_before),
            features,
            last_checkpoint: Instant::now(),
        };
        Ok((phase, batcher))
    }

    /// One pass over `train` (from the checkpoint's batch when resumed mid-epoch): the sum of the
    /// epoch's batch losses and how many photos could not be read.
    fn train_epoch(
        &mut self,
        phase: &mut Phase,
        batcher: &Batcher,
        train: &dyn ImageSource,
        cfg: &FitConfig,
        epoch: usize,
    ) -> Result<(f64, usize)> {
        let per_epoch = phase.per_epoch;
        let first = if epoch == cfg.start_epoch + 1 {
            cfg.start_batch.min(per_epoch)
        } else {
            0
        };
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
            (!phase.features).then_some(cfg.seed.wrapping_mul(31).wrapping_add(epoch as u64));
        let mut unreadable = 0;
        let result = batcher.for_each_from(train, &order, first, augment, |b, batch| {
            unreadable += batch.unreadable.len();
            let loss = self.train_batch(phase, cfg, epoch, b, batch)?;
            loss_sum += loss;
            bar.step(format!("loss {:.4}", loss_sum / (b + 1) as f64));
            if let Some(watcher) = self.watcher.as_mut() {
                let (step, learning_rate) = self
                    .history
                    .learning_rates
                    .last()
                    .copied()
                    .unwrap_or_default();
                watcher.after_step(&StepEvent {
                    epoch,
                    epochs: cfg.epochs,
                    batch: b + 1,
                    batches_per_epoch: per_epoch,
                    step,
                    loss,
                    learning_rate,
                    network: &self.model,
                });
            }
            self.after_batch(phase, cfg, epoch, b + 1)
        });
        bar.finish();
        result?;
        Ok((loss_sum, unreadable))
    }

    /// Step `b` of epoch `epoch` at the schedule's rates and momentum, recorded in the history.
    fn train_batch(
        &mut self,
        phase: &mut Phase,
        cfg: &FitConfig,
        epoch: usize,
        b: usize,
        batch: Batch,
    ) -> Result<f64> {
        let per_epoch = phase.per_epoch;
        if batch.indices.is_empty() {
            let why = batch.unreadable.first().map_or("", |(_, why)| why.as_str());
            return Err(Error::Training(format!(
                "epoch {epoch}, batch {} of {per_epoch}: none of its {} photos can be read \
                 any more (the first: {why}); were the files moved or the disk removed?",
                b + 1,
                batch.unreadable.len()
            )));
        }
        let step = (epoch - 1) * per_epoch + b;
        let global = phase.offset + step;
        // Dropout draws from the device's generator: seeded per step, so a resumed run draws
        // what an uninterrupted one would.
        self.device.seed(step_seed(cfg.seed, global));
        let factor = cfg.schedule.factor(step, cfg.epochs, per_epoch);
        let momentum = cfg.schedule.momentum(step, cfg.epochs, per_epoch);
        phase.stepper.momentum.set(momentum);
        let rates: Vec<f64> = phase.rates.iter().map(|r| r * factor).collect();
        let top_rate = rates.last().copied().unwrap_or(0.0);
        let loss = phase.stepper.step(self, batch, &rates).map_err(|NotFinite(value)| {
            let checkpoint = self.checkpoint.as_ref().map(|p| {
                format!(" (last good checkpoint: {})", p.display())
            });
            Error::Training(format!(
                "the loss became {value} at epoch {epoch}, batch {} of {per_epoch} (learning rate \
                 {top_rate:.2e}); training stopped and the weights from before this batch were kept{} \
                 — try a lower learning rate",
                b + 1,
                checkpoint.unwrap_or_default()
            ))
        })?;
        self.history.batch_losses.push((global, loss));
        self.history.learning_rates.push((global, top_rate));
        self.history
            .momentums
            .push((global, phase.stepper.momentum.get()));
        Ok(loss)
    }

    /// After `done` batches of epoch `epoch`: the checkpoint when one is due or a stop is asked
    /// for, then the stop.
    fn after_batch(
        &mut self,
        phase: &mut Phase,
        cfg: &FitConfig,
        epoch: usize,
        done: usize,
    ) -> Result<()> {
        let stop = stop_requested();
        let due = cfg
            .checkpoint_every
            .is_some_and(|every| every.due(done, phase.per_epoch, phase.last_checkpoint.elapsed()));
        if let Some(path) = self.checkpoint.clone().filter(|_| stop || due) {
            self.write_checkpoint_at(&path, epoch - 1, done, &phase.stepper.optim)?;
            phase.last_checkpoint = Instant::now();
        }
        if stop {
            return Err(self.interrupted(format!(
                "epoch {epoch}/{}, after batch {done} of {}",
                cfg.epochs, phase.per_epoch
            )));
        }
        Ok(())
    }

    /// The end of epoch `epoch`: validation, the epoch's record and line, the checkpoint, and a
    /// stop asked for during the epoch.
    #[allow(clippy::too_many_arguments)]
    fn end_epoch(
        &mut self,
        phase: &mut Phase,
        valid: &dyn ImageSource,
        cfg: &FitConfig,
        epoch: usize,
        start: Instant,
        loss_sum: f64,
        unreadable: usize,
    ) -> Result<()> {
        let (eval, unreadable_valid) = self.evaluate_counting(valid, 256, phase.features);
        let record = EpochRecord {
            unreadable: unreadable + unreadable_valid,
            epoch: self.history.epochs.len() + 1,
            train_loss: loss_sum / phase.per_epoch as f64,
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
        if let Some(watcher) = self.watcher.as_mut() {
            watcher.after_epoch(&record, &self.model);
        }
        self.history.epochs.push(record);
        if let Some(path) = self.checkpoint.clone() {
            self.write_checkpoint_at(&path, epoch, 0, &phase.stepper.optim)?;
            phase.last_checkpoint = Instant::now();
        }
        // At the last epoch's end there is nothing left to stop: the run finishes.
        if stop_requested() && epoch < cfg.epochs {
            return Err(self.interrupted(format!("the end of epoch {epoch}/{}", cfg.epochs)));
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

/// What every epoch of one call to [`Learner::fit`] shares.
struct Phase {
    /// The optimiser and the groups its rates apply to.
    stepper: Stepper,
    /// The schedule's peak rate per layer group.
    rates: Vec<f64>,
    /// Batches per epoch.
    per_epoch: usize,
    /// The global number of the phase's first step (steps count over the learner's history).
    offset: usize,
    /// The inputs are precomputed body activations.
    features: bool,
    /// When a checkpoint was last written.
    last_checkpoint: Instant,
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
