//! What a fine-tuning run reports: per phase and overall, the final scores (with test-time
//! augmentation when asked for) and, for multi-label data, the threshold chosen on validation.

use std::time::Instant;

use serde::Serialize;

use super::transfer::{Precomputed, TransferConfig, TransferRun};
use crate::data::ImageSource;
use crate::error::Result;
use crate::learner::{
    History, LayerRates, Learner, LrFinder, SetPredictions, best_threshold, score, threshold_sweep,
};

/// One phase of the run.
#[derive(Clone, Debug, Serialize)]
pub struct PhaseReport {
    /// `frozen`, `frozen (precomputed)` or `unfrozen`.
    pub phase: String,
    /// Epochs.
    pub epochs: usize,
    /// Per-group peak rates.
    pub lrs: Vec<f64>,
    /// Validation accuracy at its end.
    pub valid_accuracy: f64,
    /// Multi-label: validation F2 at its end (at
    /// [`crate::model_file::MULTI_LABEL_TRAINING_THRESHOLD`]).
    pub valid_f2: Option<f64>,
    /// Wall time, seconds (precomputing included).
    pub seconds: f64,
}

/// What [`super::fine_tune`] achieved.
#[derive(Clone, Debug, Serialize)]
pub struct TransferReport {
    /// Final validation accuracy.
    pub valid_accuracy: f64,
    /// Final validation accuracy with test-time augmentation (the image and
    /// [`TransferConfig::tta`] augmented copies), when asked for.
    pub valid_accuracy_tta: Option<f64>,
    /// Multi-label data: several tags per image, sigmoid outputs and binary cross-entropy.
    pub multi_label: bool,
    /// Multi-label: final validation F2 at the chosen threshold.
    pub valid_f2: Option<f64>,
    /// Multi-label: the same with test-time augmentation, when asked for.
    pub valid_f2_tta: Option<f64>,
    /// Multi-label: the threshold with the best validation F2 (saved with the model).
    pub threshold: Option<f32>,
    /// Multi-label: validation F2 at each threshold of the sweep.
    pub threshold_sweep: Vec<(f32, f64)>,
    /// Epochs over both phases.
    pub epochs: usize,
    /// Total wall time, seconds (decoding included).
    pub seconds: f64,
    /// Per phase.
    pub phases: Vec<PhaseReport>,
    /// The head's peak rate in the frozen phase (the unfrozen phase spreads lr/200 … lr/2).
    pub lr: f64,
    /// The LR finder's sweep, when it chose the rate.
    pub lr_find: Option<LrFinder>,
    /// Training images used.
    pub train_images: usize,
    /// Validation images used.
    pub valid_images: usize,
    /// Files skipped because they could not be decoded.
    pub skipped: Vec<String>,
    /// Input size.
    pub size: usize,
    /// Architecture.
    pub architecture: String,
    /// Per-batch and per-epoch record over both phases.
    #[serde(skip)]
    pub history: History,
}

/// What a phase ended with.
pub(super) fn phase_report(
    learner: &Learner,
    name: &str,
    epochs: usize,
    rates: &LayerRates,
    seconds: f64,
) -> Result<PhaseReport> {
    let last = learner.history.epochs.last();
    Ok(PhaseReport {
        phase: name.into(),
        epochs,
        lrs: rates.per_group(learner.num_groups())?,
        valid_accuracy: last.map_or(0.0, |e| e.valid_accuracy),
        valid_f2: last.and_then(|e| e.valid_f2),
        seconds,
    })
}

/// The final scores (with test-time augmentation when asked for), the multi-label threshold chosen
/// on validation (saved with the model), and the run's report.
pub(super) fn final_report(
    run: &mut TransferRun,
    cfg: &TransferConfig,
    features: Option<&Precomputed>,
    phases: Vec<PhaseReport>,
    (lr, lr_find): (f64, Option<LrFinder>),
    start: Instant,
) -> TransferReport {
    let TransferRun {
        learner,
        train,
        valid,
        ..
    } = run;
    // With the body unchanged since it was precomputed, the head on the cached validation
    // activations gives the plain predictions; a pass over the images otherwise, and one more per
    // test-time-augmented copy.
    let preds = match features {
        Some(f) if cfg.epochs == 0 && cfg.tta == 0 => {
            let plain = learner.predict_features(&f.valid);
            SetPredictions {
                averaged: plain.clone(),
                plain,
            }
        }
        _ => learner.predict_tta(valid, cfg.tta, 32, cfg.seed),
    };
    let (labels, outputs) = (valid.labels(), valid.classes().len());
    // Multi-label: choose the threshold with the best validation F2.
    let sweep = if learner.meta.multi_label {
        let sweep = threshold_sweep(&preds.plain, labels, outputs);
        let (threshold, f2) = best_threshold(&sweep);
        learner.meta.threshold = threshold;
        if cfg.verbose {
            eprintln!("threshold sweep: best F2 {f2:.4} at {threshold:.2}");
        }
        sweep
    } else {
        Vec::new()
    };
    let threshold = learner.meta.threshold;
    let eval = score(&preds.plain, labels, outputs, threshold);
    let tta = (cfg.tta > 0).then(|| score(&preds.averaged, labels, outputs, threshold));
    let multi_label = learner.meta.multi_label;
    TransferReport {
        valid_accuracy: eval.accuracy,
        valid_accuracy_tta: tta.map(|t| t.accuracy),
        multi_label,
        valid_f2: eval.f2,
        valid_f2_tta: tta.and_then(|t| t.f2),
        threshold: multi_label.then_some(threshold),
        threshold_sweep: sweep,
        epochs: cfg.freeze_epochs + cfg.epochs,
        seconds: start.elapsed().as_secs_f64(),
        phases,
        lr,
        lr_find,
        train_images: train.len(),
        valid_images: valid.len(),
        skipped: train
            .skipped
            .iter()
            .chain(&valid.skipped)
            .map(|(p, e)| format!("{}: {e}", p.display()))
            .collect(),
        size: train.size,
        architecture: learner.meta.arch.name(),
        history: learner.history.clone(),
    }
}
