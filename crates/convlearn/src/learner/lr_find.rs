//! The learning-rate finder (Smith 2015; fastai's `lr_find`): train for at most one epoch while the
//! rate grows exponentially from 1e-7 to 10 — the training loop's own step ([`super::step`]) — record
//! the smoothed loss, stop once it diverges, put the weights back, and suggest a rate.

use std::path::Path;

use burn::module::{Module, ModuleMapper, Param};
use burn::store::ModuleRecord;
use burn::tensor::Tensor;
use serde::Serialize;

use super::step::Stepper;
use super::{FeatureSet, FitConfig, Learner, Progress};
use crate::data::ImageSource;
use crate::error::{Error, Result};
use crate::models::Network;
use crate::plot::{Series, plot_curves};

/// What the sweep saw.
#[derive(Clone, Debug, Serialize)]
pub struct LrFinder {
    /// Rate at each step.
    pub lrs: Vec<f64>,
    /// Smoothed loss at each step.
    pub losses: Vec<f64>,
    /// Rate with the lowest smoothed loss after the first tenth of the sweep.
    pub min_loss_lr: f64,
    /// Rate where the smoothed loss fell fastest (per unit of log rate).
    pub steepest_lr: f64,
    /// The suggestion: a tenth of the lowest-loss rate (fastai's rule of thumb).
    pub suggestion: f64,
    /// The rate training then used, when a recipe changed the suggestion (e.g. capped it).
    pub used: Option<f64>,
}

impl LrFinder {
    /// Loss against log₁₀(learning rate), with the suggestion (and the rate used, when it differs)
    /// marked.
    pub fn plot(&self, path: &Path) -> Result<()> {
        let points = self
            .lrs
            .iter()
            .zip(&self.losses)
            .map(|(lr, l)| (lr.log10(), *l))
            .collect();
        let lo = self.losses.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = self.losses.first().copied().unwrap_or(lo);
        let marker = |name: String, lr: f64| Series {
            name,
            points: vec![(lr.log10(), lo), (lr.log10(), hi)],
        };
        let mut series = vec![
            Series {
                name: "loss".into(),
                points,
            },
            marker(
                format!("suggested {:.1e}", self.suggestion),
                self.suggestion,
            ),
        ];
        if let Some(used) = self.used.filter(|&u| u != self.suggestion) {
            series.push(marker(format!("used {used:.1e}"), used));
        }
        plot_curves(
            path,
            "Learning-rate finder",
            "log10(learning rate)",
            "smoothed loss",
            &series,
        )
    }
}

/// Sweeps the learning rate on `train` (at most one epoch, at most 100 steps) and restores the
/// learner's weights afterwards. On a small set the batches shrink (down to 4 images) so the sweep
/// still has about 50 steps.
pub fn lr_find(
    learner: &mut Learner,
    train: &dyn ImageSource,
    cfg: &FitConfig,
) -> Result<LrFinder> {
    sweep(learner, train, cfg, false)
}

/// [`lr_find`] for the head alone, on precomputed body activations ([`Learner::precompute`]): steps
/// cost next to nothing there, so the sweep always takes 100 steps of full batches, going over the
/// activations several times when the set is small (fastai's `num_it=100`).
pub fn lr_find_head(
    learner: &mut Learner,
    train: &FeatureSet,
    cfg: &FitConfig,
) -> Result<LrFinder> {
    sweep(learner, train, cfg, true)
}

/// The values of every parameter and running statistic, each in a buffer of its own. Not a clone:
/// clones share BatchNorm running statistics, which the sweep's forward passes update. burn keeps
/// updates pending per thread until they are synchronised (`valid()` does that), so they are
/// flushed before reading. Nor the record of a clone: on wgpu that shares the weights' buffers,
/// and the sweep's first steps then landed in the saved values too (lr_find came back off by up to
/// 2.2e-7, in `tests/layer_groups.rs` on lavapipe).
fn snapshot(model: &Network) -> ModuleRecord {
    let _ = model.valid();
    model.clone().map(&mut OwnBuffers).into_record()
}

/// Copies every parameter into a buffer that nothing else holds.
struct OwnBuffers;

impl ModuleMapper for OwnBuffers {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        param.map(|t| {
            let device = t.device();
            Tensor::from_data(t.into_data(), &device)
        })
    }
}

/// `model` with the values of `saved` (pending running-statistic updates flushed first, so they
/// cannot land on the restored values later).
fn restore(model: &Network, saved: ModuleRecord) -> Network {
    let _ = model.valid();
    model.clone().load_record(saved)
}

fn sweep(
    learner: &mut Learner,
    train: &dyn ImageSource,
    cfg: &FitConfig,
    features: bool,
) -> Result<LrFinder> {
    let (start, end) = (1e-7f64, 10.0f64);
    let batch_size = if features {
        cfg.batch_size.min(train.len()).max(1)
    } else {
        cfg.batch_size.min(train.len() / 50).max(4)
    };
    let mut stepper = Stepper::new(learner, cfg.weight_decay, features);
    let batcher = stepper.batcher(learner, batch_size, learner.normalization_for(features));
    let mut order = Vec::new();
    for pass in 0..if features { 100 } else { 1 } {
        if order.len() >= 100 {
            break;
        }
        order.extend(batcher.epoch_indices(train.len(), Some(cfg.seed + pass)));
    }
    order.truncate(100);
    let steps = order.len().max(2);
    let saved = snapshot(&learner.model);
    let (mut lrs, mut losses) = (Vec::new(), Vec::new());
    let (mut avg, mut best) = (0.0, f64::INFINITY);
    let bar = Progress::new(steps as u64, "lr_find", cfg.verbose);
    // The training loop's step at one rate for every group; the sweep stops at a loss that is not
    // finite or has diverged (four times the best so far).
    let result = batcher.for_each(
        train,
        &order,
        (!features).then_some(cfg.seed),
        |b, batch| -> std::result::Result<(), ()> {
            if batch.indices.is_empty() {
                return Ok(()); // every photo of the batch became unreadable
            }
            let lr = start * (end / start).powf(b as f64 / (steps - 1) as f64);
            let rates = vec![lr; stepper.num_groups()];
            let value = stepper.step(learner, batch, &rates).map_err(|_| ())?;
            avg = 0.98 * avg + 0.02 * value;
            let smooth = avg / (1.0 - 0.98f64.powi(b as i32 + 1));
            lrs.push(lr);
            losses.push(smooth);
            best = best.min(smooth);
            bar.step(format!("lr {lr:.1e} loss {smooth:.4}"));
            if smooth > 4.0 * best && b > 10 {
                return Err(());
            }
            Ok(())
        },
    );
    bar.finish();
    let _diverged = result.is_err();
    learner.model = restore(&learner.model, saved);
    if lrs.len() < 5 {
        return Err(Error::Training(format!(
            "the learning-rate finder saw only {} steps before the loss diverged; use more images",
            lrs.len()
        )));
    }
    // The lowest loss after the first tenth of the sweep (fastai's `lr_find` drops `num_it // 10`
    // too): there the average holds only a few batches, and one easy batch at a rate far too small
    // to train would otherwise be the minimum.
    let (min_i, _) =
        losses
            .iter()
            .enumerate()
            .skip(lrs.len() / 10)
            .fold(
                (0, f64::INFINITY),
                |b, (i, &l)| if l < b.1 { (i, l) } else { b },
            );
    // Steepest descent before the minimum: the slope over a window of a twentieth of the sweep,
    // ignoring the first fifth (where the smoothing is still warming up).
    let w = (lrs.len() / 20).max(1);
    let from = lrs.len() / 5;
    let slope = |i: usize| (losses[i + w] - losses[i]) / (lrs[i + w].log10() - lrs[i].log10());
    let steepest = (from..min_i.saturating_sub(w).max(from + 1).min(losses.len() - w))
        .map(|i| (i, slope(i)))
        .fold(
            (from, f64::INFINITY),
            |b, (i, g)| if g < b.1 { (i, g) } else { b },
        )
        .0;
    let min_loss_lr = lrs[min_i];
    let steepest_lr = lrs[steepest];
    let suggestion = min_loss_lr / 10.0;
    Ok(LrFinder {
        lrs,
        losses,
        min_loss_lr,
        steepest_lr,
        suggestion,
        used: None,
    })
}
