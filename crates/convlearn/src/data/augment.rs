//! Data augmentation as in the lesson: side-on photos (small rotations, lighting, horizontal flips,
//! a little zoom) and top-down photos (adds the 8 dihedral flips).

use image::DynamicImage;
use image::imageops::FilterType;
use rand::Rng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use super::{Crop, image_to_maps};
use crate::error::Result;
use crate::feature_maps::FeatureMaps;

/// An augmentation preset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Augment {
    /// No augmentation: training images are prepared like validation ones.
    None,
    /// Photos of things seen from the side: rotate ±10°, lighting ±5 %, horizontal flip, zoom ≤ 1.1.
    #[default]
    SideOn,
    /// Photos taken from above (satellites, microscopes): side-on plus the 8 dihedral flips.
    TopDown,
}

impl Augment {
    /// Parses `none`, `side-on` or `top-down`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "none" => Some(Augment::None),
            "side-on" => Some(Augment::SideOn),
            "top-down" => Some(Augment::TopDown),
            _ => None,
        }
    }
}

/// A crop shaped like the evaluation crop, zoomed in by up to 1.1 and placed at random, resized to
/// `size`: training sees objects at the scale evaluation shows them.
pub fn random_crop(
    image: &DynamicImage,
    crop: Crop,
    size: usize,
    rng: &mut StdRng,
) -> DynamicImage {
    let (w, h) = (image.width(), image.height());
    let (cw, ch) = crop.size(w, h);
    let zoom = rng.random_range(1.0..1.1f32);
    let (cw, ch) = (
        ((cw as f32 / zoom).round() as u32).max(1),
        ((ch as f32 / zoom).round() as u32).max(1),
    );
    let x = rng.random_range(0..=w - cw);
    let y = rng.random_range(0..=h - ch);
    image
        .crop_imm(x, y, cw, ch)
        .resize_exact(size as u32, size as u32, FilterType::Triangle)
}

/// Bilinear sample of channel `c` at (y, x), borders repeated.
fn bilinear(m: &FeatureMaps, c: usize, y: f32, x: f32) -> f32 {
    let y = y.clamp(0.0, (m.height - 1) as f32);
    let x = x.clamp(0.0, (m.width - 1) as f32);
    let (y0, x0) = (y.floor() as usize, x.floor() as usize);
    let (y1, x1) = ((y0 + 1).min(m.height - 1), (x0 + 1).min(m.width - 1));
    let (dy, dx) = (y - y0 as f32, x - x0 as f32);
    let top = m.get(c, y0, x0) * (1.0 - dx) + m.get(c, y0, x1) * dx;
    let bottom = m.get(c, y1, x0) * (1.0 - dx) + m.get(c, y1, x1) * dx;
    top * (1.0 - dy) + bottom * dy
}

/// Rotates about the centre by `degrees` (bilinear, borders repeated).
pub fn rotate(m: &FeatureMaps, degrees: f32) -> FeatureMaps {
    let (s, c) = degrees.to_radians().sin_cos();
    let (cy, cx) = ((m.height as f32 - 1.0) / 2.0, (m.width as f32 - 1.0) / 2.0);
    let mut out = FeatureMaps::zeros(m.channels, m.height, m.width);
    for y in 0..m.height {
        for x in 0..m.width {
            let (dy, dx) = (y as f32 - cy, x as f32 - cx);
            let (sy, sx) = (cy + c * dy - s * dx, cx + s * dy + c * dx);
            for ch in 0..m.channels {
                out.set(ch, y, x, bilinear(m, ch, sy, sx));
            }
        }
    }
    out
}

/// One of the 8 symmetries of the square: `k & 1` flips horizontally, `k & 2` vertically, `k & 4`
/// transposes.
pub fn dihedral(m: &FeatureMaps, k: u8) -> FeatureMaps {
    let (h, w) = (m.height, m.width);
    let (oh, ow) = if k & 4 != 0 { (w, h) } else { (h, w) };
    let mut out = FeatureMaps::zeros(m.channels, oh, ow);
    for y in 0..oh {
        for x in 0..ow {
            let (mut sy, mut sx) = if k & 4 != 0 { (x, y) } else { (y, x) };
            if k & 1 != 0 {
                sx = w - 1 - sx;
            }
            if k & 2 != 0 {
                sy = h - 1 - sy;
            }
            for c in 0..m.channels {
                out.set(c, y, x, m.get(c, sy, sx));
            }
        }
    }
    out
}

/// Changes brightness by `b` and contrast by factor `1 + c` around mid-gray.
pub fn lighting(m: &mut FeatureMaps, b: f32, c: f32) {
    for v in &mut m.data {
        *v = ((*v - 0.5) * (1.0 + c) + 0.5 + b).clamp(0.0, 1.0);
    }
}

impl Augment {
    /// A training sample: random zoomed crop (shaped like `crop`) at `size`, then the preset's
    /// random transforms.
    pub fn apply(
        self,
        image: &DynamicImage,
        crop: Crop,
        channels: usize,
        size: usize,
        rng: &mut StdRng,
    ) -> Result<FeatureMaps> {
        let cropped = random_crop(image, crop, size, rng);
        let mut m = image_to_maps(&cropped, channels, None)?;
        if self == Augment::None {
            return Ok(m);
        }
        if rng.random_bool(0.75) {
            m = rotate(&m, rng.random_range(-10.0..10.0));
        }
        let flip = match self {
            Augment::TopDown => rng.random_range(0..8u8),
            _ => u8::from(rng.random_bool(0.5)),
        };
        if flip != 0 {
            m = dihedral(&m, flip);
        }
        lighting(
            &mut m,
            rng.random_range(-0.05..0.05),
            rng.random_range(-0.05..0.05),
        );
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp() -> FeatureMaps {
        FeatureMaps::new(1, 3, 4, (0..12).map(|v| v as f32).collect())
    }

    #[test]
    fn dihedral_flips_and_transposes() {
        let m = ramp();
        assert_eq!(dihedral(&m, 0), m);
        assert_eq!(dihedral(&m, 1).data[..4], [3.0, 2.0, 1.0, 0.0]);
        assert_eq!(dihedral(&m, 2).data[..4], [8.0, 9.0, 10.0, 11.0]);
        let t = dihedral(&m, 4);
        assert_eq!((t.height, t.width), (4, 3));
        assert_eq!(t.get(0, 1, 2), m.get(0, 2, 1));
        // all 8 are distinct on an asymmetric square
        let sq = FeatureMaps::new(1, 2, 2, vec![1., 2., 3., 4.]);
        let all: std::collections::BTreeSet<Vec<u32>> = (0..8)
            .map(|k| dihedral(&sq, k).data.iter().map(|v| *v as u32).collect())
            .collect();
        assert_eq!(all.len(), 8);
    }

    #[test]
    fn rotation_by_zero_is_identity_and_by_90_turns() {
        let m = FeatureMaps::new(1, 3, 3, (0..9).map(|v| v as f32).collect());
        assert_eq!(rotate(&m, 0.0), m);
        let r = rotate(&m, 90.0);
        // the centre stays; a corner moves to the next corner
        assert!((r.get(0, 1, 1) - 4.0).abs() < 1e-5);
        assert!(
            (r.get(0, 0, 0) - m.get(0, 2, 0)).abs() < 1e-4,
            "{:?}",
            r.data
        );
    }

    #[test]
    fn lighting_shifts_and_clamps() {
        let mut m = FeatureMaps::new(1, 1, 3, vec![0.0, 0.5, 1.0]);
        lighting(&mut m, 0.1, 0.0);
        assert_eq!(m.data, vec![0.1, 0.6, 1.0]);
    }
}
