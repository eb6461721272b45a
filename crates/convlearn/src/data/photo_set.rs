//! Photos decoded once (in parallel, kept downsized in memory) and served at a chosen size, with
//! augmentation for training and the model's crop for validation. Unreadable files are skipped with
//! one warning each and counted, never a crash.

use std::path::PathBuf;

use image::DynamicImage;
use image::imageops::FilterType;
use rand::rngs::StdRng;
use rayon::prelude::*;

use super::{Augment, Crop, ImageSource, ItemList, Labels, Targets, image_to_maps, load_image};
use crate::error::Result;
use crate::kernels::FeatureMaps;
use crate::learner::Progress;

/// Decoded photos with labels.
pub struct PhotoSet {
    /// Downsized decoded images.
    pub images: Vec<DynamicImage>,
    /// Their files.
    pub paths: Vec<PathBuf>,
    /// Class (or tags) per image.
    pub targets: Targets,
    /// Class names.
    pub classes: Vec<String>,
    /// 1 or 3.
    pub channels: usize,
    /// Side of the square the model sees.
    pub size: usize,
    /// The evaluation crop (used when no augmentation is asked for).
    pub crop: Crop,
    /// Training-time augmentation.
    pub augment: Augment,
    /// Files that could not be decoded, with the decoder's message.
    pub skipped: Vec<(PathBuf, String)>,
}

impl PhotoSet {
    /// Decodes `items` in parallel, keeping each image with its shorter side at most `2 × size`
    /// (photos of the usual 500 × 375 stay as they are at 224 px, so the evaluation crop and resize
    /// sample the original pixels, as the reference preprocessing does).
    /// The set starts with no crop and no augmentation (see [`PhotoSet::with`]).
    pub fn decode(
        list: &ItemList,
        classes: &[String],
        channels: usize,
        size: usize,
        title: &str,
        verbose: bool,
    ) -> Self {
        let bar = Progress::new(list.paths.len() as u64, title, verbose);
        let keep = (size * 2) as u32;
        let decoded: Vec<(PathBuf, Result<DynamicImage>)> = list
            .paths
            .par_iter()
            .map(|path| {
                let image = load_image(path).map(|im| {
                    let short = im.width().min(im.height());
                    if short > keep {
                        let scale = keep as f32 / short as f32;
                        let (w, h) = (
                            (im.width() as f32 * scale).round() as u32,
                            (im.height() as f32 * scale).round() as u32,
                        );
                        im.resize_exact(w.max(1), h.max(1), FilterType::Triangle)
                    } else {
                        im
                    }
                });
                bar.step(String::new());
                (path.clone(), image)
            })
            .collect();
        bar.finish();
        let mut set = PhotoSet {
            images: Vec::new(),
            paths: Vec::new(),
            targets: list.targets.empty_like(),
            classes: classes.to_vec(),
            channels,
            size,
            crop: Crop::None,
            augment: Augment::None,
            skipped: Vec::new(),
        };
        for (i, (path, image)) in decoded.into_iter().enumerate() {
            match image {
                Ok(im) => {
                    set.images.push(im);
                    set.paths.push(path);
                    set.targets.push_from(list.targets.view(), i);
                }
                Err(e) => {
                    eprintln!("warning: skipped {e}");
                    set.skipped.push((path, e.to_string()));
                }
            }
        }
        set
    }
}

impl PhotoSet {
    /// The same photos served at another size (they are kept at 2 × the first size, so growing
    /// far beyond it upsamples).
    pub fn resized(mut self, size: usize) -> Self {
        self.size = size;
        self
    }

    /// The same photos with an evaluation crop and a training augmentation.
    pub fn with(mut self, crop: Crop, augment: Augment) -> Self {
        self.crop = crop;
        self.augment = augment;
        self
    }
}

impl ImageSource for PhotoSet {
    fn len(&self) -> usize {
        self.images.len()
    }
    fn labels(&self) -> Labels<'_> {
        self.targets.view()
    }
    fn classes(&self) -> &[String] {
        &self.classes
    }
    fn item_shape(&self) -> [usize; 3] {
        [self.channels, self.size, self.size]
    }
    fn item(&self, i: usize, rng: Option<&mut StdRng>) -> FeatureMaps {
        let image = &self.images[i];
        let maps = match rng {
            Some(rng) if self.augment != Augment::None => {
                self.augment
                    .apply(image, self.crop, self.channels, self.size, rng)
            }
            _ => image_to_maps(
                &self.crop.apply(image),
                self.channels,
                Some((self.size as u32, self.size as u32)),
            ),
        };
        maps.expect("channels are 1 or 3")
    }
}
