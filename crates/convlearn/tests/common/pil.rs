//! Pillow's preprocessing, reproduced to the bit for tests whose reference was made with it:
//! `Image.crop` (box rounded to whole pixels) then `Image.resize(size, BILINEAR)` — Pillow's
//! `ImagingResample`: a triangle filter stretched by the scale factor, coefficients in 22-bit fixed
//! point, the horizontal pass rounded to 8 bits before the vertical one.
#![allow(dead_code)]

use image::RgbImage;

const PRECISION_BITS: u32 = 32 - 8 - 2;

/// For each output pixel, the first input pixel it reads and its fixed-point weights
/// (Pillow's `precompute_coeffs` then `normalize_coeffs_8bpc`, bilinear filter, support 1).
fn coefficients(in_size: usize, out_size: usize) -> Vec<(usize, Vec<i64>)> {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filterscale;
    (0..out_size)
        .map(|xx| {
            let center = (xx as f64 + 0.5) * scale;
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            let weights: Vec<f64> = (xmin..xmax)
                .map(|x| {
                    let t = ((x as f64 - center + 0.5) / filterscale).abs();
                    if t < 1.0 { 1.0 - t } else { 0.0 }
                })
                .collect();
            let total: f64 = weights.iter().sum();
            let fixed = weights
                .iter()
                .map(|w| {
                    let w = if total != 0.0 { w / total } else { *w };
                    let scaled = w * (1u64 << PRECISION_BITS) as f64;
                    (if w < 0.0 { scaled - 0.5 } else { scaled + 0.5 }) as i64
                })
                .collect();
            (xmin, fixed)
        })
        .collect()
}

fn clip8(v: i64) -> u8 {
    if v >= (1i64 << PRECISION_BITS << 8) {
        255
    } else if v <= 0 {
        0
    } else {
        (v >> PRECISION_BITS) as u8
    }
}

/// `Image.resize((w, h), Image.BILINEAR)` of an RGB image.
pub fn resize_bilinear(image: &RgbImage, w: usize, h: usize) -> RgbImage {
    let (iw, ih) = (image.width() as usize, image.height() as usize);
    let horizontal = coefficients(iw, w);
    let vertical = coefficients(ih, h);
    // Only the rows the vertical pass reads go through the horizontal one.
    let first = vertical[0].0;
    let last = vertical[h - 1].0 + vertical[h - 1].1.len();
    let mut temp = RgbImage::new(w as u32, (last - first) as u32);
    for y in first..last {
        for (xx, (xmin, k)) in horizontal.iter().enumerate() {
            let mut sums = [1i64 << (PRECISION_BITS - 1); 3];
            for (i, &kx) in k.iter().enumerate() {
                let p = image.get_pixel((xmin + i) as u32, y as u32);
                for c in 0..3 {
                    sums[c] += p[c] as i64 * kx;
                }
            }
            temp.put_pixel(xx as u32, (y - first) as u32, image::Rgb(sums.map(clip8)));
        }
    }
    let mut out = RgbImage::new(w as u32, h as u32);
    for (yy, (ymin, k)) in vertical.iter().enumerate() {
        for xx in 0..w {
            let mut sums = [1i64 << (PRECISION_BITS - 1); 3];
            for (i, &ky) in k.iter().enumerate() {
                let p = temp.get_pixel(xx as u32, (ymin - first + i) as u32);
                for c in 0..3 {
                    sums[c] += p[c] as i64 * ky;
                }
            }
            out.put_pixel(xx as u32, yy as u32, image::Rgb(sums.map(clip8)));
        }
    }
    out
}

/// `im.crop((w·m, h·m, w·(1−m), h·(1−m))).resize((size, size), BILINEAR)` with `m` the margin
/// (Pillow rounds the box to whole pixels).
pub fn crop_resize(image: &RgbImage, margin: f64, size: usize) -> RgbImage {
    let (w, h) = (image.width() as f64, image.height() as f64);
    let [x0, y0, x1, y1] = [
        w * margin,
        h * margin,
        w * (1.0 - margin),
        h * (1.0 - margin),
    ]
    .map(|v| v.round_ties_even() as u32);
    let cropped = image::imageops::crop_imm(image, x0, y0, x1 - x0, y1 - y0).to_image();
    resize_bilinear(&cropped, size, size)
}
