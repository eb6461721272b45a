//! The precision of the engine's large products: fp32, or bf16 operands with fp32 sums
//! (`--precision bf16`), chosen once per process.
//!
//! bf16 works as PyTorch's `autocast(bfloat16)` does on a CPU: weights, activations, gradients,
//! the optimiser's state and BatchNorm's statistics stay fp32; only the operands of the
//! convolutions' matrix products (forward, input gradient and weight gradient; im2col and
//! Winograd alike) are rounded to bf16 as they are packed, and the products are summed in fp32.
//! Small products (an inner dimension under 16, or under 32 768 multiply-adds — depthwise
//! convolutions, the spreadsheet network) stay fp32: packing would cost more than it saves.

use std::sync::atomic::{AtomicBool, Ordering};

/// How the engine's large products compute.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precision {
    /// fp32 throughout (the default).
    #[default]
    Fp32,
    /// bf16 operands, fp32 sums, on AVX512-BF16.
    Bf16,
}

impl Precision {
    /// The names `--precision` takes.
    pub const NAMES: [&str; 2] = ["fp32", "bf16"];

    /// `"fp32"` or `"bf16"`.
    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
        }
    }

    /// The precision a name stands for.
    pub fn parse(name: &str) -> Option<Precision> {
        match name {
            "fp32" => Some(Precision::Fp32),
            "bf16" => Some(Precision::Bf16),
            _ => None,
        }
    }
}

static BF16_PRODUCTS: AtomicBool = AtomicBool::new(false);

/// What this CPU offers for bf16 products, in words (for messages and benchmark reports).
pub fn bf16_hardware() -> &'static str {
    match (bf16_available(), amx_present()) {
        (true, true) => {
            "AVX512-BF16 (vdpbf16ps; this CPU also has AMX tiles, which convlearn does not use yet)"
        }
        (true, false) => "AVX512-BF16 (vdpbf16ps)",
        (false, _) => "none (no AVX512-BF16)",
    }
}

/// Whether the engine's bf16 products run on this CPU.
fn bf16_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    return super::bf16::available();
    #[cfg(not(target_arch = "x86_64"))]
    return false;
}

/// Whether the CPU reports AMX-BF16 and AMX tiles (CPUID leaf 7: EDX bits 22 and 24).
#[cfg(target_arch = "x86_64")]
fn amx_present() -> bool {
    // CPUID leaf 7 exists on every x86-64 CPU that has AVX-512 (checked first).
    is_x86_feature_detected!("avx512f") && {
        let edx = std::arch::x86_64::__cpuid_count(7, 0).edx;
        edx & (1 << 22) != 0 && edx & (1 << 24) != 0
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn amx_present() -> bool {
    false
}

/// Sets the precision of the engine's products for the rest of the process and returns the one
/// in effect: asking for bf16 on a CPU without AVX512-BF16 keeps fp32 (see [`bf16_hardware`]).
pub fn set_precision(precision: Precision) -> Precision {
    let bf16 = precision == Precision::Bf16 && bf16_available();
    BF16_PRODUCTS.store(bf16, Ordering::Relaxed);
    current_precision()
}

/// The precision in effect.
pub fn current_precision() -> Precision {
    if BF16_PRODUCTS.load(Ordering::Relaxed) {
        Precision::Bf16
    } else {
        Precision::Fp32
    }
}

/// Whether a product of `[m, k, n]` runs in bf16.
pub(super) fn bf16_product([m, k, n]: [usize; 3]) -> bool {
    BF16_PRODUCTS.load(Ordering::Relaxed) && k >= 16 && m * k * n >= 1 << 15
}
