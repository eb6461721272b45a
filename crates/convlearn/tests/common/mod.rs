//! Test support: finding `../shared` and asserting closeness.
#![allow(dead_code)]

pub mod pil;

use std::path::PathBuf;

/// The shared data directory (`$CONVLEARN_DATA`, default `../shared` beside the workspace). The
/// tests that need it are `#[ignore]`d, so `cargo test` counts them as ignored when it is absent
/// and `cargo test -- --ignored` (as `.ci/run` does) runs them; run so without the data, this fails
/// naming where it looked.
pub fn require_shared() -> PathBuf {
    let dir = std::env::var_os("CONVLEARN_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
    assert!(
        dir.join("README.md").is_file(),
        "this test needs the shared data, not found at {} (set CONVLEARN_DATA)",
        dir.display()
    );
    dir
}

/// Largest absolute difference, with a useful panic when lengths differ.
pub fn max_abs_diff(a: &[f32], b: &[f32], what: &str) -> f32 {
    assert_eq!(a.len(), b.len(), "{what}: lengths differ");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// The tolerance on a GPU, where sums run in other orders and round differently.
pub const GPU_TOLERANCE: f32 = 1e-3;

/// `cpu` on the CPU; at least [`GPU_TOLERANCE`] when the tests compute on a GPU
/// (`CONVLEARN_DEVICE=wgpu`, with `--features wgpu`).
pub fn tolerance(cpu: f32) -> f32 {
    match convlearn::device::current_device() {
        convlearn::device::DeviceKind::Cpu => cpu,
        _ => cpu.max(GPU_TOLERANCE),
    }
}

/// Asserts every value is within `tol` ([`tolerance`]'s on a GPU).
pub fn assert_close(a: &[f32], b: &[f32], tol: f32, what: &str) {
    let tol = tolerance(tol);
    let d = max_abs_diff(a, b, what);
    assert!(d <= tol, "{what}: max |Δ| = {d:e} > {tol:e}");
}
