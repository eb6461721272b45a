//! Training a plain CNN from scratch: MNIST, generated shapes, or a learner's own small pictures
//! (one class or several tags each).

use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use crate::data::ImageSource;
use crate::data::{Crop, Dataset, ImageSet, Preprocess, decode_small_photos};
use crate::device::training_device;
use crate::error::Result;
use crate::learner::{
    FitConfig, History, Learner, Watcher, best_threshold, run_settings, score, threshold_sweep,
};
use crate::model_file::{ModelMeta, SavedModel};
use crate::models::{ArchSpec, ModelPreset, Network, build_seeded};

/// What a training run achieved.
#[derive(Clone, Debug, Serialize)]
pub struct TrainReport {
    /// Accuracy on the held-out set after the last epoch (0–1; multi-label: the fraction of
    /// (image, tag) decisions right at the threshold).
    pub valid_accuracy: f64,
    /// Multi-label: F2 on the held-out set after the last epoch, at the threshold chosen on it.
    pub valid_f2: Option<f64>,
    /// Multi-label: the threshold with the best held-out F2, saved with the model.
    pub threshold: Option<f32>,
    /// True when images carry several tags each (sigmoid outputs, binary cross-entropy).
    pub multi_label: bool,
    /// Loss on the held-out set after the last epoch.
    pub valid_loss: f64,
    /// Epochs run.
    pub epochs: usize,
    /// Wall time of training including per-epoch validation, seconds.
    pub seconds: f64,
    /// Training images processed per second (forward + backward + update, validation included).
    pub images_per_second: f64,
    /// Training images.
    pub train_images: usize,
    /// Held-out images.
    pub valid_images: usize,
    /// Architecture name.
    pub architecture: String,
    /// Per-batch and per-epoch record.
    #[serde(skip)]
    pub history: History,
}

/// Trains architecture `preset` on `train`, validating on `valid`; returns the trained model and a
/// report. With `checkpoint`, a checkpoint is written there after every epoch; with `resume` too, a
/// run continues from it.
pub fn train_classifier(
    preset: ModelPreset,
    train: &ImageSet,
    valid: &ImageSet,
    fit: &FitConfig,
) -> Result<(SavedModel, TrainReport)> {
    train_classifier_with(preset, train, valid, fit, None, false)
}

/// [`train_classifier`] with a checkpoint file and, optionally, resuming from it.
pub fn train_classifier_with(
    preset: ModelPreset,
    train: &ImageSet,
    valid: &ImageSet,
    fit: &FitConfig,
    checkpoint: Option<&Path>,
    resume: bool,
) -> Result<(SavedModel, TrainReport)> {
    run(preset, train, valid, fit, checkpoint, resume, None)
}

/// [`train_classifier`] telling `watcher` about every step and epoch as it trains (the page's
/// live training view).
pub fn train_classifier_watched(
    preset: ModelPreset,
    train: &ImageSet,
    valid: &ImageSet,
    fit: &FitConfig,
    watcher: Box<dyn Watcher>,
) -> Result<(SavedModel, TrainReport)> {
    run(preset, train, valid, fit, None, false, Some(watcher))
}

fn run(
    preset: ModelPreset,
    train: &ImageSet,
    valid: &ImageSet,
    fit: &FitConfig,
    checkpoint: Option<&Path>,
    resume: bool,
    watcher: Option<Box<dyn Watcher>>,
) -> Result<(SavedModel, TrainReport)> {
    let mut learner = scratch_learner(preset, train, fit.seed)?;
    learner.checkpoint = checkpoint.map(Path::to_path_buf);
    learner.watcher = watcher;
    let mut fit = fit.clone();
    learner.state.settings = run_settings([
        ("architecture", preset.name().to_string()),
        ("epochs", fit.epochs.to_string()),
        ("batch size", fit.batch_size.to_string()),
        ("learning rate", format!("{:?}", fit.lr)),
        ("seed", fit.seed.to_string()),
        ("training images", train.len().to_string()),
        ("validation images", valid.len().to_string()),
    ]);
    if let Some(path) = checkpoint.filter(|_| resume) {
        let state = learner.resume_from(path)?;
        eprintln!(
            "resuming from {} after epoch {}{}",
            path.display(),
            state.epochs_done,
            batches(state.batches_done)
        );
        fit.start_epoch = state.epochs_done;
        fit.start_batch = state.batches_done;
    }
    let start = Instant::now();
    learner.fit(train, valid, &fit)?;
    let history = learner.history.clone();
    let seconds = start.elapsed().as_secs_f64();
    let last = history.epochs.last().expect("at least one epoch");
    let (mut valid_accuracy, mut valid_f2, mut threshold) = (last.valid_accuracy, None, None);
    if learner.meta.multi_label {
        // As a fine-tune does: the threshold with the best held-out F2 goes with the model.
        let preds = learner
            .predict_tta(valid, 0, fit.batch_size, fit.seed)
            .plain;
        let (labels, outputs) = (valid.labels(), valid.classes.len());
        let (best, f2) = best_threshold(&threshold_sweep(&preds, labels, outputs));
        learner.meta.threshold = best;
        valid_accuracy = score(&preds, labels, outputs, best).accuracy;
        (valid_f2, threshold) = (Some(f2), Some(best));
        eprintln!("threshold sweep: best F2 {f2:.4} at {best:.2}");
    }
    let report = TrainReport {
        valid_accuracy,
        valid_f2,
        threshold,
        multi_label: learner.meta.multi_label,
        valid_loss: last.valid_loss,
        epochs: fit.epochs,
        seconds,
        images_per_second: (train.len() * (fit.epochs - fit.start_epoch)
            - (fit.start_batch * fit.batch_size).min(train.len()))
            as f64
            / seconds.max(1e-9),
        train_images: train.len(),
        valid_images: valid.len(),
        architecture: preset.name().to_string(),
        history,
    };
    Ok((learner.saved_model(), report))
}

/// `" and N batch(es)"` of a mid-epoch checkpoint, nothing at an epoch's end.
pub(crate) fn batches(done: usize) -> String {
    match done {
        0 => String::new(),
        1 => " and 1 batch".to_string(),
        n => format!(" and {n} batches"),
    }
}

/// A fresh learner for architecture `preset` on images like `train`'s (normalised by its
/// statistics; sigmoid outputs when they carry tags), its initial weights drawn from `seed` — the
/// same on every device ([`build_seeded`]).
pub fn scratch_learner(preset: ModelPreset, train: &ImageSet, seed: u64) -> Result<Learner> {
    let device = training_device();
    let spec = preset.spec(
        train.channels,
        train.height,
        train.width,
        train.classes.len(),
    );
    let arch = ArchSpec::Plain {
        preset: preset.name().to_string(),
        spec,
    };
    let preprocess = Preprocess {
        channels: train.channels,
        height: train.height,
        width: train.width,
        normalization: train.normalization(),
        crop: Crop::None,
    };
    let meta = ModelMeta::new(
        arch.clone(),
        train.classes.clone(),
        preprocess,
        train.is_multi_label(),
    );
    let network = build_seeded(seed, &device, |cpu| Network::new(&arch, cpu))?;
    Ok(Learner::new(network, meta, device))
}

/// The training and validation images of a folder of photos or a CSV for a network trained from
/// scratch: split as [`Dataset::split`] does (`valid_pct`, `seed`), squashed to `size × size`, gray
/// when every photo is (unless `channels` says). Files that cannot be decoded are skipped and
/// listed on stderr.
pub fn scratch_photos(
    data: &Dataset,
    size: usize,
    channels: Option<usize>,
    valid_pct: f64,
    seed: u64,
) -> Result<(ImageSet, ImageSet)> {
    let split = data.split(valid_pct, seed)?;
    let (train, valid, channels) = decode_small_photos(
        &split.train,
        &split.valid,
        &split.classes,
        size,
        channels,
        true,
    )?;
    for (path, why) in train.skipped.iter().chain(&valid.skipped) {
        eprintln!("skipped {}: {why}", path.display());
    }
    eprintln!(
        "{} training and {} validation images at {size}×{size}, {}",
        train.images.len(),
        valid.images.len(),
        if channels == 1 { "gray" } else { "colour" }
    );
    Ok((train.images, valid.images))
}
