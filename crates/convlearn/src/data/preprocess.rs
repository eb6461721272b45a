//! How a model wants its input: size, channels, crop and normalisation. It travels with the weights
//! and the saved model, so prediction never re-derives it from flags.

use std::path::Path;

use image::DynamicImage;
use serde::{Deserialize, Serialize};

use super::{Normalization, image_to_maps, load_image};
use crate::error::Result;
use crate::feature_maps::FeatureMaps;

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
    /// The central crop taken before resizing.
    pub crop: Crop,
}

/// A central crop, taken before the resize to the input size.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Crop {
    /// No crop: the whole image is resized (squashed) to the input size.
    None,
    /// `fraction` of each side (TF-slim's evaluation crop: 87.5 %).
    EachSide {
        /// Kept fraction of the width and of the height.
        fraction: f32,
    },
    /// A square of `fraction` × the shorter side (torchvision's resize 256 → centre crop 224 is 0.875).
    Square {
        /// Kept fraction of the shorter side.
        fraction: f32,
    },
}

impl Crop {
    /// Width and height of the crop of a `w × h` image.
    pub fn size(self, w: u32, h: u32) -> (u32, u32) {
        let (fw, fh) = (w as f32, h as f32);
        let (cw, ch) = match self {
            Crop::None => (fw, fh),
            Crop::EachSide { fraction } => (fw * fraction, fh * fraction),
            Crop::Square { fraction } => (fw.min(fh) * fraction, fw.min(fh) * fraction),
        };
        (
            (cw.round() as u32).clamp(1, w),
            (ch.round() as u32).clamp(1, h),
        )
    }

    /// Applies the crop.
    pub fn apply(self, image: &DynamicImage) -> DynamicImage {
        if self == Crop::None {
            return image.clone();
        }
        let (cw, ch) = self.size(image.width(), image.height());
        image.crop_imm((image.width() - cw) / 2, (image.height() - ch) / 2, cw, ch)
    }
}

impl Preprocess {
    /// An image prepared for the model (values 0..1, not yet normalised).
    pub fn prepare(&self, image: &DynamicImage) -> Result<FeatureMaps> {
        image_to_maps(
            &self.crop.apply(image),
            self.channels,
            Some((self.width as u32, self.height as u32)),
        )
    }

    /// Reads and prepares an image file.
    pub fn load(&self, path: &Path) -> Result<FeatureMaps> {
        self.prepare(&load_image(path)?)
    }
}
