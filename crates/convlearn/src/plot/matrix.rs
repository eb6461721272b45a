//! A labelled matrix of counts as a heat map (the confusion matrix), and a table of per-row bars
//! (per-tag precision, recall and F2).

use std::path::Path;

use super::Canvas;
use crate::error::Result;

const MARGIN: u32 = 20;

/// Draws `counts[row][col]` with row names down the left and column names along the top, each cell
/// shaded by its count and labelled with it, to `path`.
pub fn render_count_matrix(
    path: &Path,
    title: &str,
    row_axis: &str,
    col_axis: &str,
    names: &[String],
    counts: &[Vec<usize>],
) -> Result<()> {
    let n = names.len() as u32;
    let cell = (560 / n.max(1)).clamp(28, 110);
    let label_w = 12 + 8 * names.iter().map(|s| s.chars().count()).max().unwrap_or(1) as u32;
    let top = 70 + label_w.min(160);
    let (w, h) = (
        2 * MARGIN + label_w + n * cell + 20,
        top + n * cell + MARGIN + 30,
    );
    let mut canvas = Canvas::new(w.max(360), h);
    canvas.text(MARGIN as i32, 10, 20.0, title, [20, 20, 20]);
    let max = counts.iter().flatten().copied().max().unwrap_or(1).max(1) as f32;
    let x0 = MARGIN + label_w;
    canvas.text(x0 as i32, 38, 14.0, &format!("{col_axis} →"), [60, 60, 60]);
    // Column names sit above their columns, staggered on two lines when they are wider than a cell.
    let stagger = label_w - 12 > cell;
    for (j, name) in names.iter().enumerate() {
        let x = x0 + j as u32 * cell + 2;
        let y = 58 + if stagger { (j as u32 % 2) * 16 } else { 8 };
        canvas.text(x as i32, y as i32, 13.0, name, [40, 40, 40]);
    }
    canvas.text(
        MARGIN as i32,
        (top - 22) as i32,
        14.0,
        &format!("{row_axis} ↓"),
        [60, 60, 60],
    );
    for (i, row) in counts.iter().enumerate() {
        let y = top + i as u32 * cell;
        canvas.text(
            MARGIN as i32,
            (y + cell / 2 - 7) as i32,
            13.0,
            &names[i],
            [40, 40, 40],
        );
        for (j, &c) in row.iter().enumerate() {
            let x = x0 + j as u32 * cell;
            let t = c as f32 / max;
            let shade = |lo: f32, hi: f32| (lo + (hi - lo) * t) as u8;
            let color = [shade(247.0, 8.0), shade(251.0, 48.0), shade(255.0, 107.0)];
            canvas.fill(x, y, cell - 1, cell - 1, color);
            let ink = if t > 0.5 {
                [255, 255, 255]
            } else {
                [20, 20, 20]
            };
            let text = c.to_string();
            let tx = x + cell / 2 - 4 * text.len() as u32;
            canvas.text(tx as i32, (y + cell / 2 - 8) as i32, 15.0, &text, ink);
        }
    }
    canvas.save(path)
}

/// One row of [`render_bar_table`]: a name, a note, and values in 0..1 drawn as bars.
pub struct BarRow {
    /// Row name.
    pub name: String,
    /// Text after the name (e.g. the support).
    pub note: String,
    /// Values in 0..1, one per column.
    pub values: Vec<f64>,
}

/// Draws rows of 0..1 values as bars under `columns` headings, to `path`.
pub fn render_bar_table(path: &Path, title: &str, columns: &[&str], rows: &[BarRow]) -> Result<()> {
    const BAR: u32 = 150;
    const ROW: u32 = 24;
    let name_w = 12
        + 8 * rows
            .iter()
            .map(|r| r.name.chars().count() + r.note.chars().count())
            .max()
            .unwrap_or(1) as u32;
    let w = 2 * MARGIN + name_w + columns.len() as u32 * (BAR + 70);
    let h = 80 + rows.len() as u32 * ROW + MARGIN;
    let mut canvas = Canvas::new(w, h);
    canvas.text(MARGIN as i32, 10, 20.0, title, [20, 20, 20]);
    let palette = [
        [31, 119, 180],
        [255, 127, 14],
        [44, 160, 44],
        [148, 103, 189],
    ];
    for (j, c) in columns.iter().enumerate() {
        let x = MARGIN + name_w + j as u32 * (BAR + 70);
        canvas.text(x as i32, 48, 15.0, c, palette[j % palette.len()]);
    }
    for (i, r) in rows.iter().enumerate() {
        let y = 74 + i as u32 * ROW;
        canvas.text(
            MARGIN as i32,
            y as i32,
            13.0,
            &format!("{} {}", r.name, r.note),
            [40, 40, 40],
        );
        for (j, &v) in r.values.iter().enumerate() {
            let x = MARGIN + name_w + j as u32 * (BAR + 70);
            canvas.fill(x, y + 2, BAR, ROW - 8, [235, 235, 235]);
            let len = (v.clamp(0.0, 1.0) * BAR as f64).round() as u32;
            canvas.fill(x, y + 2, len, ROW - 8, palette[j % palette.len()]);
            canvas.text(
                (x + BAR + 6) as i32,
                y as i32,
                13.0,
                &format!("{v:.2}"),
                [40, 40, 40],
            );
        }
    }
    canvas.save(path)
}
