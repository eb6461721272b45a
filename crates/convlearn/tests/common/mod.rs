//! Test support: finding `../shared` and asserting closeness.
#![allow(dead_code)]

use std::path::PathBuf;

/// The shared data directory, or `None` when it is absent and not required. With
/// `CONVLEARN_REQUIRE_DATA=1` (set by `.ci/run`) a missing directory fails the test instead.
pub fn shared() -> Option<PathBuf> {
    let dir = std::env::var_os("CONVLEARN_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
    if dir.join("README.md").is_file() {
        return Some(dir);
    }
    if std::env::var("CONVLEARN_REQUIRE_DATA").as_deref() == Ok("1") {
        panic!(
            "CONVLEARN_REQUIRE_DATA=1 but the shared data is not at {}",
            dir.display()
        );
    }
    eprintln!(
        "skipped: shared data not found at {} (set CONVLEARN_DATA)",
        dir.display()
    );
    None
}

/// Largest absolute difference, with a useful panic when lengths differ.
pub fn max_abs_diff(a: &[f32], b: &[f32], what: &str) -> f32 {
    assert_eq!(a.len(), b.len(), "{what}: lengths differ");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Asserts every value is within `tol`.
pub fn assert_close(a: &[f32], b: &[f32], tol: f32, what: &str) {
    let d = max_abs_diff(a, b, what);
    assert!(d <= tol, "{what}: max |Δ| = {d:e} > {tol:e}");
}
