//! The operands of the bf16 products, packed as their block kernel reads them: pairs of
//! neighbours along `k`, each value rounded from fp32 to bf16 (to nearest, ties to even,
//! `vcvtne2ps2bf16`) as it is packed.

use std::arch::x86_64::*;

use super::{COLUMNS, ROWS, available, lane_mask};

/// `x` rounded to bf16 as `vcvtne2ps2bf16` does (the tests' scalar reference): to nearest, ties to even, NaN kept quiet, and
/// denormal inputs taken as zero.
#[cfg(test)]
pub(super) fn to_bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    if x.is_nan() {
        return ((bits >> 16) | 0x40) as u16;
    }
    if bits & 0x7f80_0000 == 0 {
        return ((bits >> 16) & 0x8000) as u16;
    }
    let round = 0x7fff + ((bits >> 16) & 1);
    (bits.wrapping_add(round) >> 16) as u16
}

/// `lhs` `[m, k]` packed as pairs (pair `p` of row `r` at `r · row_step + p · pair_step`), its
/// rows padded with zeros to whole blocks of [`ROWS`]: made once by [`PackedLhs::new`], it serves
/// any number of products with it (a convolution's kernels, over all of its tiles).
pub(in crate::engine) struct PackedLhs {
    pub(super) pairs: Vec<u32>,
    pub(super) row_step: usize,
    pub(super) pair_step: usize,
    /// `[m, k]`.
    pub(super) shape: [usize; 2],
}

impl PackedLhs {
    /// `lhs` `[m, k]` (stored `[k, m]` when `transposed`) packed for [`matmul_packed_rows`].
    ///
    /// # Panics
    /// When this CPU has no AVX512-BF16 ([`available`]), or `lhs` holds fewer than `m · k` values.
    pub(in crate::engine) fn new(lhs: &[f32], [m, k]: [usize; 2], transposed: bool) -> PackedLhs {
        assert!(available(), "bf16: this CPU has no AVX512-BF16");
        assert!(lhs.len() >= m * k, "matmul: operand sizes");
        // SAFETY: `available` was checked.
        unsafe { pack_lhs(lhs, [m, k], transposed) }
    }

    /// The buffer [`PackedLhs::from_pairs`] takes for `[m, k]`.
    pub(in crate::engine) fn len([m, k]: [usize; 2]) -> usize {
        m.div_ceil(ROWS) * ROWS * k.div_ceil(2)
    }

    /// `lhs` `[m, k]` already packed by its producer: row `r`'s pairs at `r · ⌈k / 2⌉ ..` (as
    /// [`to_pairs`] writes a row), then zeros for the rows up to a whole block of [`ROWS`].
    ///
    /// # Panics
    /// When this CPU has no AVX512-BF16, or `pairs` is not [`PackedLhs::len`] long.
    pub(in crate::engine) fn from_pairs(pairs: Vec<u32>, [m, k]: [usize; 2]) -> PackedLhs {
        assert!(available(), "bf16: this CPU has no AVX512-BF16");
        assert_eq!(
            pairs.len(),
            PackedLhs::len([m, k]),
            "bf16: a packed lhs's size"
        );
        PackedLhs {
            pairs,
            row_step: k.div_ceil(2),
            pair_step: 1,
            shape: [m, k],
        }
    }

    /// `[m, k]`.
    pub(in crate::engine) fn shape(&self) -> [usize; 2] {
        self.shape
    }
}

/// `values` as pairs of bf16 neighbours into `out` (`⌈len / 2⌉` of them; an odd last value is
/// paired with zero).
///
/// # Panics
/// When this CPU has no AVX512-BF16, or `out` is shorter.
pub(in crate::engine) fn to_pairs(values: &[f32], out: &mut [u32]) {
    assert!(available(), "bf16: this CPU has no AVX512-BF16");
    // SAFETY: `available` was checked.
    unsafe { convert_row(values, out) }
}

/// `lhs` `[m, k]` (stored `[k, m]` when `transposed`) as pairs, its rows padded with zeros to
/// whole blocks of [`ROWS`].
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
pub(super) fn pack_lhs(lhs: &[f32], [m, k]: [usize; 2], transposed: bool) -> PackedLhs {
    let pairs = k.div_ceil(2);
    let rows = m.div_ceil(ROWS) * ROWS;
    let mut packed = vec![0u32; PackedLhs::len([m, k])];
    if transposed {
        interleave_rows(lhs, [k, m], 0, m, &mut packed, rows);
        PackedLhs {
            pairs: packed,
            row_step: 1,
            pair_step: rows,
            shape: [m, k],
        }
    } else {
        for (row, out) in lhs[..m * k]
            .chunks_exact(k)
            .zip(packed.chunks_exact_mut(pairs))
        {
            convert_row(row, out);
        }
        PackedLhs::from_pairs(packed, [m, k])
    }
}

/// Columns `j0 .. j0 + COLUMNS` of `rhs` `[k, n]` (stored `[n, k]` when `transposed`) as
/// `[k / 2][COLUMNS]` pairs in `panel`, zeros past the matrix's edges; `row` is scratch.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
pub(super) fn pack_rhs_panel(
    rhs: &[f32],
    [k, n]: [usize; 2],
    j0: usize,
    transposed: bool,
    panel: &mut Vec<u32>,
    row: &mut Vec<u32>,
) {
    let pairs = k.div_ceil(2);
    let columns = COLUMNS.min(n - j0);
    panel.clear();
    panel.resize(pairs * COLUMNS, 0);
    if !transposed {
        interleave_rows(rhs, [k, n], j0, columns, panel, COLUMNS);
        return;
    }
    // Each column is a row of the stored matrix: converted whole, then spread down the panel.
    row.clear();
    row.resize(pairs, 0);
    for j in 0..columns {
        convert_row(&rhs[(j0 + j) * k..][..k], row);
        for (p, &v) in row.iter().enumerate() {
            panel[p * COLUMNS + j] = v;
        }
    }
}

/// One row of floats as pairs of bf16 neighbours (`out` holds `row.len() / 2` rounded up; an odd
/// last value is paired with zero).
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
fn convert_row(row: &[f32], out: &mut [u32]) {
    assert!(out.len() >= row.len().div_ceil(2));
    for (c, chunk) in row.chunks(32).enumerate() {
        let (lo, hi) = (chunk.len().min(16), chunk.len().saturating_sub(16));
        // SAFETY: the masked loads read the chunk's values only; the store writes lanes c·16 ..
        // c·16 + ⌈len / 2⌉ ≤ out.len().
        unsafe {
            let a = _mm512_maskz_loadu_ps(lane_mask(lo), chunk.as_ptr());
            let b = _mm512_maskz_loadu_ps(lane_mask(hi), chunk.as_ptr().add(lo));
            let v: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(b, a));
            let lanes = chunk.len().div_ceil(2);
            _mm512_mask_storeu_epi32(out.as_mut_ptr().add(16 * c).cast(), lane_mask(lanes), v);
        }
    }
}

/// Columns `c0 .. c0 + columns` of the `[k, width]` matrix `src` as `[k / 2][out_width]` pairs
/// (rows 2p and 2p + 1 interleaved) into `out`, which holds `out_width ≥ columns` lanes per pair
/// (the rest left as they are); a missing last row is taken as zeros.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
fn interleave_rows(
    src: &[f32],
    [k, width]: [usize; 2],
    c0: usize,
    columns: usize,
    out: &mut [u32],
    out_width: usize,
) {
    assert!(c0 + columns <= width && columns <= out_width && src.len() >= k * width);
    assert!(out.len() >= k.div_ceil(2) * out_width);
    for p in 0..k.div_ceil(2) {
        let first = &src[2 * p * width + c0..][..columns];
        let second = (2 * p + 1 < k).then(|| &src[(2 * p + 1) * width + c0..][..columns]);
        interleave_pair(first, second, &mut out[p * out_width..][..columns]);
    }
}

/// Two rows of floats as bf16 pairs, `out[j]` = (`first[j]`, `second[j]`) (zero for a missing
/// second row).
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
fn interleave_pair(first: &[f32], second: Option<&[f32]>, out: &mut [u32]) {
    let columns = first.len();
    assert!(out.len() >= columns && second.is_none_or(|s| s.len() >= columns));
    // Lane 2j takes the first row's column j, lane 2j + 1 the second row's: values j and 16 + j
    // of the converted pair of rows.
    let order: [u16; 32] = std::array::from_fn(|i| (i / 2 + i % 2 * 16) as u16);
    // SAFETY: `order` holds 64 bytes.
    let interleave = unsafe { _mm512_loadu_si512(order.as_ptr().cast()) };
    for c in (0..columns).step_by(16) {
        let mask = lane_mask((columns - c).min(16));
        // SAFETY: the masked lanes are columns c .. < columns of both rows and of `out`
        // (asserted above).
        unsafe {
            let a = _mm512_maskz_loadu_ps(mask, first.as_ptr().add(c));
            let b = match second {
                Some(second) => _mm512_maskz_loadu_ps(mask, second.as_ptr().add(c)),
                None => _mm512_setzero_ps(),
            };
            // Low 16 values: the first row's; high 16: the second's.
            let both: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(b, a));
            let pairs = _mm512_permutexvar_epi16(interleave, both);
            _mm512_mask_storeu_epi32(out.as_mut_ptr().add(c).cast(), mask, pairs);
        }
    }
}

/// `rhs` `[k, n]` packed as the product's panels, `[n / COLUMNS][k / 2][COLUMNS]` pairs, in a
/// caller's buffer, written a pair of rows at a time by its producer (the Winograd input
/// transform, which so never writes the fp32 matrix). Lanes past `n` in the last panel hold
/// whatever was there: their sums are never written.
pub(in crate::engine) struct PackedRhs<'a> {
    pub(super) panels: &'a mut [u32],
    /// `[k, n]`.
    pub(super) shape: [usize; 2],
}

impl<'a> PackedRhs<'a> {
    /// The buffer size [`PackedRhs::new`] needs for `[k, n]`.
    pub(in crate::engine) fn len([k, n]: [usize; 2]) -> usize {
        k.div_ceil(2) * n.div_ceil(COLUMNS) * COLUMNS
    }

    /// A `[k, n]` matrix in `buffer`, every pair of rows of which the caller then writes with
    /// [`PackedRhs::write_rows`] before a product reads it.
    ///
    /// # Panics
    /// When this CPU has no AVX512-BF16, or `buffer` is shorter than [`PackedRhs::len`].
    pub(in crate::engine) fn new(buffer: &'a mut [u32], [k, n]: [usize; 2]) -> PackedRhs<'a> {
        assert!(available(), "bf16: this CPU has no AVX512-BF16");
        let len = PackedRhs::len([k, n]);
        assert!(buffer.len() >= len, "bf16: a packed rhs of {len} pairs");
        PackedRhs {
            panels: &mut buffer[..len],
            shape: [k, n],
        }
    }

    /// Rows `2p` (`first`) and `2p + 1` (`second`; `None` past an odd `k`) of the matrix.
    pub(in crate::engine) fn write_rows(
        &mut self,
        p: usize,
        first: &[f32],
        second: Option<&[f32]>,
    ) {
        let [k, n] = self.shape;
        let pairs = k.div_ceil(2);
        assert!(p < pairs && first.len() == n && (second.is_some() == (2 * p + 1 < k)));
        for (panel, out) in self.panels.chunks_exact_mut(pairs * COLUMNS).enumerate() {
            let j0 = panel * COLUMNS;
            let j1 = (j0 + COLUMNS).min(n);
            let out = &mut out[p * COLUMNS..][..j1 - j0];
            // SAFETY: `new` checked `available`.
            unsafe { interleave_pair(&first[j0..j1], second.map(|s| &s[j0..j1]), out) };
        }
    }
}
