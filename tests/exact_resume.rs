//! A run killed at random moments (SIGKILL, and one Ctrl-C) and resumed each time ends with the
//! same weights, bit for bit, and the same validation loss as the run never interrupted.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use common::{json_of, require_shared, write_shapes};

/// The JSON header of a safetensors file and the bytes after it.
fn header(bytes: &[u8]) -> (serde_json::Value, &[u8]) {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    (
        serde_json::from_slice(&bytes[8..8 + n]).unwrap(),
        &bytes[8 + n..],
    )
}

/// Where a checkpoint stood: `phase/epochs+batches`.
fn position(checkpoint: &Path) -> String {
    let Ok(bytes) = std::fs::read(checkpoint) else {
        return "no checkpoint".into();
    };
    let (header, _) = header(&bytes);
    let state = header["__metadata__"]["convlearn_training_state"]
        .as_str()
        .unwrap();
    let state: serde_json::Value = serde_json::from_str(state).unwrap();
    format!(
        "checkpoint at phase {} epoch {} + {} batches",
        state["phase"], state["epochs_done"], state["batches_done"]
    )
}

/// Every tensor of a safetensors file, by name, as its bytes.
fn tensors(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let bytes = std::fs::read(path).unwrap();
    let (header, data) = header(&bytes);
    header
        .as_object()
        .unwrap()
        .iter()
        .filter(|(name, _)| *name != "__metadata__")
        .map(|(name, t)| {
            let [a, b] = [0, 1].map(|i| t["data_offsets"][i].as_u64().unwrap() as usize);
            (name.clone(), data[a..b].to_vec())
        })
        .collect()
}

/// A small generator for the kill delays (seeded from the clock; the delays are printed).
struct Delays(u64);

impl Delays {
    /// Milliseconds in `lo..hi`.
    fn next(&mut self, lo: u64, hi: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        lo + (self.0 >> 33) % (hi - lo)
    }
}

/// When the file at `path` was last replaced (`None` while there is none).
fn written(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Runs `train <args>` (which set `--checkpoint-every`) once uninterrupted, then again
/// interrupted `kills` times — the last of them by SIGINT, the others by SIGKILL — each once the
/// run has written a checkpoint of its own (it made progress) and then a random while more (up to
/// a third of the uninterrupted run's time spread over the kills, so the run cannot finish first),
/// resumed with `--resume`, and compares the two results.
fn resumed_run_matches_the_uninterrupted_one(args: &[&str], dir: &Path, kills: usize) {
    let base: Vec<&str> = [&["train"], args, &["--json"]].concat();
    let run = |save: &str, extra: &[&str]| {
        let mut a = base.clone();
        a.extend(["--save", save, "--plot", "loss.png"]);
        a.extend(extra);
        Command::new(env!("CARGO_BIN_EXE_convlearn"))
            .args(&a)
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let start = Instant::now();
    let whole = json_of(&run("whole.safetensors", &[]).wait_with_output().unwrap());
    let whole_ms = start.elapsed().as_millis() as u64;

    let seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut delays = Delays(seed);
    let checkpoint = dir.join("cut.checkpoint.safetensors");
    let mut log = Vec::new();
    let mut interrupted = 0;
    let mut last = None;
    while last.is_none() {
        let resume: &[&str] = if checkpoint.is_file() {
            &["--resume"]
        } else {
            &[]
        };
        let mut child = run("cut.safetensors", resume);
        if interrupted == kills {
            last = Some(child.wait_with_output().unwrap());
            break;
        }
        let before = written(&checkpoint);
        let wait = Instant::now();
        while written(&checkpoint) == before && child.try_wait().unwrap().is_none() {
            assert!(
                wait.elapsed().as_millis() < 20 * whole_ms as u128 + 60_000,
                "no progress"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        let ms = delays.next(0, whole_ms / (3 * kills as u64) + 1);
        std::thread::sleep(Duration::from_millis(ms));
        let sigint = interrupted + 1 == kills;
        if child.try_wait().unwrap().is_some() {
            // It finished before the signal: the result is compared all the same.
            log.push(format!("{ms} ms: finished first"));
            last = Some(child.wait_with_output().unwrap());
            break;
        }
        if sigint {
            let pid = child.id().to_string();
            assert!(
                Command::new("kill")
                    .args(["-INT", &pid])
                    .status()
                    .unwrap()
                    .success()
            );
        } else {
            child.kill().unwrap();
        }
        let out = child.wait_with_output().unwrap();
        if out.status.success() {
            // It finished just before the signal.
            log.push(format!("{ms} ms: finished first"));
            last = Some(out);
            break;
        }
        if sigint {
            let stderr = String::from_utf8_lossy(&out.stderr).to_string();
            assert_eq!(
                out.status.code(),
                Some(130),
                "Ctrl-C after {ms} ms:\n{stderr}"
            );
            assert!(
                stderr.contains("checkpoint written to cut.checkpoint.safetensors")
                    && stderr.contains("--resume"),
                "Ctrl-C's message: {stderr}"
            );
            log.push(format!("+{ms} ms: SIGINT, {}", position(&checkpoint)));
        } else {
            log.push(format!("+{ms} ms: SIGKILL, {}", position(&checkpoint)));
        }
        interrupted += 1;
    }
    let out = last.unwrap();
    let cut = json_of(&out);
    let log = format!(
        "seed {seed}, uninterrupted {whole_ms} ms; {}",
        log.join(", ")
    );
    eprintln!("{log}");
    assert_eq!(interrupted, kills, "every interruption landed: {log}");
    assert_eq!(whole["valid_loss"], cut["valid_loss"], "{log}");
    let (a, b) = (
        tensors(&dir.join("whole.safetensors")),
        tensors(&dir.join("cut.safetensors")),
    );
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (name, bytes) in &a {
        assert!(bytes == &b[name], "tensor {name} differs ({log})");
    }
    assert!(
        !checkpoint.exists(),
        "the finished run removes its checkpoint"
    );
    let strays: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name.contains(".tmp").then_some(name)
        })
        .collect();
    assert!(strays.is_empty(), "temporary files left: {strays:?}");
}

#[test]
fn a_run_killed_five_times_ends_bit_identical_to_one_never_interrupted() {
    let tmp = tempfile::tempdir().unwrap();
    let args = [
        "shapes",
        "--epochs",
        "2",
        "--batch-size",
        "32",
        "--limit",
        "3000",
        // a checkpoint after every batch: many of the kills land during a write
        "--checkpoint-every",
        "1",
    ];
    resumed_run_matches_the_uninterrupted_one(&args, tmp.path(), 5);
}

#[test]
#[ignore = "needs ../shared (MNIST)"]
fn mnist_killed_six_times_ends_bit_identical() {
    let data = require_shared();
    let tmp = tempfile::tempdir().unwrap();
    let mnist = data.join("data/mnist");
    let args = [
        "mnist",
        "--data",
        mnist.to_str().unwrap(),
        "--limit",
        "8192",
        "--epochs",
        "2",
        "--checkpoint-every",
        "5",
    ];
    resumed_run_matches_the_uninterrupted_one(&args, tmp.path(), 6);
}

#[test]
#[ignore = "needs ../shared (MobileNetV2 weights)"]
fn a_fine_tune_killed_five_times_ends_bit_identical() {
    let data = require_shared();
    let tmp = tempfile::tempdir().unwrap();
    // squares and circles; the frozen phase trains through the body (augmented, dropout in the
    // head), the unfrozen one every group with BatchNorm statistics updating
    write_shapes(
        tmp.path(),
        &[("train", 160), ("valid", 16)],
        40,
        |i| 6 + i as i32 % 5,
        (220, 30),
    );
    let weights = data.join("weights/mobilenet_v2_imagenet_from_tflite.safetensors");
    let args = [
        ".",
        "--pretrained",
        weights.to_str().unwrap(),
        "--size",
        "64",
        "--freeze-epochs",
        "1",
        "--epochs",
        "1",
        "--no-precompute",
        "--train-bn",
        "--lr",
        "1e-3",
        "--batch-size",
        "8",
        "--checkpoint-every",
        "3",
    ];
    resumed_run_matches_the_uninterrupted_one(&args, tmp.path(), 5);
}
