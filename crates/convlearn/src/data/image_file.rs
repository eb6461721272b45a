//! Decoding image files and turning them into normalised planes.

use std::path::Path;

use image::{DynamicImage, imageops::FilterType};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::feature_maps::FeatureMaps;

/// The widest or tallest picture decoded, in pixels.
pub const IMAGE_SIDE_MAX: u32 = 16_384;

/// The most memory one decoded picture may take (its decoder's buffers included).
pub const IMAGE_BYTES_MAX: u64 = 512 << 20;

/// The decoder limits every picture is read under: a header claiming 100 000 × 100 000 pixels
/// (a decompression bomb of a few bytes) is refused before anything is allocated.
pub fn image_limits() -> image::Limits {
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(IMAGE_SIDE_MAX);
    limits.max_image_height = Some(IMAGE_SIDE_MAX);
    limits.max_alloc = Some(IMAGE_BYTES_MAX);
    limits
}

/// Decodes an image file under [`image_limits`]; the error names the file and repeats what the
/// decoder said.
pub fn load_image(path: &Path) -> Result<DynamicImage> {
    let mut reader = image::ImageReader::open(path)
        .map_err(|e| Error::io(path, e))?
        .with_guessed_format()
        .map_err(|e| Error::io(path, e))?;
    reader.limits(image_limits());
    reader
        .decode()
        .map_err(|e| Error::format(path, format!("cannot decode image: {e}")))
}

/// Converts an image to `channels` planes (1 = luminance, 3 = RGB) with values in 0..1, resized to
/// `size` (width, height) when given.
pub fn image_to_maps(
    image: &DynamicImage,
    channels: usize,
    size: Option<(u32, u32)>,
) -> Result<FeatureMaps> {
    let image = match size {
        Some((w, h)) if (w, h) != (image.width(), image.height()) => {
            image.resize_exact(w, h, FilterType::Triangle)
        }
        _ => image.clone(),
    };
    let (w, h) = (image.width() as usize, image.height() as usize);
    match channels {
        1 => Ok(FeatureMaps::new(1, h, w, image.to_luma32f().into_raw())),
        3 => {
            let rgb = image.to_rgb32f().into_raw();
            let mut data = vec![0.0; 3 * h * w];
            for (i, px) in rgb.chunks_exact(3).enumerate() {
                for c in 0..3 {
                    data[c * h * w + i] = px[c];
                }
            }
            Ok(FeatureMaps::new(3, h, w, data))
        }
        n => Err(Error::Invalid(format!(
            "images can be read as 1 or 3 channels, not {n}"
        ))),
    }
}

/// Per-channel normalisation applied to 0..1 pixel values: `(x - mean) / std`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    /// Mean per channel.
    pub mean: Vec<f32>,
    /// Standard deviation per channel.
    pub std: Vec<f32>,
}

impl Normalization {
    /// MNIST's published statistics.
    pub fn mnist() -> Self {
        Self {
            mean: vec![0.1307],
            std: vec![0.3081],
        }
    }

    /// ImageNet's statistics (torchvision's pretrained weights expect them).
    pub fn imagenet() -> Self {
        Self {
            mean: vec![0.485, 0.456, 0.406],
            std: vec![0.229, 0.224, 0.225],
        }
    }

    /// No change.
    pub fn identity(channels: usize) -> Self {
        Self {
            mean: vec![0.0; channels],
            std: vec![1.0; channels],
        }
    }

    /// Normalises `maps` in place (channels beyond the stored statistics reuse the last one).
    pub fn apply(&self, values: &mut [f32], channels: usize) {
        let plane = values.len() / channels.max(1);
        for (c, chunk) in values.chunks_mut(plane.max(1)).enumerate() {
            let m = self.mean[c.min(self.mean.len() - 1)];
            let s = self.std[c.min(self.std.len() - 1)];
            for v in chunk {
                *v = (*v - m) / s;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_header_claiming_a_huge_picture_is_refused_before_decoding() {
        // A PNG header (and nothing else) claiming 100 000 × 100 000 pixels.
        let mut png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR".to_vec();
        png.extend(100_000u32.to_be_bytes());
        png.extend(100_000u32.to_be_bytes());
        png.extend([8, 2, 0, 0, 0]);
        // The chunk's CRC-32 (flate2's is the same polynomial as PNG's).
        let mut crc = flate2::Crc::new();
        crc.update(&png[12..]);
        let crc = crc.sum();
        png.extend(crc.to_be_bytes());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bomb.png");
        std::fs::write(&path, &png).unwrap();
        let err = load_image(&path).unwrap_err().to_string();
        assert!(err.contains("bomb.png") && err.contains("limit"), "{err}");
    }
}
