//! A coarse map over a picture: Grad-CAM's few cells upsampled bilinearly to the picture's pixels
//! and blended in on a dark-to-bright colour scale (dark purple, red, orange, pale yellow).

use image::{Rgb, RgbImage};

/// The colour scale's stops, from 0 to 1 (close to matplotlib's "inferno").
const STOPS: [[f32; 3]; 5] = [
    [0.0, 0.0, 4.0],
    [87.0, 16.0, 110.0],
    [188.0, 55.0, 84.0],
    [249.0, 142.0, 9.0],
    [252.0, 255.0, 164.0],
];

/// The colour of `t` (clamped to 0..1) on the scale.
pub fn heat_color(t: f32) -> [u8; 3] {
    let x = t.clamp(0.0, 1.0) * (STOPS.len() - 1) as f32;
    let i = (x.floor() as usize).min(STOPS.len() - 2);
    let f = x - i as f32;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    [0, 1, 2].map(|c| (a[c] + f * (b[c] - a[c])).round() as u8)
}

/// `map` (rows of equal length, values 0..1) at `width × height`, bilinear with the cells' centres
/// on the pixels' grid (PyTorch's `interpolate(align_corners=False)`).
pub fn upsample(map: &[Vec<f32>], width: usize, height: usize) -> Vec<f32> {
    let (rows, cols) = (map.len(), map.first().map_or(0, Vec::len));
    if rows == 0 || cols == 0 {
        return vec![0.0; width * height];
    }
    let coordinate = |out: usize, len_out: usize, len_in: usize| {
        let x = ((out as f32 + 0.5) * len_in as f32 / len_out as f32 - 0.5).max(0.0);
        let i = (x.floor() as usize).min(len_in - 1);
        (i, (i + 1).min(len_in - 1), x - i as f32)
    };
    let mut out = Vec::with_capacity(width * height);
    for y in 0..height {
        let (y0, y1, fy) = coordinate(y, height, rows);
        for x in 0..width {
            let (x0, x1, fx) = coordinate(x, width, cols);
            let top = map[y0][x0] + fx * (map[y0][x1] - map[y0][x0]);
            let bottom = map[y1][x0] + fx * (map[y1][x1] - map[y1][x0]);
            out.push(top + fy * (bottom - top));
        }
    }
    out
}

/// `picture` with `map` laid over it: each pixel mixes `strength` of the map's colour into the
/// picture's (0.6 keeps the picture recognisable under the brightest cells).
pub fn overlay(picture: &RgbImage, map: &[Vec<f32>], strength: f32) -> RgbImage {
    let (w, h) = (picture.width() as usize, picture.height() as usize);
    let heat = upsample(map, w, h);
    RgbImage::from_fn(w as u32, h as u32, |x, y| {
        let p = picture.get_pixel(x, y).0;
        let c = heat_color(heat[y as usize * w + x as usize]);
        Rgb([0, 1, 2]
            .map(|i| (p[i] as f32 * (1.0 - strength) + c[i] as f32 * strength).round() as u8))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scale_runs_from_dark_to_bright_through_its_stops() {
        assert_eq!(heat_color(0.0), [0, 0, 4]);
        assert_eq!(heat_color(1.0), [252, 255, 164]);
        assert_eq!(heat_color(0.5), [188, 55, 84]);
        assert_eq!(heat_color(7.0), heat_color(1.0));
    }

    #[test]
    fn upsampling_keeps_cell_centres_and_interpolates_between_them() {
        // A 1 × 2 map at 1 × 4: pixels 0 and 3 are beyond the centres (clamped), 1 and 2 between.
        let up = upsample(&[vec![0.0, 1.0]], 4, 1);
        assert_eq!(up, vec![0.0, 0.25, 0.75, 1.0]);
        // Same size: unchanged.
        let map = vec![vec![0.1, 0.2], vec![0.3, 0.4]];
        assert_eq!(upsample(&map, 2, 2), vec![0.1, 0.2, 0.3, 0.4]);
    }
}
