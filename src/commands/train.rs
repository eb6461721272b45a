//! `convlearn train mnist|shapes|FOLDER|--csv … [--arch simple_cnn|spreadsheet]` (the lesson's
//! small networks from scratch) and `convlearn train FOLDER|--csv … --pretrained WEIGHTS …`
//! (fine-tuning).

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use convlearn::data::Augment;
use convlearn::learner::{CheckpointEvery, FitConfig, LayerRates};
use convlearn::model_file::MULTI_LABEL_TRAINING_THRESHOLD;
use convlearn::models::ModelPreset;
use convlearn::recipes::{
    TransferConfig, fine_tune, save_replacing_checkpoint, train_classifier_with,
};
use serde_json::{Value, json};

/// Arguments of `train` (shared with `lr-find`).
#[derive(clap::Args)]
pub struct Args {
    /// The data: `mnist` (IDX files in --data), `shapes` (generated), a folder of photos, or a CSV.
    #[command(flatten)]
    pub source: super::data_args::DataArgs,
    /// MNIST's directory (default: $CONVLEARN_DATA/data/mnist, i.e. ../shared/data/mnist).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// From scratch: simple_cnn or spreadsheet. Pretrained: resnet18|34|50|101|152 or mobilenet_v2
    /// (recognised from the weights when omitted).
    #[arg(long)]
    pub arch: Option<String>,
    /// ImageNet-pretrained weights to fine-tune from (torchvision state dict, .safetensors or .pth).
    #[arg(long, value_name = "WEIGHTS")]
    pub pretrained: Option<PathBuf>,
    /// Input size for photos. From scratch: the side they are squashed to (default 28). Fine-tuning
    /// (default: from the photos — their typical size after the crop, rounded to a multiple of 32,
    /// between the weights' size and 1.5 × it); `A,B` trains the frozen phase
    /// at A and the unfrozen phase at B (progressive resizing, e.g. 128,224).
    #[arg(long, value_parser = super::flags::sizes)]
    pub size: Option<(usize, Option<usize>)>,
    /// Epochs (from scratch: all, default 3; fine-tuning: the unfrozen phase after the frozen one,
    /// default 0).
    #[arg(long, value_parser = super::flags::phase_epochs)]
    pub epochs: Option<usize>,
    /// Fine-tuning: epochs with the body frozen (only the new head trains).
    #[arg(long, default_value_t = TransferConfig::default().freeze_epochs, value_parser = super::flags::phase_epochs)]
    pub freeze_epochs: usize,
    /// Peak learning rate: `auto` (LR finder, fine-tuning only), a number, `LO..HI` (spread over the
    /// layer groups) or one per group `A,B,C`.
    #[arg(long, default_value = "auto", value_parser = super::flags::learning_rate)]
    pub lr: String,
    /// Keep BatchNorm statistics frozen in the body (the default for fine-tuning).
    #[arg(long, conflicts_with = "train_bn")]
    pub freeze_bn: bool,
    /// Let unfrozen body BatchNorms update their running statistics.
    #[arg(long)]
    pub train_bn: bool,
    /// Train the frozen phase on body activations computed once, without augmentation (the default).
    #[arg(long, conflicts_with = "no_precompute")]
    pub precompute: bool,
    /// Train the frozen phase through the body on augmented images instead (slower).
    #[arg(long)]
    pub no_precompute: bool,
    /// Augmentation: side-on (rotate ±10°, lighting, flips, zoom), top-down (adds dihedral flips), none.
    #[arg(long, default_value = "side-on", value_parser = ["side-on", "top-down", "none"])]
    pub aug: String,
    /// Images per step (default 64 from scratch, 32 fine-tuning).
    #[arg(long, value_parser = super::flags::batch_size)]
    pub batch_size: Option<usize>,
    /// Use only the first N training images (quick experiments; from scratch).
    #[arg(long, value_parser = super::flags::positive)]
    pub limit: Option<usize>,
    /// Where to save the model (default: `<dataset>-<arch>.safetensors`).
    #[arg(long)]
    pub save: Option<PathBuf>,
    /// Where to write the loss curve (default: `<dataset>-<arch>-loss.png`).
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Continue an interrupted run from its checkpoint (`<save>.checkpoint.safetensors`, written
    /// after every epoch, every --checkpoint-every batches and on Ctrl-C) exactly where it stood:
    /// the result is the same, bit for bit, as a run never interrupted.
    #[arg(long)]
    pub resume: bool,
    /// Also write the checkpoint every N batches (`200`) or minutes (`10m`) during an epoch (it is
    /// always written at the end of an epoch and when Ctrl-C stops the run).
    #[arg(long, value_name = "N|Nm", value_parser = CheckpointEvery::parse)]
    pub checkpoint_every: Option<CheckpointEvery>,
    /// Fine-tuning: also score the final model with test-time augmentation, the image and N
    /// augmented copies averaged (one more pass over the validation images per copy).
    #[arg(long, value_name = "N", default_value_t = 0, num_args = 0..=1, default_missing_value = "4", value_parser = super::flags::tta)]
    pub tta: usize,
    /// Print one JSON object on stdout as the last line (progress still goes to stderr).
    #[arg(long)]
    pub json: bool,
}

impl Args {
    /// The transfer-learning options these arguments describe (the library's defaults where a flag
    /// is not given).
    pub fn transfer_config(&self, weights: &Path) -> Result<TransferConfig> {
        let defaults = TransferConfig::default();
        let arch = self.arch.as_deref().map(super::backbone).transpose()?;
        Ok(TransferConfig {
            weights: weights.to_path_buf(),
            arch,
            size: self.size.map(|s| s.0),
            unfrozen_size: self.size.and_then(|s| s.1),
            freeze_epochs: self.freeze_epochs,
            epochs: self.epochs.unwrap_or(defaults.epochs),
            lr: if self.lr == "auto" {
                None
            } else {
                Some(LayerRates::parse(&self.lr)?)
            },
            bn_freeze: !self.train_bn,
            precompute: !self.no_precompute,
            augment: Augment::parse(&self.aug).expect("clap checked"),
            batch_size: self.batch_size.unwrap_or(defaults.batch_size),
            valid_pct: self.source.valid_pct,
            seed: self.source.seed,
            verbose: true,
            checkpoint: None,
            checkpoint_every: self.checkpoint_every,
            resume: self.resume,
            tta: self.tta,
        })
    }

    fn stem(&self, arch: &str) -> String {
        format!("{}-{arch}", self.source.stem())
    }

    /// Where the model goes, and where its checkpoint goes while training.
    fn outputs(&self, arch: &str) -> (PathBuf, PathBuf, PathBuf) {
        let save = self
            .save
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("{}.safetensors", self.stem(arch))));
        let plot = self
            .plot
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("{}-loss.png", self.stem(arch))));
        (
            save.clone(),
            save.with_extension("checkpoint.safetensors"),
            plot,
        )
    }
}

/// `x-loss.png` → `x-<what>.png` beside it.
fn sibling(loss: &Path, what: &str) -> PathBuf {
    let name = loss
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let stem = name
        .strip_suffix("-loss.png")
        .unwrap_or_else(|| name.trim_end_matches(".png"));
    loss.with_file_name(format!("{stem}-{what}.png"))
}

/// Every file this run writes, with the flag that names it (`--save`, its checkpoint, `--plot` and
/// the figures beside it).
fn output_files(save: &Path, checkpoint: &Path, plot: &Path) -> Vec<(&'static str, PathBuf)> {
    vec![
        ("--save", save.to_path_buf()),
        ("the checkpoint beside --save", checkpoint.to_path_buf()),
        ("--plot", plot.to_path_buf()),
        (
            "the schedule figure beside --plot",
            sibling(plot, "schedule"),
        ),
        ("the metrics figure beside --plot", sibling(plot, "metrics")),
        (
            "the LR-finder figure beside --plot",
            sibling(plot, "lr_find"),
        ),
    ]
}

/// Refuses outputs that collide with each other or with an input, before any work starts.
fn check_outputs(args: &Args, save: &Path, checkpoint: &Path, plot: &Path) -> Result<()> {
    let outputs = output_files(save, checkpoint, plot);
    let outputs: Vec<(&str, &Path)> = outputs.iter().map(|(f, p)| (*f, p.as_path())).collect();
    let inputs: Vec<(&str, &Path)> = [
        ("--pretrained", args.pretrained.as_deref()),
        ("--csv", args.source.csv.as_deref()),
    ]
    .into_iter()
    .filter_map(|(flag, path)| Some((flag, path?)))
    .collect();
    super::check_outputs(&inputs, &outputs)
}

/// The library's report with the files this run wrote beside its figures (`null` for one not
/// written).
fn with_files(mut report: Value, files: &[(&str, Option<&Path>)]) -> Value {
    for (key, path) in files {
        report[*key] = path.map_or(Value::Null, super::json_path);
    }
    report
}

/// Runs `train`. Ctrl-C (or SIGTERM) stops it after the current step with a checkpoint and the
/// command that continues it; a second Ctrl-C quits at once.
pub fn run(args: Args) -> Result<()> {
    super::interrupt::stop_on_signals()?;
    let result = match &args.pretrained {
        Some(weights) => run_transfer(&args, weights),
        None => run_scratch(&args),
    };
    super::interrupt::explain(result)
}

fn run_transfer(args: &Args, weights: &Path) -> Result<()> {
    let mut cfg = args.transfer_config(weights)?;
    if cfg.freeze_epochs + cfg.epochs == 0 {
        bail!(
            "--freeze-epochs 0 with --epochs 0 trains nothing: give at least one epoch to either"
        );
    }
    let (save, checkpoint, plot) = args.outputs(cfg.arch.map_or("pretrained", |a| a.name()));
    check_outputs(args, &save, &checkpoint, &plot)?;
    cfg.checkpoint = Some(checkpoint.clone());
    let (model, report) = fine_tune(&args.source.photos()?, &cfg)?;
    save_replacing_checkpoint(&model, &save, &checkpoint)?;
    report.history.plot_loss(&plot)?;
    report.history.plot_schedule(&sibling(&plot, "schedule"))?;
    let metrics_png = sibling(&plot, "metrics");
    report.history.plot_metrics(&metrics_png)?;
    let lr_png = sibling(&plot, "lr_find");
    if let Some(finder) = &report.lr_find {
        finder.plot(&lr_png)?;
    }
    if args.json {
        let lr_find_png = report.lr_find.as_ref().map(|_| lr_png.as_path());
        let files = [
            ("model", Some(save.as_path())),
            ("loss_png", Some(plot.as_path())),
            ("metrics_png", Some(metrics_png.as_path())),
            ("lr_find_png", lr_find_png),
        ];
        super::print_json(&with_files(json!(report), &files));
    } else {
        for p in &report.phases {
            let lrs: Vec<String> = p.lrs.iter().map(|l| format!("{l:.1e}")).collect();
            let f2 = p
                .valid_f2
                .map(|f| format!(", F2 {f:.4} at threshold {MULTI_LABEL_TRAINING_THRESHOLD}"))
                .unwrap_or_default();
            println!(
                "{} phase: {} epochs at lr [{}] → {:.2}% validation accuracy{f2} ({:.1} s)",
                p.phase,
                p.epochs,
                lrs.join(", "),
                100.0 * p.valid_accuracy,
                p.seconds
            );
        }
        if let (Some(f2), Some(t)) = (report.valid_f2, report.threshold) {
            let tta = report
                .valid_f2_tta
                .map(|f| format!(" ({f:.4} with test-time augmentation)"))
                .unwrap_or_default();
            println!("multi-label: validation F2 {f2:.4}{tta} at the chosen threshold {t:.2}");
        }
        println!(
            "{} at {} px: {:.2}% validation accuracy{} on {} images after {} epochs, {:.1} s in all; model saved to {}",
            report.architecture,
            report.size,
            100.0 * report.valid_accuracy,
            report
                .valid_accuracy_tta
                .map(|a| format!(" ({:.2}% with test-time augmentation)", 100.0 * a))
                .unwrap_or_default(),
            report.valid_images,
            report.epochs,
            report.seconds,
            save.display()
        );
    }
    Ok(())
}

fn run_scratch(args: &Args) -> Result<()> {
    let preset = args
        .arch
        .as_deref()
        .map_or(Ok(ModelPreset::default()), ModelPreset::parse)?;
    if args.epochs == Some(0) {
        bail!("--epochs 0: training from scratch needs at least 1 epoch");
    }
    let (save, checkpoint, plot) = args.outputs(preset.name());
    check_outputs(args, &save, &checkpoint, &plot)?;
    if let Some((_, Some(_))) = args.size {
        bail!("--size A,B (progressive resizing) is for fine-tuning: from scratch, give one size");
    }
    let size = args.size.map(|s| s.0);
    let (train, valid) = args.source.scratch_images(args.data.as_deref(), size)?;
    let train = match args.limit {
        Some(n) => train.take(n),
        None => train,
    };
    let defaults = FitConfig::default();
    let lr = if args.lr == "auto" {
        defaults.lr.clone()
    } else {
        LayerRates::parse(&args.lr)?
    };
    let fit = FitConfig {
        epochs: args.epochs.unwrap_or(defaults.epochs),
        batch_size: args.batch_size.unwrap_or(defaults.batch_size),
        lr,
        seed: args.source.seed,
        checkpoint_every: args.checkpoint_every,
        ..defaults
    };
    eprintln!(
        "training {} on {} {} images ({} held out), {} epochs, batch {}, one-cycle Adam peaking at {:?}",
        preset.name(),
        train.len(),
        args.source.stem(),
        valid.len(),
        fit.epochs,
        fit.batch_size,
        fit.lr
    );
    let (model, report) =
        train_classifier_with(preset, &train, &valid, &fit, Some(&checkpoint), args.resume)?;
    save_replacing_checkpoint(&model, &save, &checkpoint)?;
    report.history.plot_loss(&plot)?;
    report.history.plot_schedule(&sibling(&plot, "schedule"))?;
    report.history.plot_metrics(&sibling(&plot, "metrics"))?;
    if args.json {
        let files = [
            ("model", Some(save.as_path())),
            ("loss_png", Some(plot.as_path())),
        ];
        super::print_json(&with_files(json!(report), &files));
    } else {
        let score = match (report.valid_f2, report.threshold) {
            (Some(f2), Some(t)) => format!(
                "F2 {f2:.4} at the chosen threshold {t:.2} ({:.2}% of tag decisions right)",
                100.0 * report.valid_accuracy
            ),
            _ => format!("{:.2}% accuracy", 100.0 * report.valid_accuracy),
        };
        println!(
            "{}: {score} on {} held-out images after {} epochs, {:.1} s ({:.0} training images/s)",
            preset.name(),
            report.valid_images,
            report.epochs,
            report.seconds,
            report.images_per_second
        );
        println!(
            "model saved to {}; loss curve in {}",
            save.display(),
            plot.display()
        );
    }
    Ok(())
}
