//! An in-memory labelled set of same-sized images (8-bit pixels, channel-major).

use super::Targets;
use crate::error::{Error, Result};
use crate::feature_maps::FeatureMaps;

/// Labelled images held in memory as bytes (MNIST's 70 000 digits take 55 MB).
#[derive(Clone, Debug)]
pub struct ImageSet {
    /// Channels per image.
    pub channels: usize,
    /// Rows per image.
    pub height: usize,
    /// Columns per image.
    pub width: usize,
    /// `len * channels * height * width` bytes, 0 = black, 255 = white.
    pub pixels: Vec<u8>,
    /// Each image's class (or, multi-label, its tags).
    pub targets: Targets,
    /// Class names, indexed by label.
    pub classes: Vec<String>,
}

impl ImageSet {
    /// Checks that pixels and labels agree in count and that every label names a class.
    /// `targets`: a class index per image (`Vec<usize>`), or [`Targets::Tags`].
    pub fn new(
        channels: usize,
        height: usize,
        width: usize,
        pixels: Vec<u8>,
        targets: impl Into<Targets>,
        classes: Vec<String>,
    ) -> Result<Self> {
        let targets = targets.into();
        let per = channels * height * width;
        if per == 0 || pixels.len() != targets.len() * per {
            return Err(Error::Invalid(format!(
                "{} labels need {} pixels of {channels}×{height}×{width} images, got {}",
                targets.len(),
                targets.len() * per,
                pixels.len()
            )));
        }
        let indices: Vec<usize> = match &targets {
            Targets::Classes(c) => c.clone(),
            Targets::Tags(t) => t.iter().flatten().copied().collect(),
        };
        if let Some(bad) = indices.iter().find(|&&l| l >= classes.len()) {
            return Err(Error::Invalid(format!(
                "label {bad} but only {} classes",
                classes.len()
            )));
        }
        Ok(Self {
            channels,
            height,
            width,
            pixels,
            targets,
            classes,
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    /// True when there are no images.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// True when images carry tags (several labels each) rather than one class.
    pub fn is_multi_label(&self) -> bool {
        self.targets.view().is_multi_label()
    }

    /// Bytes per image.
    pub fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// Image `i` with values in 0..1.
    pub fn image(&self, i: usize) -> FeatureMaps {
        let n = self.image_len();
        FeatureMaps::new(
            self.channels,
            self.height,
            self.width,
            self.pixels[i * n..(i + 1) * n]
                .iter()
                .map(|&p| p as f32 / 255.0)
                .collect(),
        )
    }

    /// The first `n` images (all if fewer).
    pub fn take(&self, n: usize) -> ImageSet {
        let n = n.min(self.len());
        ImageSet {
            pixels: self.pixels[..n * self.image_len()].to_vec(),
            targets: self.targets.view().range(0..n),
            ..self.clone_meta()
        }
    }

    /// Splits into the first `n` images and the rest.
    pub fn split_at(&self, n: usize) -> (ImageSet, ImageSet) {
        let n = n.min(self.len());
        let cut = n * self.image_len();
        (
            ImageSet {
                pixels: self.pixels[..cut].to_vec(),
                targets: self.targets.view().range(0..n),
                ..self.clone_meta()
            },
            ImageSet {
                pixels: self.pixels[cut..].to_vec(),
                targets: self.targets.view().range(n..self.len()),
                ..self.clone_meta()
            },
        )
    }

    fn clone_meta(&self) -> ImageSet {
        ImageSet {
            channels: self.channels,
            height: self.height,
            width: self.width,
            pixels: Vec::new(),
            targets: self.targets.empty_like(),
            classes: self.classes.clone(),
        }
    }
}

impl ImageSet {
    /// Per-channel mean and standard deviation of the pixels (0..1 scale), for normalising inputs.
    pub fn normalization(&self) -> super::Normalization {
        let plane = self.height * self.width;
        let (mut mean, mut std) = (Vec::new(), Vec::new());
        for c in 0..self.channels {
            let (mut s, mut s2, mut n) = (0f64, 0f64, 0f64);
            for img in self.pixels.chunks(self.image_len()) {
                for &p in &img[c * plane..(c + 1) * plane] {
                    let v = p as f64 / 255.0;
                    s += v;
                    s2 += v * v;
                    n += 1.0;
                }
            }
            let m = s / n.max(1.0);
            mean.push(m as f32);
            std.push(((s2 / n.max(1.0) - m * m).max(1e-12)).sqrt() as f32);
        }
        super::Normalization { mean, std }
    }
}
