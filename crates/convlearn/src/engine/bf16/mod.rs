//! Matrix products with bf16 operands and fp32 sums on AVX512-BF16 (`vdpbf16ps`): what
//! `--precision bf16` runs for the engine's large products.
//!
//! `vdpbf16ps` multiplies 32 pairs of bf16 values and adds each pair's two products to one of 16
//! fp32 sums, so the inner dimension `k` is taken two at a time: the operands are packed as
//! pairs of neighbours along `k`, rounded from fp32 to bf16 (to nearest, ties to even) as they
//! are packed, 16 values per instruction, and the odd last `k` paired with a zero.
//!
//! - `lhs` is packed whole, as `[m][k / 2]` pairs (stored `[m, k]`: each row converted in place)
//!   or `[k / 2][m]` (stored transposed: two rows interleaved); each pair is broadcast to all 16
//!   lanes;
//! - `rhs` one panel of [`COLUMNS`] columns at a time, as `[k / 2][COLUMNS]` pairs, two vectors
//!   per step;
//! - a block of [`ROWS`] rows × a panel is 16 registers of fp32 sums over all of `k`, then
//!   written (or added) to the destination, masked at the edges. Rows past `m` and columns past
//!   `n` are packed as zeros and never written.
//!
//! An operand that serves many products is packed once instead ([`PackedLhs`]: a convolution's
//! kernels), or by its producer ([`PackedRhs`]: the Winograd input transform); `pack.rs` packs.
//!
//! The sums are fp32 sums of exact products of the rounded operands (a product of two bf16
//! values is exact in fp32), so the result differs from the fp32 product by the operands'
//! rounding: at most 2⁻⁹ of each operand.

use std::arch::x86_64::*;
use std::cell::RefCell;

use rayon::prelude::*;

use super::matmul::Layout;

mod pack;

#[cfg(test)]
use pack::to_bf16;
pub(super) use pack::{PackedLhs, PackedRhs, to_pairs};
use pack::{pack_lhs, pack_rhs_panel};

/// Rows of `lhs` (and of the destination) per block.
const ROWS: usize = 8;
/// Columns of `rhs` (and of the destination) per panel: two vectors of 16.
const COLUMNS: usize = 32;

thread_local! {
    /// The packed panel of `rhs` this thread works on, and a row of pairs for transposed `rhs`.
    static PANEL: RefCell<(Vec<u32>, Vec<u32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Whether this CPU runs [`matmul_rows`] (AVX512-BF16 and the AVX-512 it builds on).
pub(super) fn available() -> bool {
    is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512bf16")
}

/// The destination rows, shared by the tasks that write disjoint blocks of them.
#[derive(Clone, Copy)]
struct Destination(*mut f32);

// SAFETY: each task writes its own blocks (distinct rows × columns), see `matmul_rows`.
unsafe impl Send for Destination {}
unsafe impl Sync for Destination {}

impl Destination {
    /// The cell `offset` floats from the first row's start.
    fn at(self, offset: usize) -> *mut f32 {
        self.0.wrapping_add(offset)
    }
}

/// [`super::matmul::matmul_rows`] with bf16 operands and fp32 sums: `dst[m, n] (+)= lhs · rhs`,
/// the operands stored as `layout` says, `dst`'s rows `dst_row_stride` floats apart.
///
/// # Safety
/// As [`super::matmul::matmul_rows`]: the `m` destination rows must be valid for reads and writes
/// and touched by nothing else during the call; and [`available`] must be true.
pub(super) unsafe fn matmul_rows(
    dst: *mut f32,
    dst_row_stride: usize,
    lhs: &[f32],
    rhs: &[f32],
    [m, k, n]: [usize; 3],
    layout: Layout,
) {
    assert!(lhs.len() >= m * k, "matmul: operand sizes");
    // SAFETY: `available` (the caller's contract).
    let lhs = unsafe { pack_lhs(lhs, [m, k], layout.lhs_transposed) };
    // SAFETY: the caller's contract.
    unsafe { matmul_packed_rows(dst, dst_row_stride, &lhs, rhs, n, layout) }
}

/// [`matmul_rows`] with `lhs` packed beforehand: `dst[m, n] (+)= lhs · rhs`, `[m, k]` being the
/// packed operand's shape (`layout.lhs_transposed` is how it was stored, and not read here).
///
/// # Safety
/// As [`matmul_rows`].
pub(super) unsafe fn matmul_packed_rows(
    dst: *mut f32,
    dst_row_stride: usize,
    lhs: &PackedLhs,
    rhs: &[f32],
    n: usize,
    layout: Layout,
) {
    let [m, k] = lhs.shape;
    assert!(rhs.len() >= k * n, "matmul: operand sizes");
    let blocks = m.div_ceil(ROWS);
    let panels = n.div_ceil(COLUMNS);
    let dst = Destination(dst);
    let run = |panel: usize, block_range: std::ops::Range<usize>| {
        PANEL.with(|cell| {
            let (buffer, row) = &mut *cell.borrow_mut();
            let j0 = panel * COLUMNS;
            let columns = COLUMNS.min(n - j0);
            // SAFETY: `available` (the caller's contract).
            unsafe { pack_rhs_panel(rhs, [k, n], j0, layout.rhs_transposed, buffer, row) };
            // SAFETY: the blocks' rows and the panel's columns are this task's alone; `available`
            // was checked by the caller.
            unsafe {
                panel_product(
                    lhs,
                    buffer,
                    [j0, columns],
                    block_range,
                    dst.at(0),
                    dst_row_stride,
                    layout.accumulate,
                )
            }
        })
    };
    let parallel = !layout.serial && m * n * k >= super::matmul::PARALLEL_MACS;
    if !parallel {
        for panel in 0..panels {
            run(panel, 0..blocks);
        }
        return;
    }
    // Few panels (a short, tall product): the blocks are split too, each part packing its panel.
    let parts = if panels >= 4 * rayon::current_num_threads() {
        1
    } else {
        blocks.min(8)
    };
    let per_part = blocks.div_ceil(parts);
    (0..panels * parts).into_par_iter().for_each(|task| {
        let (panel, part) = (task / parts, task % parts);
        let first = part * per_part;
        run(panel, first..(first + per_part).min(blocks));
    });
}

/// `dst[m, n] (+)= lhs · rhs` on the calling thread, both operands packed, `dst`'s rows
/// `dst_row_stride` floats apart.
///
/// # Safety
/// The `m` destination rows must be valid for reads and writes and touched by nothing else during
/// the call.
pub(super) unsafe fn matmul_packed(
    dst: *mut f32,
    dst_row_stride: usize,
    lhs: &PackedLhs,
    rhs: &PackedRhs,
    accumulate: bool,
) {
    let ([m, k], [rhs_k, n]) = (lhs.shape, rhs.shape);
    assert_eq!(k, rhs_k, "matmul: the packed operands' inner sizes");
    let blocks = m.div_ceil(ROWS);
    for (panel, b) in rhs.panels.chunks_exact(k.div_ceil(2) * COLUMNS).enumerate() {
        let j0 = panel * COLUMNS;
        let columns = [j0, COLUMNS.min(n - j0)];
        // SAFETY: the caller's destination; both operands exist only where `available` is true.
        unsafe { panel_product(lhs, b, columns, 0..blocks, dst, dst_row_stride, accumulate) }
    }
}

/// The blocks `blocks` of packed `lhs` times one packed panel `b` of `rhs` (its columns `j0 ..
/// j0 + columns` of the product), into the destination's rows from `dst`, `dst_row_stride`
/// floats apart.
///
/// # Safety
/// Those blocks' rows (below `m`) and the panel's columns of the destination must be valid for
/// reads and writes and touched by nothing else during the call; [`available`] must be true.
unsafe fn panel_product(
    lhs: &PackedLhs,
    b: &[u32],
    [j0, columns]: [usize; 2],
    blocks: std::ops::Range<usize>,
    dst: *mut f32,
    dst_row_stride: usize,
    accumulate: bool,
) {
    let [m, k] = lhs.shape;
    for block in blocks {
        let i0 = block * ROWS;
        // SAFETY: the block's rows i0.. (at most ROWS, below m) and the panel's columns are the
        // caller's (its contract); the packed block lies inside `lhs.pairs` (rows padded to whole
        // blocks).
        unsafe {
            block_product(
                lhs.pairs.as_ptr().add(i0 * lhs.row_step),
                [lhs.row_step, lhs.pair_step],
                b,
                k.div_ceil(2),
                dst.wrapping_add(i0 * dst_row_stride + j0),
                dst_row_stride,
                [ROWS.min(m - i0), columns],
                accumulate,
            )
        }
    }
}

/// `c[rows, columns] (+)= a · b` for one block of packed `lhs` (pair `p` of row `r` at
/// `a[r · steps[0] + p · steps[1]]`) and one packed panel of `rhs` (`[pairs][COLUMNS]`), `c`'s rows
/// `stride` floats apart.
///
/// # Safety
/// `a` must hold [`ROWS`] rows of `pairs` pairs at those steps; `c` must hold `rows` rows of
/// `columns` floats, `stride` apart, for reads and writes; AVX512-BF16 must be present.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn block_product(
    a: *const u32,
    [row_step, pair_step]: [usize; 2],
    b: &[u32],
    pairs: usize,
    c: *mut f32,
    stride: usize,
    [rows, columns]: [usize; 2],
    accumulate: bool,
) {
    assert!(b.len() >= pairs * COLUMNS);
    let mut sums = [[_mm512_setzero_ps(); 2]; ROWS];
    let b = b.as_ptr();
    for p in 0..pairs {
        // SAFETY: p < pairs, inside both packed operands (the contract and the assert above).
        unsafe {
            let b0: __m512bh = std::mem::transmute(_mm512_loadu_si512(b.add(p * COLUMNS).cast()));
            let b1: __m512bh =
                std::mem::transmute(_mm512_loadu_si512(b.add(p * COLUMNS + 16).cast()));
            let a = a.add(p * pair_step);
            for (r, sum) in sums.iter_mut().enumerate() {
                let lane: __m512bh =
                    std::mem::transmute(_mm512_set1_epi32(*a.add(r * row_step) as i32));
                sum[0] = _mm512_dpbf16_ps(sum[0], lane, b0);
                sum[1] = _mm512_dpbf16_ps(sum[1], lane, b1);
            }
        }
    }
    let masks = [
        lane_mask(columns.min(16)),
        lane_mask(columns.saturating_sub(16)),
    ];
    for (r, sum) in sums.iter().enumerate().take(rows) {
        for (half, (&v, &mask)) in sum.iter().zip(&masks).enumerate() {
            if mask == 0 {
                continue;
            }
            // SAFETY: row r < rows and the masked lanes are columns < `columns` (the contract).
            unsafe {
                let at = c.add(r * stride + 16 * half);
                let v = if accumulate {
                    _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, at))
                } else {
                    v
                };
                _mm512_mask_storeu_ps(at, mask, v);
            }
        }
    }
}

/// The mask of the first `lanes` of 16.
fn lane_mask(lanes: usize) -> __mmask16 {
    ((1u32 << lanes) - 1) as __mmask16
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tests below need the instructions; on a CPU without them `cargo test -- --ignored`
    /// fails here rather than passing without checking anything.
    fn require_bf16() {
        assert!(
            available(),
            "this CPU has no AVX512-BF16: the bf16 product tests cannot run here"
        );
    }

    /// Deterministic values of mixed sign and magnitude (several binades, exact zeros).
    fn values(len: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..len)
            .map(|i| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                if i % 11 == 5 {
                    0.0
                } else {
                    ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * (1 << (s % 5)) as f32
                }
            })
            .collect()
    }

    fn bf16_value(x: f32) -> f64 {
        f32::from_bits((to_bf16(x) as u32) << 16) as f64
    }

    #[test]
    fn rounding_is_to_nearest_even_as_the_half_crate_rounds() {
        for x in values(10_000, 3).into_iter().chain([
            1.0 + 1.0 / 256.0,
            1.0 + 3.0 / 256.0,
            -2.5e-3,
            65504.0,
            f32::MAX,
        ]) {
            assert_eq!(to_bf16(x), half::bf16::from_f32(x).to_bits(), "{x:e}");
        }
        // 1 + 2⁻⁸ is halfway between 1 and 1 + 2⁻⁷: ties go to the even one, 1.
        assert_eq!(to_bf16(1.0 + 1.0 / 256.0), 0x3f80);
        assert_eq!(to_bf16(f32::NAN) & 0x7fc0, 0x7fc0);
        assert_eq!(
            to_bf16(1e-40),
            0,
            "denormal inputs are zero, as vcvtne2ps2bf16 takes them"
        );
        assert_eq!(to_bf16(-1e-40), 0x8000);
    }

    /// Runs the bf16 product for one shape and layout and checks every value against the f64 sum
    /// of the rounded operands' products, within fp32 summation error.
    fn check([m, k, n]: [usize; 3], layout: Layout, stride: usize) {
        let lhs = values(m * k, (m * 31 + k) as u64);
        let rhs = values(k * n, (n * 17 + k) as u64);
        let before = values(m * stride, 99);
        let mut dst = before.clone();
        // SAFETY: `dst` holds m rows of `stride` ≥ n floats; `available` was checked.
        unsafe { matmul_rows(dst.as_mut_ptr(), stride, &lhs, &rhs, [m, k, n], layout) };
        for i in 0..m {
            for j in 0..stride {
                let got = dst[i * stride + j];
                if j >= n {
                    assert_eq!(
                        got,
                        before[i * stride + j],
                        "wrote past column n at ({i}, {j})"
                    );
                    continue;
                }
                let (mut sum, mut size) = (0f64, 0f64);
                for c in 0..k {
                    let a = if layout.lhs_transposed {
                        lhs[c * m + i]
                    } else {
                        lhs[i * k + c]
                    };
                    let b = if layout.rhs_transposed {
                        rhs[j * k + c]
                    } else {
                        rhs[c * n + j]
                    };
                    let term = bf16_value(a) * bf16_value(b);
                    sum += term;
                    size += term.abs();
                }
                if layout.accumulate {
                    sum += before[i * stride + j] as f64;
                    size += before[i * stride + j].abs() as f64;
                }
                let tol = 1e-6 * (k as f64 + 2.0) * size.max(1e-30);
                assert!(
                    (got as f64 - sum).abs() <= tol,
                    "[{m}, {k}, {n}] at ({i}, {j}): {got} against {sum} (tolerance {tol:e})"
                );
            }
        }
    }

    #[test]
    #[ignore = "needs AVX512-BF16: cargo test -- --ignored runs it"]
    fn every_edge_of_the_blocks_and_panels_against_an_f64_reference() {
        require_bf16();
        let layouts = |serial| {
            (0..8).map(move |bits| Layout {
                lhs_transposed: bits & 1 != 0,
                rhs_transposed: bits & 2 != 0,
                accumulate: bits & 4 != 0,
                serial,
            })
        };
        for m in [1, 7, 8, 9, 17] {
            for k in [1, 2, 3, 16, 31, 33] {
                for n in [1, 15, 31, 32, 33, 65] {
                    for layout in layouts(true) {
                        check([m, k, n], layout, n);
                    }
                }
            }
        }
        // Rows further apart than n, and products large enough to split across threads, both
        // the many-panel way and the few-panels-many-blocks way.
        check([9, 40, 33], Layout::SERIAL, 40);
        for layout in layouts(false) {
            check([64, 288, 1000], layout, 1000);
            check([300, 600, 40], layout, 40);
        }
    }

    #[test]
    #[ignore = "needs AVX512-BF16: cargo test -- --ignored runs it"]
    fn both_ways_of_packing_rhs_equal_a_scalar_packing() {
        require_bf16();
        for k in [1, 2, 5, 64] {
            let n = 70;
            let rhs = values(k * n, k as u64);
            let mut transposed = vec![0f32; k * n];
            super::super::matmul::transpose(&rhs, &mut transposed, [k, n]);
            for j0 in [3, 64] {
                let (mut direct, mut spread, mut row) = (Vec::new(), Vec::new(), Vec::new());
                // SAFETY: `available` was checked.
                unsafe {
                    pack_rhs_panel(&rhs, [k, n], j0, false, &mut direct, &mut row);
                    pack_rhs_panel(&transposed, [k, n], j0, true, &mut spread, &mut row);
                }
                let scalar: Vec<u32> = (0..k.div_ceil(2) * COLUMNS)
                    .map(|i| {
                        let (p, j) = (i / COLUMNS, i % COLUMNS);
                        let at = |r: usize| {
                            if r < k && j0 + j < n {
                                rhs[r * n + j0 + j]
                            } else {
                                0.0
                            }
                        };
                        to_bf16(at(2 * p)) as u32 | (to_bf16(at(2 * p + 1)) as u32) << 16
                    })
                    .collect();
                assert_eq!(direct, scalar, "k = {k}, j0 = {j0}: interleaved rows");
                assert_eq!(spread, scalar, "k = {k}, j0 = {j0}: converted columns");
            }
        }
    }

    #[test]
    #[ignore = "needs AVX512-BF16: cargo test -- --ignored runs it"]
    fn the_bf16_product_is_within_the_operands_rounding_of_the_fp32_product() {
        require_bf16();
        let [m, k, n] = [64, 576, 200];
        let (lhs, rhs) = (values(m * k, 1), values(k * n, 2));
        let mut low = vec![0f32; m * n];
        // SAFETY: `low` holds m rows of n floats; `available` was checked.
        unsafe { matmul_rows(low.as_mut_ptr(), n, &lhs, &rhs, [m, k, n], Layout::PLAIN) };
        let mut worst = 0f64;
        for i in 0..m {
            for j in 0..n {
                let (mut exact, mut size) = (0f64, 0f64);
                for c in 0..k {
                    let t = lhs[i * k + c] as f64 * rhs[c * n + j] as f64;
                    exact += t;
                    size += t.abs();
                }
                // Each operand is off by at most 2⁻⁹ of itself, so each product by 2⁻⁸.
                let err = (low[i * n + j] as f64 - exact).abs() / size;
                assert!(err <= 1.0 / 256.0, "({i}, {j}): relative error {err:e}");
                worst = worst.max(err);
            }
        }
        // Rounding errors of random sign mostly cancel: far below the bound.
        assert!(worst < 1e-3, "worst relative error {worst:e}");
    }
}
