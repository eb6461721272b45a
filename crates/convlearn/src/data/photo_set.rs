//! Photos decoded once (in parallel, kept downsized in memory) and served at a chosen size, with
//! augmentation for training and the model's crop for validation. Unreadable files are skipped with
//! one warning each and counted, never a crash. A folder larger than the memory budget streams: the
//! photos beyond the budget are checked once, then read from disk again each time they are used; one
//! that stops decoding meanwhile is left out of its batches and counted in the epoch's report.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use image::DynamicImage;
use image::imageops::FilterType;
use rand::rngs::StdRng;
use rayon::prelude::*;

use super::{Augment, Crop, ImageSource, ItemList, Labels, Targets, image_to_maps, load_image};
use crate::error::Result;
use crate::feature_maps::FeatureMaps;
use crate::progress::Progress;

/// Decoded photos with labels.
pub struct PhotoSet {
    /// Downsized decoded images; `None` for photos streamed from disk (beyond the memory budget).
    images: Vec<Option<DynamicImage>>,
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
    /// The size the photos were decoded for (kept at up to twice it).
    decoded_size: usize,
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
    /// sample the original pixels, as the reference preprocessing does), within the memory budget of
    /// [`memory_budget`]. The set starts with no crop and no augmentation (see [`PhotoSet::with`]).
    pub fn decode(
        list: &ItemList,
        classes: &[String],
        channels: usize,
        size: usize,
        title: &str,
        verbose: bool,
    ) -> Self {
        Self::decode_within(
            list,
            classes,
            channels,
            size,
            title,
            verbose,
            memory_budget(),
        )
    }

    /// [`PhotoSet::decode`] keeping at most `budget` bytes of decoded pixels in memory; the other
    /// photos are decoded once to check them and then streamed from disk.
    pub fn decode_within(
        list: &ItemList,
        classes: &[String],
        channels: usize,
        size: usize,
        title: &str,
        verbose: bool,
        budget: usize,
    ) -> Self {
        let bar = Progress::new(list.paths.len() as u64, title, verbose);
        let used = AtomicUsize::new(0);
        let decoded: Vec<(PathBuf, Result<Option<DynamicImage>>)> = list
            .paths
            .par_iter()
            .map(|path| {
                let image = read_downsized(path, size).map(|im| {
                    let bytes = im.as_bytes().len();
                    let kept = used.fetch_add(bytes, Ordering::Relaxed) + bytes <= budget;
                    if !kept {
                        used.fetch_sub(bytes, Ordering::Relaxed);
                    }
                    kept.then_some(im)
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
            decoded_size: size,
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
        let streamed = set.streamed();
        if streamed > 0 && verbose {
            eprintln!(
                "{streamed} of {} photos exceed the memory budget of {} MiB and will be read from disk each time \
                 (set CONVLEARN_CACHE_MB to change it)",
                set.len(),
                budget / (1024 * 1024)
            );
        }
        set
    }

    /// How many photos are streamed from disk rather than kept in memory.
    pub fn streamed(&self) -> usize {
        self.images.iter().filter(|i| i.is_none()).count()
    }

    /// Photo `i`, downsized as kept (read from disk again when streamed; a file that changed since
    /// and no longer decodes gives a gray picture — [`ImageSource::try_item`] says so instead).
    pub fn image(&self, i: usize) -> Cow<'_, DynamicImage> {
        self.read(i).unwrap_or_else(|e| {
            eprintln!("warning: {e}; a gray picture stands in for it");
            Cow::Owned(self.gray())
        })
    }

    /// Photo `i`, or why it no longer decodes.
    fn read(&self, i: usize) -> Result<Cow<'_, DynamicImage>> {
        match &self.images[i] {
            Some(im) => Ok(Cow::Borrowed(im)),
            None => read_downsized(&self.paths[i], self.decoded_size).map(Cow::Owned),
        }
    }

    fn gray(&self) -> DynamicImage {
        let side = self.size as u32;
        DynamicImage::ImageRgb8(image::RgbImage::from_pixel(
            side,
            side,
            image::Rgb([128; 3]),
        ))
    }

    /// Photo `i` as the model sees it: augmented with `rng`, else the evaluation crop.
    fn maps(&self, image: &DynamicImage, rng: Option<&mut StdRng>) -> FeatureMaps {
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

/// Decoded pixels kept in memory: `$CONVLEARN_CACHE_MB`, else half the memory available now
/// (Linux's `MemAvailable`), else 4 GiB.
pub fn memory_budget() -> usize {
    if let Some(mb) = std::env::var("CONVLEARN_CACHE_MB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        return mb * 1024 * 1024;
    }
    let available = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        m.lines()
            .find(|l| l.starts_with("MemAvailable:"))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<usize>().ok())
    });
    available.map_or(4 << 30, |kib| kib * 1024 / 2)
}

/// Reads a photo, shrinking it so its shorter side is at most `2 × size`.
fn read_downsized(path: &Path, size: usize) -> Result<DynamicImage> {
    let keep = (size * 2) as u32;
    load_image(path).map(|im| {
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
    })
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
        self.maps(&self.image(i), rng)
    }
    fn try_item(
        &self,
        i: usize,
        rng: Option<&mut StdRng>,
    ) -> std::result::Result<FeatureMaps, String> {
        let image = self.read(i).map_err(|e| e.to_string())?;
        Ok(self.maps(&image, rng))
    }
}
