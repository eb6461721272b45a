//! How a model wants its input: size, channels, crop and normalisation. It travels with the weights
//! and the saved model, so prediction never re-derives it from flags.

use std::path::Path;

use image::DynamicImage;
use serde::{Deserialize, Serialize};

use super::{Normalization, image_to_maps, load_image};
use crate::error::Result;
use crate::kernels::FeatureMaps;

/// Input preparation for evaluation and prediction.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Preprocess {
    /// 1 (luminance) or 3 (RGB).
    pub channels: usize,
    /// Input height.
    pub height: usize,
    /// Input width.
    pub width: usize,
    /// Applied to 0..1 values.
    pub normalization: Normalization,
    /// Fraction of the shorter side kept by the central square crop before resizing (1 = squash the
    /// whole image to the input size without cropping).
    pub center_crop: f32,
}

/// The central square of `fraction` × the shorter side (the whole image when `fraction` ≥ 1).
pub fn center_crop(image: &DynamicImage, fraction: f32) -> DynamicImage {
    if fraction >= 1.0 {
        return image.clone();
    }
    let side = ((image.width().min(image.height()) as f32) * fraction).round().max(1.0) as u32;
    let x = (image.width() - side) / 2;
    let y = (image.height() - side) / 2;
    image.crop_imm(x, y, side, side)
}

impl Preprocess {
    /// An image prepared for the model (values 0..1, not yet normalised).
    pub fn prepare(&self, image: &DynamicImage) -> Result<FeatureMaps> {
        image_to_maps(
            &center_crop(image, self.center_crop),
            self.channels,
            Some((self.width as u32, self.height as u32)),
        )
    }

    /// Reads and prepares an image file.
    pub fn load(&self, path: &Path) -> Result<FeatureMaps> {
        self.prepare(&load_image(path)?)
    }
}
