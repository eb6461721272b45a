//! 2-D convolution as im2col + one matrix product per group of images, forward and backward.
//!
//! flex convolves image by image: for the late layers of a network (a 4×4 or 7×7 map with 512
//! channels) each image's product is 16–49 columns wide, so the weights (up to 9 MiB) stream
//! through the cache once per image and gemm runs its narrowest micro-kernel. Here the columns of
//! several images go side by side — `[cin·kh·kw, images·oh·ow]`, at most [`MAX_COLUMNS`] floats —
//! and one product serves them all. Training reuses the same layout: the weight gradient is
//! `dy · colᵀ`, the input gradient `Wᵀ · dy` folded back onto the image (col2im).

use rayon::prelude::*;

/// The most floats one group's im2col matrix may hold (16 MiB): bounds the extra memory and
/// keeps enough images together for a wide product.
pub const MAX_COLUMNS: usize = 4 << 20;

/// Output positions per image from which one image's product is wide enough on its own: such
/// images go one at a time, without copying columns and outputs between layouts.
const WIDE: usize = 1024;

/// Floats a parallel layout copy hands one task at least.
const MIN_COPY: usize = 1 << 14;

/// Products below this many multiply-adds run on one thread.
const PARALLEL_MACS: usize = 1 << 21;

/// A convolution's window geometry, rows then columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeometry {
    /// Kernel `[rows, columns]`.
    pub kernel: [usize; 2],
    /// Step `[rows, columns]`.
    pub stride: [usize; 2],
    /// Zero padding `[top, bottom, left, right]`.
    pub padding: [usize; 4],
    /// Spacing of the kernel's taps `[rows, columns]`.
    pub dilation: [usize; 2],
}

impl ConvGeometry {
    /// The output side `[rows, columns]` of an `[h, w]` input, or `None` when the kernel does not fit.
    pub fn output_size(&self, [h, w]: [usize; 2]) -> Option<[usize; 2]> {
        let [top, bottom, left, right] = self.padding;
        let side = |len: usize, k: usize, s: usize, d: usize| {
            let span = d * (k.max(1) - 1) + 1;
            (k > 0 && s > 0 && d > 0 && len >= span).then(|| (len - span) / s + 1)
        };
        Some([
            side(
                h + top + bottom,
                self.kernel[0],
                self.stride[0],
                self.dilation[0],
            )?,
            side(
                w + left + right,
                self.kernel[1],
                self.stride[1],
                self.dilation[1],
            )?,
        ])
    }

    /// For kernel column `kx`, the output columns `[lo, hi)` whose tap lands inside a `w`-wide
    /// input, and the input column of output column 0 (which may be negative).
    fn columns(&self, kx: usize, w: usize, ow: usize) -> (usize, usize, isize) {
        let x0 = (kx * self.dilation[1]) as isize - self.padding[2] as isize;
        valid_range(x0, self.stride[1], w, ow)
    }

    /// As [`Self::columns`], for kernel row `ky`, an `h`-high input and `oh` output rows.
    fn rows(&self, ky: usize, h: usize, oh: usize) -> (usize, usize, isize) {
        let y0 = (ky * self.dilation[0]) as isize - self.padding[0] as isize;
        valid_range(y0, self.stride[0], h, oh)
    }
}

/// The outputs `o` in `[lo, hi)` (of `outputs`) with `start + o·stride` in `[0, len)`.
fn valid_range(start: isize, stride: usize, len: usize, outputs: usize) -> (usize, usize, isize) {
    let s = stride as isize;
    let lo = if start >= 0 {
        0
    } else {
        ((-start) + s - 1) / s
    };
    let hi = if start >= len as isize {
        0
    } else {
        ((len as isize - start + s - 1) / s).min(outputs as isize)
    };
    let lo = (lo as usize).min(outputs);
    (lo, (hi.max(0) as usize).max(lo), start)
}

/// One convolution problem: `x` `[batch, cin, h, w]` with weights `[cout, cin, kh, kw]`.
#[derive(Clone, Copy, Debug)]
pub struct ConvShape {
    /// Images.
    pub batch: usize,
    /// Input channels.
    pub cin: usize,
    /// Input `[h, w]`.
    pub input: [usize; 2],
    /// Output channels.
    pub cout: usize,
    /// The window.
    pub geometry: ConvGeometry,
}

impl ConvShape {
    fn output(&self) -> [usize; 2] {
        self.geometry
            .output_size(self.input)
            .expect("conv: the kernel does not fit the input")
    }

    /// Rows of the im2col matrix: `cin·kh·kw`.
    fn k(&self) -> usize {
        self.cin * self.geometry.kernel[0] * self.geometry.kernel[1]
    }

    /// Output positions per image.
    fn p(&self) -> usize {
        let [oh, ow] = self.output();
        oh * ow
    }

    /// Image ranges to process together, each within `max_columns` im2col floats (one image at a
    /// time when its output is [`WIDE`]).
    fn groups(&self, max_columns: usize) -> impl Iterator<Item = (usize, usize)> + use<> {
        let per = if self.p() >= WIDE {
            1
        } else {
            (max_columns / (self.k() * self.p()).max(1)).clamp(1, self.batch.max(1))
        };
        let batch = self.batch;
        (0..batch)
            .step_by(per)
            .map(move |b0| (b0, (b0 + per).min(batch)))
    }

    /// Whether the im2col matrix of one image is the image itself (1×1 kernel, stride 1, no padding).
    fn pointwise(&self) -> bool {
        let g = &self.geometry;
        g.kernel == [1, 1] && g.stride == [1, 1] && g.padding == [0; 4]
    }

    /// The im2col matrix `[k, (b1 − b0)·p]` of images `b0..b1` of `x`: `x`'s own memory for one
    /// image of a pointwise convolution, otherwise built in `col`.
    fn column_matrix<'a>(
        &self,
        x: &'a [f32],
        (b0, b1): (usize, usize),
        col: &'a mut Vec<f32>,
    ) -> &'a [f32] {
        let n = (b1 - b0) * self.p();
        if b1 - b0 == 1 && self.pointwise() {
            return &x[b0 * self.cin * n..][..self.cin * n];
        }
        let col = scratch(col, self.k() * n);
        self.im2col(x, (b0, b1), col);
        col
    }

    /// The im2col matrix `[k, (b1 − b0)·p]` of images `b0..b1` of `x`, into `col`.
    fn im2col(&self, x: &[f32], (b0, b1): (usize, usize), col: &mut [f32]) {
        let [h, w] = self.input;
        let [oh, ow] = self.output();
        let [kh, kw] = self.geometry.kernel;
        let (p, n) = (oh * ow, (b1 - b0) * oh * ow);
        col[..self.k() * n]
            .par_chunks_mut(n)
            .enumerate()
            .for_each(|(row, dst)| {
                let (c, ky, kx) = (row / (kh * kw), (row / kw) % kh, row % kw);
                let (y_lo, y_hi, y0) = self.geometry.rows(ky, h, oh);
                let (x_lo, x_hi, x0) = self.geometry.columns(kx, w, ow);
                let [sy, sx] = self.geometry.stride;
                for (image, dst) in (b0..b1).zip(dst.chunks_exact_mut(p)) {
                    let plane = &x[(image * self.cin + c) * h * w..][..h * w];
                    if [sy, sx] == [1, 1] && ow == w && y_lo < y_hi && x_lo < x_hi {
                        shifted_copy(plane, dst, ow, [y_lo, y_hi, x_lo, x_hi], [y0, x0]);
                        continue;
                    }
                    for (oy, out) in dst.chunks_exact_mut(ow).enumerate() {
                        if oy < y_lo || oy >= y_hi {
                            out.fill(0.0);
                            continue;
                        }
                        let src = &plane[(y0 + (oy * sy) as isize) as usize * w..][..w];
                        out[..x_lo].fill(0.0);
                        out[x_hi..].fill(0.0);
                        let first = (x0 + (x_lo * sx) as isize) as usize;
                        if sx == 1 {
                            out[x_lo..x_hi].copy_from_slice(&src[first..first + x_hi - x_lo]);
                        } else {
                            for (o, v) in out[x_lo..x_hi]
                                .iter_mut()
                                .zip(src[first..].iter().step_by(sx))
                            {
                                *o = *v;
                            }
                        }
                    }
                }
            });
    }

    /// Writes the im2col-shaped gradient `dcol` `[k, (b1 − b0)·p]` back as the images' input
    /// gradient in `dx` (all images, `[batch, cin, h, w]`; images `b0..b1` are overwritten): the
    /// transpose of [`Self::im2col`].
    fn col2im(&self, dcol: &[f32], (b0, b1): (usize, usize), dx: &mut [f32]) {
        let [h, w] = self.input;
        let [oh, ow] = self.output();
        let [kh, kw] = self.geometry.kernel;
        let [sy, sx] = self.geometry.stride;
        let (p, n) = (oh * ow, (b1 - b0) * oh * ow);
        dx[b0 * self.cin * h * w..b1 * self.cin * h * w]
            .par_chunks_mut(h * w)
            .enumerate()
            .for_each(|(i, plane)| {
                plane.fill(0.0);
                let (image, c) = (i / self.cin, i % self.cin);
                for ky in 0..kh {
                    let (y_lo, y_hi, y0) = self.geometry.rows(ky, h, oh);
                    for kx in 0..kw {
                        let (x_lo, x_hi, x0) = self.geometry.columns(kx, w, ow);
                        let row = (c * kh + ky) * kw + kx;
                        let src = &dcol[row * n + image * p..][..p];
                        for oy in y_lo..y_hi {
                            let y = (y0 + (oy * sy) as isize) as usize;
                            let out = &mut plane[y * w..(y + 1) * w];
                            let grads = &src[oy * ow + x_lo..oy * ow + x_hi];
                            let first = (x0 + (x_lo * sx) as isize) as usize;
                            if sx == 1 {
                                let out = &mut out[first..first + grads.len()];
                                for (o, g) in out.iter_mut().zip(grads) {
                                    *o += g;
                                }
                            } else {
                                for (o, g) in out[first..].iter_mut().step_by(sx).zip(grads) {
                                    *o += g;
                                }
                            }
                        }
                    }
                }
            });
    }
}

/// One tap's im2col rows for a stride-1 convolution whose output rows are as wide as the input's
/// (`'same'` padding): output `(oy, ox)` for `oy ∈ [y_lo, y_hi)`, `ox ∈ [x_lo, x_hi)` reads input
/// `(y0 + oy, x0 + ox)`, both planes `w` wide, so the whole block is one copy; the padding around it
/// (whole rows above and below, the columns outside `[x_lo, x_hi)` between rows — one or two
/// values for a 3×3 kernel, written directly) is then zeroed. Row by row, a 14-wide map made one
/// `memcpy` call per 14 values.
fn shifted_copy(
    plane: &[f32],
    dst: &mut [f32],
    w: usize,
    [y_lo, y_hi, x_lo, x_hi]: [usize; 4],
    [y0, x0]: [isize; 2],
) {
    let (start, end) = (y_lo * w + x_lo, (y_hi - 1) * w + x_hi);
    let from = (y0 + y_lo as isize) as usize * w + (x0 + x_lo as isize) as usize;
    dst[start..end].copy_from_slice(&plane[from..from + (end - start)]);
    dst[..start].fill(0.0);
    dst[end..].fill(0.0);
    let gap = w - (x_hi - x_lo);
    for row in y_lo..y_hi - 1 {
        let at = row * w + x_hi;
        match gap {
            0 => {}
            1 => dst[at] = 0.0,
            2 => dst[at..at + 2].copy_from_slice(&[0.0; 2]),
            _ => dst[at..at + gap].fill(0.0),
        }
    }
}

/// Buffers kept between calls on a thread: the im2col matrices and layout copies are rewritten
/// in full every time, so after the first call nothing is allocated or zeroed (on one thread that
/// zeroing was a fifth of a small CNN's training step).
#[derive(Default)]
struct Scratch {
    col: Vec<f32>,
    product: Vec<f32>,
    dy: Vec<f32>,
    dcol: Vec<f32>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::default();
}

/// A vector of `len` values that are not written yet, for an output whose every element the caller
/// writes before anything reads it: zeroing it first was a serial pass over every new activation
/// and gradient, on the main thread while the workers waited (burn-flex allocates its outputs the
/// same way).
#[allow(clippy::uninit_vec)]
pub(super) fn unwritten<T: Copy>(len: usize) -> Vec<T> {
    let mut v = Vec::with_capacity(len);
    // SAFETY: used only for plain numbers (`f32`, `u32`: every bit pattern is a value), and every
    // caller overwrites all `len` of them before they are read.
    unsafe { v.set_len(len) };
    v
}

/// The first `len` floats of `buffer`, growing it (zeroed) when shorter. Callers overwrite them.
fn scratch(buffer: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buffer.len() < len {
        buffer.resize(len, 0.0);
    }
    &mut buffer[..len]
}

/// `[cout, images·p]` (one product's layout) → the images' `[cout, p]` blocks of an NCHW tensor
/// (`blocks` starts at the group's first image), in parallel.
fn scatter_blocks(product: &[f32], blocks: &mut [f32], [cout, images, p]: [usize; 3]) {
    let n = images * p;
    blocks[..images * cout * p]
        .par_chunks_mut(p)
        .with_min_len(MIN_COPY.div_ceil(p))
        .enumerate()
        .for_each(|(i, block)| {
            let (image, o) = (i / cout, i % cout);
            block.copy_from_slice(&product[o * n + image * p..][..p]);
        });
}

/// The inverse of [`scatter_blocks`]: the images' `[cout, p]` blocks → `[cout, images·p]`.
fn gather_blocks(blocks: &[f32], product: &mut [f32], [cout, images, p]: [usize; 3]) {
    let n = images * p;
    product[..cout * n]
        .par_chunks_mut(n)
        .enumerate()
        .for_each(|(o, row)| {
            for (image, part) in row.chunks_exact_mut(p).enumerate() {
                part.copy_from_slice(&blocks[(image * cout + o) * p..][..p]);
            }
        });
}

/// `y` `[batch, cout, oh, ow]` = the convolution of `x` `[batch, cin, h, w]` with `weight`
/// `[cout, cin, kh, kw]` (no bias).
pub fn conv_forward(shape: &ConvShape, x: &[f32], weight: &[f32], max_columns: usize) -> Vec<f32> {
    SCRATCH.with_borrow_mut(|scratch| forward_with(shape, x, weight, max_columns, scratch))
}

fn forward_with(
    shape: &ConvShape,
    x: &[f32],
    weight: &[f32],
    max_columns: usize,
    Scratch { col, product, .. }: &mut Scratch,
) -> Vec<f32> {
    let (k, p, cout) = (shape.k(), shape.p(), shape.cout);
    // Every value is written below: by a product (one image) or by `scatter_blocks`.
    let mut y = unwritten(shape.batch * cout * p);
    for (b0, b1) in shape.groups(max_columns) {
        let n = (b1 - b0) * p;
        let col = shape.column_matrix(x, (b0, b1), col);
        if b1 - b0 == 1 {
            // One image: the product is already laid out as its output.
            matmul(
                &mut y[b0 * cout * p..][..cout * p],
                weight,
                col,
                [cout, k, n],
                Layout::PLAIN,
            );
        } else {
            let product = scratch(product, cout * n);
            matmul(product, weight, col, [cout, k, n], Layout::PLAIN);
            scatter_blocks(product, &mut y[b0 * cout * p..], [cout, b1 - b0, p]);
        }
    }
    y
}

/// The gradients of [`conv_forward`] from the output gradient `dy`: `(dx, dweight)`, each only when
/// asked for.
pub fn conv_backward(
    shape: &ConvShape,
    x: &[f32],
    weight: &[f32],
    dy: &[f32],
    [want_dx, want_dw]: [bool; 2],
    max_columns: usize,
) -> (Option<Vec<f32>>, Option<Vec<f32>>) {
    let (k, p, cout) = (shape.k(), shape.p(), shape.cout);
    let [h, w] = shape.input;
    // col2im zeroes each plane of dx before adding into it.
    let mut dx = want_dx.then(|| unwritten(shape.batch * shape.cin * h * w));
    let mut dw = want_dw.then(|| vec![0f32; cout * k]);
    SCRATCH.with_borrow_mut(
        |Scratch {
             col,
             dy: dy_group,
             dcol,
             ..
         }| {
            for (b0, b1) in shape.groups(max_columns) {
                let n = (b1 - b0) * p;
                // The output gradient as [cout, images·p].
                let dy_g: &[f32] = if b1 - b0 == 1 {
                    &dy[b0 * cout * p..][..cout * p]
                } else {
                    let group = scratch(dy_group, cout * n);
                    gather_blocks(&dy[b0 * cout * p..], group, [cout, b1 - b0, p]);
                    group
                };
                if let Some(dw) = dw.as_mut() {
                    let col = shape.column_matrix(x, (b0, b1), col);
                    // dW[cout, k] += dy[cout, n] · colᵀ[n, k]
                    matmul(
                        dw,
                        dy_g,
                        col,
                        [cout, n, k],
                        Layout {
                            rhs_transposed: true,
                            ..Layout::ACCUMULATE
                        },
                    );
                }
                if let Some(dx) = dx.as_mut() {
                    let dcol = scratch(dcol, k * n);
                    // dcol[k, n] = Wᵀ[k, cout] · dy[cout, n]
                    matmul(
                        dcol,
                        weight,
                        dy_g,
                        [k, cout, n],
                        Layout {
                            lhs_transposed: true,
                            ..Layout::PLAIN
                        },
                    );
                    shape.col2im(dcol, (b0, b1), dx);
                }
            }
        },
    );
    (dx, dw)
}

/// How [`matmul`]'s operands are stored (all row-major).
#[derive(Clone, Copy)]
struct Layout {
    /// `lhs` is stored as its transpose, `[k, m]`.
    lhs_transposed: bool,
    /// `rhs` is stored as its transpose, `[n, k]`.
    rhs_transposed: bool,
    /// Add the product to `dst` instead of overwriting it.
    accumulate: bool,
}

impl Layout {
    const PLAIN: Layout = Layout {
        lhs_transposed: false,
        rhs_transposed: false,
        accumulate: false,
    };
    const ACCUMULATE: Layout = Layout {
        accumulate: true,
        ..Layout::PLAIN
    };
}

/// `dst[m, n] (+)= lhs[m, k] · rhs[k, n]`, row-major, by the `gemm` crate (flex's own engine).
fn matmul(dst: &mut [f32], lhs: &[f32], rhs: &[f32], [m, k, n]: [usize; 3], layout: Layout) {
    assert!(
        dst.len() >= m * n && lhs.len() >= m * k && rhs.len() >= k * n,
        "matmul: operand sizes"
    );
    let (lhs_cs, lhs_rs) = if layout.lhs_transposed {
        (m, 1)
    } else {
        (1, k)
    };
    let (rhs_cs, rhs_rs) = if layout.rhs_transposed {
        (k, 1)
    } else {
        (1, n)
    };
    let parallelism = if m * n * k >= PARALLEL_MACS {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the asserts above keep every index the strides reach inside the slices.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            layout.accumulate,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_ranges_keep_taps_inside_the_input() {
        // start −1, stride 2, input 5, 3 outputs: positions −1, 1, 3 → outputs 1..3 are inside.
        assert_eq!(valid_range(-1, 2, 5, 3), (1, 3, -1));
        // start 2, stride 1, input 4, 4 outputs: positions 2, 3, 4, 5 → outputs 0..2.
        assert_eq!(valid_range(2, 1, 4, 4), (0, 2, 2));
        // start beyond the input: nothing.
        assert_eq!(valid_range(6, 1, 4, 4), (0, 0, 6));
    }

    #[test]
    fn a_hand_computed_convolution_and_its_gradients() {
        // One 3×3 image, one 2×2 kernel, stride 1, no padding → 2×2 output.
        let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
        let weight = [1.0, 0.0, 0.0, -1.0];
        let shape = ConvShape {
            batch: 1,
            cin: 1,
            input: [3, 3],
            cout: 1,
            geometry: ConvGeometry {
                kernel: [2, 2],
                stride: [1, 1],
                padding: [0; 4],
                dilation: [1, 1],
            },
        };
        // y = x[i][j] − x[i+1][j+1] = −4 everywhere.
        assert_eq!(
            conv_forward(&shape, &x, &weight, MAX_COLUMNS),
            vec![-4.0; 4]
        );
        let dy = [1.0, 2.0, 3.0, 4.0];
        let (dx, dw) = conv_backward(&shape, &x, &weight, &dy, [true, true], MAX_COLUMNS);
        // dW[a][b] = Σ dy[i][j]·x[i+a][j+b]: dW[0][0] = 1+4+12+20 = 37, [0][1] = 2+6+15+24 = 47,
        // [1][0] = 4+10+21+32 = 67, [1][1] = 5+12+24+36 = 77.
        assert_eq!(dw.unwrap(), vec![37.0, 47.0, 67.0, 77.0]);
        // dx[i][j] = dy[i][j]·1 − dy[i−1][j−1]·1.
        assert_eq!(
            dx.unwrap(),
            vec![1.0, 2.0, 0.0, 3.0, 3.0, -2.0, 0.0, -3.0, -4.0]
        );
    }

    #[test]
    fn grouping_images_does_not_change_the_results() {
        // Five 6×5 images: one group under the default limit; groups of 1 and of 2 images (and a
        // last group of 1) under small ones. Every layout must give the same numbers — for a 3×3
        // kernel and for a pointwise one (whose single-image groups read the input in place).
        let geometries = [
            ConvGeometry {
                kernel: [3, 3],
                stride: [2, 1],
                padding: [1, 1, 0, 2],
                dilation: [1, 1],
            },
            ConvGeometry {
                kernel: [1, 1],
                stride: [1, 1],
                padding: [0; 4],
                dilation: [1, 1],
            },
        ];
        let values = |n: usize, seed: usize| -> Vec<f32> {
            (0..n)
                .map(|i| ((i * 37 + seed) % 23) as f32 / 7.0 - 1.5)
                .collect()
        };
        for geometry in geometries {
            let shape = ConvShape {
                batch: 5,
                cin: 3,
                input: [6, 5],
                cout: 4,
                geometry,
            };
            let x = values(5 * 3 * 6 * 5, 1);
            let weight = values(4 * shape.k(), 2);
            let dy = values(5 * 4 * shape.p(), 3);
            let reference = (
                conv_forward(&shape, &x, &weight, MAX_COLUMNS),
                conv_backward(&shape, &x, &weight, &dy, [true, true], MAX_COLUMNS),
            );
            let per_image = shape.k() * shape.p();
            for max_columns in [per_image, 2 * per_image] {
                let y = conv_forward(&shape, &x, &weight, max_columns);
                let grads = conv_backward(&shape, &x, &weight, &dy, [true, true], max_columns);
                let close =
                    |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(p, q)| (p - q).abs() < 1e-4);
                let what = format!("{geometry:?}, {max_columns} columns");
                assert!(close(&y, &reference.0), "forward, {what}");
                assert!(
                    close(grads.0.as_ref().unwrap(), reference.1.0.as_ref().unwrap()),
                    "d/dx, {what}"
                );
                assert!(
                    close(grads.1.as_ref().unwrap(), reference.1.1.as_ref().unwrap()),
                    "d/dw, {what}"
                );
            }
        }
        let shape = ConvShape {
            batch: 2,
            cin: 1,
            input: [3, 3],
            cout: 1,
            geometry: geometries[1],
        };
        let (x, weight, dy) = (values(18, 1), values(1, 2), values(18, 3));
        // Only the gradients asked for are computed.
        let (dx, dw) = conv_backward(&shape, &x, &weight, &dy, [false, true], MAX_COLUMNS);
        assert!(dx.is_none() && dw.is_some());
    }
}
