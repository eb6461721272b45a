//! Max-pooling of one feature map: no per-element division, comparisons as selects rather than
//! branches; for training, where each maximum came from (a `u32` per output) and the backward pass
//! that sends each gradient there. A window's padded cells count as −∞; NaN wins, as in PyTorch.

use multiversion::multiversion;

use super::conv_shape::{ConvGeometry, Pads};

/// The geometry of a 2-D max-pool: window, stride and padding, in rows then columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolWindow {
    /// Window `[rows, columns]`.
    pub kernel: [usize; 2],
    /// Step `[rows, columns]`.
    pub stride: [usize; 2],
    /// Padding on each side (it counts as −∞).
    pub padding: Pads,
}

impl PoolWindow {
    /// The output side `[rows, columns]` for an `[h, w]` input (floor mode), or `None` when the
    /// window does not fit.
    pub fn output_size(&self, hw: [usize; 2]) -> Option<[usize; 2]> {
        // A convolution's window without dilation.
        ConvGeometry {
            kernel: self.kernel,
            stride: self.stride,
            padding: self.padding,
            dilation: [1, 1],
        }
        .output_size(hw)
    }

    /// Pools one `[h, w]` plane `x` into `out` (`output_size` long, row-major).
    pub fn pool_plane(&self, x: &[f32], hw: [usize; 2], out: &mut [f32]) {
        self.pool::<false>(x, hw, out, &mut []);
    }

    /// [`Self::pool_plane`], also recording where each maximum came from in `argmax` (`y·w + x` in
    /// the plane; the last NaN when a window holds one, as PyTorch does; `u32::MAX` for a window
    /// with no input cell).
    pub fn pool_plane_argmax(
        &self,
        x: &[f32],
        hw: [usize; 2],
        out: &mut [f32],
        argmax: &mut [u32],
    ) {
        self.pool::<true>(x, hw, out, argmax);
    }

    /// The pooling loop, compiled twice: inference does not pay for the bookkeeping.
    fn pool<const ARGMAX: bool>(
        &self,
        x: &[f32],
        hw: [usize; 2],
        out: &mut [f32],
        argmax: &mut [u32],
    ) {
        pool_window::<ARGMAX>(*self, x, hw, out, argmax);
    }
}

/// [`PoolWindow::pool`]'s loop, also compiled for AVX-512 and AVX2.
#[multiversion(targets = "simd")]
fn pool_window<const ARGMAX: bool>(
    window: PoolWindow,
    x: &[f32],
    [h, w]: [usize; 2],
    out: &mut [f32],
    argmax: &mut [u32],
) {
    let two_by_two =
        window.kernel == [2, 2] && window.stride == [2, 2] && window.padding == Pads::NONE;
    if two_by_two && pool_2x2::<ARGMAX>(x, [h, w], out, argmax) {
        return;
    }
    let stem =
        window.kernel == [3, 3] && window.stride == [2, 2] && window.padding == Pads::uniform(1);
    if stem && pool_3x3_stride_2(x, [h, w], out) {
        if ARGMAX {
            // The maxima known, where each came from (training's stem: the general loop, maxima
            // and all, was a thirtieth of ResNet-18's training step).
            let ow = w.div_ceil(2);
            for (oy, (row, cells)) in out
                .chunks_exact(ow)
                .zip(argmax.chunks_exact_mut(ow))
                .enumerate()
            {
                let ys = window_span(2 * oy, 1, 3, h);
                for (ox, (&value, cell)) in row.iter().zip(cells).enumerate() {
                    *cell = window_argmax(x, w, ys, window_span(2 * ox, 1, 3, w), value);
                }
            }
        }
        return;
    }
    any_window::<ARGMAX>(window, x, [h, w], out, argmax);
}

/// Any window, and a 2×2 or stem plane holding a NaN (with PyTorch's NaN choices).
#[multiversion(targets = "simd")]
fn any_window<const ARGMAX: bool>(
    window: PoolWindow,
    x: &[f32],
    [h, w]: [usize; 2],
    out: &mut [f32],
    argmax: &mut [u32],
) {
    let [oh, ow] = window
        .output_size([h, w])
        .expect("pool_plane: the window does not fit");
    let [kh, kw] = window.kernel;
    let [sh, sw] = window.stride;
    let Pads { top, left, .. } = window.padding;
    // Each output is finished before the next and its comparisons are selects, not branches:
    // branching on `v > max` mispredicts about half the time on real activations.
    let cols: Vec<(usize, usize)> = (0..ow)
        .map(|ox| window_span(ox * sw, left, kw, w))
        .collect();
    for oy in 0..oh {
        let (y_lo, y_hi) = window_span(oy * sh, top, kh, h);
        for (ox, &(lo, hi)) in cols.iter().enumerate() {
            let mut max = f32::NEG_INFINITY;
            let mut nan = false;
            for y in y_lo..y_hi {
                for &v in &x[y * w + lo..y * w + hi] {
                    max = if v > max { v } else { max };
                    nan |= v.is_nan();
                }
            }
            let value = if nan { f32::NAN } else { max };
            out[oy * ow + ox] = value;
            if ARGMAX {
                argmax[oy * ow + ox] = window_argmax(x, w, (y_lo, y_hi), (lo, hi), value);
            }
        }
    }
}

/// The common 2×2, stride-2 window with its four cells named, one output row at a time. The
/// loop has no branches (mispredicted ties made the first version a tenth of a small CNN's
/// training step): the maximum by `max`, the argmax by masks — the first of the four cells that
/// holds it, as [`window_argmax`] chooses. Stops and returns `false` at a row holding a NaN,
/// leaving the plane to the general loop.
#[multiversion(targets = "simd")]
fn pool_2x2<const ARGMAX: bool>(
    x: &[f32],
    [h, w]: [usize; 2],
    out: &mut [f32],
    argmax: &mut [u32],
) -> bool {
    let (oh, ow) = (h / 2, w / 2);
    for oy in 0..oh {
        let top = &x[2 * oy * w..][..2 * ow];
        let bottom = &x[(2 * oy + 1) * w..][..2 * ow];
        let row = &mut out[oy * ow..][..ow];
        let mut nan = false;
        for (o, (t, b)) in row
            .iter_mut()
            .zip(top.chunks_exact(2).zip(bottom.chunks_exact(2)))
        {
            *o = t[0].max(t[1]).max(b[0].max(b[1]));
            nan |= t[0].is_nan() | t[1].is_nan() | b[0].is_nan() | b[1].is_nan();
        }
        if nan {
            return false;
        }
        if ARGMAX {
            let first = (2 * oy * w) as u32;
            let (right, down, diagonal) = (1u32, w as u32, w as u32 + 1);
            let cells = argmax[oy * ow..][..ow].iter_mut();
            for (ox, ((a, &m), (t, b))) in cells
                .zip(row.iter())
                .zip(top.chunks_exact(2).zip(bottom.chunks_exact(2)))
                .enumerate()
            {
                // All ones where the cell holds the maximum; the earliest such cell wins.
                let holds = |v: f32| 0u32.wrapping_sub((v == m) as u32);
                let mut at = diagonal;
                at = (holds(b[0]) & down) | (!holds(b[0]) & at);
                at = (holds(t[1]) & right) | (!holds(t[1]) & at);
                at &= !holds(t[0]);
                *a = first + 2 * ox as u32 + at;
            }
        }
    }
    true
}

/// ResNet's stem pool, a 3×3 window at stride 2 with one cell of padding, without the argmax
/// (inference), separably: each input row's maximum over the three columns of every window, then
/// each output's over three of those rows — both loops vectorise, where the general loop took a
/// twentieth of ResNet-18's inference. Returns `false` for a plane holding a NaN, leaving it to
/// the general loop.
#[multiversion(targets = "simd")]
fn pool_3x3_stride_2(x: &[f32], [h, w]: [usize; 2], out: &mut [f32]) -> bool {
    let (oh, ow) = (h.div_ceil(2), w.div_ceil(2));
    if h < 2 || w < 3 || out.len() < oh * ow {
        return false;
    }
    ROW_MAXIMA.with(|cell| {
        let mut rows = cell.borrow_mut();
        rows.resize(h * ow, 0.0);
        let mut nan = false;
        for (row, maxima) in x[..h * w].chunks_exact(w).zip(rows.chunks_exact_mut(ow)) {
            // Window `ox` covers columns 2·ox − 1 ..= 2·ox + 1 (the padding is −∞, so it drops).
            maxima[0] = row[0].max(row[1]);
            let inner = (w - 2) / 2; // windows whose three columns are all inside
            for (ox, m) in maxima.iter_mut().enumerate().take(inner + 1).skip(1) {
                *m = row[2 * ox - 1].max(row[2 * ox]).max(row[2 * ox + 1]);
            }
            if inner + 1 < ow {
                // An odd width: the last window's right column is padding.
                maxima[ow - 1] = row[w - 2].max(row[w - 1]);
            }
            nan |= row.iter().fold(false, |n, v| n | v.is_nan());
        }
        if nan {
            return false;
        }
        let at = |y: usize| &rows[y * ow..][..ow];
        for (oy, o) in out[..oh * ow].chunks_exact_mut(ow).enumerate() {
            let (top, bottom) = ((2 * oy).saturating_sub(1), (2 * oy + 1).min(h - 1));
            o.copy_from_slice(at(2 * oy));
            for y in [top, bottom] {
                for (o, &v) in o.iter_mut().zip(at(y)) {
                    *o = o.max(v);
                }
            }
        }
        true
    })
}

thread_local! {
    /// [`pool_3x3_stride_2`]'s row maxima, kept between planes.
    static ROW_MAXIMA: std::cell::RefCell<Vec<f32>> = std::cell::RefCell::default();
}

/// Where in the window (rows `ys`, columns `xs` of a `w`-wide plane) `value`, its maximum, is: the
/// first cell holding it, or the last NaN — PyTorch's choice. A second pass that only compares
/// with a known value has no chain of dependent selects, unlike tracking the index while the
/// maximum is still moving.
#[inline(always)]
fn window_argmax(x: &[f32], w: usize, ys: (usize, usize), xs: (usize, usize), value: f32) -> u32 {
    let mut at = u32::MAX;
    if value.is_nan() {
        for y in ys.0..ys.1 {
            for c in xs.0..xs.1 {
                at = if x[y * w + c].is_nan() {
                    (y * w + c) as u32
                } else {
                    at
                };
            }
        }
    } else {
        for y in (ys.0..ys.1).rev() {
            for c in (xs.0..xs.1).rev() {
                at = if x[y * w + c] == value {
                    (y * w + c) as u32
                } else {
                    at
                };
            }
        }
    }
    at
}

/// The gradient of one input plane: each output's gradient goes to the cell its maximum came from.
pub fn unpool_plane(grad_out: &[f32], argmax: &[u32], grad_in: &mut [f32]) {
    for (&g, &at) in grad_out.iter().zip(argmax) {
        if let Some(cell) = grad_in.get_mut(at as usize) {
            *cell += g;
        }
    }
}

/// The input positions `[lo, hi)` a window starting at padded position `start` covers, with
/// `before` cells of padding before the input and `len` cells of input.
fn window_span(start: usize, before: usize, k: usize, len: usize) -> (usize, usize) {
    let lo = start.saturating_sub(before).min(len);
    let hi = (start + k).saturating_sub(before).min(len);
    (lo, hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_by_two_windows_take_the_largest_value() {
        let x: Vec<f32> = vec![
            1.0,
            5.0,
            2.0,
            0.0, //
            3.0,
            -1.0,
            4.0,
            8.0, //
            -2.0,
            -3.0,
            7.0,
            6.0, //
            -5.0,
            -4.0,
            9.0,
            f32::NAN,
        ];
        let pool = PoolWindow {
            kernel: [2, 2],
            stride: [2, 2],
            padding: Pads::NONE,
        };
        assert_eq!(pool.output_size([4, 4]), Some([2, 2]));
        let mut out = vec![0.0; 4];
        pool.pool_plane(&x, [4, 4], &mut out);
        assert_eq!(&out[..3], &[5.0, 8.0, -2.0]);
        assert!(out[3].is_nan(), "NaN in a window propagates");
    }

    #[test]
    fn the_recorded_maximum_is_the_first_of_ties_and_the_last_nan_as_in_pytorch() {
        let x: Vec<f32> = vec![
            3.0,
            5.0,
            f32::NAN,
            1.0, //
            5.0,
            1.0,
            2.0,
            f32::NAN,
        ];
        let pool = PoolWindow {
            kernel: [2, 2],
            stride: [2, 2],
            padding: Pads::NONE,
        };
        let (mut out, mut at) = (vec![0.0; 2], vec![0; 2]);
        pool.pool_plane_argmax(&x, [2, 4], &mut out, &mut at);
        assert_eq!(out[0], 5.0);
        assert!(out[1].is_nan());
        assert_eq!(at, vec![1, 7]);
    }

    #[test]
    fn padded_windows_ignore_the_padding_as_resnet_stem_pooling_does() {
        // 3×3 windows, stride 2, padding 1 on a 3×4 plane of negative values: the padding must
        // not win (it counts as −∞, not 0). By hand: outputs 2×2.
        let x: Vec<f32> = (0..12).map(|i| -(i as f32) - 1.0).collect();
        // x = [-1 -2 -3 -4; -5 -6 -7 -8; -9 -10 -11 -12]
        let pool = PoolWindow {
            kernel: [3, 3],
            stride: [2, 2],
            padding: Pads::uniform(1),
        };
        assert_eq!(pool.output_size([3, 4]), Some([2, 2]));
        let mut out = vec![0.0; 4];
        pool.pool_plane(&x, [3, 4], &mut out);
        // (0,0): rows 0..1, cols 0..1 → -1; (0,1): rows 0..1, cols 1..3 → -2;
        // (1,0): rows 1..2, cols 0..1 → -5; (1,1): rows 1..2, cols 1..3 → -6.
        assert_eq!(out, vec![-1.0, -2.0, -5.0, -6.0]);
    }

    #[test]
    fn the_separable_stem_pool_gives_the_general_loops_maxima_and_argmax_on_odd_and_even_sides() {
        let pool = PoolWindow {
            kernel: [3, 3],
            stride: [2, 2],
            padding: Pads::uniform(1),
        };
        let sides = (2..=9).flat_map(|h| (2..=9).map(move |w| [h, w]));
        for [h, w] in sides.chain([[112, 112], [57, 30]]) {
            // Values with ties (a few distinct levels), positive and negative.
            let x: Vec<f32> = (0..h * w).map(|i| ((i * 7919) % 13) as f32 - 6.0).collect();
            let [oh, ow] = pool.output_size([h, w]).unwrap();
            let (mut fast, mut general) = (vec![f32::NAN; oh * ow], vec![0.0; oh * ow]);
            let (mut fast_at, mut general_at) = (vec![0; oh * ow], vec![1; oh * ow]);
            any_window::<true>(pool, &x, [h, w], &mut general, &mut general_at);
            pool.pool_plane(&x, [h, w], &mut fast);
            assert_eq!(fast, general, "{h}×{w}");
            pool.pool_plane_argmax(&x, [h, w], &mut fast, &mut fast_at);
            assert_eq!(fast, general, "{h}×{w}, with the argmax");
            assert_eq!(
                fast_at, general_at,
                "{h}×{w}: the argmax (the first of ties)"
            );
        }
        // A NaN goes through the general loop: the window holding it gives NaN.
        let mut x = vec![1.0; 36];
        x[7] = f32::NAN; // row 1, column 1: in the windows of output rows 0–1, columns 0–1
        let mut out = vec![0.0; 9];
        pool.pool_plane(&x, [6, 6], &mut out);
        assert_eq!(out.iter().filter(|v| v.is_nan()).count(), 4, "{out:?}");
    }

    #[test]
    fn asymmetric_stride_and_a_window_that_does_not_fit() {
        let x: Vec<f32> = (0..6).map(|i| i as f32).collect(); // 2×3
        let pool = PoolWindow {
            kernel: [1, 2],
            stride: [1, 1],
            padding: Pads::NONE,
        };
        let mut out = vec![0.0; 4];
        pool.pool_plane(&x, [2, 3], &mut out);
        assert_eq!(out, vec![1.0, 2.0, 4.0, 5.0]);
        let too_big = PoolWindow {
            kernel: [3, 3],
            ..pool
        };
        assert_eq!(too_big.output_size([2, 3]), None);
    }
}
