//! Helpers shared by the command-line tests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// Runs the `convlearn` binary with `args` in `dir`.
pub fn convlearn(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_convlearn"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("convlearn runs")
}

/// The numbers of a JSON array.
pub fn numbers(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// The JSON object on the last line of a successful run's stdout.
pub fn json_of(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    serde_json::from_str(stdout.lines().last().expect("a JSON line")).expect("valid JSON")
}

/// `../shared` (or `$CONVLEARN_DATA`). The tests that need it are `#[ignore]`d, so `cargo test`
/// counts them as ignored and `cargo test -- --ignored` (as `.ci/run` does) runs them; run so
/// without the data, this fails naming where it looked.
pub fn require_shared() -> PathBuf {
    let dir = std::env::var_os("CONVLEARN_DATA").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"),
        Into::into,
    );
    assert!(
        dir.join("README.md").is_file(),
        "this test needs the shared data, not found at {} (set CONVLEARN_DATA)",
        dir.display()
    );
    dir
}

/// Writes a folder of gray squares and circles, `root/<split>/<square|circle>/<i>.png`, for each
/// `(split, count)`: image `i` is a square when `i` is even, a circle otherwise, centred on a
/// `side`-pixel canvas with the half-width or radius `radius(i)`, drawn in `ink` on `paper`.
pub fn write_shapes(
    root: &Path,
    splits: &[(&str, usize)],
    side: u32,
    radius: impl Fn(usize) -> i32,
    (ink, paper): (u8, u8),
) {
    let centre = side as i32 / 2;
    for &(split, n) in splits {
        for i in 0..n {
            let (r, square) = (radius(i), i % 2 == 0);
            let img = image::GrayImage::from_fn(side, side, |x, y| {
                let (dx, dy) = (x as i32 - centre, y as i32 - centre);
                let inside = if square {
                    dx.abs() <= r && dy.abs() <= r
                } else {
                    dx * dx + dy * dy <= r * r
                };
                image::Luma([if inside { ink } else { paper }])
            });
            let class = if square { "square" } else { "circle" };
            let path = root.join(split).join(class).join(format!("{i}.png"));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            img.save(path).unwrap();
        }
    }
}
