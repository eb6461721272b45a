//! Line charts (loss curves, schedules) as PNG.

use std::path::Path;

use plotters::prelude::*;

use super::canvas::{register_bundled_font, save_png_atomically};
use crate::error::{Error, Result};

/// One named line of (x, y) points.
pub struct Series {
    /// Legend label.
    pub name: String,
    /// Points in drawing order.
    pub points: Vec<(f64, f64)>,
}

/// One chart of a figure: its y-axis label and its lines.
pub struct Panel<'a> {
    /// Label of the y axis.
    pub y_label: &'a str,
    /// The lines drawn on it.
    pub series: &'a [Series],
}

/// Draws `series` on one chart and saves it as a PNG at `path`.
pub fn plot_curves(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
) -> Result<()> {
    plot_panels(path, title, x_label, &[Panel { y_label, series }])
}

/// Draws `panels` stacked top to bottom, sharing the x label, and saves them as a PNG at `path`.
pub fn plot_panels(path: &Path, title: &str, x_label: &str, panels: &[Panel<'_>]) -> Result<()> {
    register_bundled_font();
    let (w, h) = (900u32, 120 + 420 * panels.len().max(1) as u32);
    let mut buf = vec![255u8; (w * h * 3) as usize];
    let ranges = panels
        .iter()
        .map(|panel| {
            let xs = finite_coordinates(panel, |p| p.0);
            let ys = finite_coordinates(panel, |p| p.1);
            (!xs.is_empty()).then(|| (min_max(&xs), min_max(&ys)))
        })
        .collect::<Option<Vec<_>>>()
        .filter(|r| !r.is_empty())
        .ok_or_else(|| Error::Invalid(format!("nothing to plot in {}", path.display())))?;
    let draw = || -> std::result::Result<(), Box<dyn std::error::Error + '_>> {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE)?;
        let root = root.titled(title, ("sans-serif", 24))?;
        let areas = root.split_evenly((panels.len(), 1));
        for ((panel, ((x0, x1), (y0, y1))), area) in panels.iter().zip(ranges).zip(areas) {
            let mut chart = ChartBuilder::on(&area)
                .margin(12)
                .x_label_area_size(44)
                .y_label_area_size(64)
                .build_cartesian_2d(x0..x1, y0..y1)?;
            chart
                .configure_mesh()
                .x_desc(x_label)
                .y_desc(panel.y_label)
                .label_style(("sans-serif", 14))
                .draw()?;
            let colors = [BLUE, RED, GREEN, MAGENTA, CYAN, BLACK];
            for (i, s) in panel.series.iter().enumerate() {
                let color = colors[i % colors.len()];
                chart
                    .draw_series(LineSeries::new(
                        s.points
                            .iter()
                            .copied()
                            .filter(|p| p.0.is_finite() && p.1.is_finite()),
                        color.stroke_width(2),
                    ))?
                    .label(s.name.clone())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                    });
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .label_font(("sans-serif", 14))
                .draw()?;
        }
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| Error::Invalid(format!("cannot draw {}: {e}", path.display())))?;
    let image = image::RgbImage::from_raw(w, h, buf).expect("buffer matches its size");
    save_png_atomically(&image, path)
}

/// One coordinate (picked by `pick`) of every point of `panel`, the non-finite ones left out.
fn finite_coordinates(panel: &Panel<'_>, pick: fn(&(f64, f64)) -> f64) -> Vec<f64> {
    panel
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(pick))
        .filter(|v| v.is_finite())
        .collect()
}

fn min_max(v: &[f64]) -> (f64, f64) {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if hi > lo {
        (lo, hi)
    } else {
        (lo - 0.5, hi + 0.5)
    }
}
