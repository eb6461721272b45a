//! Turning activations into colours: green for positive, red for negative, black at zero.

use image::{Rgb, RgbImage};

use crate::feature_maps::FeatureMaps;

/// How a plane of activations is coloured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ColorMode {
    /// Green for positive, red for negative, black at zero; `scale` maps to full brightness.
    Signed {
        /// The magnitude shown at full brightness.
        scale: f32,
    },
    /// Gray from `lo` (black) to `hi` (white).
    Gray {
        /// Value shown black.
        lo: f32,
        /// Value shown white.
        hi: f32,
    },
}

/// The colour of `v` on the signed green/red scale.
pub fn signed_color(v: f32, scale: f32) -> [u8; 3] {
    let t = if scale > 0.0 {
        (v.abs() / scale).min(1.0)
    } else {
        0.0
    };
    let level = (t * 255.0).round() as u8;
    if v >= 0.0 {
        [0, level, 0]
    } else {
        [level, 0, 0]
    }
}

/// Renders channel `c` of `maps` as an RGB image.
pub fn map_to_image(maps: &FeatureMaps, c: usize, mode: ColorMode) -> RgbImage {
    RgbImage::from_fn(maps.width as u32, maps.height as u32, |x, y| {
        let v = maps.get(c, y as usize, x as usize);
        Rgb(match mode {
            ColorMode::Signed { scale } => signed_color(v, scale),
            ColorMode::Gray { lo, hi } => {
                let t = if hi > lo {
                    ((v - lo) / (hi - lo)).clamp(0.0, 1.0)
                } else {
                    0.0
                };
                let g = (t * 255.0).round() as u8;
                [g, g, g]
            }
        })
    })
}

/// An image as a person sees it: RGB for 3 channels, else channel 0 in gray (values 0..1).
pub fn picture(maps: &FeatureMaps) -> RgbImage {
    if maps.channels != 3 {
        return map_to_image(maps, 0, ColorMode::Gray { lo: 0.0, hi: 1.0 });
    }
    RgbImage::from_fn(maps.width as u32, maps.height as u32, |x, y| {
        let v = |c| (maps.get(c, y as usize, x as usize).clamp(0.0, 1.0) * 255.0).round() as u8;
        Rgb([v(0), v(1), v(2)])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_colours() {
        assert_eq!(signed_color(0.0, 1.0), [0, 0, 0]);
        assert_eq!(signed_color(2.0, 2.0), [0, 255, 0]);
        assert_eq!(signed_color(-1.0, 2.0), [128, 0, 0]);
        assert_eq!(signed_color(-9.0, 2.0), [255, 0, 0]);
    }
}
