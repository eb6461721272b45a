//! The timed workloads. Model workloads time whole steps on fixed random batches after warm-up
//! steps; the data pipeline decodes, resizes and augments the hymenoptera photos; the end-to-end
//! ones run the real recipes.

use std::path::Path;
use std::time::Instant;

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use serde::Serialize;

use super::peak_rss_mib;
use crate::data::{Augment, Batcher, Dataset, ImageSource, Mnist, Normalization, PhotoSet};
use crate::device::{inference_device, training_device};
use crate::error::{Error, Result};
use crate::learner::{FitConfig, adamw_with_momentum, cross_entropy};
use crate::models::{
    ArchSpec, BackboneKind, HeadKind, HeadSpec, ModelPreset, Network, PaddingStyle,
};
use crate::recipes::{TransferConfig, fine_tune, train_classifier};

/// The workloads, by name: `(name, what it does)`.
pub const WORKLOADS: &[(&str, &str)] = &[
    (
        "small_cnn_train",
        "the MNIST CNN, one AdamW training step per batch of 64 (28×28×1)",
    ),
    (
        "small_cnn_infer",
        "the MNIST CNN, inference on batches of 64",
    ),
    (
        "resnet18_train",
        "ResNet-18, one AdamW training step per batch of 16 at 128×128",
    ),
    (
        "resnet18_infer",
        "ResNet-18, inference on batches of 8 at 224×224",
    ),
    (
        "mobilenet_v2_infer",
        "MobileNetV2, inference on batches of 8 at 224×224",
    ),
    (
        "data_pipeline",
        "decode + resize + side-on augmentation of the hymenoptera training photos",
    ),
    (
        "mnist_3_epochs",
        "end to end: the MNIST CNN, 3 epochs, batch 64, test accuracy",
    ),
    (
        "fine_tune_hymenoptera",
        "end to end: the default fine-tune of MobileNetV2 on hymenoptera",
    ),
];

/// What one workload measured.
#[derive(Clone, Debug, Serialize)]
pub struct BenchResult {
    /// Workload name.
    pub workload: String,
    /// Images processed per second (the figure compared).
    pub images_per_second: f64,
    /// Timed images.
    pub images: usize,
    /// Timed seconds.
    pub seconds: f64,
    /// Peak resident memory of the process, MiB.
    pub peak_rss_mib: Option<f64>,
    /// Accuracy reached (end-to-end workloads).
    pub accuracy: Option<f64>,
    /// Threads the engine may use (rayon's pool).
    pub threads: usize,
}

/// `backbone` with the ImageNet classifier (1000 classes), PyTorch padding.
fn imagenet(backbone: BackboneKind) -> ArchSpec {
    ArchSpec::Pretrained {
        backbone,
        padding: PaddingStyle::Torch,
        head: HeadSpec {
            kind: HeadKind::ImageNet,
            hidden: 0,
            classes: 1000,
        },
    }
}

fn small_cnn() -> ArchSpec {
    ArchSpec::Plain {
        preset: "simple_cnn".into(),
        spec: ModelPreset::SimpleCnn.spec(1, 28, 28, 10),
    }
}

fn random_batch(shape: [usize; 4], classes: usize, device: &Device) -> (Tensor<4>, Tensor<1, Int>) {
    let x = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), device);
    let labels: Vec<i64> = (0..shape[0]).map(|i| (i * 7 % classes) as i64).collect();
    let y = Tensor::<1, Int>::from_data(TensorData::new(labels, [shape[0]]), device);
    (x, y)
}

/// Times `steps` training steps (forward, cross-entropy, backward, AdamW) after `warmup` ones,
/// each reading its loss back as the learner does (on a GPU, waiting for the step's forward).
fn time_train(
    arch: &ArchSpec,
    shape: [usize; 4],
    warmup: usize,
    steps: usize,
) -> Result<(usize, f64)> {
    let device = training_device();
    let mut model = Network::new(arch, &device)?;
    let (x, y) = random_batch(shape, arch.classes(), &device);
    // The learner's optimiser, with PyTorch's default weight decay (the reference's `AdamW(lr=1e-4)`).
    let (mut optim, _) = adamw_with_momentum(0.01);
    let mut start = Instant::now();
    for i in 0..warmup + steps {
        if i == warmup {
            start = Instant::now();
        }
        let loss = cross_entropy(model.forward(x.clone()), y.clone());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(1e-4, model, grads);
        let _ = loss.into_scalar::<f32>();
    }
    // The last step's update, waited for: on a GPU it may still be queued.
    let _ = model
        .forward(x.narrow(0, 0, 1))
        .slice([0..1, 0..1])
        .into_scalar::<f32>();
    Ok((steps * shape[0], start.elapsed().as_secs_f64()))
}

/// Times `steps` forward passes in eval mode after `warmup` ones.
fn time_infer(
    arch: &ArchSpec,
    shape: [usize; 4],
    warmup: usize,
    steps: usize,
) -> Result<(usize, f64)> {
    let device = inference_device();
    let model = Network::new(arch, &device)?.valid();
    let (x, _) = random_batch(shape, arch.classes(), &device);
    let mut start = Instant::now();
    for i in 0..warmup + steps {
        if i == warmup {
            start = Instant::now();
        }
        // Reading one value back waits for the whole computation.
        let _ = model
            .forward(x.clone())
            .slice([0..1, 0..1])
            .into_scalar::<f32>();
    }
    Ok((steps * shape[0], start.elapsed().as_secs_f64()))
}

/// Decodes the hymenoptera training photos (kept at ≤ 2 × 224 px) and prepares every one as a
/// 224×224 side-on augmented, normalised sample — twice, as two epochs would.
fn time_pipeline(data: &Path) -> Result<(usize, f64)> {
    let split = Dataset::Folder(data.join("data/hymenoptera")).split(0.2, 42)?;
    let start = Instant::now();
    let set = PhotoSet::decode(&split.train, &split.classes, 3, 224, "decoding", false).with(
        crate::data::Crop::Square { fraction: 0.875 },
        Augment::SideOn,
    );
    let batcher = Batcher {
        normalization: Normalization::imagenet(),
        batch_size: 32,
        device: inference_device(),
    };
    let mut images = 0;
    for epoch in 0..2u64 {
        for idx in batcher.epoch_indices(set.len(), Some(epoch)) {
            images += batcher.host_batch(&set, &idx, Some(epoch)).indices.len();
        }
    }
    // Decoding counts once per photo; the two augmented passes count every image they prepare.
    Ok((images, start.elapsed().as_secs_f64()))
}

/// Runs workload `name` (`quick` shortens the model workloads to a few steps); `data` is the shared
/// folder (MNIST, hymenoptera, the pretrained weights).
pub fn run_workload(name: &str, data: &Path, quick: bool) -> Result<BenchResult> {
    let (warm, steps) = if quick { (1, 2) } else { (3, 20) };
    let mut accuracy = None;
    let (images, seconds) = match name {
        "small_cnn_train" => time_train(&small_cnn(), [64, 1, 28, 28], warm * 3, steps * 5)?,
        "small_cnn_infer" => time_infer(&small_cnn(), [64, 1, 28, 28], warm * 3, steps * 10)?,
        "resnet18_train" => time_train(
            &imagenet(BackboneKind::Resnet18),
            [16, 3, 128, 128],
            warm,
            steps / 2,
        )?,
        "resnet18_infer" => time_infer(
            &imagenet(BackboneKind::Resnet18),
            [8, 3, 224, 224],
            warm,
            steps,
        )?,
        "mobilenet_v2_infer" => time_infer(
            &imagenet(BackboneKind::MobilenetV2),
            [8, 3, 224, 224],
            warm,
            steps,
        )?,
        "data_pipeline" => time_pipeline(data)?,
        "mnist_3_epochs" => {
            let m = Mnist::load(&data.join("data/mnist"))?;
            let fit = FitConfig {
                epochs: if quick { 1 } else { 3 },
                verbose: false,
                ..FitConfig::default()
            };
            let train = if quick { m.train.take(2000) } else { m.train };
            let (_, report) = train_classifier(ModelPreset::SimpleCnn, &train, &m.test, &fit)?;
            accuracy = Some(report.valid_accuracy);
            (train.len() * fit.epochs, report.seconds)
        }
        "fine_tune_hymenoptera" => {
            let cfg = TransferConfig {
                weights: data.join("weights/mobilenet_v2_imagenet_from_tflite.safetensors"),
                verbose: false,
                ..TransferConfig::default()
            };
            let (_, report) = fine_tune(&Dataset::Folder(data.join("data/hymenoptera")), &cfg)?;
            accuracy = Some(report.valid_accuracy);
            (report.train_images * report.epochs, report.seconds)
        }
        other => {
            let names: Vec<&str> = WORKLOADS.iter().map(|w| w.0).collect();
            return Err(Error::Invalid(format!(
                "unknown workload '{other}': expected one of {}",
                names.join(", ")
            )));
        }
    };
    Ok(BenchResult {
        workload: name.to_string(),
        images_per_second: images as f64 / seconds.max(1e-9),
        images,
        seconds,
        peak_rss_mib: peak_rss_mib(),
        accuracy,
        threads: rayon::current_num_threads(),
    })
}
