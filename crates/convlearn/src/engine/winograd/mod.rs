//! Winograd's minimal filtering F(2×2, 3×3) for 3×3, stride-1 convolutions with one cell of
//! padding ('same'), the bulk of a ResNet's work: each 2×2 block of outputs comes from a 4×4
//! block of input through 16 products instead of 36, so the matrix products — most of a
//! convolution's time — shrink 2.25×, and the transformed input is 4× the input where im2col's
//! matrix is 9×.
//!
//! With `G` (4×3), `Bᵀ` (4×4) and `Aᵀ` (2×4) of Lavin & Gray (2016):
//! - the kernels: `U = G g Gᵀ`, 16 matrices `U_ξ` `[cout, cin]`;
//! - the input: `V = Bᵀ d B` for every 4×4 block `d` (starting at `(2ty − 1, 2tx − 1)`, the
//!   padding zero), 16 matrices `V_ξ` `[cin, tiles]`;
//! - 16 products `M_ξ = U_ξ · V_ξ` `[cout, tiles]`;
//! - the output: `Y = Aᵀ M A`, a 2×2 block per tile (cut at an odd edge).
//!
//! The input gradient of such a convolution is one too (of the output gradient, with the kernels
//! turned half a circle and their channels swapped), so training's backward pass uses it as well;
//! the weight gradient stays im2col's (`conv.rs`).
//!
//! Tasks take bands of tile rows of one image, or several whole images side by side when the map
//! is small, spread over rayon's threads as the im2col tiles are (`conv.rs`). The transforms add and subtract a few values, so the result differs from the
//! direct sum by rounding only (tests: within 1e-5 of the largest output on random data).

use std::mem::MaybeUninit;

use multiversion::multiversion;
use rayon::prelude::*;

#[cfg(target_arch = "x86_64")]
use super::bf16::{self, PackedRhs};
use super::buffers::{Scratch, TileOutput, assume_written, scratch, with_scratch, zeroed};
use super::clamp::Epilogue;
use super::conv::TILE_FLOATS;
use super::conv_shape::{ConvShape, Pads};
use super::matmul::{Layout, PreparedLhs, matmul_prepared};
use super::precision;

mod kernels;

use kernels::{packed_kernels, transform_kernels};

/// Fewest input and output channels for which the transforms pay off: each product is
/// `[cout, cin] · [cin, tiles]`, so thin channels make thin products. The small MNIST CNN's second
/// layer (32 → 64 channels, 14×14) ran 15 % slower in training this way; ResNet's layers have 64
/// and more.
const MIN_CHANNELS: usize = 64;

/// One column of `e B` from a tile's pair of columns and the next tile's.
type PairRule = fn(&[f32], &[f32]) -> f32;

/// Tiles a product should have at least, when whole images fit (several images side by side).
const COLUMNS: usize = 512;

/// The 16 transformed positions of a 4×4 block.
const POSITIONS: usize = 16;

/// Whether `shape` is a convolution this file computes: a 3×3 kernel, stride 1, no dilation, one
/// cell of padding on every side, at least [`MIN_CHANNELS`] channels in and out.
pub fn applies(shape: &ConvShape) -> bool {
    let g = &shape.geometry;
    g.kernel == [3, 3]
        && g.stride == [1, 1]
        && g.dilation == [1, 1]
        && g.padding == Pads::uniform(1)
        && shape.cin >= MIN_CHANNELS
        && shape.cout >= MIN_CHANNELS
        && shape.input[0] >= 2
        && shape.input[1] >= 2
}

/// `y` `[batch, cout, h, w]`: the convolution of `x` `[batch, cin, h, w]` with `weight`
/// `[cout, cin, 3, 3]`, for a shape that [`applies`]; each band of a map passed through
/// `epilogue` (when given) as soon as its output transform has written it.
pub fn conv3x3(
    shape: &ConvShape,
    x: &[f32],
    weight: &[f32],
    epilogue: Option<&Epilogue>,
) -> Vec<f32> {
    convolve(shape, x, weight, None, epilogue)
}

/// [`conv3x3`], its products in bf16 when `bf16` says so (`None`: as `--precision` says).
fn convolve(
    shape: &ConvShape,
    x: &[f32],
    weight: &[f32],
    bf16: Option<bool>,
    epilogue: Option<&Epilogue>,
) -> Vec<f32> {
    assert!(
        applies(shape),
        "winograd: {shape:?} is not a 3×3 'same' stride-1 convolution"
    );
    let (cin, cout) = (shape.cin, shape.cout);
    let [h, w] = shape.input;
    let (th, tw) = (h.div_ceil(2), w.div_ceil(2));
    // Tile rows per band: the band's transformed input and products fit TILE_FLOATS. Small maps
    // put several whole images side by side, for products of about COLUMNS tiles.
    let per_tile = POSITIONS * (cin + cout);
    let rows = (TILE_FLOATS / (per_tile * tw)).clamp(1, th);
    let images = if rows == th {
        let threads = rayon::current_num_threads();
        (COLUMNS / (th * tw))
            .min(TILE_FLOATS / (per_tile * th * tw))
            .min(shape.batch.div_ceil(threads))
            .max(1)
    } else {
        1
    };
    let bands = th.div_ceil(rows);
    let groups = shape.batch.div_ceil(images);
    // Each U_ξ serves every task's product at position ξ: prepared (packed, in bf16) once.
    let typical = images.min(shape.batch) * rows * tw;
    let bf16 = bf16.unwrap_or_else(|| precision::bf16_product([cout, cin, typical]));
    let fp32_u: Vec<f32>;
    let u: Vec<PreparedLhs> = match packed_kernels(weight, [cout, cin], bf16) {
        Some(packed) => packed,
        None => {
            fp32_u = transform_kernels(weight, cout, cin);
            let u = fp32_u.par_chunks_exact(cout * cin);
            u.map(|u| PreparedLhs::new(u, [cout, cin], bf16)).collect()
        }
    };
    // Every value is written by `transform_output` (as `MaybeUninit`), band by band.
    let len = shape.batch * cout * h * w;
    let mut y: Vec<f32> = Vec::with_capacity(len);
    let out = TileOutput(y.as_mut_ptr());
    (0..groups * bands).into_par_iter().for_each(|task| {
        let (b0, t0) = (task / bands * images, task % bands * rows);
        let (b1, t1) = ((b0 + images).min(shape.batch), (t0 + rows).min(th));
        let band = (t1 - t0) * tw;
        let tiles = (b1 - b0) * band;
        let task = Task {
            images: [b0, b1],
            tile_rows: [t0, t1],
            band,
            tiles,
        };
        with_scratch(
            |Scratch {
                 col,
                 product,
                 dcol,
                 dy,
                 packed,
             }| {
                let padded = scratch(dcol, (2 * (t1 - t0) + 6) * (2 * tw + 2));
                let m = scratch(product, POSITIONS * cout * tiles);
                products(shape, x, &task, &u, m, padded, (col, packed, &mut *dy));
                let s = scratch(dy, 4 * tw);
                for b in b0..b1 {
                    let first = (b - b0) * band;
                    for o in 0..cout {
                        // SAFETY: this task alone writes output rows 2·t0 .. min(2·t1, h) of
                        // images b0..b1's maps, and the slice holds just those rows; each map
                        // lies inside `y`'s allocation (b < batch, o < cout).
                        let (y0, y1) = (2 * t0, (2 * t1).min(h));
                        let map = unsafe {
                            std::slice::from_raw_parts_mut(
                                out.at((b * cout + o) * h * w + y0 * w)
                                    .cast::<MaybeUninit<f32>>(),
                                (y1 - y0) * w,
                            )
                        };
                        transform_output(m, [o, cout, tiles, first], [t0, t1, tw], [h, w], map, s);
                        if let Some(epilogue) = epilogue {
                            // SAFETY: `transform_output` wrote every row of `map` in full.
                            epilogue.apply(o, unsafe { assume_written(map) });
                        }
                    }
                }
            },
        )
    });
    // SAFETY: the bands cover every tile row of every image's maps, and `transform_output`
    // writes each row of its band in full (both columns of every tile, and the odd last one).
    unsafe { y.set_len(len) };
    y
}

/// The tiles one task of [`conv3x3`] computes: tile rows `t0..t1` of images `b0..b1`, `band`
/// tiles per image, `tiles` in all, numbered image by image.
struct Task {
    images: [usize; 2],
    tile_rows: [usize; 2],
    band: usize,
    tiles: usize,
}

/// The 16 products `M_ξ = U_ξ · V_ξ` of one task into `m` `[16][cout, tiles]`, transforming its
/// input on the way: in bf16 straight into packed operands when `u` was packed so, else in fp32.
/// `buffers` are scratch: fp32 `V`, packed `V`, two channels' fp32 `V`.
fn products(
    shape: &ConvShape,
    x: &[f32],
    task: &Task,
    u: &[PreparedLhs],
    m: &mut [f32],
    padded: &mut [f32],
    (v, packed, pair): (&mut Vec<f32>, &mut Vec<u32>, &mut Vec<f32>),
) {
    let (cin, cout, tiles) = (shape.cin, shape.cout, task.tiles);
    #[cfg(target_arch = "x86_64")]
    if let Some(u) = u.iter().map(PreparedLhs::bf16).collect::<Option<Vec<_>>>() {
        let per = PackedRhs::len([cin, tiles]);
        let mut v: Vec<PackedRhs> = scratch(packed, POSITIONS * per)
            .chunks_exact_mut(per)
            .map(|buffer| PackedRhs::new(buffer, [cin, tiles]))
            .collect();
        // Two channels at a time, each transformed as a matrix of one row, then packed as pairs.
        let (even, odd) = scratch(pair, 2 * POSITIONS * tiles).split_at_mut(POSITIONS * tiles);
        for p in 0..cin.div_ceil(2) {
            let c1 = (2 * p + 1 < cin).then_some(2 * p + 1);
            transform_channel(shape, x, task, 2 * p, padded, even, [0, 1]);
            if let Some(c1) = c1 {
                transform_channel(shape, x, task, c1, padded, odd, [0, 1]);
            }
            for (xi, v) in v.iter_mut().enumerate() {
                let (even, odd) = (&even[xi * tiles..][..tiles], &odd[xi * tiles..][..tiles]);
                v.write_rows(p, even, c1.map(|_| odd));
            }
        }
        for (xi, (u, v)) in u.into_iter().zip(&v).enumerate() {
            let out = &mut m[xi * cout * tiles..][..cout * tiles];
            // SAFETY: `out` holds the cout rows of `tiles` floats, and is borrowed for the call.
            unsafe { bf16::matmul_packed(out.as_mut_ptr(), tiles, u, v, false) };
        }
        return;
    }
    let v = scratch(v, POSITIONS * cin * tiles);
    for c in 0..cin {
        transform_channel(shape, x, task, c, padded, v, [c, cin]);
    }
    for (xi, u) in u.iter().enumerate() {
        matmul_prepared(
            &mut m[xi * cout * tiles..][..cout * tiles],
            u,
            &v[xi * cin * tiles..][..cin * tiles],
            [cout, cin, tiles],
            Layout::SERIAL,
        );
    }
}

/// Channel `c`'s `V_ξ` for a task's tiles, into row `row` of the `rows` rows of each `V_ξ` in `v`
/// (`[16][rows, tiles]`).
fn transform_channel(
    shape: &ConvShape,
    x: &[f32],
    task: &Task,
    c: usize,
    padded: &mut [f32],
    v: &mut [f32],
    [row, rows]: [usize; 2],
) {
    let [h, w] = shape.input;
    let [b0, b1] = task.images;
    for b in b0..b1 {
        let plane = &x[(b * shape.cin + c) * h * w..][..h * w];
        let first = (b - b0) * task.band;
        let at = [row, rows, task.tiles, first];
        transform_input(plane, [h, w], task.tile_rows, padded, v, at);
    }
}

/// The input gradient `dx` `[batch, cin, h, w]` of a convolution that [`applies`], from its output
/// gradient `dy` `[batch, cout, h, w]`: itself a 3×3 'same' convolution, of `dy` with the kernels
/// turned half a circle and their channels swapped, `W'[c, o, y, x] = W[o, c, 2 − y, 2 − x]`.
pub fn input_gradient(shape: &ConvShape, weight: &[f32], dy: &[f32]) -> Vec<f32> {
    let (cin, cout) = (shape.cin, shape.cout);
    assert_eq!(
        weight.len(),
        cout * cin * 9,
        "winograd: {} weights are not [{cout}, {cin}, 3, 3]",
        weight.len()
    );
    let mut turned = zeroed(cin * cout * 9);
    // Written in order (kernel by kernel of the source, the writes went cout·9 floats apart), on
    // rayon's threads.
    let rows = turned.par_chunks_exact_mut(cout * 9).enumerate();
    rows.for_each(|(c, row)| {
        for (o, kernel) in row.chunks_exact_mut(9).enumerate() {
            let source = &weight[(o * cin + c) * 9..][..9];
            for (t, value) in kernel.iter_mut().enumerate() {
                *value = source[8 - t];
            }
        }
    });
    let swapped = ConvShape {
        cin: cout,
        cout: cin,
        ..*shape
    };
    conv3x3(&swapped, dy, &turned, None)
}

/// Writes `V_ξ[c, t]` for the tiles of tile rows `t0..t1` of one channel's `plane`, via a copy
/// of the input rows they read with the padding around them (`padded`, followed by room for the
/// four rows of `Bᵀ d`). Every step runs along a row of tiles, so it vectorises.
#[multiversion(targets = "simd")]
fn transform_input(
    plane: &[f32],
    [h, w]: [usize; 2],
    [t0, t1]: [usize; 2],
    padded: &mut [f32],
    v: &mut [f32],
    [c, cin, tiles, first]: [usize; 4],
) {
    let tw = w.div_ceil(2);
    let pw = 2 * tw + 2;
    let rows = 2 * (t1 - t0) + 2;
    let (padded, e) = padded.split_at_mut(rows * pw);
    // Padded row r is input row 2·t0 − 1 + r; column j is input column j − 1.
    for (r, row) in padded.chunks_exact_mut(pw).enumerate() {
        let y = (2 * t0 + r).wrapping_sub(1);
        row[0] = 0.0;
        if y < h {
            row[1..=w].copy_from_slice(&plane[y * w..][..w]);
            row[w + 1..].fill(0.0);
        } else {
            row[1..].fill(0.0);
        }
    }
    for ty in t0..t1 {
        let d = &padded[2 * (ty - t0) * pw..][..4 * pw];
        let (d0, d1, d2, d3) = (&d[..pw], &d[pw..2 * pw], &d[2 * pw..3 * pw], &d[3 * pw..]);
        // e = Bᵀ d, four padded rows.
        let (e0, rest) = e[..4 * pw].split_at_mut(pw);
        let (e1, rest) = rest.split_at_mut(pw);
        let (e2, e3) = rest.split_at_mut(pw);
        for q in 0..pw {
            let [a, b, cc, dd] = [d0[q], d1[q], d2[q], d3[q]];
            (e0[q], e1[q], e2[q], e3[q]) = (a - cc, b + cc, cc - b, b - dd);
        }
        let base = first + (ty - t0) * tw;
        for (i, e) in e[..4 * pw].chunks_exact(pw).enumerate() {
            // V[i][j] = (e B)[j] over the tile's columns 2·tx .. 2·tx + 3, from the pairs
            // (e[2t], e[2t + 1]) of tile tx (`a`) and tx + 1 (`b`).
            let out = |j: usize| ((i * 4 + j) * cin + c) * tiles + base;
            let pairs = || e.chunks_exact(2).zip(e[2..].chunks_exact(2));
            let rule: [PairRule; 4] = [
                |a, b| a[0] - b[0],
                |a, b| a[1] + b[0],
                |a, b| b[0] - a[1],
                |a, b| a[1] - b[1],
            ];
            for (j, rule) in rule.into_iter().enumerate() {
                for (v, (a, b)) in v[out(j)..][..tw].iter_mut().zip(pairs()) {
                    *v = rule(a, b);
                }
            }
        }
    }
}

/// Output map `o`'s rows `2·t0 .. min(2·t1, h)` from the products `M_ξ[o, t]`: `Y = Aᵀ M A` per
/// tile, along a row of tiles at a time.
#[multiversion(targets = "simd")]
fn transform_output(
    m: &[f32],
    [o, cout, tiles, first]: [usize; 4],
    [t0, t1, tw]: [usize; 3],
    [h, w]: [usize; 2],
    map: &mut [MaybeUninit<f32>],
    s: &mut [f32],
) {
    // `map` holds the output rows 2·t0 .. of the map (those of tiles t0..t1).
    let full = w / 2; // tiles whose two columns are both inside
    for ty in t0..t1 {
        let base = first + (ty - t0) * tw;
        let mm = |xi: usize| &m[(xi * cout + o) * tiles + base..][..tw];
        for r in 0..2 {
            let y = 2 * ty + r;
            if y >= h {
                break;
            }
            // s = row r of Aᵀ M: M_j + (M_4+j + M_8+j), or M_4+j − (M_8+j + M_12+j).
            let (k, sign) = if r == 0 { (0, 1.0) } else { (4, -1.0) };
            for (j, s) in s.chunks_exact_mut(tw).enumerate() {
                let (p, q, z) = (mm(k + j), mm(k + 4 + j), mm(k + 8 + j));
                for (s, ((p, q), z)) in s.iter_mut().zip(p.iter().zip(q).zip(z)) {
                    *s = p + sign * (q + z);
                }
            }
            // Y row = s A: (s0 + s1 + s2, s1 − s2 − s3) per tile.
            let (s0, rest) = s.split_at(tw);
            let (s1, rest) = rest.split_at(tw);
            let (s2, s3) = rest.split_at(tw);
            let row = &mut map[(y - 2 * t0) * w..][..w];
            let columns = s0.iter().zip(s1).zip(s2).zip(s3);
            for (pair, (((s0, s1), s2), s3)) in row[..2 * full].chunks_exact_mut(2).zip(columns) {
                pair[0].write(s0 + s1 + s2);
                pair[1].write(s1 - s2 - s3);
            }
            if w % 2 == 1 {
                row[w - 1].write(s0[full] + s1[full] + s2[full]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::conv::{Grouping, conv_backward, conv_forward};
    use super::super::conv_shape::ConvGeometry;
    use super::*;

    /// A 3×3 convolution of `batch` `[cin, h, w]` images into `cout` maps.
    fn shape(
        batch: usize,
        [cin, cout]: [usize; 2],
        input: [usize; 2],
        stride: usize,
        padding: usize,
    ) -> ConvShape {
        ConvShape {
            batch,
            cin,
            input,
            cout,
            geometry: ConvGeometry {
                kernel: [3, 3],
                stride: [stride; 2],
                padding: Pads::uniform(padding),
                dilation: [1, 1],
            },
        }
    }

    /// `len` values in [−1, 1): `(i · step) mod modulus`, scaled.
    fn pattern(len: usize, step: usize, modulus: usize) -> Vec<f32> {
        let half = modulus as f32 / 2.0;
        (0..len)
            .map(|i| ((i * step) % modulus) as f32 / half - 1.0)
            .collect()
    }

    /// Within 1e-5 of the largest magnitude in `want`.
    fn assert_close(got: &[f32], want: &[f32], what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: size");
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
        for (i, (a, b)) in got.iter().zip(want).enumerate() {
            assert!(
                (a - b).abs() <= 1e-5 * scale,
                "{what}: [{i}] is {a}, directly {b}"
            );
        }
    }

    /// A 'same' 3×3 convolution of patterned images and kernels, and its direct (im2col) output.
    fn case(
        batch: usize,
        channels: [usize; 2],
        input: [usize; 2],
    ) -> (ConvShape, Vec<f32>, Vec<f32>, Vec<f32>) {
        let shape = shape(batch, channels, input, 1, 1);
        let x = pattern(batch * channels[0] * input[0] * input[1], 7919, 61);
        let weight = pattern(channels[1] * channels[0] * 9, 104729, 53);
        let batched = Grouping::Batched {
            max_columns: 1 << 22,
        };
        let want = conv_forward(&shape, &x, &weight, batched, None);
        (shape, x, weight, want)
    }

    #[test]
    fn the_same_outputs_as_the_direct_convolution_on_odd_and_even_sides() {
        assert!(applies(&shape(1, [64, 64], [8, 8], 1, 1)));
        assert!(!applies(&shape(1, [32, 64], [8, 8], 1, 1)), "thin");
        assert!(!applies(&shape(1, [64, 64], [8, 8], 2, 1)), "strided");
        assert!(!applies(&shape(1, [64, 64], [8, 8], 1, 0)), "unpadded");
        for (batch, channels, input) in [
            // Several images per product (and a group of one), odd sides.
            (3, [64, 64], [7, 9]),
            (2, [65, 70], [8, 8]),
            (1, [64, 64], [2, 3]),
            // Bands of tile rows, the last one shorter.
            (1, [64, 64], [99, 64]),
        ] {
            let (shape, x, weight, want) = case(batch, channels, input);
            assert_close(
                &conv3x3(&shape, &x, &weight, None),
                &want,
                &format!("{shape:?}"),
            );
        }
    }

    #[test]
    #[ignore = "needs AVX512-BF16: cargo test -- --ignored runs it"]
    fn in_bf16_the_outputs_stay_within_the_operands_rounding_of_the_direct_convolution() {
        assert!(
            super::super::bf16::available(),
            "this CPU has no AVX512-BF16: the bf16 Winograd test cannot run here"
        );
        // An odd channel count (a last pair of one channel), several images per product, and
        // bands of tile rows with a shorter last one.
        for (batch, channels, input) in [(3, [65, 70], [7, 9]), (1, [64, 96], [99, 64])] {
            let (shape, x, weight, want) = case(batch, channels, input);
            let got = convolve(&shape, &x, &weight, Some(true), None);
            assert_ne!(
                got,
                convolve(&shape, &x, &weight, Some(false), None),
                "{shape:?}: the bf16 products were not taken"
            );
            // Operands off by 2⁻⁹ each, so each product by 2⁻⁸ of itself; the transformed values
            // are sums of up to 16 inputs, of which an output is a difference: against the largest
            // output, the worst error is a few times 2⁻⁸ (0.56 % here), the mean less (0.12 %:
            // these periodic values round alike, so their errors cancel less than random ones').
            // The result is bit for bit the bf16 product of the fp32 transforms (checked once).
            let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
            let errors: Vec<f32> = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).collect();
            let worst = errors.iter().fold(0f32, |m, &e| m.max(e));
            let mean = errors.iter().sum::<f32>() / errors.len() as f32;
            assert!(
                worst <= scale / 64.0 && mean <= scale / 256.0,
                "{shape:?}: off by {worst} at worst, {mean} on average (largest output {scale})"
            );
        }
    }

    #[test]
    fn the_input_gradient_matches_the_direct_backward_pass() {
        let shape = shape(3, [64, 72], [9, 6], 1, 1);
        let x = pattern(3 * 64 * 9 * 6, 1, 17);
        let weight = pattern(72 * 64 * 9, 31, 23);
        let dy = pattern(3 * 72 * 9 * 6, 7, 19);
        let batched = Grouping::Batched {
            max_columns: 1 << 22,
        };
        let (want, _) = conv_backward(&shape, &x, &weight, &dy, [true, false], batched);
        assert_close(&input_gradient(&shape, &weight, &dy), &want.unwrap(), "dx");
    }
}
