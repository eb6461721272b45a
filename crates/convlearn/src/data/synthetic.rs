//! A labelled dataset generated in code, so the demo needs no download: shapes drawn at random
//! places and sizes, with random brightness and noise.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::ImageSet;

/// The generated classes.
pub const SHAPE_CLASSES: [&str; 6] = [
    "square",
    "circle",
    "triangle",
    "cross",
    "horizontal bar",
    "vertical bar",
];

fn gaussian(rng: &mut StdRng) -> f32 {
    // Box–Muller.
    let u1: f32 = rng.random_range(1e-7..1.0);
    let u2: f32 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

/// Is (x, y) inside shape `class` of half-size `r` centred at (cx, cy)?
fn inside(class: usize, x: f32, y: f32, cx: f32, cy: f32, r: f32, t: f32) -> bool {
    let (dx, dy) = (x - cx, y - cy);
    match class {
        0 => dx.abs() <= r && dy.abs() <= r,
        1 => dx * dx + dy * dy <= r * r,
        2 => {
            // apex up; the half-width grows from 0 at the top to r at the bottom
            let v = (dy + r) / (2.0 * r);
            (0.0..=1.0).contains(&v) && dx.abs() <= r * v
        }
        3 => (dx.abs() <= t && dy.abs() <= r) || (dy.abs() <= t && dx.abs() <= r),
        4 => dx.abs() <= r && dy.abs() <= t,
        _ => dy.abs() <= r && dx.abs() <= t,
    }
}

/// The built-in `shapes` data (the demo's, and `train shapes`): 6 000 training and 1 200 held-out
/// 28 × 28 pictures, drawn from different seeds.
pub fn shapes_split() -> (ImageSet, ImageSet) {
    (generate_shapes(6000, 28, 1), generate_shapes(1200, 28, 2))
}

/// `n` grayscale `size × size` images, classes balanced in turn, reproducible from `seed`.
pub fn generate_shapes(n: usize, size: usize, seed: u64) -> ImageSet {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut pixels = Vec::with_capacity(n * size * size);
    let mut labels = Vec::with_capacity(n);
    let s = size as f32;
    for i in 0..n {
        let class = i % SHAPE_CLASSES.len();
        let r = rng.random_range(0.2 * s..0.34 * s);
        let t = rng.random_range(0.06 * s..0.1 * s).max(1.0);
        let cx = rng.random_range(r + 1.0..s - r - 1.0);
        let cy = rng.random_range(r + 1.0..s - r - 1.0);
        let fg: f32 = rng.random_range(0.55..1.0);
        let bg: f32 = rng.random_range(0.0..0.25);
        for y in 0..size {
            for x in 0..size {
                // 2×2 supersampling for soft edges
                let mut cover = 0.0;
                for (ox, oy) in [(0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)] {
                    if inside(class, x as f32 + ox, y as f32 + oy, cx, cy, r, t) {
                        cover += 0.25;
                    }
                }
                let v = bg + (fg - bg) * cover + 0.08 * gaussian(&mut rng);
                pixels.push((v.clamp(0.0, 1.0) * 255.0).round() as u8);
            }
        }
        labels.push(class);
    }
    ImageSet::new(
        1,
        size,
        size,
        pixels,
        labels,
        SHAPE_CLASSES.iter().map(ToString::to_string).collect(),
    )
    .expect("generated sizes agree")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_are_reproducible_balanced_and_distinct() {
        let a = generate_shapes(60, 28, 1);
        let b = generate_shapes(60, 28, 1);
        assert_eq!(a.pixels, b.pixels);
        assert_eq!(
            a.targets
                .view()
                .classes()
                .unwrap()
                .iter()
                .filter(|&&l| l == 3)
                .count(),
            10
        );
        // a filled square covers more bright pixels than a thin horizontal bar
        let bright = |i: usize| a.image(i).data.iter().filter(|&&v| v > 0.5).count();
        assert!(
            bright(0) > bright(4),
            "square {} vs bar {}",
            bright(0),
            bright(4)
        );
    }
}
