//! The default input size for fine-tuning: as much of the photos' detail as the pretrained weights
//! can use. Photos larger than the size the weights learned at lose detail when squeezed to it
//! (small objects, like an ant on a leaf, shrink to a few pixels); going far beyond it changes the
//! scale of everything the weights learned. Measured on the shared hymenoptera photos (median
//! shorter side 370 px) with the shared MobileNetV2 (224 px), head trained on precomputed
//! activations, 4 runs each: 224 px 93.3 %, 288 px 95.4 %, 320 px 96.2 %, 352 px 94.9 %.

use std::path::PathBuf;

use image::ImageReader;

use super::Crop;

/// Photos whose dimensions are read (headers only) to find the typical one.
const SAMPLE: usize = 200;

/// How far above the weights' native size the default may go.
const MAX_SCALE: f64 = 1.5;

/// The shorter side of the evaluation crop of a typical photo: the median over (up to 200, evenly
/// spaced) of `paths`, reading only the files' headers. `None` when none can be read.
pub fn typical_crop_side(paths: &[PathBuf], crop: Crop) -> Option<u32> {
    let step = paths.len().div_ceil(SAMPLE).max(1);
    let mut sides: Vec<u32> = paths
        .iter()
        .step_by(step)
        .filter_map(|p| ImageReader::open(p).ok()?.into_dimensions().ok())
        .map(|(w, h)| {
            let (cw, ch) = crop.size(w, h);
            cw.min(ch)
        })
        .collect();
    sides.sort_unstable();
    sides.get(sides.len() / 2).copied()
}

/// The input size for photos whose typical crop has shorter side `side`, with weights trained at
/// `native` pixels: the side rounded to a multiple of 32 (the networks' total stride), kept between
/// `native` (smaller photos are enlarged to it, as the weights expect) and 1.5 × `native` rounded
/// down to a multiple of 32.
pub fn input_size(side: Option<u32>, native: usize) -> usize {
    let top = ((native as f64 * MAX_SCALE) as usize / 32 * 32).max(native);
    let Some(side) = side else { return native };
    let rounded = (side as usize + 16) / 32 * 32;
    rounded.clamp(native, top)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_the_photos_within_bounds() {
        // hymenoptera: 500 × 375 photos, 87.5 % crop → 328 → 320
        assert_eq!(input_size(Some(328), 224), 320);
        // Planet: 256 px chips → 224 after the crop → native
        assert_eq!(input_size(Some(224), 224), 224);
        // MNIST-sized pictures are enlarged to the native size
        assert_eq!(input_size(Some(28), 224), 224);
        // large photos stop at 1.5 × 224 = 336 → 320
        assert_eq!(input_size(Some(3000), 224), 320);
        assert_eq!(input_size(Some(270), 224), 256);
        assert_eq!(input_size(None, 224), 224);
    }

    #[test]
    fn typical_side_is_the_median_crop_side() {
        let dir = tempfile::tempdir().unwrap();
        let paths: Vec<PathBuf> = [(100, 80), (400, 300), (64, 64)]
            .iter()
            .enumerate()
            .map(|(i, &(w, h))| {
                let p = dir.path().join(format!("{i}.png"));
                image::RgbImage::new(w, h).save(&p).unwrap();
                p
            })
            .chain([dir.path().join("missing.png")])
            .collect();
        // shorter sides 80, 300, 64 → median 80; a file that cannot be read is left out
        assert_eq!(typical_crop_side(&paths, Crop::None), Some(80));
        assert_eq!(
            typical_crop_side(&paths, Crop::EachSide { fraction: 0.5 }),
            Some(40)
        );
        assert_eq!(typical_crop_side(&paths[3..], Crop::None), None);
    }
}
