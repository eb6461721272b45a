//! Fine-tuning a pretrained network on labelled photos (a folder or a CSV, single- or multi-label) —
//! fastai's recipe: cut the ImageNet head, put a new one on, train it with the body frozen (by default
//! on precomputed activations), then, when asked, unfreeze and train every layer group with
//! discriminative rates. BatchNorm statistics can stay frozen throughout (`bn_freeze`), as the lesson
//! advises for ImageNet-like photos. Multi-label runs end with the threshold sweep.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::data::{Augment, Dataset, ImageSource, PhotoSet, input_size, typical_crop_side};
use crate::device::training_device;
use crate::error::Result;
use crate::learner::{
    CheckpointEvery, FeatureSet, FitConfig, LayerRates, Learner, LrFinder, RunSettings, Schedule,
    TrainingState, lr_find, lr_find_head, run_settings,
};
use crate::model_file::{ModelMeta, SavedModel};
use crate::models::{ArchSpec, BackboneKind, HeadKind, HeadSpec, PretrainedWeights, build_seeded};

use super::transfer_report::{PhaseReport, TransferReport, final_report, phase_report};

/// With the rate picked by the LR finder, the head's rate is capped here (fastai's own `fine_tune`
/// defaults to 2e-3). The finder suggests 3e-2…6e-2 for the head on both shared data sets, and the
/// head overfits small ones at such rates: 8 runs each on hymenoptera's cached activations at
/// 320 px gave 94.3 % at 1e-2 and 96.4 % at 3e-3 and at 1e-3, while Planet's F2 was the same at
/// 1e-2 and 3e-3 (0.886) and fell to 0.829 at 1e-3.
pub const MAX_HEAD_LR: f64 = 3e-3;

/// With the rate picked by the LR finder, the unfrozen phase's top rate (fastai's lr/2) is capped
/// here: AdamW rates above it wrecked the pretrained body (measured on Planet: a head rate of 1e-2
/// gave the last body group 5e-3 and dropped validation F2 from 0.85 to 0.78 in one epoch).
pub const MAX_UNFROZEN_LR: f64 = 1e-3;

/// Options of [`fine_tune`].
#[derive(Clone, Debug)]
pub struct TransferConfig {
    /// The pretrained weights (torchvision state dict, `.safetensors` or `.pth`).
    pub weights: PathBuf,
    /// Architecture (recognised from the weights when `None`).
    pub arch: Option<BackboneKind>,
    /// Input size; `None` = chosen from the photos ([`input_size`]: their typical size, between the
    /// size the weights were trained at and 1.5 × it).
    pub size: Option<usize>,
    /// Input size of the unfrozen phase, when it differs (progressive resizing, e.g. 128 → 224).
    pub unfrozen_size: Option<usize>,
    /// Epochs with the body frozen.
    pub freeze_epochs: usize,
    /// Epochs with everything unfrozen (0, the default, stops after the frozen phase: with the shared
    /// MobileNetV2, unfreezing lowered validation scores on both hymenoptera and Planet — see the
    /// README).
    pub epochs: usize,
    /// Peak rate(s); `None` = pick with the LR finder.
    pub lr: Option<LayerRates>,
    /// Keep every body BatchNorm in eval mode.
    pub bn_freeze: bool,
    /// Train the frozen phase on precomputed body activations (no augmentation in that phase).
    pub precompute: bool,
    /// Training augmentation.
    pub augment: Augment,
    /// Images per step.
    pub batch_size: usize,
    /// Validation fraction when the folder has no train/valid split.
    pub valid_pct: f64,
    /// Seed for the split, shuffling, augmentation, dropout and the new head's weights. The last
    /// two come from burn's random generator, one for the whole process: a run repeats bit for
    /// bit when no other thread of the process trains or builds a network at the same time.
    pub seed: u64,
    /// Progress bars and per-epoch lines.
    pub verbose: bool,
    /// Write a checkpoint here at the end of every epoch.
    pub checkpoint: Option<PathBuf>,
    /// Also write it this often during an epoch.
    pub checkpoint_every: Option<CheckpointEvery>,
    /// Continue from the checkpoint if there is one.
    pub resume: bool,
    /// Also score the final model with test-time augmentation over this many augmented copies
    /// (0: not — each copy is a pass of the whole network over the validation set).
    pub tta: usize,
}

impl Default for TransferConfig {
    fn default() -> Self {
        Self {
            weights: PathBuf::new(),
            arch: None,
            size: None,
            unfrozen_size: None,
            freeze_epochs: 5,
            epochs: 0,
            lr: None,
            bn_freeze: true,
            precompute: true,
            augment: Augment::SideOn,
            batch_size: 32,
            valid_pct: 0.2,
            seed: 42,
            verbose: true,
            checkpoint: None,
            checkpoint_every: None,
            resume: false,
            tta: 0,
        }
    }
}

/// A warning when `size` is far from the size the weights learned at.
pub fn size_warning(size: usize, native: usize) -> Option<String> {
    let ratio = size as f64 / native as f64;
    (!(0.5..=2.0).contains(&ratio)).then(|| {
        format!(
            "warning: training at {size} px, far from the {native} px these weights were trained at: \
             features learned at one scale may not fit objects at another (the lesson: too different a size \
             can destroy what the weights learned); consider progressive resizing towards {native}"
        )
    })
}

/// The learner, data and rates of a fine-tuning run, ready for its phases.
pub struct TransferRun {
    /// The learner (head already replaced).
    pub learner: Learner,
    /// Training photos.
    pub train: PhotoSet,
    /// Validation photos.
    pub valid: PhotoSet,
    /// The size the weights were trained at.
    pub native_size: usize,
}

/// Opens the weights and the folder and builds the learner with a new head.
pub fn prepare(data: &Dataset, cfg: &TransferConfig) -> Result<TransferRun> {
    // The data is checked first: its errors are the likelier ones, and cheap to find.
    let split = data.split(cfg.valid_pct, cfg.seed)?;
    let weights = PretrainedWeights::open(&cfg.weights, cfg.arch)?;
    let size = cfg.size.unwrap_or_else(|| {
        let crop = weights.preprocess(weights.native_size).crop;
        input_size(
            typical_crop_side(&split.train.paths, crop),
            weights.native_size,
        )
    });
    if let Some(w) = size_warning(size, weights.native_size) {
        eprintln!("{w}");
    }
    let preprocess = weights.preprocess(size);
    // Decoded once at the largest size any phase uses (progressive resizing only shrinks the cache's use).
    let keep = cfg.unfrozen_size.unwrap_or(size).max(size);
    let decode = |list, title| {
        PhotoSet::decode(list, &split.classes, 3, keep, title, cfg.verbose).resized(size)
    };
    let train = decode(&split.train, "decoding training images").with(preprocess.crop, cfg.augment);
    // Validation is never augmented while training; its augmentation serves test-time augmentation.
    let valid =
        decode(&split.valid, "decoding validation images").with(preprocess.crop, cfg.augment);
    let skipped = train.skipped.len() + valid.skipped.len();
    if skipped > 0 {
        eprintln!("{skipped} file(s) could not be decoded and were skipped");
    }
    let arch = ArchSpec::Pretrained {
        backbone: weights.backbone,
        padding: weights.padding,
        head: HeadSpec {
            kind: HeadKind::Fastai,
            hidden: 512,
            classes: split.classes.len(),
        },
    };
    let device = training_device();
    // The new head's initial weights are drawn from the seed: a run repeats, on every device.
    let network = build_seeded(cfg.seed, &device, |cpu| weights.build(&arch, cpu))?;
    let mut meta = ModelMeta::new(
        arch,
        split.classes.clone(),
        preprocess,
        split.is_multi_label(),
    );
    meta.augment = cfg.augment;
    let mut learner = Learner::new(network, meta, device);
    learner.checkpoint = cfg.checkpoint.clone();
    learner.bn_freeze(cfg.bn_freeze);
    learner.freeze();
    Ok(TransferRun {
        learner,
        train,
        valid,
        native_size: weights.native_size,
    })
}

/// What the checkpoint of this run records and `--resume` compares.
fn settings(cfg: &TransferConfig, train: &PhotoSet, valid: &PhotoSet) -> RunSettings {
    let name = |p: &Path| {
        p.file_name()
            .map_or(String::new(), |n| n.to_string_lossy().into_owned())
    };
    let size = |s: Option<usize>| s.map_or("from the photos".to_string(), |s| s.to_string());
    run_settings([
        ("weights", name(&cfg.weights)),
        ("architecture", format!("{:?}", cfg.arch)),
        ("size", size(cfg.size)),
        ("unfrozen size", size(cfg.unfrozen_size)),
        ("frozen epochs", cfg.freeze_epochs.to_string()),
        ("unfrozen epochs", cfg.epochs.to_string()),
        ("learning rate", format!("{:?}", cfg.lr)),
        ("frozen BatchNorm", cfg.bn_freeze.to_string()),
        ("precompute", cfg.precompute.to_string()),
        ("augmentation", format!("{:?}", cfg.augment)),
        ("batch size", cfg.batch_size.to_string()),
        ("validation fraction", cfg.valid_pct.to_string()),
        ("seed", cfg.seed.to_string()),
        ("training images", train.len().to_string()),
        ("validation images", valid.len().to_string()),
    ])
}

/// Restores weights, history and position from the checkpoint when resuming (refusing one of
/// another run), and records this run's settings for the checkpoints it writes.
fn resume(
    learner: &mut Learner,
    cfg: &TransferConfig,
    settings: RunSettings,
) -> Result<Option<TrainingState>> {
    learner.state.settings = settings;
    let Some(path) = cfg.checkpoint.as_ref().filter(|_| cfg.resume) else {
        return Ok(None);
    };
    let state = learner.resume_from(path)?;
    eprintln!(
        "resuming from {} ({} phase, {} epoch(s){} done)",
        path.display(),
        if state.phase == 0 {
            "frozen"
        } else {
            "unfrozen"
        },
        state.epochs_done,
        super::scratch::batches(state.batches_done)
    );
    if state.phase == 1 {
        learner.unfreeze();
    } else {
        learner.freeze();
    }
    Ok(Some(state))
}

/// fastai's `fine_tune`: the head trained with the body frozen, then every group with
/// discriminative rates — each step below is one function.
pub fn fine_tune(data: &Dataset, cfg: &TransferConfig) -> Result<(SavedModel, TransferReport)> {
    let start = Instant::now();
    let mut run = prepare(data, cfg)?;
    let run_settings = settings(cfg, &run.train, &run.valid);
    let at = resume(&mut run.learner, cfg, run_settings)?.unwrap_or_default();
    let frozen_phase = cfg.freeze_epochs > 0 && at.phase == 0 && at.epochs_done < cfg.freeze_epochs;
    // With precompute, the body runs once over both sets; the LR finder then sweeps the head alone.
    let features = if frozen_phase && cfg.precompute {
        Some(precompute(&run, cfg)?)
    } else {
        None
    };
    let (lr, finder) = head_rate(&mut run, cfg, features.as_ref(), at.lr)?;
    run.learner.state.lr = Some(lr);
    let mut phases = Vec::new();
    if frozen_phase {
        phases.push(train_frozen(&mut run, cfg, lr, features.as_ref(), &at)?);
    }
    if cfg.epochs > 0 {
        phases.push(train_unfrozen(&mut run, cfg, lr, &at)?);
    }
    let report = final_report(
        &mut run,
        cfg,
        features.as_ref(),
        phases,
        (lr, finder),
        start,
    );
    Ok((run.learner.saved_model(), report))
}

/// The body's activations on both sets, computed once for the frozen phase.
pub(super) struct Precomputed {
    pub train: FeatureSet,
    pub valid: FeatureSet,
    pub seconds: f64,
}

fn precompute(run: &TransferRun, cfg: &TransferConfig) -> Result<Precomputed> {
    let t = Instant::now();
    let learner = &run.learner;
    let train = learner.precompute(
        &run.train,
        16,
        "precomputing training activations",
        cfg.verbose,
    )?;
    let valid = learner.precompute(
        &run.valid,
        16,
        "precomputing validation activations",
        cfg.verbose,
    )?;
    Ok(Precomputed {
        train,
        valid,
        seconds: t.elapsed().as_secs_f64(),
    })
}

/// The phases' training options: `epochs` epochs at `lr`, from `start` (epochs, batches) done.
fn phase_config(
    cfg: &TransferConfig,
    epochs: usize,
    lr: LayerRates,
    start: (usize, usize),
) -> FitConfig {
    FitConfig {
        epochs,
        batch_size: cfg.batch_size,
        lr,
        schedule: Schedule::OneCycle,
        weight_decay: 1e-2,
        seed: cfg.seed,
        start_epoch: start.0,
        start_batch: start.1,
        checkpoint_every: cfg.checkpoint_every,
        verbose: cfg.verbose,
    }
}

/// The head's rate: the one asked for, the resumed run's, or the LR finder's suggestion (capped at
/// [`MAX_HEAD_LR`]), with the finder's sweep when it ran.
fn head_rate(
    run: &mut TransferRun,
    cfg: &TransferConfig,
    features: Option<&Precomputed>,
    resumed: Option<f64>,
) -> Result<(f64, Option<LrFinder>)> {
    if let Some(lr) = &cfg.lr {
        return Ok((lr.max(), None));
    }
    if let Some(lr) = resumed {
        return Ok((lr, None));
    }
    let mut finder = sweep(run, cfg, features.map(|f| &f.train))?;
    let lr = finder.suggestion.clamp(1e-4, MAX_HEAD_LR);
    finder.used = Some(lr);
    if cfg.verbose {
        eprintln!(
            "lr_find: lowest loss at {:.1e}, steepest descent at {:.1e}; using {lr:.1e} for the head",
            finder.min_loss_lr, finder.steepest_lr
        );
    }
    Ok((lr, Some(finder)))
}

/// The LR finder's sweep that chooses the head's rate: over the head alone on the precomputed
/// training activations when there are some, through the frozen body otherwise.
fn sweep(
    run: &mut TransferRun,
    cfg: &TransferConfig,
    train: Option<&FeatureSet>,
) -> Result<LrFinder> {
    let probe = phase_config(cfg, 1, LayerRates::Single(1e-3), (0, 0));
    match train {
        Some(features) => lr_find_head(&mut run.learner, features, &probe),
        None => lr_find(&mut run.learner, &run.train, &probe),
    }
}

/// The sweep [`fine_tune`] runs to choose the head's rate (with `cfg.precompute`, on the training
/// activations computed once), without training: what `convlearn lr-find --pretrained` shows.
pub fn head_lr_find(data: &Dataset, cfg: &TransferConfig) -> Result<LrFinder> {
    let mut run = prepare(data, cfg)?;
    let features = if cfg.precompute {
        let title = "precomputing training activations";
        Some(run.learner.precompute(&run.train, 16, title, cfg.verbose)?)
    } else {
        None
    };
    sweep(&mut run, cfg, features.as_ref())
}

/// The frozen phase: the head alone (on the precomputed activations when there are some).
fn train_frozen(
    run: &mut TransferRun,
    cfg: &TransferConfig,
    lr: f64,
    features: Option<&Precomputed>,
    at: &TrainingState,
) -> Result<PhaseReport> {
    let t = Instant::now();
    let rates = cfg.lr.clone().unwrap_or(LayerRates::Single(lr));
    let fit = phase_config(
        cfg,
        cfg.freeze_epochs,
        rates.clone(),
        (at.epochs_done, at.batches_done),
    );
    let learner = &mut run.learner;
    learner.state.phase = 0;
    match features {
        Some(f) => learner.fit_head(&f.train, &f.valid, &fit)?,
        None => learner.fit(&run.train, &run.valid, &fit)?,
    }
    let name = if cfg.precompute {
        "frozen (precomputed)"
    } else {
        "frozen"
    };
    let seconds = features.map_or(0.0, |f| f.seconds) + t.elapsed().as_secs_f64();
    phase_report(learner, name, cfg.freeze_epochs, &rates, seconds)
}

/// The unfrozen phase: every group, the body at rates a hundred times lower than the head's top
/// (fastai's `slice(lr/2/100, lr/2)`), at the unfrozen size when progressive resizing is asked for.
fn train_unfrozen(
    run: &mut TransferRun,
    cfg: &TransferConfig,
    lr: f64,
    at: &TrainingState,
) -> Result<PhaseReport> {
    let t = Instant::now();
    if let Some(size) = cfg.unfrozen_size.filter(|&s| s != run.train.size) {
        resize(run, size, cfg.verbose);
    }
    let learner = &mut run.learner;
    learner.unfreeze();
    learner.state.phase = 1;
    let rates = match &cfg.lr {
        Some(LayerRates::Single(l)) => LayerRates::Range(l / 200.0, l / 2.0),
        Some(r) => r.clone(),
        None => {
            let top = (lr / 2.0).min(MAX_UNFROZEN_LR);
            LayerRates::Range(top / 100.0, top)
        }
    };
    let start = if at.phase == 1 {
        (at.epochs_done, at.batches_done)
    } else {
        (0, 0)
    };
    let fit = phase_config(cfg, cfg.epochs, rates.clone(), start);
    learner.fit(&run.train, &run.valid, &fit)?;
    phase_report(
        learner,
        "unfrozen",
        cfg.epochs,
        &rates,
        t.elapsed().as_secs_f64(),
    )
}

/// Progressive resizing: both sets and the model's input size become `size`.
fn resize(run: &mut TransferRun, size: usize, verbose: bool) {
    if let Some(w) = size_warning(size, run.native_size) {
        eprintln!("{w}");
    }
    if verbose {
        eprintln!(
            "progressive resizing: {} px → {size} px for the unfrozen phase",
            run.train.size
        );
    }
    run.train.size = size;
    run.valid.size = size;
    let preprocess = &mut run.learner.meta.preprocess;
    preprocess.height = size;
    preprocess.width = size;
}
