//! The front door for using a trained model: load it once, classify images, export it.

use std::path::Path;

use burn::tensor::Device;
use image::DynamicImage;

use crate::device::inference_device;
use crate::error::{Error, Result};
use crate::export::{OnnxOptions, write_onnx};
use crate::interpret::{Scores, probabilities_of_image};
use crate::model_file::SavedModel;

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
}

impl Classifier {
    /// Loads a model saved by convlearn (`train --save`, or [`SavedModel::save`]).
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let device = inference_device();
        Ok(Self {
            model: SavedModel::load(path.as_ref(), &device)?,
            device,
        })
    }

    /// Wraps a model already in memory (for instance one [`crate::recipes::fine_tune`] returned).
    pub fn new(model: SavedModel) -> Self {
        Self {
            model,
            device: inference_device(),
        }
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
        let probabilities = probabilities_of_image(&self.model, image, 0, 0, &self.device)?;
        Scores::new(&self.model.meta, probabilities, "the image")
    }

    /// Reads an image file (under convlearn's decoding limits) and classifies it.
    pub fn predict_file(&self, path: impl AsRef<Path>) -> Result<Scores> {
        self.predict(&crate::data::load_image(path.as_ref())?)
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
