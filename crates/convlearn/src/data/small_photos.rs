//! Photos for a small network trained from scratch: every file of a split decoded in parallel,
//! squashed to the network's `size × size` input and kept as bytes in an [`ImageSet`] — gray when
//! every photo is gray, colour otherwise — so the lesson's networks train on a learner's own
//! pictures exactly as they train on MNIST.

use std::path::PathBuf;

use image::imageops::FilterType;
use image::{DynamicImage, GenericImageView};
use rayon::prelude::*;

use super::{ImageSet, ItemList, image_to_maps, load_image};
use crate::error::Result;
use crate::progress::Progress;

/// The decoded photos of one part of a split, and the files that could not be decoded.
pub struct SmallPhotos {
    /// The images, each `channels × size × size`.
    pub images: ImageSet,
    /// Files skipped, with the decoder's message.
    pub skipped: Vec<(PathBuf, String)>,
}

/// Decodes and squashes one photo; whether it has colour.
fn decode(path: &std::path::Path, size: u32) -> Result<(DynamicImage, bool)> {
    let image = load_image(path)?;
    let colour = image.color().has_color();
    let small = if image.dimensions() == (size, size) {
        image
    } else {
        image.resize_exact(size, size, FilterType::Triangle)
    };
    Ok((small, colour))
}

/// Decodes `train` and `valid` (single- or multi-label) at `size × size`, with `channels` (1 or
/// 3; `None`: 1 when every photo of both is gray, else 3).
pub fn decode_small_photos(
    train: &ItemList,
    valid: &ItemList,
    classes: &[String],
    size: usize,
    channels: Option<usize>,
    verbose: bool,
) -> Result<(SmallPhotos, SmallPhotos, usize)> {
    let decode_all = |list: &ItemList, title: &str| {
        let bar = Progress::new(list.paths.len() as u64, title, verbose);
        let out: Vec<Result<(DynamicImage, bool)>> = list
            .paths
            .par_iter()
            .map(|p| {
                let r = decode(p, size as u32);
                bar.step(String::new());
                r
            })
            .collect();
        bar.finish();
        out
    };
    let (t, v) = (
        decode_all(train, "decoding training images"),
        decode_all(valid, "decoding validation images"),
    );
    let channels = channels.unwrap_or_else(|| {
        let colour = t.iter().chain(&v).any(|r| matches!(r, Ok((_, true))));
        if colour { 3 } else { 1 }
    });
    let keep =
        |list: &ItemList, decoded: Vec<Result<(DynamicImage, bool)>>| -> Result<SmallPhotos> {
            let (mut pixels, mut kept, mut skipped) =
                (Vec::new(), list.targets.empty_like(), Vec::new());
            for (i, (path, result)) in list.paths.iter().zip(decoded).enumerate() {
                match result.and_then(|(image, _)| image_to_maps(&image, channels, None)) {
                    Ok(maps) => {
                        pixels.extend(maps.data.iter().map(|v| (v * 255.0).round() as u8));
                        kept.push_from(list.targets.view(), i);
                    }
                    Err(e) => skipped.push((path.clone(), e.to_string())),
                }
            }
            let images = ImageSet::new(channels, size, size, pixels, kept, classes.to_vec())?;
            Ok(SmallPhotos { images, skipped })
        };
    Ok((keep(train, t)?, keep(valid, v)?, channels))
}
