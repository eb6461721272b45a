//! The `convlearn` command used carelessly: flags out of range, outputs that would destroy inputs
//! or each other, `--resume` of another run. Each is refused before any work, names the flag or
//! file, and leaves every file as it was.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::convlearn;

/// Runs `args` in `dir`, asserting that it fails within a few seconds (before any training) with
/// a message holding each of `expected`; returns that message.
fn refused(args: &[&str], dir: &std::path::Path, expected: &[&str]) -> String {
    let start = Instant::now();
    let out = convlearn(args, dir);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "{args:?} succeeded: {err}");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{args:?} worked for {:?} before failing",
        start.elapsed()
    );
    for e in expected {
        assert!(err.contains(e), "{args:?}: expected '{e}' in: {err}");
    }
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    err
}

#[test]
fn flags_out_of_range_are_refused_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["train", "shapes", "--epochs", "0"],
            &["--epochs 0", "at least 1 epoch"],
        ),
        (&["demo", "--epochs", "0"], &["--epochs", "1 to 10000"]),
        (
            &[
                "train",
                "photos",
                "--pretrained",
                "w.pth",
                "--freeze-epochs",
                "0",
                "--epochs",
                "0",
            ],
            &["trains nothing"],
        ),
        (
            &["train", "shapes", "--batch-size", "0"],
            &["--batch-size", "1 to 4096"],
        ),
        (
            &["train", "shapes", "--lr=-1e-3"],
            &["--lr", "non-negative number"],
        ),
        (
            &["train", "shapes", "--lr", "NaN"],
            &["--lr", "non-negative number"],
        ),
        (&["train", "shapes", "--lr", "fast"], &["--lr", "'fast'"]),
        (
            &["train", "shapes", "--lr", "0"],
            &["--lr", "must be positive"],
        ),
        (
            &["train", "shapes", "--lr", "1e-3..1e-5"],
            &["--lr", "goes down"],
        ),
        (
            &["train", "shapes", "--size", "0"],
            &["--size", "16 to 2048"],
        ),
        (
            &["train", "shapes", "--size", "100000"],
            &["--size", "16 to 2048"],
        ),
        (
            &["train", "shapes", "--valid-pct", "1"],
            &["--valid-pct", "between 0 and 1"],
        ),
        (&["train", "shapes", "--valid-pct=-0.1"], &["--valid-pct"]),
        (
            &["train", "shapes", "--limit", "0"],
            &["--limit", "at least 1"],
        ),
        (
            &["train", "shapes", "--tta", "100000"],
            &["--tta", "0 to 32"],
        ),
        (
            &["predict", "m.safetensors", "x.png", "--threshold", "2"],
            &["--threshold", "0 to 1"],
        ),
        (
            &["predict", "m.safetensors", "x.png", "--top", "0"],
            &["--top"],
        ),
    ];
    for (args, expected) in cases {
        refused(args, tmp.path(), expected);
    }
}

#[test]
fn devices_this_binary_cannot_compute_on_are_refused_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let err = refused(
        &["train", "shapes", "--device", "tpu"],
        tmp.path(),
        &["--device", "unknown device 'tpu'", "cpu, wgpu, cuda"],
    );
    assert!(err.contains("this binary computes on: cpu"), "{err}");
    for kind in ["wgpu", "cuda"] {
        let compiled = match kind {
            "wgpu" => cfg!(feature = "wgpu"),
            _ => cfg!(feature = "cuda"),
        };
        if !compiled {
            refused(
                &["train", "shapes", "--device", kind],
                tmp.path(),
                &[
                    &format!("--device {kind}"),
                    &format!("`{kind}` cargo feature"),
                ],
            );
        }
    }
    // The environment variable is checked the same way, and named.
    let with_variable = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_convlearn"))
            .args(args)
            .env("CONVLEARN_DEVICE", "gpu")
            .current_dir(tmp.path())
            .output()
            .unwrap()
    };
    let out = with_variable(&["train", "shapes", "--epochs", "1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "CONVLEARN_DEVICE=gpu ran: {err}");
    assert!(
        err.contains("CONVLEARN_DEVICE") && err.contains("unknown device 'gpu'"),
        "{err}"
    );
    // The flag wins over the variable; cpu always computes.
    let out = with_variable(&["bench", "--list", "--device", "cpu"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn outputs_never_replace_inputs_or_each_other() {
    let tmp = tempfile::tempdir().unwrap();
    let picture = tmp.path().join("in.png");
    image::GrayImage::from_fn(12, 12, |x, _| image::Luma([(x * 20) as u8]))
        .save(&picture)
        .unwrap();
    let before = std::fs::read(&picture).unwrap();

    refused(
        &["kernel", "in.png", "-o", "in.png"],
        tmp.path(),
        &["--output", "in.png", "destroy the input"],
    );
    std::fs::create_dir(tmp.path().join("sub")).unwrap();
    refused(
        &["kernel", "in.png", "-o", "./sub/../in.png"],
        tmp.path(),
        &["IMAGE"],
    );
    assert_eq!(
        std::fs::read(&picture).unwrap(),
        before,
        "the input changed"
    );

    refused(
        &["train", "shapes", "--save", "x.png", "--plot", "x.png"],
        tmp.path(),
        &["--save and --plot both name 'x.png'"],
    );
    refused(
        &[
            "train",
            "shapes",
            "--save",
            "m-schedule.png",
            "--plot",
            "m-loss.png",
        ],
        tmp.path(),
        &["schedule figure beside --plot"],
    );
    std::fs::write(tmp.path().join("w.pth"), b"weights").unwrap();
    std::fs::create_dir(tmp.path().join("photos")).unwrap();
    refused(
        &[
            "train",
            "photos",
            "--pretrained",
            "w.pth",
            "--save",
            "w.pth",
        ],
        tmp.path(),
        &["--save 'w.pth' is the same file as the input --pretrained"],
    );
    assert_eq!(std::fs::read(tmp.path().join("w.pth")).unwrap(), b"weights");
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(leftovers.len(), 4, "{leftovers:?}");
}

#[test]
fn resume_refuses_a_missing_checkpoint_and_one_of_another_run() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |epochs: &'static str| {
        vec![
            "train",
            "shapes",
            "--epochs",
            epochs,
            "--limit",
            "600",
            "--save",
            "m.safetensors",
        ]
    };
    refused(
        &[&run("2")[..], &["--resume"]].concat(),
        tmp.path(),
        &["--resume", "no checkpoint at m.checkpoint.safetensors"],
    );

    // A run of 2 epochs, killed once its first checkpoint is written.
    let mut child = Command::new(env!("CARGO_BIN_EXE_convlearn"))
        .args(run("2"))
        .current_dir(tmp.path())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let checkpoint = tmp.path().join("m.checkpoint.safetensors");
    let start = Instant::now();
    while !checkpoint.is_file() {
        assert!(
            start.elapsed().as_secs() < 120,
            "no checkpoint after 2 minutes"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let saved = std::fs::read(&checkpoint).unwrap();

    refused(
        &[&run("3")[..], &["--resume"]].concat(),
        tmp.path(),
        &[
            "belongs to another run",
            "epochs: checkpoint '2', this run '3'",
        ],
    );
    refused(
        &[
            &run("2")[..],
            &["--resume", "--arch", "spreadsheet", "--batch-size", "16"],
        ]
        .concat(),
        tmp.path(),
        &[
            "architecture: checkpoint simple_cnn",
            "batch size: checkpoint '64', this run '16'",
        ],
    );
    refused(
        &[
            "train",
            "shapes",
            "--epochs",
            "2",
            "--limit",
            "500",
            "--save",
            "m.safetensors",
            "--resume",
        ],
        tmp.path(),
        &["training images: checkpoint '600', this run '500'"],
    );
    assert_eq!(
        std::fs::read(&checkpoint).unwrap(),
        saved,
        "the checkpoint changed"
    );
    assert!(!tmp.path().join("m.safetensors").exists());
}

#[cfg(unix)]
#[test]
fn damaged_models_are_refused_and_strange_file_names_work() {
    use std::os::unix::ffi::OsStrExt;
    let tmp = tempfile::tempdir().unwrap();
    let out = convlearn(
        &[
            "train",
            "shapes",
            "--epochs",
            "1",
            "--limit",
            "300",
            "--save",
            "m.safetensors",
        ],
        tmp.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A picture whose file name is not UTF-8.
    let odd = std::ffi::OsStr::from_bytes(b"pic-\xff.png");
    image::GrayImage::from_fn(28, 28, |x, y| image::Luma([((x + y) * 4) as u8]))
        .save(tmp.path().join(odd))
        .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_convlearn"))
        .arg("predict")
        .arg("m.safetensors")
        .arg(odd)
        .arg("--json")
        .current_dir(tmp.path())
        .output()
        .unwrap();
    let v = common::json_of(&out);
    assert_eq!(v["results"][0]["image"], "pic-\u{fffd}.png", "{v}");

    // Every weight NaN (0xffffffff): the header stays, the data after it is overwritten.
    let model = tmp.path().join("m.safetensors");
    let mut bytes = std::fs::read(&model).unwrap();
    let header = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    bytes[header..].fill(0xff);
    std::fs::write(tmp.path().join("nan.safetensors"), &bytes).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_convlearn"))
        .arg("predict")
        .arg("nan.safetensors")
        .arg(odd)
        .current_dir(tmp.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("not a number"),
        "{err}"
    );
}
