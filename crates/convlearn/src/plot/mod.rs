//! Rendering: PNG canvases with labels, colour maps for activations, and line charts.

mod canvas;
mod colormap;
mod curves;

pub use canvas::Canvas;
pub use colormap::{ColorMode, map_to_image, picture, signed_color};
pub use curves::{Series, plot_curves};
