//! Kernels: what a convolution does to a picture, computed in plain Rust so every number can be shown.

mod apply;
mod kernel;
mod render;

pub use crate::feature_maps::FeatureMaps;
pub use apply::{
    Arithmetic, ChannelArithmetic, Padding, arithmetic_at, convolve, strided_arithmetic_at,
};
pub use kernel::{Kernel, LITERAL_SYNTAX, PRESETS};
pub use render::{KernelFigure, percentile_abs, render_kernel_figure};
