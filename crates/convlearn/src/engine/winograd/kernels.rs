//! The kernels' side of Winograd's F(2×2, 3×3): each 3×3 kernel `g` as `U = G g Gᵀ`, the 16
//! matrices `U_ξ` `[cout, cin]` in fp32, or packed as bf16 pairs for their products straight from
//! the transform.

use std::mem::MaybeUninit;

use multiversion::multiversion;
use rayon::prelude::*;

#[cfg(target_arch = "x86_64")]
use super::super::bf16;
use super::super::buffers::TileOutput;
use super::super::matmul::PreparedLhs;
use super::POSITIONS;

/// `U_ξ[o, c]`: each 3×3 kernel `g` as `G g Gᵀ`, blocks of kernels on rayon's threads (on one,
/// it was a twelfth of ResNet-18's inference, the other thread waiting).
pub(super) fn transform_kernels(weight: &[f32], cout: usize, cin: usize) -> Vec<f32> {
    let kernels = cout * cin;
    // Every value is written below, block by block (zeroing these 16 matrices first cost ResNet-18
    // inference about a tenth of its time).
    let len = POSITIONS * kernels;
    let mut u: Vec<f32> = Vec::with_capacity(len);
    let cells = TileOutput(u.as_mut_ptr());
    for_each_kernel_block(weight, cout, cin, |start, block| {
        for (xi, values) in block.into_iter().enumerate() {
            // SAFETY: this block alone writes cells ξ·kernels + start .. + values.len() of position
            // ξ, inside `u`'s capacity of 16·kernels.
            let run = unsafe {
                std::slice::from_raw_parts_mut(
                    cells.at(xi * kernels + start).cast::<MaybeUninit<f32>>(),
                    values.len(),
                )
            };
            for (cell, &v) in run.iter_mut().zip(values) {
                cell.write(v);
            }
        }
    });
    // SAFETY: the blocks cover every kernel `start..end` for each of the 16 positions.
    unsafe { u.set_len(len) };
    u
}

/// The 16 `U_ξ` packed as bf16 pairs for their products, straight from the transform (the fp32
/// matrices are never written), when `bf16` and this CPU runs such products and `cin` is even
/// (so no pair straddles two rows); `None` otherwise.
#[cfg(target_arch = "x86_64")]
pub(super) fn packed_kernels(
    weight: &[f32],
    [cout, cin]: [usize; 2],
    bf16: bool,
) -> Option<Vec<PreparedLhs<'static>>> {
    if !bf16 || cin % 2 == 1 || !bf16::available() {
        return None;
    }
    let pairs = cout * cin / 2;
    let len = bf16::PackedLhs::len([cout, cin]);
    let mut u: Vec<Vec<u32>> = (0..POSITIONS).map(|_| Vec::with_capacity(len)).collect();
    let cells: Vec<TileOutput<u32>> = u.iter_mut().map(|u| TileOutput(u.as_mut_ptr())).collect();
    for_each_kernel_block(weight, cout, cin, |start, block| {
        for (cells, values) in cells.iter().zip(block) {
            // SAFETY: this block alone writes pairs start / 2 .. of each position (`start` and the
            // block's length are even), inside the capacity of `len` ≥ pairs.
            let run =
                unsafe { std::slice::from_raw_parts_mut(cells.at(start / 2), values.len() / 2) };
            bf16::to_pairs(values, run);
        }
    });
    let packed = u.into_iter().map(|mut u| {
        // SAFETY: the blocks wrote the first `pairs`; the padding rows are written here.
        unsafe { u.set_len(pairs) };
        u.resize(len, 0);
        PreparedLhs::Bf16(bf16::PackedLhs::from_pairs(u, [cout, cin]))
    });
    Some(packed.collect())
}

#[cfg(not(target_arch = "x86_64"))]
pub(super) fn packed_kernels(
    _: &[f32],
    _: [usize; 2],
    _: bool,
) -> Option<Vec<PreparedLhs<'static>>> {
    None
}

/// Runs `emit(start, block)` on rayon's threads for each block of kernels `start ..` of
/// `weight` `[cout, cin, 3, 3]`, `block[ξ]` holding their values of `U_ξ` (blocks of
/// [`KERNEL_BLOCK`], an even number).
fn for_each_kernel_block(
    weight: &[f32],
    cout: usize,
    cin: usize,
    emit: impl Fn(usize, [&[f32]; POSITIONS]) + Sync,
) {
    assert_eq!(
        weight.len(),
        cout * cin * 9,
        "winograd: {} weights are not [{cout}, {cin}, 3, 3]",
        weight.len()
    );
    let kernels = cout * cin;
    (0..kernels.div_ceil(KERNEL_BLOCK))
        .into_par_iter()
        .for_each(|block| {
            let start = block * KERNEL_BLOCK;
            let end = (start + KERNEL_BLOCK).min(kernels);
            let mut values = [[0f32; KERNEL_BLOCK]; POSITIONS];
            transform_kernel_block(&weight[start * 9..end * 9], &mut values);
            emit(start, std::array::from_fn(|xi| &values[xi][..end - start]));
        });
}

/// Kernels per block of [`for_each_kernel_block`] (even, so a block holds whole bf16 pairs).
const KERNEL_BLOCK: usize = 256;

/// The kernels `weight` (up to [`KERNEL_BLOCK`] of them, 9 values each) transformed, position ξ's
/// values into `block[ξ]`: a local buffer, so that each of the 16 matrices is then written in runs
/// (written kernel by kernel, the 16 stores a kernel went to 16 pages: a sixth of the inference
/// time).
#[multiversion(targets = "simd")]
fn transform_kernel_block(weight: &[f32], block: &mut [[f32; KERNEL_BLOCK]; POSITIONS]) {
    // G·(a, b, c) for a column (a, b, c).
    let g = |a: f32, b: f32, c: f32| [a, 0.5 * (a + b + c), 0.5 * (a - b + c), c];
    for (n, k) in weight.chunks_exact(9).enumerate() {
        // t = G g (4×3), column by column; then row i of t Gᵀ.
        let columns: [[f32; 4]; 3] = std::array::from_fn(|j| g(k[j], k[3 + j], k[6 + j]));
        for i in 0..4 {
            let row = g(columns[0][i], columns[1][i], columns[2][i]);
            for (j, value) in row.into_iter().enumerate() {
                block[i * 4 + j][n] = value;
            }
        }
    }
}
