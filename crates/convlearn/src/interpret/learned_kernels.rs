//! What the first layer's kernels learned, as pictures: each kernel a tile (colour for RGB
//! kernels, each stretched from its own minimum to its maximum; green/red on one scale for gray
//! ones), largest norm first, numbered as the layer numbers them.

use std::path::Path;

use image::{Rgb, RgbImage};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::host::values;
use crate::model_file::SavedModel;
use crate::plot::{Canvas, signed_color};

/// The first layer's kernels, as [`render_first_kernels`] drew them.
#[derive(Clone, Debug, Serialize)]
pub struct FirstKernels {
    /// The layer's PyTorch name.
    pub layer: String,
    /// `[kernels, input channels, rows, columns]`.
    pub shape: [usize; 4],
    /// Kernel indices, largest L2 norm first (the order of the tiles).
    pub order: Vec<usize>,
    /// Each kernel's L2 norm, by index.
    pub norms: Vec<f32>,
}

/// Tiles per row.
const COLUMNS: usize = 8;
/// A tile's side in pixels (each weight a square of about `TILE / side`).
const TILE: usize = 72;

/// Draws the first convolution's kernels of `model` to `path` (PNG).
pub fn render_first_kernels(model: &SavedModel, path: &Path) -> Result<FirstKernels> {
    let (layer, conv) = model
        .network
        .first_conv()
        .ok_or_else(|| Error::Invalid("this model has no convolution".into()))?;
    let weight = conv.weight.val();
    let [n, cin, kh, kw] = weight.dims();
    let w = values(weight);
    let size = cin * kh * kw;
    let norms: Vec<f32> = w
        .chunks(size)
        .map(|k| k.iter().map(|v| v * v).sum::<f32>().sqrt())
        .collect();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| norms[b].total_cmp(&norms[a]));
    // Gray kernels share one scale, so a weak kernel looks weak; colour ones are each stretched,
    // as torchvision's and fastai's kernel plots do, so their colours show.
    let scale = w.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let cell = (TILE / kh.max(kw)).max(1);
    let (tw, th) = (cell * kw, cell * kh);
    let tiles = |k: usize| {
        let kernel = &w[k * size..(k + 1) * size];
        let (lo, hi) = kernel
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| {
                (l.min(v), h.max(v))
            });
        RgbImage::from_fn(tw as u32, th as u32, |x, y| {
            let (i, j) = (y as usize / cell, x as usize / cell);
            let at = |c: usize| kernel[(c * kh + i) * kw + j];
            Rgb(if cin == 3 {
                let t = |v: f32| if hi > lo { (v - lo) / (hi - lo) } else { 0.5 };
                [0, 1, 2].map(|c| (t(at(c)) * 255.0).round() as u8)
            } else {
                signed_color(at(0), scale)
            })
        })
    };
    let (margin, caption, title) = (12usize, 18usize, 40usize);
    let rows = n.div_ceil(COLUMNS);
    let columns = n.min(COLUMNS);
    let width = margin + columns * (tw + margin);
    let height = title + rows * (th + caption + margin);
    let mut canvas = Canvas::new(width.max(420) as u32, height as u32);
    let what = if cin == 3 {
        "colour: each kernel from its lowest weight (dark) to its highest (bright)"
    } else {
        "green: positive weights, red: negative"
    };
    let heading = format!("{layer}: {n} kernels {kh}×{kw}×{cin}, largest norm first");
    canvas.text(margin as i32, 6, 16.0, &heading, [20, 20, 20]);
    canvas.text(margin as i32, 24, 12.0, what, [90, 90, 90]);
    for (slot, &k) in order.iter().enumerate() {
        let (r, c) = (slot / COLUMNS, slot % COLUMNS);
        let x = margin + c * (tw + margin);
        let y = title + r * (th + caption + margin);
        canvas.blit(&tiles(k), x as u32, y as u32, 1);
        let label = format!("#{k} ‖{:.2}‖", norms[k]);
        canvas.text(x as i32, (y + th + 2) as i32, 11.0, &label, [60, 60, 60]);
    }
    canvas.save(path)?;
    Ok(FirstKernels {
        layer: layer.to_string(),
        shape: [n, cin, kh, kw],
        order,
        norms,
    })
}
