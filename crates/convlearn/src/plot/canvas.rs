//! A white RGB canvas onto which maps are blitted and labels written, saved as PNG.

use std::path::Path;
use std::sync::Once;

use image::{Rgb, RgbImage};
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use crate::error::{Error, Result};

static FONT: Once = Once::new();

/// Registers the bundled DejaVu Sans font with plotters (once per process).
pub(crate) fn register_bundled_font() {
    FONT.call_once(|| {
        let bytes: &'static [u8] = include_bytes!("../../assets/DejaVuSans.ttf");
        if register_font("sans-serif", FontStyle::Normal, bytes).is_err() {
            eprintln!("warning: the bundled font could not be loaded; PNG labels will be missing");
        }
    });
}

/// An RGB image being composed.
pub struct Canvas {
    /// The pixels.
    pub pixels: RgbImage,
}

impl Canvas {
    /// A white canvas.
    pub fn new(width: u32, height: u32) -> Self {
        register_bundled_font();
        Self {
            pixels: RgbImage::from_pixel(width.max(1), height.max(1), Rgb([255, 255, 255])),
        }
    }

    /// Copies `image` to (`x`, `y`), enlarged `scale` times with nearest-neighbour sampling so that
    /// each activation stays a crisp square.
    pub fn blit(&mut self, image: &RgbImage, x: u32, y: u32, scale: u32) {
        let scale = scale.max(1);
        for (ix, iy, p) in image.enumerate_pixels() {
            for dy in 0..scale {
                for dx in 0..scale {
                    let (px, py) = (x + ix * scale + dx, y + iy * scale + dy);
                    if px < self.pixels.width() && py < self.pixels.height() {
                        self.pixels.put_pixel(px, py, *p);
                    }
                }
            }
        }
    }

    /// Fills a rectangle.
    pub fn fill(&mut self, x: u32, y: u32, w: u32, h: u32, color: [u8; 3]) {
        for py in y..(y + h).min(self.pixels.height()) {
            for px in x..(x + w).min(self.pixels.width()) {
                self.pixels.put_pixel(px, py, Rgb(color));
            }
        }
    }

    /// Writes `text` with its top-left corner at (`x`, `y`), `size` pixels high.
    pub fn text(&mut self, x: i32, y: i32, size: f64, text: &str, color: [u8; 3]) {
        let (w, h) = self.pixels.dimensions();
        let root = BitMapBackend::with_buffer(self.pixels.as_mut(), (w, h)).into_drawing_area();
        let style = ("sans-serif", size)
            .into_font()
            .color(&RGBColor(color[0], color[1], color[2]));
        // A missing glyph is not worth failing a figure for.
        let _ = root.draw_text(text, &style, (x, y));
        let _ = root.present();
    }

    /// Saves as PNG, atomically (a temporary file renamed into place).
    pub fn save(&self, path: &Path) -> Result<()> {
        save_png_atomically(&self.pixels, path)
    }
}

/// Writes `image` to `path` as PNG through [`crate::output_file`], so a reader never sees half a PNG.
pub(crate) fn save_png_atomically(image: &RgbImage, path: &Path) -> Result<()> {
    crate::output_file::write_atomically(path, |tmp| {
        image
            .save_with_format(tmp, image::ImageFormat::Png)
            .map_err(|e| Error::format(path, format!("cannot write PNG: {e}")))
    })
}
