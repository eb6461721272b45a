//! Fine-tuning the shared ImageNet MobileNetV2 on real photos (long: run by `.ci/run`).

mod common;

use common::require_shared;
use convlearn::data::Dataset;
use convlearn::recipes::{TransferConfig, fine_tune};

#[test]
#[ignore = "long (about 2 minutes on 2 cores): run by .ci/run with --ignored"]
fn default_fine_tune_on_hymenoptera() {
    let dir = require_shared();
    let cfg = TransferConfig {
        weights: dir.join("weights/mobilenet_v2_imagenet_from_tflite.safetensors"),
        verbose: false,
        ..TransferConfig::default()
    };
    let (model, report) = fine_tune(&Dataset::Folder(dir.join("data/hymenoptera")), &cfg).unwrap();
    eprintln!(
        "hymenoptera: {:.2}% at {} px, {:.1} s, phases {:?}",
        100.0 * report.valid_accuracy,
        report.size,
        report.seconds,
        report.phases
    );
    assert_eq!((report.train_images, report.valid_images), (245, 153));
    assert_eq!(model.meta.classes, vec!["ants", "bees"]);
    // The default size follows the photos (median crop side ≈ 328 px → 320 px).
    assert_eq!(report.size, 320);
    // The goal is 95 %: eleven default runs measured 94.8–97.4 % (mean 96.2 %, two at 94.8 %:
    // 245 training photos, and parallel sums that are not bit-stable). The assertion sits under that
    // spread so that it catches regressions (224 px gave 93.3 %), not noise.
    assert!(report.valid_accuracy >= 0.94, "{report:?}");
}

#[test]
#[ignore = "long (about 3 minutes on 2 cores): run by .ci/run with --ignored"]
fn default_fine_tune_on_planet_reaches_f2() {
    let dir = require_shared();
    let cfg = TransferConfig {
        weights: dir.join("weights/mobilenet_v2_imagenet_from_tflite.safetensors"),
        verbose: false,
        ..TransferConfig::default()
    };
    let planet = dir.join("data/planet_sample");
    let data = Dataset::Csv {
        labels: planet.join("labels.csv"),
        images: planet.join("train"),
        suffix: ".jpg".into(),
    };
    let (model, report) = fine_tune(&data, &cfg).unwrap();
    eprintln!(
        "planet: F2 {:?} at threshold {:?}, {:.1} s at {} px, phases {:?}",
        report.valid_f2, report.threshold, report.seconds, report.size, report.phases
    );
    // The documented split: 20 % of the 1000 chips, seed 42.
    assert_eq!((report.train_images, report.valid_images), (800, 200));
    assert!(model.meta.multi_label && model.meta.classes.len() == 17);
    assert_eq!(Some(model.meta.threshold), report.threshold);
    // The goal is 0.88; the default measured 0.884–0.890 (PyTorch's reference: 0.881
    // at 0.2, 0.885 at its best). Runs differ by a few images (parallel sums are not bit-stable), so
    // the assertion leaves a margin below the goal to catch regressions, not noise.
    assert!(report.valid_f2.unwrap() >= 0.87, "{report:?}");
}
