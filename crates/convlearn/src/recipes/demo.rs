//! The built-in demo: no download needed.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{TrainReport, train_classifier};
use crate::data::{generate_shapes, shapes_split};
use crate::device::inference_device;
use crate::error::Result;
use crate::interpret::{explain, render_activations};
use crate::kernels::{Kernel, KernelFigure, Padding, render_kernel_figure};
use crate::learner::FitConfig;
use crate::model_file::SavedModel;
use crate::models::ModelPreset;

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
    let (train, valid) = shapes_split();
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
    crate::output_file::write_atomically(&sample_png, |tmp| {
        gray.save_with_format(tmp, image::ImageFormat::Png)
            .map_err(|e| crate::Error::format(&sample_png, format!("cannot write PNG: {e}")))
    })?;
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
    let (_, stages) = model
        .network
        .forward_with_stages(crate::interpret::model_input(model, image, device));
    let maps = crate::host::first_maps(stages[0].1.clone()).plane(0);
    let best = (0..maps.data.len()).fold(0, |b, i| if maps.data[i] > maps.data[b] { i } else { b });
    (best / maps.width, best % maps.width)
}
