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
//! The convolution's shape and im2col layout are in `conv_shape`, the matrix products in `matmul`
//! and the buffers in `buffers` (Winograd uses them too). The file stays whole (about 430 lines of
//! code, the rest tests): the forward and backward passes share the two groupings' layouts.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::buffers::{Scratch, TileOutput, scratch, with_scratch, zeroed};
use super::clamp::Epilogue;
use super::conv_shape::ConvShape;
use super::matmul::{Layout, PreparedLhs, matmul, matmul_prepared_rows, matmul_rows, transpose};
use super::precision;

/// The most floats one group's im2col matrix may hold (16 MiB): bounds the extra memory and
/// keeps enough images together for a wide product.
const MAX_COLUMNS: usize = 4 << 20;

/// Floats a parallel layout copy hands one task at least.
const MIN_COPY: usize = 1 << 14;

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
    /// time when its output is `WIDE`), each product spread over the threads.
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

/// `y` `[batch, cout, oh, ow]` = the convolution of `x` `[batch, cin, h, w]` with `weight`
/// `[cout, cin, kh, kw]` (no bias), passed through `epilogue` when given: each tile as soon as
/// its product has written it; images side by side in one pass after their products.
pub fn conv_forward(
    shape: &ConvShape,
    x: &[f32],
    weight: &[f32],
    grouping: Grouping,
    epilogue: Option<&Epilogue>,
) -> Vec<f32> {
    let (k, p, cout) = (shape.k(), shape.p(), shape.cout);
    let len = shape.batch * cout * p;
    let max_columns = match grouping {
        Grouping::Tiles { rows } => {
            let mut y = Vec::with_capacity(len);
            let cells = &mut y.spare_capacity_mut()[..len];
            forward_tiles(shape, x, weight, rows, cells, epilogue);
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
    if let Some(epilogue) = epilogue {
        // One pass after the products, outside the scratch buffers: a nested parallel pass
        // inside them can hand this thread a task that then needs scratch of its own.
        y.par_chunks_mut(p.max(1))
            .with_min_len(MIN_COPY.div_ceil(p.max(1)))
            .enumerate()
            .for_each(|(map, values)| epilogue.apply(map % cout, values));
    }
    y
}

/// [`conv_forward`] for [`Grouping::Tiles`] of `rows` output rows, into `y`, every value of which
/// is written (through raw pointers only, by gemm, which does not read its destination here: `y`
/// may be unwritten memory), each tile then passed through `epilogue` when given.
fn forward_tiles(
    shape: &ConvShape,
    x: &[f32],
    weight: &[f32],
    rows: usize,
    y: &mut [MaybeUninit<f32>],
    epilogue: Option<&Epilogue>,
) {
    let (k, p, cout) = (shape.k(), shape.p(), shape.cout);
    let [oh, ow] = shape.output();
    assert!(rows > 0, "conv: tiles of 0 output rows (Grouping::Tiles)");
    let bands = oh.div_ceil(rows);
    assert!(y.len() >= shape.batch * cout * p, "conv: output size");
    let out = TileOutput(y.as_mut_ptr().cast::<f32>());
    // The kernels serve every tile's product: prepared (packed, in bf16) once.
    let bf16 = precision::bf16_product([cout, k, rows * ow]);
    let weight = PreparedLhs::new(weight, [cout, k], bf16);
    (0..shape.batch * bands).into_par_iter().for_each(|tile| {
        let (b, r0) = (tile / bands, tile % bands * rows);
        let r1 = (r0 + rows).min(oh);
        with_scratch(|Scratch { col, .. }| {
            let col = shape.column_matrix(x, (b, b + 1), [r0, r1], col, false);
            // SAFETY: this tile writes rows r0..r1 of image b's `cout` output maps — `cout` runs
            // of (r1 − r0)·ow floats, p apart, from (b·cout·p + r0·ow) — and no other tile writes
            // them; the last one ends at (b + 1)·cout·p − (oh − r1)·ow ≤ y.len() (asserted).
            unsafe {
                matmul_prepared_rows(
                    out.at(b * cout * p + r0 * ow),
                    p,
                    &weight,
                    col,
                    [cout, k, (r1 - r0) * ow],
                    Layout::SERIAL,
                )
            }
        });
        if let Some(epilogue) = epilogue {
            for o in 0..cout {
                // SAFETY: the product above wrote this run — rows r0..r1 of image b's map o —
                // which this tile alone touches (see above).
                let run = unsafe {
                    std::slice::from_raw_parts_mut(
                        out.at(b * cout * p + o * p + r0 * ow),
                        (r1 - r0) * ow,
                    )
                };
                epilogue.apply(o, run);
            }
        }
    });
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

#[cfg(test)]
mod tests {
    use super::super::conv_shape::{ConvGeometry, Pads};
    use super::*;

    const BATCHED: Grouping = Grouping::BATCHED;

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
                padding: Pads::NONE,
                dilation: [1, 1],
            },
        };
        // y = x[i][j] − x[i+1][j+1] = −4 everywhere.
        assert_eq!(
            conv_forward(&shape, &x, &weight, BATCHED, None),
            vec![-4.0; 4]
        );
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
                padding: Pads::uniform(1),
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
                padding: Pads {
                    top: 1,
                    bottom: 1,
                    left: 0,
                    right: 2,
                },
                dilation: [1, 1],
            },
            // 'same': im2col copies and col2im adds whole blocks (of a band, for a tile)
            ConvGeometry {
                kernel: [3, 3],
                stride: [1, 1],
                padding: Pads::uniform(1),
                dilation: [1, 1],
            },
            ConvGeometry {
                kernel: [1, 1],
                stride: [1, 1],
                padding: Pads::NONE,
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
                conv_forward(&shape, &x, &weight, BATCHED, None),
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
                let y = conv_forward(&shape, &x, &weight, grouping, None);
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
