//! A convolution's shape and its im2col layout: which input value each column of the unrolled
//! matrix holds (`im2col`), and how a gradient of that matrix folds back onto the image (`col2im`).

use std::mem::MaybeUninit;

use multiversion::multiversion;
use rayon::prelude::*;

use super::buffers::{scratch, zero_fill};

/// Output positions per image from which one image's product is wide enough on its own: such
/// images go one at a time, without copying columns and outputs between layouts.
const WIDE: usize = 1024;

/// Zero padding on each side of a window's input, by name: burn's `PaddingConfig2d::Explicit`
/// orders the sides (top, left, bottom, right), its `ConvOptions` pairs them (top, bottom),
/// (left, right), and ONNX's `pads` list them (top, left, bottom, right); named fields leave
/// nothing to confuse.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pads {
    /// Rows above.
    pub top: usize,
    /// Rows below.
    pub bottom: usize,
    /// Columns on the left.
    pub left: usize,
    /// Columns on the right.
    pub right: usize,
}

impl Pads {
    /// No padding.
    pub const NONE: Pads = Pads::uniform(0);

    /// `p` on every side.
    pub const fn uniform(p: usize) -> Pads {
        Pads {
            top: p,
            bottom: p,
            left: p,
            right: p,
        }
    }
}

/// A convolution's window geometry, rows then columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeometry {
    /// Kernel `[rows, columns]`.
    pub kernel: [usize; 2],
    /// Step `[rows, columns]`.
    pub stride: [usize; 2],
    /// Zero padding on each side.
    pub padding: Pads,
    /// Spacing of the kernel's taps `[rows, columns]`.
    pub dilation: [usize; 2],
}

impl ConvGeometry {
    /// The output side `[rows, columns]` of an `[h, w]` input, or `None` when the kernel does not fit.
    pub fn output_size(&self, [h, w]: [usize; 2]) -> Option<[usize; 2]> {
        let Pads {
            top,
            bottom,
            left,
            right,
        } = self.padding;
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
    pub(super) fn columns(&self, kx: usize, w: usize, ow: usize) -> (usize, usize, isize) {
        let x0 = (kx * self.dilation[1]) as isize - self.padding.left as isize;
        valid_range(x0, self.stride[1], w, ow)
    }

    /// As [`Self::columns`], for kernel row `ky`, an `h`-high input and `oh` output rows.
    pub(super) fn rows(&self, ky: usize, h: usize, oh: usize) -> (usize, usize, isize) {
        let y0 = (ky * self.dilation[0]) as isize - self.padding.top as isize;
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
    pub(super) fn output(&self) -> [usize; 2] {
        self.geometry
            .output_size(self.input)
            .expect("conv: the kernel does not fit the input")
    }

    /// Rows of the im2col matrix: `cin·kh·kw`.
    pub(super) fn k(&self) -> usize {
        self.cin * self.geometry.kernel[0] * self.geometry.kernel[1]
    }

    /// The range of every output row, `[0, oh]` (a whole image for [`Self::column_matrix`]).
    pub(super) fn all_rows(&self) -> [usize; 2] {
        [0, self.output()[0]]
    }

    /// Output positions per image.
    pub(super) fn p(&self) -> usize {
        let [oh, ow] = self.output();
        oh * ow
    }

    /// Image ranges to process together, each within `max_columns` im2col floats (one image at a
    /// time when its output is [`WIDE`]).
    pub(super) fn groups(
        &self,
        max_columns: usize,
    ) -> impl Iterator<Item = (usize, usize)> + use<> {
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
    pub(super) fn pointwise(&self) -> bool {
        let g = &self.geometry;
        g.kernel == [1, 1] && g.stride == [1, 1] && g.padding == Pads::NONE
    }

    /// The im2col matrix `[k, (b1 − b0)·(r1 − r0)·ow]` of output rows `r0..r1` of images `b0..b1`
    /// of `x`: `x`'s own memory for one whole image of a pointwise convolution, otherwise built in
    /// `col` (its rows in parallel when `parallel`).
    pub(super) fn column_matrix<'a>(
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
    pub(super) fn im2col_row(
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
    pub(super) fn col2im(
        &self,
        dcol: &[f32],
        (b0, b1): (usize, usize),
        dx: &mut [MaybeUninit<f32>],
    ) {
        let [h, w] = self.input;
        let n = (b1 - b0) * self.p();
        dx[b0 * self.cin * h * w..b1 * self.cin * h * w]
            .par_chunks_mut(h * w)
            .enumerate()
            .for_each(|(i, plane)| self.col2im_plane(dcol, n, i, plane));
    }

    /// Plane `i` (image `i / cin` of `dcol`'s, channel `i % cin`) of [`Self::col2im`], from
    /// `dcol` with rows `n` wide. The plane may be unwritten: it is zeroed first.
    pub(super) fn col2im_plane(
        &self,
        dcol: &[f32],
        n: usize,
        i: usize,
        plane: &mut [MaybeUninit<f32>],
    ) {
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

#[cfg(test)]
mod tests {
    use super::valid_range;

    #[test]
    fn valid_ranges_keep_taps_inside_the_input() {
        // start −1, stride 2, input 5, 3 outputs: positions −1, 1, 3 → outputs 1..3 are inside.
        assert_eq!(valid_range(-1, 2, 5, 3), (1, 3, -1));
        // start 2, stride 1, input 4, 4 outputs: positions 2, 3, 4, 5 → outputs 0..2.
        assert_eq!(valid_range(2, 1, 4, 4), (0, 2, 2));
        // start beyond the input: nothing.
        assert_eq!(valid_range(6, 1, 4, 4), (0, 0, 6));
    }
}
