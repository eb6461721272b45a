//! Depthwise convolution — one kernel per channel (`groups = channels`, MobileNetV2's 3×3s) —
//! forward and backward, one feature map per rayon task.
//!
//! Each channel's output is its own map convolved with its own `kh × kw` kernel, so there is no
//! matrix product to give to gemm: burn-flex added tap by tap into the whole output. Here a 3×3
//! window (MobileNetV2's, stride 1 or 2) copies the map once into a scratch plane with its padding
//! as zeros, and writes each output row once, its nine taps summed in one loop; any
//! other window accumulates each output row tap by tap from whole input rows (a row stays in L1,
//! and at stride 1 a tap is one vectorised multiply-add along the row). The input gradient
//! scatters the same way into the input's rows, and each tap's weight gradient is a dot product of
//! the output gradient's rows with the input's, summed over the batch per channel.

use std::mem::MaybeUninit;

use multiversion::multiversion;
use rayon::prelude::*;

use super::buffers::{assume_written, with_scratch, zero_fill};
use super::clamp::Epilogue;
use super::conv_shape::{ConvGeometry, ConvShape};

/// Values one rayon task handles at least.
const MIN_TASK_ELEMENTS: usize = 1 << 13;

/// A depthwise convolution's per-map geometry: the window, the input and output sides, and for
/// each kernel row and column the outputs whose tap lands inside the input.
struct Maps {
    geometry: ConvGeometry,
    input: [usize; 2],
    output: [usize; 2],
    /// Per kernel row `ky`: the output rows `[lo, hi)` whose tap is inside, and the input row of
    /// output row 0 (possibly negative).
    rows: Vec<(usize, usize, isize)>,
    /// Per kernel column `kx`: the output columns `[lo, hi)` whose tap is inside, and the input
    /// column of output column `lo`.
    columns: Vec<(usize, usize, usize)>,
}

impl Maps {
    fn of(shape: &ConvShape) -> Maps {
        assert_eq!(
            shape.cin, shape.cout,
            "depthwise: {} input channels but {} kernels",
            shape.cin, shape.cout
        );
        let (g, [h, w], [oh, ow]) = (shape.geometry, shape.input, shape.output());
        let columns = (0..g.kernel[1])
            .map(|kx| {
                let (lo, hi, x0) = g.columns(kx, w, ow);
                let first = if lo < hi {
                    (x0 + (lo * g.stride[1]) as isize) as usize
                } else {
                    0
                };
                (lo, hi, first)
            })
            .collect();
        Maps {
            geometry: g,
            input: [h, w],
            output: [oh, ow],
            rows: (0..g.kernel[0]).map(|ky| g.rows(ky, h, oh)).collect(),
            columns,
        }
    }

    fn taps(&self) -> usize {
        self.geometry.kernel[0] * self.geometry.kernel[1]
    }

    /// The input row kernel row `ky` reads for output row `oy`, when it is inside the input.
    fn input_row(&self, ky: usize, oy: usize) -> Option<usize> {
        let (lo, hi, y0) = self.rows[ky];
        (lo..hi)
            .contains(&oy)
            .then(|| (y0 + (oy * self.geometry.stride[0]) as isize) as usize)
    }

    /// For each output row `oy` whose kernel row `ky` lands inside the input: `(ky, oy, iy)`.
    fn row_taps(&self) -> impl Iterator<Item = (usize, usize, usize)> + '_ {
        let stride = self.geometry.stride[0];
        self.rows
            .iter()
            .enumerate()
            .flat_map(move |(ky, &(lo, hi, y0))| {
                (lo..hi).map(move |oy| (ky, oy, (y0 + (oy * stride) as isize) as usize))
            })
    }

    /// A 3×3 window without dilation, at stride 1 or 2 (MobileNetV2's): the rows' own loop.
    fn three_by_three(&self) -> Option<usize> {
        let g = &self.geometry;
        (g.kernel == [3, 3] && g.dilation == [1, 1] && g.stride[0] == g.stride[1])
            .then_some(g.stride[1])
            .filter(|s| (1..=2).contains(s))
    }
}

/// The convolution of `x` `[batch, channels, h, w]` with `weight` `[channels, 1, kh, kw]`: the
/// output `[batch, channels, oh, ow]`, written in full, each map then passed through `epilogue`
/// when given. Padding counts as zeros, so a non-finite weight makes the outputs that read padding
/// NaN, as PyTorch's do.
pub(super) fn forward(
    shape: &ConvShape,
    x: &[f32],
    weight: &[f32],
    epilogue: Option<&Epilogue>,
) -> Vec<f32> {
    let maps = Maps::of(shape);
    let [h, w] = maps.input;
    let [oh, ow] = maps.output;
    let (channels, taps) = (shape.cin, maps.taps());
    check_lengths(shape, &maps, x.len(), weight.len());
    let plane = oh * ow;
    let len = shape.batch * channels * plane;
    let mut y: Vec<f32> = Vec::with_capacity(len);
    let finite = weight.iter().all(|v| v.is_finite());
    if plane > 0 {
        y.spare_capacity_mut()[..len]
            .par_chunks_mut(plane)
            .with_min_len(MIN_TASK_ELEMENTS.div_ceil(plane))
            .enumerate()
            .for_each(|(map, out)| {
                let kernel = &weight[(map % channels) * taps..][..taps];
                let x = &x[map * h * w..][..h * w];
                match maps.three_by_three() {
                    Some(stride) if finite => {
                        let kernel = kernel.try_into().expect("3×3");
                        forward_map_3x3(&maps, stride, x, kernel, out)
                    }
                    _ => forward_map(&maps, x, kernel, out),
                }
                if let Some(epilogue) = epilogue {
                    // SAFETY: both routines write every value of the map.
                    epilogue.apply(map % channels, unsafe { assume_written(out) });
                }
            });
    }
    // SAFETY: the tasks wrote every map (the chunks cover all `len` values).
    unsafe { y.set_len(len) };
    y
}

/// One map's output, any window: zeroed, then each tap's row added; the taps that read padding
/// add `tap · 0` where the tap is not finite.
fn forward_map(maps: &Maps, x: &[f32], kernel: &[f32], out: &mut [MaybeUninit<f32>]) {
    let (w, ow) = (maps.input[1], maps.output[1]);
    let (kw, stride) = (maps.geometry.kernel[1], maps.geometry.stride[1]);
    let out = zero_fill(out);
    for (ky, oy, iy) in maps.row_taps() {
        let input = &x[iy * w..][..w];
        let output = &mut out[oy * ow..][..ow];
        for (kx, &(lo, hi, first)) in maps.columns.iter().enumerate() {
            add_scaled(
                &mut output[lo..hi],
                input,
                first,
                stride,
                kernel[ky * kw + kx],
            );
        }
    }
    if kernel.iter().any(|t| !t.is_finite()) {
        add_padding_products(maps, kernel, out);
    }
}

/// `out += tap · 0` for every tap that reads padding (NaN where the tap is infinite or NaN).
fn add_padding_products(maps: &Maps, kernel: &[f32], out: &mut [f32]) {
    let [oh, ow] = maps.output;
    let kw = maps.geometry.kernel[1];
    for oy in 0..oh {
        for (ky, _) in maps.rows.iter().enumerate() {
            let row_inside = maps.input_row(ky, oy).is_some();
            for (kx, &(lo, hi, _)) in maps.columns.iter().enumerate() {
                let tap = kernel[ky * kw + kx];
                for (ox, o) in out[oy * ow..][..ow].iter_mut().enumerate() {
                    if !row_inside || !(lo..hi).contains(&ox) {
                        *o += tap * 0.0;
                    }
                }
            }
        }
    }
}

/// One map's output for a 3×3 window (finite taps): the map copied once into this thread's
/// scratch with its padding as zeros around it, then every output row written once by one loop
/// over the padded rows ([`row_3x3`]), edges included.
fn forward_map_3x3(
    maps: &Maps,
    stride: usize,
    x: &[f32],
    kernel: &[f32; 9],
    out: &mut [MaybeUninit<f32>],
) {
    let ([h, w], [oh, ow]) = (maps.input, maps.output);
    let (top, left) = (maps.geometry.padding.top, maps.geometry.padding.left);
    // The padded map holds exactly what the windows read.
    let [ph, pw] = [(oh - 1) * stride + 3, (ow - 1) * stride + 3];
    with_scratch(|scratch| {
        let padded = super::buffers::scratch(&mut scratch.col, ph * pw);
        padded.fill(0.0);
        let width = w.min(pw.saturating_sub(left));
        for iy in (0..h.min(ph.saturating_sub(top))).filter(|_| width > 0) {
            padded[(top + iy) * pw + left..][..width].copy_from_slice(&x[iy * w..][..width]);
        }
        for (oy, out) in out.chunks_exact_mut(ow).enumerate() {
            let rows = std::array::from_fn(|ky| &padded[(oy * stride + ky) * pw..][..pw]);
            if stride == 1 {
                row_3x3::<1>(out, rows, kernel);
            } else {
                row_3x3::<2>(out, rows, kernel);
            }
        }
    });
}

/// `out[j] = Σ_ky Σ_kx kernel[ky][kx] · rows[ky][j·S + kx]`, summed kernel row by kernel row.
#[multiversion(targets = "simd")]
fn row_3x3<const S: usize>(out: &mut [MaybeUninit<f32>], rows: [&[f32]; 3], k: &[f32; 9]) {
    let span = (out.len() - 1) * S + 3;
    let [r0, r1, r2] = rows.map(|r| &r[..span]);
    for (j, o) in out.iter_mut().enumerate() {
        let i = j * S;
        let (a, b, c) = (&r0[i..i + 3], &r1[i..i + 3], &r2[i..i + 3]);
        let top = k[0] * a[0] + k[1] * a[1] + k[2] * a[2];
        let middle = k[3] * b[0] + k[4] * b[1] + k[5] * b[2];
        let bottom = k[6] * c[0] + k[7] * c[1] + k[8] * c[2];
        o.write(top + middle + bottom);
    }
}

/// `out[j] += tap · input[first + j·stride]`.
#[multiversion(targets = "simd")]
fn add_scaled(out: &mut [f32], input: &[f32], first: usize, stride: usize, tap: f32) {
    if stride == 1 {
        let input = &input[first..first + out.len()];
        for (o, i) in out.iter_mut().zip(input) {
            *o += tap * i;
        }
    } else {
        for (j, o) in out.iter_mut().enumerate() {
            *o += tap * input[first + j * stride];
        }
    }
}

/// The gradient of the input from the output's `dy`: every output's gradient times each tap,
/// added back where that tap read.
pub(super) fn input_gradient(shape: &ConvShape, weight: &[f32], dy: &[f32]) -> Vec<f32> {
    let maps = Maps::of(shape);
    let [h, w] = maps.input;
    let [oh, ow] = maps.output;
    let (channels, taps) = (shape.cin, maps.taps());
    assert_eq!(dy.len(), shape.batch * channels * oh * ow, "depthwise: dy");
    assert_eq!(weight.len(), channels * taps, "depthwise: weight");
    let (plane, kw, stride) = (h * w, maps.geometry.kernel[1], maps.geometry.stride[1]);
    let len = shape.batch * channels * plane;
    let mut dx: Vec<f32> = Vec::with_capacity(len);
    if plane > 0 {
        dx.spare_capacity_mut()[..len]
            .par_chunks_mut(plane)
            .with_min_len(MIN_TASK_ELEMENTS.div_ceil(plane))
            .enumerate()
            .for_each(|(map, cells)| {
                let kernel = &weight[(map % channels) * taps..][..taps];
                let dy = &dy[map * oh * ow..][..oh * ow];
                let dx = zero_fill(cells);
                for (ky, oy, iy) in maps.row_taps() {
                    let grad = &dy[oy * ow..][..ow];
                    let row = &mut dx[iy * w..][..w];
                    for kx in 0..kw {
                        let (lo, hi, first) = maps.columns[kx];
                        scatter_scaled(row, first, stride, &grad[lo..hi], kernel[ky * kw + kx]);
                    }
                }
            });
    }
    // SAFETY: the tasks zeroed every map (the chunks cover all `len` values) before adding.
    unsafe { dx.set_len(len) };
    dx
}

/// `row[first + j·stride] += tap · grad[j]`.
#[multiversion(targets = "simd")]
fn scatter_scaled(row: &mut [f32], first: usize, stride: usize, grad: &[f32], tap: f32) {
    if stride == 1 {
        for (r, g) in row[first..first + grad.len()].iter_mut().zip(grad) {
            *r += tap * g;
        }
    } else {
        for (j, g) in grad.iter().enumerate() {
            row[first + j * stride] += tap * g;
        }
    }
}

/// The gradient of the weights `[channels, 1, kh, kw]`: for each channel and tap, the sum over the
/// batch of the output gradient times the input values that tap read (per row in `f32`, the rows
/// added in `f64`).
pub(super) fn weight_gradient(shape: &ConvShape, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let maps = Maps::of(shape);
    let [h, w] = maps.input;
    let [oh, ow] = maps.output;
    let (channels, taps) = (shape.cin, maps.taps());
    check_lengths(shape, &maps, x.len(), channels * taps);
    assert_eq!(dy.len(), shape.batch * channels * oh * ow, "depthwise: dy");
    let (kw, stride) = (maps.geometry.kernel[1], maps.geometry.stride[1]);
    let mut dw = vec![0f32; channels * taps];
    dw.par_chunks_mut(taps.max(1))
        .enumerate()
        .for_each(|(c, grad)| {
            let mut sums = vec![0f64; taps];
            for image in 0..shape.batch {
                let map = image * channels + c;
                let x = &x[map * h * w..][..h * w];
                let dy = &dy[map * oh * ow..][..oh * ow];
                for (ky, oy, iy) in maps.row_taps() {
                    let input = &x[iy * w..][..w];
                    let grad = &dy[oy * ow..][..ow];
                    for kx in 0..kw {
                        let (lo, hi, first) = maps.columns[kx];
                        sums[ky * kw + kx] += dot(&grad[lo..hi], input, first, stride) as f64;
                    }
                }
            }
            for (g, s) in grad.iter_mut().zip(sums) {
                *g = s as f32;
            }
        });
    dw
}

/// `Σ_j grad[j] · input[first + j·stride]`, in eight lanes.
#[multiversion(targets = "simd")]
fn dot(grad: &[f32], input: &[f32], first: usize, stride: usize) -> f32 {
    let mut lanes = [0f32; 8];
    if stride == 1 {
        let input = &input[first..first + grad.len()];
        let (g8, i8) = (grad.chunks_exact(8), input.chunks_exact(8));
        let tail: f32 = g8
            .remainder()
            .iter()
            .zip(i8.remainder())
            .map(|(g, i)| g * i)
            .sum();
        for (g, i) in g8.zip(i8) {
            for k in 0..8 {
                lanes[k] += g[k] * i[k];
            }
        }
        lanes.iter().sum::<f32>() + tail
    } else {
        for (j, g) in grad.iter().enumerate() {
            lanes[j % 8] += g * input[first + j * stride];
        }
        lanes.iter().sum()
    }
}

/// Panics, naming the lengths, when `x` or the weights do not have the shape's.
fn check_lengths(shape: &ConvShape, maps: &Maps, x: usize, weight: usize) {
    let [h, w] = maps.input;
    assert_eq!(
        x,
        shape.batch * shape.cin * h * w,
        "depthwise: x for {shape:?}"
    );
    assert_eq!(
        weight,
        shape.cin * maps.taps(),
        "depthwise: weight for {shape:?}"
    );
}

#[cfg(test)]
mod tests {
    use burn::tensor::ops::ConvOptions;
    use burn::tensor::{Device, Distribution, Tensor, TensorData};

    use crate::host::values;

    /// Outputs and both gradients of `engine::conv2d` and of burn's grouped convolution, for a
    /// depthwise case: channels, kernel, stride, ((top, bottom), (left, right)), dilation, input.
    fn compare(
        channels: usize,
        k: [usize; 2],
        stride: usize,
        padding: [(usize, usize); 2],
        dilation: usize,
        input: [usize; 2],
    ) {
        let device = Device::flex().autodiff();
        let options = ConvOptions::new_with_padding(
            [stride, stride],
            padding,
            [dilation, dilation],
            channels,
        );
        let x = Tensor::<4>::random(
            [3, channels, input[0], input[1]],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        let w = Tensor::<4>::random(
            [channels, 1, k[0], k[1]],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        let run = |ours: bool| {
            let (x, w) = (x.clone().require_grad(), w.clone().require_grad());
            let y = if ours {
                crate::engine::conv2d(x.clone(), w.clone(), options.clone())
            } else {
                burn::tensor::module::conv2d(x.clone(), w.clone(), None, options.clone())
            };
            // A weighted sum, so every output's gradient differs.
            let dims = y.dims();
            let r: Vec<f32> = (0..dims.iter().product::<usize>())
                .map(|i| (i % 7) as f32 - 3.0)
                .collect();
            let r = Tensor::<4>::from_data(TensorData::new(r, dims), &device);
            let grads = (y.clone() * r).sum().backward();
            [
                values(y),
                values(x.grad(&grads).unwrap()),
                values(w.grad(&grads).unwrap()),
            ]
        };
        let case = format!("{channels} maps {input:?}, k{k:?} s{stride} {padding:?} d{dilation}");
        let (ours, theirs) = (run(true), run(false));
        for (what, (a, b)) in ["output", "d/dx", "d/dw"]
            .iter()
            .zip(ours.iter().zip(&theirs))
        {
            assert_eq!(a.len(), b.len(), "{case}: {what} size");
            let scale = b.iter().fold(1f32, |m, v| m.max(v.abs()));
            for (i, (p, q)) in a.iter().zip(b).enumerate() {
                assert!(
                    (p - q).abs() <= 1e-5 * scale,
                    "{case}: {what}[{i}] is {p}, burn's {q}"
                );
            }
        }
    }

    #[test]
    fn a_non_finite_weight_makes_the_outputs_that_read_padding_nan_as_burns_do() {
        let device = Device::flex();
        for (k, stride, padding) in [
            (3, 1, [(1, 1), (1, 1)]),
            (3, 2, [(0, 1), (0, 1)]),
            (5, 1, [(2, 2), (2, 2)]),
        ] {
            let options = ConvOptions::new_with_padding([stride, stride], padding, [1, 1], 2);
            let x = Tensor::<4>::random([1, 2, 6, 7], Distribution::Normal(0.0, 1.0), &device);
            let mut w = values(Tensor::<4>::random(
                [2, 1, k, k],
                Distribution::Normal(0.0, 1.0),
                &device,
            ));
            w[2 * k * k - 1] = f32::INFINITY; // the last tap: it reads the padding below and right
            let w = Tensor::<4>::from_data(TensorData::new(w, [2, 1, k, k]), &device);
            let ours = values(crate::engine::conv2d(x.clone(), w.clone(), options.clone()));
            let theirs = values(burn::tensor::module::conv2d(x, w, None, options));
            assert!(
                theirs.iter().any(|v| v.is_nan()),
                "k{k} s{stride}: burn's has NaNs"
            );
            for (i, (p, q)) in ours.iter().zip(&theirs).enumerate() {
                let same = if q.is_finite() {
                    (p - q).abs() <= 1e-5 * q.abs().max(1.0)
                } else {
                    p == q || (p.is_nan() && q.is_nan())
                };
                assert!(same, "k{k} s{stride}: output {i} is {p}, burn's {q}");
            }
        }
    }

    #[test]
    fn matches_burns_grouped_convolution_and_its_gradients() {
        // MobileNetV2's: 3×3 'same' at stride 1, TensorFlow's 'same' at stride 2 (the extra row
        // and column after), odd and even sides, sides shorter than a vector and longer.
        compare(5, [3, 3], 1, [(1, 1), (1, 1)], 1, [11, 9]);
        compare(4, [3, 3], 2, [(0, 1), (0, 1)], 1, [10, 12]);
        compare(3, [3, 3], 2, [(1, 1), (1, 1)], 1, [7, 21]);
        compare(2, [3, 3], 1, [(1, 1), (1, 1)], 1, [1, 1]);
        // Other windows: 5×5, unpadded, rectangular, dilated, and a kernel wider than the padded
        // input's usable part on one side.
        compare(3, [5, 5], 1, [(2, 2), (2, 2)], 1, [6, 17]);
        compare(2, [3, 3], 1, [(0, 0), (0, 0)], 1, [5, 8]);
        compare(2, [1, 3], 1, [(0, 0), (1, 1)], 1, [4, 6]);
        compare(2, [3, 3], 1, [(2, 2), (2, 2)], 2, [9, 9]);
        compare(2, [3, 3], 3, [(2, 0), (0, 2)], 1, [8, 8]);
    }
}
