//! The command line on a GPU (`--device wgpu`), against the same commands on the CPU: training
//! learns as on the CPU, a model trained on one predicts the same on the other, and a
//! checkpoint written on one resumes on the other.
//!
//! Built with `--features wgpu` only, and ignored unless asked for: `.ci/run` runs them on
//! lavapipe (Mesa's Vulkan on the CPU) with `cargo test --release --features wgpu --test gpu_cli
//! -- --ignored`.
#![cfg(feature = "wgpu")]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{convlearn, json_of};

/// `train shapes` for `epochs` on 600 generated pictures, saving `save`, on `device`.
fn train(device: &str, epochs: &str, save: &str) -> Vec<String> {
    [
        "--device", device, "train", "shapes", "--epochs", epochs, "--limit", "600", "--save",
        save, "--json",
    ]
    .map(String::from)
    .to_vec()
}

fn run(args: &[String], dir: &Path) -> serde_json::Value {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    json_of(&convlearn(&args, dir))
}

#[test]
#[ignore = "needs --features wgpu and a GPU (lavapipe will do)"]
fn training_on_the_gpu_learns_as_on_the_cpu_and_its_model_predicts_alike_on_both() {
    let tmp = tempfile::tempdir().unwrap();
    let cpu = run(&train("cpu", "2", "cpu.safetensors"), tmp.path());
    let gpu = run(&train("wgpu", "2", "gpu.safetensors"), tmp.path());
    let accuracy = |r: &serde_json::Value| r["valid_accuracy"].as_f64().unwrap();
    let loss = |r: &serde_json::Value| r["valid_loss"].as_f64().unwrap();
    eprintln!(
        "shapes, 2 epochs: valid accuracy cpu {:.4}, wgpu {:.4}; valid loss cpu {:.7}, wgpu {:.7}",
        accuracy(&cpu),
        accuracy(&gpu),
        loss(&cpu),
        loss(&gpu)
    );
    // One seed gives the same initial weights on both devices (`models::build_seeded`) and the
    // small CNN has no dropout, so the two runs are one computation, apart only in the order the
    // devices add up their numbers. Measured on lavapipe: valid accuracy 0.7000 on both, valid
    // loss 0.8385751 on both after these 2 epochs (after 1 epoch on 120 pictures, 1.9e-7 apart).
    assert!(accuracy(&cpu) > 0.4, "{cpu}");
    assert!(
        (loss(&gpu) - loss(&cpu)).abs() <= 1e-3 && (accuracy(&gpu) - accuracy(&cpu)).abs() <= 0.02,
        "{gpu}\nagainst the CPU's {cpu}"
    );

    // One picture of the demo's shapes, predicted by the GPU's model on both devices.
    let picture = tmp.path().join("shape.png");
    let mut image = image::GrayImage::from_pixel(28, 28, image::Luma([20]));
    for y in 8..20 {
        for x in 8..20 {
            image.put_pixel(x, y, image::Luma([230]));
        }
    }
    image.save(&picture).unwrap();
    let predict = |device: &str| {
        run(
            &[
                "--device",
                device,
                "predict",
                "gpu.safetensors",
                "shape.png",
                "--top",
                "6",
                "--json",
            ]
            .map(String::from),
            tmp.path(),
        )
    };
    let (on_cpu, on_gpu) = (predict("cpu"), predict("wgpu"));
    let scores = |v: &serde_json::Value| -> Vec<(String, f64)> {
        v["results"][0]["predictions"]
            .as_array()
            .unwrap_or_else(|| panic!("no predictions in {v}"))
            .iter()
            .map(|p| {
                let class = p["class"].as_str().unwrap().to_string();
                (class, p["probability"].as_f64().unwrap())
            })
            .collect()
    };
    let (want, got) = (scores(&on_cpu), scores(&on_gpu));
    assert_eq!(want.len(), got.len());
    for ((class, p), (gpu_class, q)) in want.iter().zip(&got) {
        assert_eq!(
            class, gpu_class,
            "the classes' order: cpu {want:?}, wgpu {got:?}"
        );
        assert!((p - q).abs() < 1e-3, "{class}: cpu {p}, wgpu {q}");
    }
}

/// Starts `args` and stops it (SIGTERM: a checkpoint, then exit) once its first checkpoint is
/// written.
fn stopped_after_a_checkpoint(args: &[String], dir: &Path, checkpoint: &Path) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_convlearn"))
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !checkpoint.is_file() {
        assert!(
            start.elapsed().as_secs() < 600,
            "no checkpoint after 10 minutes"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before a checkpoint"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    child.wait().unwrap();
    assert!(checkpoint.is_file(), "the checkpoint is kept");
}

#[test]
#[ignore = "needs --features wgpu and a GPU (lavapipe will do)"]
fn a_checkpoint_written_on_one_device_resumes_on_the_other() {
    let tmp = tempfile::tempdir().unwrap();
    for (first, then) in [("wgpu", "cpu"), ("cpu", "wgpu")] {
        let save = format!("{first}-then-{then}.safetensors");
        let checkpoint = tmp
            .path()
            .join(format!("{first}-then-{then}.checkpoint.safetensors"));
        let mut args = train(first, "2", &save);
        args.extend(["--checkpoint-every".into(), "2".into()]);
        stopped_after_a_checkpoint(&args, tmp.path(), &checkpoint);
        let mut resumed = train(then, "2", &save);
        resumed.extend(["--checkpoint-every".into(), "2".into(), "--resume".into()]);
        let report = run(&resumed, tmp.path());
        eprintln!(
            "{first} → {then}: valid accuracy {}",
            report["valid_accuracy"]
        );
        assert!(report["valid_accuracy"].as_f64().unwrap() > 0.4, "{report}");
        assert!(
            !checkpoint.exists(),
            "a finished run removes its checkpoint"
        );
    }
}

/// Every tensor of a saved model, by name.
fn tensors(path: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let bytes = std::fs::read(path).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    file.tensors()
        .into_iter()
        .map(|(name, view)| (name, view.data().to_vec()))
        .collect()
}

#[test]
#[ignore = "needs --features wgpu, a GPU (lavapipe will do) and ../shared"]
fn fine_tuning_on_the_gpu_keeps_the_frozen_body_and_its_batchnorm_as_loaded() {
    let data = common::require_shared();
    let tmp = tempfile::tempdir().unwrap();
    common::write_shapes(
        tmp.path(),
        &[("train", 32), ("valid", 8)],
        28,
        |i| if i % 2 == 0 { 8 } else { 9 },
        (230, 20),
    );
    let weights = data.join("weights/mobilenet_v2_imagenet_from_tflite.safetensors");
    // The frozen phase only, with a fixed learning rate: only the new head may change.
    let fine_tune = |device: &str, save: &str| {
        run(
            &[
                "--device",
                device,
                "train",
                ".",
                "--pretrained",
                weights.to_str().unwrap(),
                "--size",
                "64",
                "--freeze-epochs",
                "1",
                "--epochs",
                "0",
                "--lr",
                "1e-3",
                "--batch-size",
                "8",
                "--save",
                save,
                "--json",
            ]
            .map(String::from),
            tmp.path(),
        )
    };
    let cpu = fine_tune("cpu", "cpu.safetensors");
    let gpu = fine_tune("wgpu", "gpu.safetensors");
    eprintln!(
        "frozen phase: valid accuracy cpu {}, wgpu {}",
        cpu["valid_accuracy"], gpu["valid_accuracy"]
    );
    let (on_cpu, on_gpu) = (
        tensors(&tmp.path().join("cpu.safetensors")),
        tensors(&tmp.path().join("gpu.safetensors")),
    );
    assert_eq!(
        on_cpu.keys().collect::<Vec<_>>(),
        on_gpu.keys().collect::<Vec<_>>()
    );
    let (mut body, mut head) = (0, 0);
    for (name, cpu_bytes) in &on_cpu {
        if name.starts_with("head.") {
            // Drawn and trained on each device: they differ, and training moved them.
            head += 1;
            continue;
        }
        body += 1;
        assert!(
            cpu_bytes == &on_gpu[name],
            "{name}: the frozen body differs between the two devices"
        );
    }
    eprintln!(
        "{body} body tensors (BatchNorm statistics among them) identical, {head} head tensors"
    );
    assert!(body > 100 && head > 0, "{body} body, {head} head tensors");
}

#[test]
#[ignore = "needs --features wgpu"]
fn a_machine_without_a_gpu_is_told_so_at_start_not_by_a_panic() {
    let tmp = tempfile::tempdir().unwrap();
    // Vulkan's loader finds no driver: as on a machine without a GPU or without its Vulkan driver.
    let out = Command::new(env!("CARGO_BIN_EXE_convlearn"))
        .args([
            "--device", "wgpu", "train", "shapes", "--epochs", "1", "--limit", "60",
        ])
        .env("VK_ICD_FILENAMES", "/nonexistent.json")
        .env("VK_DRIVER_FILES", "/nonexistent.json")
        .current_dir(tmp.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    // No adapter at all, or (where Mesa's OpenGL is installed) only OpenGL, which burn's kernels
    // do not compile for: either way refused before any work.
    assert!(
        stderr.contains("error: --device wgpu: device 'wgpu': "),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "nothing written"
    );
}
