//! Whole workflows, each one call: train a classifier on an image set, and the built-in demo.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use crate::data::{Crop, ImageSet, Preprocess, generate_shapes};
use crate::device::{inference_device, training_device};
use crate::error::Result;
use crate::interpret::{explain, render_activations};
use crate::kernels::{Kernel, KernelFigure, Padding, render_kernel_figure};
use crate::learner::{FitConfig, History, Learner};
use crate::model_file::{FORMAT_VERSION, ModelMeta, SavedModel};
use crate::models::{ArchSpec, ModelPreset, Network};
use burn::module::Module;

/// What a training run achieved.
#[derive(Clone, Debug, Serialize)]
pub struct TrainReport {
    /// Accuracy on the held-out set after the last epoch (0–1).
    pub valid_accuracy: f64,
    /// Loss on the held-out set after the last epoch.
    pub valid_loss: f64,
    /// Epochs run.
    pub epochs: usize,
    /// Wall time of training including per-epoch validation, seconds.
    pub seconds: f64,
    /// Training images processed per second (forward + backward + update).
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

/// Trains architecture `preset` on `train`, validating on `valid`; returns the trained model and a report.
pub fn train_classifier(
    preset: ModelPreset,
    train: &ImageSet,
    valid: &ImageSet,
    fit: &FitConfig,
) -> Result<(SavedModel, TrainReport)> {
    let device = training_device();
    let spec = preset.spec(train.channels, train.height, train.width, train.classes.len());
    let arch = ArchSpec::Plain { preset: preset.name().to_string(), spec };
    let normalization = train.normalization();
    let mut learner = Learner::new(Network::new(&arch, &device)?, normalization.clone(), device);
    let start = Instant::now();
    let history = learner.fit_one_cycle(train, valid, fit)?;
    let seconds = start.elapsed().as_secs_f64();
    let last = history.epochs.last().expect("at least one epoch");
    let train_seconds: f64 = history.epochs.iter().map(|e| e.seconds).sum::<f64>();
    let report = TrainReport {
        valid_accuracy: last.valid_accuracy,
        valid_loss: last.valid_loss,
        epochs: fit.epochs,
        seconds,
        images_per_second: (train.len() * fit.epochs) as f64 / train_seconds.max(1e-9),
        train_images: train.len(),
        valid_images: valid.len(),
        architecture: preset.name().to_string(),
        history: history.clone(),
    };
    let model = SavedModel {
        meta: ModelMeta {
            format_version: FORMAT_VERSION,
            arch,
            classes: train.classes.clone(),
            preprocess: Preprocess {
                channels: train.channels,
                height: train.height,
                width: train.width,
                normalization,
                crop: Crop::None,
            },
        },
        network: learner.model.valid(),
    };
    Ok((model, report))
}

/// What the demo produced.
#[derive(Clone, Debug, Serialize)]
pub struct DemoReport {
    /// The training run.
    pub training: TrainReport,
    /// The saved model.
    pub model: PathBuf,
    /// The kernel figure.
    pub kernel_png: PathBuf,
    /// The activations figure.
    pub activations_png: PathBuf,
    /// The loss curve.
    pub loss_png: PathBuf,
    /// A sample image written as PNG (for `predict`/`explain`).
    pub sample_png: PathBuf,
    /// The explanation of one activation, as text.
    pub explanation: String,
}

/// The built-in demo: generates labelled shapes, trains the small CNN on them, and writes the model,
/// a kernel figure, an activations figure and the loss curve into `out`.
pub fn run_demo(out: &Path, fit: &FitConfig) -> Result<DemoReport> {
    std::fs::create_dir_all(out).map_err(|e| crate::Error::io(out, e))?;
    let train = generate_shapes(6000, 28, 1);
    let valid = generate_shapes(1200, 28, 2);
    let (model, training) = train_classifier(ModelPreset::SimpleCnn, &train, &valid, fit)?;
    let model_path = out.join("shapes-model.safetensors");
    model.save(&model_path)?;

    // A larger generated picture makes the kernel's effect easy to see.
    let picture = generate_shapes(3, 96, 7).image(2);
    let kernel_png = out.join("kernel-bottom-edge.png");
    let figure = KernelFigure::compute(
        picture,
        &Kernel::preset("bottom-edge").expect("preset"),
        Padding::Valid,
        2,
    )?;
    render_kernel_figure(&figure, false, &kernel_png)?;

    let sample = valid.image(0);
    let sample_png = out.join("sample-square.png");
    let gray = image::GrayImage::from_fn(28, 28, |x, y| {
        image::Luma([(sample.get(0, y as usize, x as usize) * 255.0).round() as u8])
    });
    gray.save(&sample_png)
        .map_err(|e| crate::Error::format(&sample_png, format!("cannot write PNG: {e}")))?;
    let device = inference_device();
    let activations_png = out.join("activations.png");
    render_activations(&model, &sample, &activations_png, &device)?;
    let (y, x) = strongest_activation(&model, &sample, &device);
    let explanation = explain(&model, &sample, 1, 0, y, x, &device)?.to_string();
    let loss_png = out.join("loss.png");
    training.history.plot_loss(&loss_png)?;
    Ok(DemoReport {
        training,
        model: model_path,
        kernel_png,
        activations_png,
        loss_png,
        sample_png,
        explanation,
    })
}

/// Row and column where kernel 0 of the first conv layer responds most strongly to `image`.
fn strongest_activation(
    model: &SavedModel,
    image: &crate::kernels::FeatureMaps,
    device: &burn::tensor::Device,
) -> (usize, usize) {
    let (_, stages) = model.network.forward_with_stages(crate::interpret::model_input(model, image, device));
    let maps = crate::host::first_maps(stages[0].1.clone()).plane(0);
    let best = (0..maps.data.len()).fold(0, |b, i| if maps.data[i] > maps.data[b] { i } else { b });
    (best / maps.width, best % maps.width)
}
