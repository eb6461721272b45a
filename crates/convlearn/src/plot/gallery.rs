//! A grid of pictures, each with a few caption lines under it (top losses, uncertain predictions).

use std::path::Path;

use image::RgbImage;

use super::Canvas;
use crate::error::Result;

/// One picture and its caption.
pub struct GalleryItem {
    /// The picture (drawn at its own size, at most `tile` pixels wide and high).
    pub image: RgbImage,
    /// Caption lines, the first drawn in the accent colour.
    pub lines: Vec<String>,
}

const MARGIN: u32 = 16;
const GAP: u32 = 14;
const LINE: u32 = 15;
const TITLE: u32 = 34;

/// Draws `items` in rows of `columns`, each picture in a `tile`-pixel square, to `path`.
pub fn render_gallery(
    path: &Path,
    title: &str,
    items: &[GalleryItem],
    columns: usize,
    tile: u32,
) -> Result<()> {
    let columns = columns.clamp(1, items.len().max(1));
    let max_chars = (tile / 7) as usize;
    // Long captions wrap at spaces; each item keeps its first line's accent colour.
    let wrapped: Vec<Vec<(bool, String)>> = items
        .iter()
        .map(|item| {
            item.lines
                .iter()
                .enumerate()
                .flat_map(|(j, l)| wrap(l, max_chars).into_iter().map(move |w| (j == 0, w)))
                .collect()
        })
        .collect();
    let lines = wrapped.iter().map(Vec::len).max().unwrap_or(0) as u32;
    let cell_h = tile + 6 + lines * LINE;
    let rows = items.len().div_ceil(columns).max(1) as u32;
    let width = 2 * MARGIN + columns as u32 * (tile + GAP);
    let mut canvas = Canvas::new(width, TITLE + MARGIN + rows * (cell_h + GAP));
    canvas.text(MARGIN as i32, 8, 20.0, title, [20, 20, 20]);
    for (k, item) in items.iter().enumerate() {
        let x = MARGIN + (k % columns) as u32 * (tile + GAP);
        let y = TITLE + (k / columns) as u32 * (cell_h + GAP);
        canvas.blit(&item.image, x, y, 1);
        for (j, (accent, line)) in wrapped[k].iter().enumerate() {
            let color = if *accent { [170, 30, 30] } else { [40, 40, 40] };
            canvas.text(
                x as i32,
                (y + tile + 4 + j as u32 * LINE) as i32,
                13.0,
                line,
                color,
            );
        }
    }
    canvas.save(path)
}

/// Splits `text` at spaces into lines of at most `width` characters (longer words are cut).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(4);
    let mut lines = vec![String::new()];
    for word in text.split(' ') {
        let last = lines.last_mut().expect("never empty");
        let len = last.chars().count();
        if len > 0 && len + 1 + word.chars().count() > width {
            lines.push(String::new());
        }
        let last = lines.last_mut().expect("never empty");
        if !last.is_empty() {
            last.push(' ');
        }
        last.extend(word.chars().take(width));
    }
    lines
}

#[cfg(test)]
mod tests {
    #[test]
    fn wraps_at_spaces() {
        assert_eq!(
            super::wrap("actual: agriculture clear road", 20),
            ["actual: agriculture", "clear road"]
        );
        assert_eq!(super::wrap("short", 20), ["short"]);
    }
}
