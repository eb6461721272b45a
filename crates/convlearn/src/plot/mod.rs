//! Rendering: PNG canvases with labels, colour maps for activations, heatmaps over pictures, line
//! charts, picture galleries, count matrices and bar tables.

mod canvas;
mod colormap;
mod curves;
mod gallery;
mod heatmap;
mod matrix;

pub use canvas::Canvas;
pub use colormap::{ColorMode, map_to_image, picture, signed_color};
pub use curves::{Panel, Series, plot_curves, plot_panels};
pub use gallery::{GalleryItem, render_gallery};
pub use heatmap::{heat_color, overlay, upsample};
pub use matrix::{BarRow, render_bar_table, render_count_matrix};
