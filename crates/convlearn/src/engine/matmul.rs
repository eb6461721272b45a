//! Matrix products of the engine's routines, by the `gemm` crate (flex's own engine), with their
//! operands' layouts and when to run them on several threads.

/// Products below this many multiply-adds run on one thread.
pub(super) const PARALLEL_MACS: usize = 1 << 21;

/// `to[c, r] = from[r, c]` for `from` `[rows, columns]` row-major.
pub(super) fn transpose(from: &[f32], to: &mut [f32], [rows, columns]: [usize; 2]) {
    for (r, row) in from[..rows * columns].chunks_exact(columns).enumerate() {
        for (c, v) in row.iter().enumerate() {
            to[c * rows + r] = *v;
        }
    }
}

/// How [`matmul`]'s operands are stored (all row-major).
#[derive(Clone, Copy)]
pub(super) struct Layout {
    /// `lhs` is stored as its transpose, `[k, m]`.
    pub(super) lhs_transposed: bool,
    /// `rhs` is stored as its transpose, `[n, k]`.
    pub(super) rhs_transposed: bool,
    /// Add the product to `dst` instead of overwriting it.
    pub(super) accumulate: bool,
    /// Run on the calling thread alone, whatever the product's size.
    pub(super) serial: bool,
}

impl Layout {
    pub(super) const PLAIN: Layout = Layout {
        lhs_transposed: false,
        rhs_transposed: false,
        accumulate: false,
        serial: false,
    };
    pub(super) const SERIAL: Layout = Layout {
        serial: true,
        ..Layout::PLAIN
    };
    pub(super) const SERIAL_ACCUMULATE: Layout = Layout {
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
pub(super) unsafe fn matmul_rows(
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
    #[cfg(target_arch = "x86_64")]
    if super::precision::bf16_product([m, k, n]) {
        // SAFETY: the caller's contract is the same; `bf16_product` implies `bf16::available`.
        unsafe { super::bf16::matmul_rows(dst, dst_row_stride, lhs, rhs, [m, k, n], layout) };
        return;
    }
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

/// A left operand that serves many products (a convolution's kernels, over all of its tiles),
/// prepared once: packed as bf16 pairs when its products run in bf16 (packing it for each product
/// cost bf16 ResNet-18 inference a twentieth of its time), else the fp32 values as they are.
pub(super) enum PreparedLhs<'a> {
    Fp32(&'a [f32]),
    #[cfg(target_arch = "x86_64")]
    Bf16(super::bf16::PackedLhs),
}

impl<'a> PreparedLhs<'a> {
    /// `lhs` `[m, k]` (row-major, not transposed), for products in bf16 when `bf16` (which
    /// callers take from [`super::precision::bf16_product`] for their typical product) and this
    /// CPU runs them.
    pub(super) fn new(lhs: &'a [f32], [m, k]: [usize; 2], bf16: bool) -> PreparedLhs<'a> {
        assert!(lhs.len() >= m * k, "matmul: operand sizes");
        #[cfg(target_arch = "x86_64")]
        if bf16 && super::bf16::available() {
            return PreparedLhs::Bf16(super::bf16::PackedLhs::new(lhs, [m, k], false));
        }
        let _ = bf16;
        PreparedLhs::Fp32(&lhs[..m * k])
    }

    /// The packed operand, when its products run in bf16.
    #[cfg(target_arch = "x86_64")]
    pub(super) fn bf16(&self) -> Option<&super::bf16::PackedLhs> {
        match self {
            PreparedLhs::Bf16(packed) => Some(packed),
            PreparedLhs::Fp32(_) => None,
        }
    }
}

/// [`matmul_rows`] with a prepared `lhs` `[m, k]` (`layout.lhs_transposed` must be false).
///
/// # Safety
/// As [`matmul_rows`].
pub(super) unsafe fn matmul_prepared_rows(
    dst: *mut f32,
    dst_row_stride: usize,
    lhs: &PreparedLhs,
    rhs: &[f32],
    [m, k, n]: [usize; 3],
    layout: Layout,
) {
    assert!(
        !layout.lhs_transposed,
        "matmul: a prepared lhs is not transposed"
    );
    match lhs {
        // SAFETY: the caller's contract.
        PreparedLhs::Fp32(lhs) => unsafe {
            matmul_rows(dst, dst_row_stride, lhs, rhs, [m, k, n], layout)
        },
        #[cfg(target_arch = "x86_64")]
        PreparedLhs::Bf16(packed) => {
            assert_eq!(packed.shape(), [m, k], "matmul: the prepared lhs's shape");
            // SAFETY: the caller's contract; a packed lhs exists only where `available` is true.
            unsafe { super::bf16::matmul_packed_rows(dst, dst_row_stride, packed, rhs, n, layout) }
        }
    }
}

/// [`matmul`] with a prepared `lhs` (`layout.lhs_transposed` must be false).
pub(super) fn matmul_prepared(
    dst: &mut [f32],
    lhs: &PreparedLhs,
    rhs: &[f32],
    [m, k, n]: [usize; 3],
    layout: Layout,
) {
    assert!(dst.len() >= m * n, "matmul: output size");
    // SAFETY: `dst` holds the m rows of n floats, n apart, and is borrowed for the call.
    unsafe { matmul_prepared_rows(dst.as_mut_ptr(), n, lhs, rhs, [m, k, n], layout) }
}
