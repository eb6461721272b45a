//! Applying kernels in plain, readable Rust — the arithmetic a spreadsheet cell shows.
//!
//! CNN "convolution" is cross-correlation: the kernel is laid on the window as it is, not flipped.
//! Tests check this path against burn's `conv2d`, so the teaching view and the real network agree.

use std::fmt;

use super::{FeatureMaps, Kernel};
use crate::error::{Error, Result};

/// What happens at the image border.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Padding {
    /// No padding: only windows fully inside the image; a 3×3 kernel shrinks the output by 2.
    #[default]
    Valid,
    /// Zero padding: the image is surrounded by zeros so the output keeps the input size.
    Zero,
    /// Edge replication: border pixels are repeated outwards so the output keeps the input size
    /// without the dark frame zero padding gives. (Not TensorFlow's 'same', which pads with zeros:
    /// that is [`Padding::Zero`] here.)
    Replicate,
}

impl Padding {
    /// Parses `valid`, `zero` or `replicate`. `same` is refused with an explanation: elsewhere in the
    /// field it means zero padding that keeps the size, which is `zero` here.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "valid" => Ok(Padding::Valid),
            "zero" => Ok(Padding::Zero),
            "replicate" => Ok(Padding::Replicate),
            "same" => Err(Error::Invalid(
                "padding 'same' is ambiguous: for a size-keeping border of zeros (TensorFlow's and \
                 PyTorch's 'same') use 'zero'; to repeat the border pixels use 'replicate'"
                    .into(),
            )),
            _ => Err(Error::Invalid(format!(
                "unknown padding '{s}': expected valid, zero or replicate"
            ))),
        }
    }

    /// A one-line description for figure captions.
    pub fn describe(self, kernel_h: usize, kernel_w: usize) -> String {
        match self {
            Padding::Valid => format!(
                "padding valid: output is {} rows and {} columns smaller",
                kernel_h - 1,
                kernel_w - 1
            ),
            Padding::Zero => "padding zero: border filled with 0, size kept".into(),
            Padding::Replicate => "padding replicate: border pixels repeated, size kept".into(),
        }
    }

    /// Output size for an input of `size` and a kernel of `k` along one axis.
    pub fn output_size(self, size: usize, k: usize) -> usize {
        match self {
            Padding::Valid => (size + 1).saturating_sub(k),
            Padding::Zero | Padding::Replicate => size,
        }
    }

    fn offset(self, k: usize) -> isize {
        match self {
            Padding::Valid => 0,
            Padding::Zero | Padding::Replicate => (k / 2) as isize,
        }
    }
}

/// Reads `input` at a possibly out-of-range position, as `padding` defines the border.
fn sample(input: &FeatureMaps, c: usize, y: isize, x: isize, padding: Padding) -> f32 {
    let inside = y >= 0 && x >= 0 && (y as usize) < input.height && (x as usize) < input.width;
    if inside {
        return input.get(c, y as usize, x as usize);
    }
    match padding {
        Padding::Replicate => {
            let yy = y.clamp(0, input.height as isize - 1) as usize;
            let xx = x.clamp(0, input.width as isize - 1) as usize;
            input.get(c, yy, xx)
        }
        _ => 0.0,
    }
}

/// The products and sum of one input channel's window with the matching kernel slice.
#[derive(Clone, Debug, PartialEq)]
pub struct ChannelArithmetic {
    /// The input window (kernel height × width, row-major).
    pub window: Vec<f32>,
    /// The kernel slice for this channel.
    pub kernel: Vec<f32>,
    /// `window[i] * kernel[i]`.
    pub products: Vec<f32>,
    /// The sum of the products.
    pub sum: f32,
}

/// The full arithmetic behind one output activation: `max(0, Σ_c Σ window_c·kernel_c + bias)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Arithmetic {
    /// Output row.
    pub y: usize,
    /// Output column.
    pub x: usize,
    /// Input row and column of the window's top-left cell (negative inside the padding).
    pub origin: (isize, isize),
    /// Kernel height.
    pub kernel_height: usize,
    /// Kernel width.
    pub kernel_width: usize,
    /// One entry per input channel.
    pub channels: Vec<ChannelArithmetic>,
    /// The bias added after the sums.
    pub bias: f32,
    /// Sum over channels plus bias (the raw activation).
    pub total: f32,
    /// `max(0, total)`.
    pub relu: f32,
}

/// The arithmetic of output pixel (`y`, `x`) of `kernel` (plus `bias`) applied to `input`.
pub fn arithmetic_at(
    input: &FeatureMaps,
    kernel: &Kernel,
    bias: f32,
    padding: Padding,
    y: usize,
    x: usize,
) -> Result<Arithmetic> {
    same_channels(input, kernel)?;
    let out_h = padding.output_size(input.height, kernel.height);
    let out_w = padding.output_size(input.width, kernel.width);
    if y >= out_h || x >= out_w {
        return Err(Error::Invalid(format!(
            "position x={x}, y={y} is outside the {out_w}×{out_h} output (x in 0..{out_w}, y in 0..{out_h})"
        )));
    }
    let oy = y as isize - padding.offset(kernel.height);
    let ox = x as isize - padding.offset(kernel.width);
    Ok(window_arithmetic(
        input,
        kernel,
        bias,
        padding,
        (oy, ox),
        (y, x),
    ))
}

/// The arithmetic of output pixel (`y`, `x`) of a convolution with any stride and zero padding:
/// its window's top-left cell is at input row `y·stride − top`, column `x·stride − left` (`pads` =
/// (top, left)), cells outside the input read 0. The caller checks that (`y`, `x`) is in the
/// output.
pub fn strided_arithmetic_at(
    input: &FeatureMaps,
    kernel: &Kernel,
    bias: f32,
    stride: [usize; 2],
    pads: (usize, usize),
    y: usize,
    x: usize,
) -> Result<Arithmetic> {
    same_channels(input, kernel)?;
    let oy = (y * stride[0]) as isize - pads.0 as isize;
    let ox = (x * stride[1]) as isize - pads.1 as isize;
    Ok(window_arithmetic(
        input,
        kernel,
        bias,
        Padding::Zero,
        (oy, ox),
        (y, x),
    ))
}

/// A kernel must span exactly the input's channels.
fn same_channels(input: &FeatureMaps, kernel: &Kernel) -> Result<()> {
    if kernel.channels != input.channels {
        return Err(Error::Kernel(format!(
            "the kernel spans {} channels but the input has {}",
            kernel.channels, input.channels
        )));
    }
    Ok(())
}

/// The window at `origin` (input row, column of its top-left cell, read as `padding` says
/// outside) times `kernel`, plus `bias`: output pixel `at`.
fn window_arithmetic(
    input: &FeatureMaps,
    kernel: &Kernel,
    bias: f32,
    padding: Padding,
    (oy, ox): (isize, isize),
    (y, x): (usize, usize),
) -> Arithmetic {
    let mut channels = Vec::with_capacity(input.channels);
    for c in 0..input.channels {
        let mut window = Vec::with_capacity(kernel.height * kernel.width);
        let mut weights = Vec::with_capacity(kernel.height * kernel.width);
        for ky in 0..kernel.height {
            for kx in 0..kernel.width {
                window.push(sample(
                    input,
                    c,
                    oy + ky as isize,
                    ox + kx as isize,
                    padding,
                ));
                weights.push(kernel.get(c, ky, kx));
            }
        }
        let products: Vec<f32> = window.iter().zip(&weights).map(|(a, b)| a * b).collect();
        let sum = products.iter().sum();
        channels.push(ChannelArithmetic {
            window,
            kernel: weights,
            products,
            sum,
        });
    }
    let total = channels.iter().map(|c| c.sum).sum::<f32>() + bias;
    Arithmetic {
        y,
        x,
        origin: (oy, ox),
        kernel_height: kernel.height,
        kernel_width: kernel.width,
        channels,
        bias,
        total,
        relu: total.max(0.0),
    }
}

impl Kernel {
    /// The kernel slid over `picture` without padding, as in the lesson: one output plane whose
    /// value at (y, x) is the sum of the window's products (a 1-channel kernel is stacked over a
    /// colour picture's channels, [`Kernel::for_channels`]). For padding, bias or several kernels,
    /// see [`convolve`].
    ///
    /// ```
    /// use convlearn::kernels::{FeatureMaps, Kernel};
    ///
    /// // a dark top half over a bright bottom half: the bottom-edge kernel lights up on the edge
    /// let picture = FeatureMaps::new(1, 4, 3, vec![0., 0., 0., 0., 0., 0., 1., 1., 1., 1., 1., 1.]);
    /// let response = Kernel::parse("-1 -1 -1; 0 0 0; 1 1 1")?.apply(&picture)?;
    /// assert_eq!((response.height, response.width), (2, 1));
    /// assert_eq!(response.data, vec![3.0, 3.0]);
    /// # Ok::<(), convlearn::Error>(())
    /// ```
    pub fn apply(&self, picture: &FeatureMaps) -> Result<FeatureMaps> {
        let kernel = self.for_channels(picture.channels)?;
        convolve(picture, &[kernel], &[0.0], Padding::Valid)
    }
}

/// Applies each kernel (with its bias) to `input`: one output plane per kernel.
pub fn convolve(
    input: &FeatureMaps,
    kernels: &[Kernel],
    biases: &[f32],
    padding: Padding,
) -> Result<FeatureMaps> {
    let first = kernels
        .first()
        .ok_or_else(|| Error::Kernel("no kernel to apply".into()))?;
    if padding == Padding::Valid && (first.height > input.height || first.width > input.width) {
        return Err(Error::Kernel(format!(
            "a {}×{} kernel does not fit a {}×{} picture without padding: choose 'zero' or \
             'replicate' padding, a smaller kernel or a larger picture",
            first.height, first.width, input.width, input.height
        )));
    }
    let out_h = padding.output_size(input.height, first.height);
    let out_w = padding.output_size(input.width, first.width);
    let mut out = FeatureMaps::zeros(kernels.len(), out_h, out_w);
    for (k, kernel) in kernels.iter().enumerate() {
        let bias = biases.get(k).copied().unwrap_or(0.0);
        for y in 0..out_h {
            for x in 0..out_w {
                out.set(
                    k,
                    y,
                    x,
                    arithmetic_at(input, kernel, bias, padding, y, x)?.total,
                );
            }
        }
    }
    Ok(out)
}

fn write_grid(
    f: &mut fmt::Formatter<'_>,
    values: &[f32],
    width: usize,
    indent: &str,
) -> fmt::Result {
    for row in values.chunks(width) {
        write!(f, "{indent}")?;
        for v in row {
            write!(f, "{v:>9.4}")?;
        }
        writeln!(f)?;
    }
    Ok(())
}

impl fmt::Display for Arithmetic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_sums(f)?;
        write!(
            f,
            "after ReLU = max(0, {:.4}) = {:.4}",
            self.total, self.relu
        )
    }
}

impl Arithmetic {
    /// Everything [`fmt::Display`] prints up to the total (one line per step), without the ReLU.
    pub fn write_sums(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = self.kernel_width;
        writeln!(
            f,
            "output pixel x={}, y={} (window from input x={}, y={}):",
            self.x, self.y, self.origin.1, self.origin.0
        )?;
        for (c, ch) in self.channels.iter().enumerate() {
            if self.channels.len() > 1 {
                writeln!(f, "input channel {c}:")?;
            }
            writeln!(f, "  input window:")?;
            write_grid(f, &ch.window, w, "    ")?;
            writeln!(f, "  kernel:")?;
            write_grid(f, &ch.kernel, w, "    ")?;
            writeln!(f, "  products (window × kernel):")?;
            write_grid(f, &ch.products, w, "    ")?;
            let terms: Vec<String> = ch.products.iter().map(|p| format!("{p:.4}")).collect();
            writeln!(f, "  sum = {} = {:.4}", terms.join(" + "), ch.sum)?;
        }
        let sums: Vec<String> = self
            .channels
            .iter()
            .map(|c| format!("{:.4}", c.sum))
            .collect();
        writeln!(
            f,
            "total = {} + bias {:.4} = {:.4}",
            sums.join(" + "),
            self.bias,
            self.total
        )
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn same_is_refused_as_ambiguous_and_replicate_repeats_the_edge() {
        let err = Padding::parse("same").unwrap_err().to_string();
        assert!(
            err.contains("'zero'") && err.contains("'replicate'"),
            "{err}"
        );
        assert_eq!(Padding::parse("replicate").unwrap(), Padding::Replicate);
    }

    fn ramp() -> FeatureMaps {
        // 5×5, value = 10*y + x
        FeatureMaps::new(
            1,
            5,
            5,
            (0..25).map(|i| (10 * (i / 5) + i % 5) as f32).collect(),
        )
    }

    #[test]
    fn bottom_edge_on_a_vertical_ramp_is_sixty_everywhere() {
        // window rows differ by 10 each; bottom row minus top row: 3 * 20 = 60
        let out = convolve(
            &ramp(),
            &[Kernel::preset("bottom-edge").unwrap()],
            &[0.0],
            Padding::Valid,
        )
        .unwrap();
        assert_eq!((out.height, out.width), (3, 3));
        assert!(out.data.iter().all(|&v| v == 60.0));
        let out = convolve(
            &ramp(),
            &[Kernel::preset("top-edge").unwrap()],
            &[0.0],
            Padding::Valid,
        )
        .unwrap();
        assert!(out.relu().data.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn hand_computed_arithmetic_with_zero_and_same_padding() {
        let k = Kernel::preset("bottom-edge").unwrap();
        // top-left output with zero padding: window rows [0 0 0],[0 0 1],[0 10 11]
        let a = arithmetic_at(&ramp(), &k, 0.5, Padding::Zero, 0, 0).unwrap();
        assert_eq!(
            a.channels[0].window,
            vec![0., 0., 0., 0., 0., 1., 0., 10., 11.]
        );
        assert_eq!(a.channels[0].sum, 21.0);
        assert_eq!(a.total, 21.5);
        // replicate padding repeats the border: rows [0 0 1],[0 0 1],[10 10 11]
        let a = arithmetic_at(&ramp(), &k, 0.0, Padding::Replicate, 0, 0).unwrap();
        assert_eq!(
            a.channels[0].window,
            vec![0., 0., 1., 0., 0., 1., 10., 10., 11.]
        );
        assert_eq!(a.total, 30.0);
        assert!(arithmetic_at(&ramp(), &k, 0.0, Padding::Valid, 3, 0).is_err());
    }

    #[test]
    fn max_pool_halves_and_keeps_maxima() {
        let p = ramp().max_pool(2);
        assert_eq!((p.height, p.width), (2, 2));
        assert_eq!(p.data, vec![11., 13., 31., 33.]);
    }
}
