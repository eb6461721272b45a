//! The front door for using a trained model: load it once, classify images, export it.

use std::path::Path;

use burn::tensor::Device;
use image::DynamicImage;

use crate::device::inference_device;
use crate::error::{Error, Result};
use crate::export::{OnnxOptions, write_onnx};
use crate::interpret::{Scores, outputs_of_image};
use crate::model_file::SavedModel;
use crate::models::{BackboneKind, PretrainedWeights};

/// A trained model ready to classify images, e.g. in a service: load it once, then call
/// [`Classifier::predict`] for each image.
///
/// ```no_run
/// # fn main() -> convlearn::Result<()> {
/// let classifier = convlearn::Classifier::load("bees.safetensors")?;
/// let scores = classifier.predict_file("photo.jpg")?;
/// for p in scores.top(3) {
///     println!("{} {:.1}%", p.class, 100.0 * p.probability);
/// }
/// # Ok(()) }
/// ```
pub struct Classifier {
    model: SavedModel,
    device: Device,
    /// Augmented copies averaged with each image (0: none).
    tta: usize,
    seed: u64,
}

impl Classifier {
    /// The seed of test-time augmentation's random copies unless [`Classifier::with_tta`] is
    /// given another: the same image gets the same answer every time.
    pub const TTA_SEED: u64 = 42;

    /// Loads a model saved by convlearn (`train --save`, or [`SavedModel::save`]).
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let device = inference_device();
        let model = SavedModel::load(path.as_ref(), &device)?;
        Ok(Self::on(model, device))
    }

    /// An ImageNet classifier from raw pretrained weights (a torchvision state dict, `.safetensors`
    /// or `.pth`; class names from the `<name>.labels.txt` beside them), the architecture
    /// recognised from the tensor names unless `arch` says.
    pub fn pretrained(weights: impl AsRef<Path>, arch: Option<BackboneKind>) -> Result<Self> {
        let device = inference_device();
        let weights = PretrainedWeights::open(weights.as_ref(), arch)?;
        Ok(Self::on(SavedModel::imagenet(&weights, &device)?, device))
    }

    /// Wraps a model already in memory (for instance one [`crate::recipes::fine_tune`] returned).
    pub fn new(model: SavedModel) -> Self {
        Self::on(model, inference_device())
    }

    fn on(model: SavedModel, device: Device) -> Self {
        Self {
            model,
            device,
            tta: 0,
            seed: Self::TTA_SEED,
        }
    }

    /// Test-time augmentation: every prediction averages the image with `copies` augmented
    /// versions of it (the model's training augmentation; side-on when it had none), drawn from
    /// `seed` (e.g. [`Classifier::TTA_SEED`]).
    pub fn with_tta(mut self, copies: usize, seed: u64) -> Self {
        self.tta = copies;
        self.seed = seed;
        self
    }

    /// The class (or tag) names, in output order.
    pub fn classes(&self) -> &[String] {
        &self.model.meta.classes
    }

    /// The model and its metadata.
    pub fn model(&self) -> &SavedModel {
        &self.model
    }

    /// Classifies a decoded image: cropped, resized and normalised as the model was trained.
    pub fn predict(&self, image: &DynamicImage) -> Result<Scores> {
        self.scores(image, "the image")
    }

    /// Reads an image file (under convlearn's decoding limits) and classifies it; errors name
    /// the file.
    pub fn predict_file(&self, path: impl AsRef<Path>) -> Result<Scores> {
        let path = path.as_ref();
        let image = crate::data::load_image(path)?;
        self.scores(&image, &path.display().to_string())
    }

    fn scores(&self, image: &DynamicImage, source: &str) -> Result<Scores> {
        let (model, device) = (&self.model, &self.device);
        let outputs = outputs_of_image(model, image, self.tta, self.seed, device)?;
        Scores::new(&model.meta, outputs, source)
    }

    /// Decodes an encoded image (PNG, JPEG, GIF, BMP; an upload's bytes) under convlearn's
    /// decoding limits ([`crate::data::image_limits`]) and classifies it.
    pub fn predict_bytes(&self, bytes: &[u8]) -> Result<Scores> {
        let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| Error::Invalid(format!("cannot read the image: {e}")))?;
        reader.limits(crate::data::image_limits());
        let image = reader
            .decode()
            .map_err(|e| Error::Invalid(format!("cannot decode the image: {e}")))?;
        self.predict(&image)
    }

    /// Writes the model as ONNX ([`crate::export`]).
    pub fn export_onnx(&self, path: impl AsRef<Path>, options: &OnnxOptions) -> Result<()> {
        write_onnx(&self.model, options, path.as_ref())
    }
}
