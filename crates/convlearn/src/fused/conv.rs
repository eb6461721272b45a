//! 2-D convolution as im2col + matrix products, forward and backward, in one of two groupings
//! ([`Grouping`]).
//!
//! flex convolves image by image on all threads: for the late layers of a network (a 4×4 or 7×7
//! map with 512 channels) each image's product is 16–49 columns wide, so the weights (up to 9 MiB)
//! stream through the cache once per image and gemm runs its narrowest micro-kernel. Here, for
//! such layers, the columns of several images go side by side — `[cin·kh·kw, images·oh·ow]`, at
//! most [`MAX_COLUMNS`] floats — and one product serves them all. For layers whose im2col matrix
//! per image is small (a small CNN's, ResNet's stem and layers 1–3 at 128²), each thread instead
//! takes whole images — or, forward, bands of output rows (ResNet's stem and layer 1 at 224²) —
//! one single-threaded product each, with the im2col matrix in its cache and the product written
//! in place. Training reuses the same layouts: the weight gradient is `dy · colᵀ`, the input
//! gradient `Wᵀ · dy` folded back onto the image (col2im).
//!
//! Why one file of ~1100 lines: the im2col layout (`ConvShape`), the two groupings and their
//! backward passes are one design — each grouping's forward and backward read the same column
//! matrix and share the scratch buffers — and a quarter of the file is its tests. It does hold
//! two pieces that stand alone and should move out (issue 15's note): the matrix products
//! (`Layout`, `matmul`) and the buffers (`Scratch`, `zeroed`, `zero_fill`, `TileOutput`), which
//! Winograd uses too.

use std::mem::MaybeUninit;

use multiversion::multiversion;
use rayon::prelude::*;

/// The most floats one group's im2col matrix may hold (16 MiB): bounds the extra memory and
/// keeps enough images together for a wide product.
const MAX_COLUMNS: usize = 4 << 20;

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

    /// The range of every output row, `[0, oh]` (a whole image for [`Self::column_matrix`]).
    fn all_rows(&self) -> [usize; 2] {
        [0, self.output()[0]]
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

    /// The im2col matrix `[k, (b1 − b0)·(r1 − r0)·ow]` of output rows `r0..r1` of images `b0..b1`
    /// of `x`: `x`'s own memory for one whole image of a pointwise convolution, otherwise built in
    /// `col` (its rows in parallel when `parallel`).
    fn column_matrix<'a>(
        &self,
        x: &'a [f32],
        (b0, b1): (usize, usize),
        [r0, r1]: [usize; 2],
        col: &'a mut Vec<f32>,
        parallel: bool,
    ) -> &'a [f32] {
        let ow = self.output()[1];
        let n = (b1 - b0) * (r1 - r0) * ow;
        if b1 - b0 == 1 && [r0, r1] == self.all_rows() && self.pointwise() {
            return &x[b0 * self.cin * n..][..self.cin * n];
        }
        let col = scratch(col, self.k() * n);
        let row = |(row, dst)| self.im2col_row(x, (b0, b1), [r0, r1], row, dst);
        if parallel {
            col.par_chunks_mut(n).enumerate().for_each(row);
        } else {
            col.chunks_mut(n).enumerate().for_each(row);
        }
        col
    }

    /// Row `row` (channel, kernel row, kernel column) of the im2col matrix of output rows
    /// `r0..r1` of images `b0..b1`.
    fn im2col_row(
        &self,
        x: &[f32],
        (b0, b1): (usize, usize),
        [r0, r1]: [usize; 2],
        row: usize,
        dst: &mut [f32],
    ) {
        let [h, w] = self.input;
        let [oh, ow] = self.output();
        let [kh, kw] = self.geometry.kernel;
        let (c, ky, kx) = (row / (kh * kw), (row / kw) % kh, row % kw);
        let (y_lo, y_hi, y0) = self.geometry.rows(ky, h, oh);
        let (x_lo, x_hi, x0) = self.geometry.columns(kx, w, ow);
        // The valid output rows within the band, counted from its first row.
        let (band_lo, band_hi) = (y_lo.clamp(r0, r1) - r0, y_hi.clamp(r0, r1) - r0);
        let [sy, sx] = self.geometry.stride;
        for (image, dst) in (b0..b1).zip(dst.chunks_exact_mut((r1 - r0) * ow)) {
            let plane = &x[(image * self.cin + c) * h * w..][..h * w];
            if [sy, sx] == [1, 1] && ow == w && band_lo < band_hi && x_lo < x_hi {
                let bounds = [band_lo, band_hi, x_lo, x_hi];
                shifted_copy(plane, dst, ow, bounds, [y0 + r0 as isize, x0]);
                continue;
            }
            for (oy, out) in (r0..r1).zip(dst.chunks_exact_mut(ow)) {
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
                    copy_strided(&mut out[x_lo..x_hi], &src[first..], sx);
                }
            }
        }
    }

    /// Writes the im2col-shaped gradient `dcol` `[k, (b1 − b0)·p]` back as the images' input
    /// gradient in `dx` (all images, `[batch, cin, h, w]`; images `b0..b1` are overwritten): the
    /// transpose of [`Self::im2col_row`], one plane per rayon task.
    fn col2im(&self, dcol: &[f32], (b0, b1): (usize, usize), dx: &mut [MaybeUninit<f32>]) {
        let [h, w] = self.input;
        let n = (b1 - b0) * self.p();
        dx[b0 * self.cin * h * w..b1 * self.cin * h * w]
            .par_chunks_mut(h * w)
            .enumerate()
            .for_each(|(i, plane)| self.col2im_plane(dcol, n, i, plane));
    }

    /// Plane `i` (image `i / cin` of `dcol`'s, channel `i % cin`) of [`Self::col2im`], from
    /// `dcol` with rows `n` wide. The plane may be unwritten: it is zeroed first.
    fn col2im_plane(&self, dcol: &[f32], n: usize, i: usize, plane: &mut [MaybeUninit<f32>]) {
        let [h, w] = self.input;
        let [oh, ow] = self.output();
        let [kh, kw] = self.geometry.kernel;
        let [sy, sx] = self.geometry.stride;
        let p = oh * ow;
        let plane = zero_fill(plane);
        let (image, c) = (i / self.cin, i % self.cin);
        for ky in 0..kh {
            let (y_lo, y_hi, y0) = self.geometry.rows(ky, h, oh);
            for kx in 0..kw {
                let (x_lo, x_hi, x0) = self.geometry.columns(kx, w, ow);
                let row = (c * kh + ky) * kw + kx;
                let src = &dcol[row * n + image * p..][..p];
                if [sy, sx] == [1, 1]
                    && ow == w
                    && y_lo < y_hi
                    && x_lo < x_hi
                    && shifted_add(src, plane, w, [y_lo, y_hi, x_lo, x_hi], [y0, x0])
                {
                    continue;
                }
                for oy in y_lo..y_hi {
                    let y = (y0 + (oy * sy) as isize) as usize;
                    let out = &mut plane[y * w..(y + 1) * w];
                    let grads = &src[oy * ow + x_lo..oy * ow + x_hi];
                    let first = (x0 + (x_lo * sx) as isize) as usize;
                    if sx == 1 {
                        add_assign(&mut out[first..first + grads.len()], grads);
                    } else {
                        for (o, g) in out[first..].iter_mut().step_by(sx).zip(grads) {
                            *o += g;
                        }
                    }
                }
            }
        }
    }
}

/// The block of [`shifted_copy`] and [`shifted_add`]: `[start, end)` in the tap's im2col row
/// (`w`-wide output rows) and the input-plane index `from` of its first value.
fn tap_block(
    w: usize,
    [y_lo, y_hi, x_lo, x_hi]: [usize; 4],
    [y0, x0]: [isize; 2],
) -> (usize, usize, usize) {
    let (start, end) = (y_lo * w + x_lo, (y_hi - 1) * w + x_hi);
    let from = (y0 + y_lo as isize) as usize * w + (x0 + x_lo as isize) as usize;
    (start, end, from)
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
    let (start, end, from) = tap_block(w, [y_lo, y_hi, x_lo, x_hi], [y0, x0]);
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

/// Gap cells [`shifted_add`] saves on the stack; a block with more goes row by row (a 3×3 kernel's
/// block has one a row: maps up to 257 rows high).
const MAX_GAP_CELLS: usize = 256;

/// The transpose of [`shifted_copy`]: adds one tap's gradients `src` (`[oy, ox]`, `w` wide) onto
/// the input plane, `(oy, ox)` onto `(y0 + oy, x0 + ox)` for the same block. The block is one
/// vectorised add; the cells it reaches between rows (through the columns outside
/// `[x_lo, x_hi)`, which belong to no tap of this row) get their values back afterwards, so every
/// cell receives exactly what the row-by-row loop gives it. Row by row, a 14-wide map's adds ran
/// on scalars (too short for the vector loop): col2im was 11 % of a small CNN's training step.
/// Returns `false`, adding nothing, when the block has more than [`MAX_GAP_CELLS`] such cells.
fn shifted_add(
    src: &[f32],
    plane: &mut [f32],
    w: usize,
    [y_lo, y_hi, x_lo, x_hi]: [usize; 4],
    [y0, x0]: [isize; 2],
) -> bool {
    let (start, end, from) = tap_block(w, [y_lo, y_hi, x_lo, x_hi], [y0, x0]);
    let target = &mut plane[from..from + (end - start)];
    let gap = w - (x_hi - x_lo);
    let rows = y_hi - y_lo;
    if gap == 0 {
        add_assign(target, &src[start..end]);
        return true;
    }
    if (rows - 1) * gap > MAX_GAP_CELLS {
        return false;
    }
    // Between row r and r + 1 the block holds `gap` cells that are no tap's: they start at
    // `r·w + (x_hi − x_lo)` within the block.
    let mut saved = [0f32; MAX_GAP_CELLS];
    let cells = (0..rows - 1).flat_map(|r| (0..gap).map(move |g| r * w + (x_hi - x_lo) + g));
    for (keep, at) in saved.iter_mut().zip(cells.clone()) {
        *keep = target[at];
    }
    add_assign(target, &src[start..end]);
    for (keep, at) in saved.iter().zip(cells) {
        target[at] = *keep;
    }
    true
}

/// `out[i] = src[i · stride]`: a strided convolution's im2col row. Stride 2 (ResNet's stem and
/// downsampling convolutions) as pairs, which vectorise.
#[multiversion(targets = "simd")]
fn copy_strided(out: &mut [f32], src: &[f32], stride: usize) {
    let Some(last) = out.len().checked_sub(1) else {
        return;
    };
    if stride == 2 {
        for (o, pair) in out[..last].iter_mut().zip(src.chunks_exact(2)) {
            *o = pair[0];
        }
        out[last] = src[2 * last];
    } else {
        for (o, v) in out.iter_mut().zip(src.iter().step_by(stride)) {
            *o = *v;
        }
    }
}

/// `target[i] += values[i]`.
#[multiversion(targets = "simd")]
fn add_assign(target: &mut [f32], values: &[f32]) {
    for (t, v) in target.iter_mut().zip(values) {
        *t += v;
    }
}

/// Buffers kept between calls on a thread: the im2col matrices and layout copies are rewritten
/// in full every time, so after the first call nothing is allocated or zeroed (on one thread that
/// zeroing was a fifth of a small CNN's training step).
#[derive(Default)]
pub(super) struct Scratch {
    pub(super) col: Vec<f32>,
    pub(super) product: Vec<f32>,
    pub(super) dy: Vec<f32>,
    pub(super) dcol: Vec<f32>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::default();
}

/// A vector of `len` zeros for an output the caller then writes in full. The zeros are written on
/// rayon's threads, in blocks: zeroing on the main thread was a serial pass over every new
/// activation and gradient while the workers waited, and handing out uninitialised memory as
/// `&mut [f32]` (as this once did, and burn-flex does) is undefined behaviour.
pub(super) fn zeroed<T: Copy + Default + Send + Sync>(len: usize) -> Vec<T> {
    const BLOCK: usize = 1 << 15;
    if len <= BLOCK {
        return vec![T::default(); len];
    }
    let mut v = Vec::with_capacity(len);
    v.spare_capacity_mut()[..len]
        .par_chunks_mut(BLOCK)
        .for_each(|block| {
            for x in block {
                x.write(T::default());
            }
        });
    // SAFETY: the loop above initialised every one of the first `len` elements.
    unsafe { v.set_len(len) };
    v
}

/// Writes zeros into `cells` (which may be unwritten) and returns them as floats.
pub(super) fn zero_fill(cells: &mut [MaybeUninit<f32>]) -> &mut [f32] {
    cells.fill(MaybeUninit::new(0.0));
    // SAFETY: every cell was written just above, and `MaybeUninit<f32>` has `f32`'s layout.
    unsafe { &mut *(cells as *mut [MaybeUninit<f32>] as *mut [f32]) }
}

/// The first `len` floats of `buffer`, growing it (zeroed) when shorter. Callers overwrite them.
pub(super) fn scratch(buffer: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buffer.len() < len {
        buffer.resize(len, 0.0);
    }
    &mut buffer[..len]
}

/// `[cout, images·p]` (one product's layout) → the images' `[cout, p]` blocks of an NCHW tensor
/// (`blocks` starts at the group's first image), in parallel.
fn scatter_blocks(product: &[f32], blocks: &mut [MaybeUninit<f32>], [cout, images, p]: [usize; 3]) {
    let n = images * p;
    blocks[..images * cout * p]
        .par_chunks_mut(p)
        .with_min_len(MIN_COPY.div_ceil(p))
        .enumerate()
        .for_each(|(i, block)| {
            let (image, o) = (i / cout, i % cout);
            let from = &product[o * n + image * p..][..p];
            // SAFETY: `block` holds `p` cells (a chunk of `p`), `from` is `p` floats of another
            // buffer, and `MaybeUninit<f32>` has `f32`'s layout; the cells are now initialised.
            unsafe {
                std::ptr::copy_nonoverlapping(from.as_ptr(), block.as_mut_ptr().cast::<f32>(), p)
            }
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

/// How a convolution's images are split into matrix products.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grouping {
    /// Output tiles — `rows` output rows of one image, all of them for whole images — each its
    /// own single-threaded product, the tiles spread over rayon's threads: the tile's im2col
    /// matrix stays in the core's cache and the product lands in the output's own layout. Batched,
    /// the group's im2col matrix is written to memory and read back, and the product's columns are
    /// copied into the output's layout (and the output gradient out of it): a fifth of a small
    /// CNN's training step. The backward pass always takes whole images.
    Tiles {
        /// Output rows per tile.
        rows: usize,
    },
    /// Images side by side in products of at most `max_columns` im2col floats (one image at a
    /// time when its output is [`WIDE`]), each product spread over the threads.
    Batched {
        /// The most floats one group's im2col matrix may hold.
        max_columns: usize,
    },
}

/// The most floats one tile's im2col matrix and output may hold for [`Grouping::Tiles`] (4 MiB:
/// mostly in the core's 2 MiB L2 cache, the rest in L3); it admits ResNet-18's stem and layers 1–3
/// at 128² as whole images. Measured on ResNet-18's training step (batch 16, 128²) with a limit
/// that counted the weights too: 27.1/28.0 img/s at 1.5 MiB, 31.3/35.3 at 4.6 MiB, 31.0/37.0 at
/// 7.6 MiB.
pub(super) const TILE_FLOATS: usize = 1 << 20;

/// The fewest output positions per image for [`Grouping::Tiles`]: each tile's product packs the
/// whole weight matrix again, worth it when every weight then serves enough positions (ResNet-18's
/// last layer — 2.4 M weights, 4×4 maps — was slower image by image).
const MIN_POSITIONS: usize = 64;

/// Output positions per image from which [`Grouping::Tiles`]' backward pass sums the weight
/// gradient transposed, `dWᵀ[k, cout] += col · dyᵀ` (after copying `dy` transposed), instead of
/// `dW[cout, k] += dy · colᵀ`: gemm ran the long-K product with `colᵀ` at half speed. One thread,
/// GFLOP/s (`dy · colᵀ` → `col · dyᵀ`): ResNet-18's layer 1 at 128² (cout 64, k 576, p 1024)
/// 57.8 → 123.3, its stem (64, 147, 4096) 48.2 → 67.1; shorter maps lost: layer 3 (256, 2304, 64)
/// 139.4 → 115.0, the small CNN's second layer (64, 288, 196) 123.9 → 104.6.
const LONG_MAP: usize = 1024;

/// Images per task of the backward pass of [`Grouping::Tiles`]: each task sums its images' weight
/// gradients in its own buffer, and the buffers are added in order, so the result does not depend
/// on which thread ran what.
const IMAGES_PER_TASK: usize = 4;

impl Grouping {
    /// The forward pass's grouping for `shape` on the current rayon pool: tiles of as many whole
    /// output rows as fit [`TILE_FLOATS`], when there are enough of them for every thread twice.
    pub fn forward(shape: &ConvShape) -> Grouping {
        let [oh, ow] = shape.output();
        let most_rows = TILE_FLOATS / ((shape.k() + shape.cout) * ow).max(1);
        if shape.p() < MIN_POSITIONS || most_rows == 0 {
            return Grouping::BATCHED;
        }
        // Bands of equal height.
        let rows = oh.div_ceil(oh.div_ceil(most_rows.min(oh)));
        if shape.batch * oh.div_ceil(rows) >= 2 * rayon::current_num_threads() {
            Grouping::Tiles { rows }
        } else {
            Grouping::BATCHED
        }
    }

    /// The backward pass's grouping for `shape` on the current rayon pool: whole images as tiles
    /// when one fits [`TILE_FLOATS`] and there are enough images for every thread twice.
    pub fn backward(shape: &ConvShape) -> Grouping {
        let (k, p, cout) = (shape.k(), shape.p(), shape.cout);
        let threads = rayon::current_num_threads();
        if shape.batch >= 2 * threads && p >= MIN_POSITIONS && (k + cout) * p <= TILE_FLOATS {
            Grouping::Tiles {
                rows: shape.output()[0],
            }
        } else {
            Grouping::BATCHED
        }
    }

    /// Batched with the default bound on the im2col matrix, [`MAX_COLUMNS`].
    const BATCHED: Grouping = Grouping::Batched {
        max_columns: MAX_COLUMNS,
    };
}

/// Runs `f` with this thread's scratch buffers (fresh ones when a caller up the stack on this
/// thread holds them: a thread waiting on rayon work may run another pass's task).
pub(super) fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut scratch) => f(&mut scratch),
        Err(_) => f(&mut Scratch::default()),
    })
}

/// `y` `[batch, cout, oh, ow]` = the convolution of `x` `[batch, cin, h, w]` with `weight`
/// `[cout, cin, kh, kw]` (no bias).
pub fn conv_forward(shape: &ConvShape, x: &[f32], weight: &[f32], grouping: Grouping) -> Vec<f32> {
    let (k, p, cout) = (shape.k(), shape.p(), shape.cout);
    let len = shape.batch * cout * p;
    let max_columns = match grouping {
        Grouping::Tiles { rows } => {
            let mut y = Vec::with_capacity(len);
            forward_tiles(shape, x, weight, rows, &mut y.spare_capacity_mut()[..len]);
            // SAFETY: the tiles wrote every one of the `len` values (see `forward_tiles`).
            unsafe { y.set_len(len) };
            return y;
        }
        Grouping::Batched { max_columns } => max_columns,
    };
    // Every value is written below, for each group of images: by a product straight into the
    // output (one image; gemm writes through a raw pointer and does not read it) or by
    // `scatter_blocks`.
    let mut y: Vec<f32> = Vec::with_capacity(len);
    let cells = &mut y.spare_capacity_mut()[..len];
    with_scratch(|Scratch { col, product, .. }| {
        for (b0, b1) in shape.groups(max_columns) {
            let n = (b1 - b0) * p;
            let col = shape.column_matrix(x, (b0, b1), shape.all_rows(), col, true);
            let out = &mut cells[b0 * cout * p..b1 * cout * p];
            if b1 - b0 == 1 {
                // One image: the product is already laid out as its output.
                // SAFETY: `out` holds the cout rows of n = p floats, and is borrowed for the call.
                unsafe {
                    matmul_rows(
                        out.as_mut_ptr().cast(),
                        n,
                        weight,
                        col,
                        [cout, k, n],
                        Layout::PLAIN,
                    )
                }
            } else {
                let product = scratch(product, cout * n);
                matmul(product, weight, col, [cout, k, n], Layout::PLAIN);
                scatter_blocks(product, out, [cout, b1 - b0, p]);
            }
        }
    });
    // SAFETY: the groups cover every image, and each group's values were written above.
    unsafe { y.set_len(len) };
    y
}

/// [`conv_forward`] for [`Grouping::Tiles`] of `rows` output rows, into `y`, every value of which
/// is written (through raw pointers only, by gemm, which does not read its destination here: `y`
/// may be unwritten memory).
fn forward_tiles(
    shape: &ConvShape,
    x: &[f32],
    weight: &[f32],
    rows: usize,
    y: &mut [MaybeUninit<f32>],
) {
    let (k, p, cout) = (shape.k(), shape.p(), shape.cout);
    let [oh, ow] = shape.output();
    assert!(rows > 0, "conv: tiles of 0 output rows (Grouping::Tiles)");
    let bands = oh.div_ceil(rows);
    assert!(y.len() >= shape.batch * cout * p, "conv: output size");
    let out = TileOutput(y.as_mut_ptr().cast::<f32>());
    (0..shape.batch * bands).into_par_iter().for_each(|tile| {
        let (b, r0) = (tile / bands, tile % bands * rows);
        let r1 = (r0 + rows).min(oh);
        with_scratch(|Scratch { col, .. }| {
            let col = shape.column_matrix(x, (b, b + 1), [r0, r1], col, false);
            // SAFETY: this tile writes rows r0..r1 of image b's `cout` output maps — `cout` runs
            // of (r1 − r0)·ow floats, p apart, from (b·cout·p + r0·ow) — and no other tile writes
            // them; the last one ends at (b + 1)·cout·p − (oh − r1)·ow ≤ y.len() (asserted).
            unsafe {
                matmul_rows(
                    out.at(b * cout * p + r0 * ow),
                    p,
                    weight,
                    col,
                    [cout, k, (r1 - r0) * ow],
                    Layout::SERIAL,
                )
            }
        })
    });
}

/// The output of [`forward_tiles`], shared by its tiles, which write disjoint parts of it.
pub(super) struct TileOutput(pub(super) *mut f32);

// SAFETY: the tiles write disjoint cells (see `forward_tiles`), and the vector outlives the pass.
unsafe impl Sync for TileOutput {}

impl TileOutput {
    /// The cell `offset` floats from the start.
    pub(super) fn at(&self, offset: usize) -> *mut f32 {
        // SAFETY: callers stay inside the output (see `forward_tiles`).
        unsafe { self.0.add(offset) }
    }
}

/// The gradients of [`conv_forward`] from the output gradient `dy`: `(dx, dweight)`, each only when
/// asked for.
pub fn conv_backward(
    shape: &ConvShape,
    x: &[f32],
    weight: &[f32],
    dy: &[f32],
    [want_dx, want_dw]: [bool; 2],
    grouping: Grouping,
) -> (Option<Vec<f32>>, Option<Vec<f32>>) {
    let (k, p, cout) = (shape.k(), shape.p(), shape.cout);
    let [h, w] = shape.input;
    // col2im zeroes each plane of dx before adding into it, and every plane is col2im's.
    let dx_len = shape.batch * shape.cin * h * w;
    let mut dx: Option<Vec<f32>> = want_dx.then(|| Vec::with_capacity(dx_len));
    let Grouping::Batched { max_columns } = grouping else {
        let cells = dx.as_mut().map(|v| &mut v.spare_capacity_mut()[..dx_len]);
        let dw = backward_images(shape, x, weight, dy, cells, want_dw);
        // SAFETY: the image tasks covered every image's planes, each zeroed then added into.
        dx.iter_mut().for_each(|v| unsafe { v.set_len(dx_len) });
        return (dx, dw);
    };
    let mut dw = want_dw.then(|| vec![0f32; cout * k]);
    with_scratch(
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
                    let col = shape.column_matrix(x, (b0, b1), shape.all_rows(), col, true);
                    weight_gradient(dw, dy_g, col, [cout, n, k], Layout::PLAIN);
                }
                if let Some(dx) = dx.as_mut() {
                    let dcol = scratch(dcol, k * n);
                    column_gradient(dcol, weight, dy_g, [k, cout, n], Layout::PLAIN);
                    shape.col2im(dcol, (b0, b1), &mut dx.spare_capacity_mut()[..dx_len]);
                }
            }
        },
    );
    // SAFETY: the groups cover every image, and col2im wrote each of their planes.
    dx.iter_mut().for_each(|v| unsafe { v.set_len(dx_len) });
    (dx, dw)
}

/// [`conv_backward`] for [`Grouping::Tiles`] (whole images): tasks of [`IMAGES_PER_TASK`] images,
/// each image's output gradient read where it lies; `dx` (when given) written image by image; the
/// weight gradient (when asked for) returned.
fn backward_images(
    shape: &ConvShape,
    x: &[f32],
    weight: &[f32],
    dy: &[f32],
    dx: Option<&mut [MaybeUninit<f32>]>,
    want_dw: bool,
) -> Option<Vec<f32>> {
    let (k, p, cout) = (shape.k(), shape.p(), shape.cout);
    let image_dx = shape.cin * shape.input[0] * shape.input[1];
    let tasks: Vec<(usize, Option<&mut [MaybeUninit<f32>]>)> = match dx {
        Some(dx) => dx
            .chunks_mut(IMAGES_PER_TASK * image_dx)
            .enumerate()
            .map(|(t, dx)| (t * IMAGES_PER_TASK, Some(dx)))
            .collect(),
        None => (0..shape.batch)
            .step_by(IMAGES_PER_TASK)
            .map(|b0| (b0, None))
            .collect(),
    };
    // Long maps sum their weight gradient transposed, `[k, cout]` (see LONG_MAP).
    let transposed = p >= LONG_MAP;
    let parts: Vec<Option<Vec<f32>>> = tasks
        .into_par_iter()
        .map(|(b0, mut dx)| {
            with_scratch(
                |Scratch {
                     col,
                     dy: dy_t,
                     dcol,
                     ..
                 }| {
                    let mut dw = want_dw.then(|| vec![0f32; cout * k]);
                    for b in b0..(b0 + IMAGES_PER_TASK).min(shape.batch) {
                        let dy = &dy[b * cout * p..][..cout * p];
                        if let Some(dw) = dw.as_mut() {
                            let col =
                                shape.column_matrix(x, (b, b + 1), shape.all_rows(), col, false);
                            if transposed {
                                // dWᵀ[k, cout] += col[k, p] · dyᵀ[p, cout]
                                let dy_t = scratch(dy_t, p * cout);
                                transpose(dy, dy_t, [cout, p]);
                                matmul(dw, col, dy_t, [k, p, cout], Layout::SERIAL_ACCUMULATE);
                            } else {
                                weight_gradient(dw, dy, col, [cout, p, k], Layout::SERIAL);
                            }
                        }
                        if let Some(dx) = dx.as_deref_mut() {
                            let dcol = scratch(dcol, k * p);
                            column_gradient(dcol, weight, dy, [k, cout, p], Layout::SERIAL);
                            let planes = &mut dx[(b - b0) * image_dx..][..image_dx];
                            let plane = shape.input[0] * shape.input[1];
                            for (c, plane) in planes.chunks_exact_mut(plane).enumerate() {
                                shape.col2im_plane(dcol, p, c, plane);
                            }
                        }
                    }
                    dw
                },
            )
        })
        .collect();
    let mut parts = parts.into_iter().flatten();
    let mut dw = parts.next()?;
    for part in parts {
        for (sum, v) in dw.iter_mut().zip(&part) {
            *sum += v;
        }
    }
    if transposed {
        let mut untransposed = zeroed(cout * k);
        transpose(&dw, &mut untransposed, [k, cout]);
        dw = untransposed;
    }
    Some(dw)
}

/// `to[c, r] = from[r, c]` for `from` `[rows, columns]` row-major.
fn transpose(from: &[f32], to: &mut [f32], [rows, columns]: [usize; 2]) {
    for (r, row) in from[..rows * columns].chunks_exact(columns).enumerate() {
        for (c, v) in row.iter().enumerate() {
            to[c * rows + r] = *v;
        }
    }
}

/// `dW[cout, k] += dy[cout, n] · colᵀ[n, k]`; `layout` says only how to parallelise.
fn weight_gradient(dw: &mut [f32], dy: &[f32], col: &[f32], mnk: [usize; 3], layout: Layout) {
    let layout = Layout {
        rhs_transposed: true,
        accumulate: true,
        ..layout
    };
    matmul(dw, dy, col, mnk, layout);
}

/// `dcol[k, n] = Wᵀ[k, cout] · dy[cout, n]`; `layout` says only how to parallelise.
fn column_gradient(dcol: &mut [f32], weight: &[f32], dy: &[f32], mnk: [usize; 3], layout: Layout) {
    let layout = Layout {
        lhs_transposed: true,
        ..layout
    };
    matmul(dcol, weight, dy, mnk, layout);
}

/// How [`matmul`]'s operands are stored (all row-major).
#[derive(Clone, Copy)]
pub(super) struct Layout {
    /// `lhs` is stored as its transpose, `[k, m]`.
    lhs_transposed: bool,
    /// `rhs` is stored as its transpose, `[n, k]`.
    rhs_transposed: bool,
    /// Add the product to `dst` instead of overwriting it.
    accumulate: bool,
    /// Run on the calling thread alone, whatever the product's size.
    serial: bool,
}

impl Layout {
    const PLAIN: Layout = Layout {
        lhs_transposed: false,
        rhs_transposed: false,
        accumulate: false,
        serial: false,
    };
    pub(super) const SERIAL: Layout = Layout {
        serial: true,
        ..Layout::PLAIN
    };
    const SERIAL_ACCUMULATE: Layout = Layout {
        accumulate: true,
        ..Layout::SERIAL
    };
}

/// `dst[m, n] (+)= lhs[m, k] · rhs[k, n]`, row-major, by the `gemm` crate (flex's own engine).
pub(super) fn matmul(
    dst: &mut [f32],
    lhs: &[f32],
    rhs: &[f32],
    [m, k, n]: [usize; 3],
    layout: Layout,
) {
    assert!(dst.len() >= m * n, "matmul: output size");
    // SAFETY: `dst` holds the m rows of n floats, n apart, and is borrowed for the call.
    unsafe { matmul_rows(dst.as_mut_ptr(), n, lhs, rhs, [m, k, n], layout) }
}

/// [`matmul`] into `m` rows of `n` floats starting `dst_row_stride` floats apart from `dst`.
///
/// # Safety
/// Those rows must be valid for writes (and reads, when accumulating), and nothing else may
/// access them during the call.
unsafe fn matmul_rows(
    dst: *mut f32,
    dst_row_stride: usize,
    lhs: &[f32],
    rhs: &[f32],
    [m, k, n]: [usize; 3],
    layout: Layout,
) {
    assert!(
        lhs.len() >= m * k && rhs.len() >= k * n,
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
    let parallelism = if m * n * k >= PARALLEL_MACS && !layout.serial {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the assert above keeps every operand index inside its slice; the caller vouches for
    // the destination rows.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_row_stride as isize,
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

    const BATCHED: Grouping = Grouping::BATCHED;

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
        assert_eq!(conv_forward(&shape, &x, &weight, BATCHED), vec![-4.0; 4]);
        let dy = [1.0, 2.0, 3.0, 4.0];
        let (dx, dw) = conv_backward(&shape, &x, &weight, &dy, [true, true], BATCHED);
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
    fn a_long_maps_weight_gradient_summed_transposed_is_the_same() {
        // 33×32 'same' maps: 1056 positions ≥ LONG_MAP, so the tiles' backward pass sums dWᵀ;
        // 6 images: tasks of 4 and 2.
        let shape = ConvShape {
            batch: 6,
            cin: 2,
            input: [33, 32],
            cout: 3,
            geometry: ConvGeometry {
                kernel: [3, 3],
                stride: [1, 1],
                padding: [1; 4],
                dilation: [1, 1],
            },
        };
        assert!(shape.p() >= LONG_MAP);
        let values = |n: usize, seed: usize| -> Vec<f32> {
            (0..n)
                .map(|i| ((i * 31 + seed) % 19) as f32 / 5.0 - 1.8)
                .collect()
        };
        let x = values(6 * 2 * 33 * 32, 1);
        let weight = values(3 * shape.k(), 2);
        let dy = values(6 * 3 * shape.p(), 3);
        let tiles = Grouping::Tiles { rows: 33 };
        let (dx, dw) = conv_backward(&shape, &x, &weight, &dy, [true, true], tiles);
        let (dx_ref, dw_ref) = conv_backward(&shape, &x, &weight, &dy, [true, true], BATCHED);
        for (what, ours, reference) in [("dW", dw, dw_ref), ("dx", dx, dx_ref)] {
            let (ours, reference) = (ours.unwrap(), reference.unwrap());
            let scale = reference.iter().fold(1f32, |m, v| m.max(v.abs()));
            for (i, (a, b)) in ours.iter().zip(&reference).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-5 * scale,
                    "{what}[{i}]: {a} against {b}"
                );
            }
        }
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
            // 'same': im2col copies and col2im adds whole blocks (of a band, for a tile)
            ConvGeometry {
                kernel: [3, 3],
                stride: [1, 1],
                padding: [1; 4],
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
                conv_forward(&shape, &x, &weight, BATCHED),
                conv_backward(&shape, &x, &weight, &dy, [true, true], BATCHED),
            );
            let per_image = shape.k() * shape.p();
            for grouping in [
                Grouping::Batched {
                    max_columns: per_image,
                },
                Grouping::Batched {
                    max_columns: 2 * per_image,
                },
                // bands of 1 and 2 output rows (the last of 1), whole images; backward: tasks
                // of 4 images and of 1
                Grouping::Tiles { rows: 1 },
                Grouping::Tiles { rows: 2 },
                Grouping::Tiles {
                    rows: shape.output()[0],
                },
            ] {
                let y = conv_forward(&shape, &x, &weight, grouping);
                let grads = conv_backward(&shape, &x, &weight, &dy, [true, true], grouping);
                let close =
                    |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(p, q)| (p - q).abs() < 1e-4);
                let what = format!("{geometry:?}, {grouping:?}");
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
            geometry: geometries[2],
        };
        let (x, weight, dy) = (values(18, 1), values(1, 2), values(18, 3));
        // Only the gradients asked for are computed.
        for grouping in [BATCHED, Grouping::Tiles { rows: 3 }] {
            let (dx, dw) = conv_backward(&shape, &x, &weight, &dy, [false, true], grouping);
            assert!(dx.is_none() && dw.is_some());
            let (dx, dw) = conv_backward(&shape, &x, &weight, &dy, [true, false], grouping);
            assert!(dx.is_some() && dw.is_none());
        }
    }
}
