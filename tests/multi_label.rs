//! Multi-label and CSV data through the command line: training picks sigmoid + binary cross-entropy
//! by itself, chooses and saves a threshold, `predict` lists the tags above it, and `interpret`
//! writes its figures — fine-tuned (needs the shared pretrained weights) and from scratch.

mod common;

use std::path::Path;

use common::{convlearn, json_of, require_shared};

/// 48×48 colour pictures with two independent tags: `bar` (a horizontal white bar) and `dot` (a red
/// disc); some have both, some neither. Writes `labels.csv` (multi-label) and `classes.csv`
/// (single-label: which of the two shapes, for images with exactly one).
fn write_tagged_pictures(dir: &Path, n: usize) {
    std::fs::create_dir_all(dir.join("img")).unwrap();
    let mut tags_csv = String::from("image_name,tags\n");
    let mut class_csv = String::from("image_name,label\n");
    for i in 0..n {
        let (bar, dot) = (i % 2 == 0, (i / 2) % 2 == 0);
        let shift = (i % 7) as i32 - 3;
        let img = image::RgbImage::from_fn(48, 48, |x, y| {
            let (x, y) = (x as i32, y as i32);
            let on_bar = bar && (20 + shift..28 + shift).contains(&y) && (4..44).contains(&x);
            let (dx, dy) = (x - 24 - shift, y - 12);
            let on_dot = dot && dx * dx + dy * dy <= 36;
            match (on_dot, on_bar) {
                (true, _) => image::Rgb([220, 30, 30]),
                (false, true) => image::Rgb([235, 235, 235]),
                _ => image::Rgb([30, 60 + (i % 5) as u8 * 10, 40]),
            }
        });
        img.save(dir.join("img").join(format!("p{i}.png"))).unwrap();
        let tags: Vec<&str> = [(bar, "bar"), (dot, "dot")]
            .iter()
            .filter(|t| t.0)
            .map(|t| t.1)
            .collect();
        tags_csv += &format!("p{i},{}\n", tags.join(" "));
        if tags.len() == 1 {
            class_csv += &format!("p{i},{}\n", tags[0]);
        }
    }
    std::fs::write(dir.join("labels.csv"), tags_csv).unwrap();
    std::fs::write(dir.join("classes.csv"), class_csv).unwrap();
}

/// `predict` with `model` lists both tags for p0 and none for p3.
fn assert_tags_of_p0_and_p3(dir: &Path, model: &str) {
    let v = json_of(&convlearn(
        &["predict", model, "img/p0.png", "img/p3.png", "--json"],
        dir,
    ));
    assert_eq!(v["multi_label"], true, "{v}");
    let tags = |k: usize| -> Vec<&str> {
        let mut n: Vec<&str> = v["results"][k]["predictions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["class"].as_str().unwrap())
            .collect();
        n.sort();
        n
    };
    assert_eq!((tags(0), tags(1)), (vec!["bar", "dot"], vec![]), "{v}");
}

#[test]
fn the_small_cnn_learns_several_tags_from_scratch() {
    // No pretrained weights: the lesson's simple_cnn on the same tagged pictures, squashed to 28 px.
    let tmp = tempfile::tempdir().unwrap();
    write_tagged_pictures(tmp.path(), 400);
    let v = json_of(&convlearn(
        &[
            "train",
            "--csv",
            "labels.csv",
            "--images",
            "img",
            "--suffix",
            ".png",
            "--arch",
            "simple_cnn",
            "--epochs",
            "4",
            "--save",
            "tags.safetensors",
            "--json",
        ],
        tmp.path(),
    ));
    assert_eq!(
        (v["multi_label"].as_bool(), v["architecture"].as_str()),
        (Some(true), Some("simple_cnn")),
        "{v}"
    );
    assert_eq!(
        (v["train_images"].as_u64(), v["valid_images"].as_u64()),
        (Some(320), Some(80)),
        "{v}"
    );
    let f2 = v["valid_f2"].as_f64().unwrap();
    let threshold = v["threshold"].as_f64().unwrap();
    eprintln!(
        "simple_cnn from scratch, 320 tagged pictures, 4 epochs: F2 {f2:.4} at {threshold:.2}, {:.1} s",
        v["seconds"].as_f64().unwrap()
    );
    assert!(f2 > 0.9, "two easy tags: F2 {f2} ({v})");
    assert!((0.0..1.0).contains(&threshold), "{v}");
    // p0 has both tags, p3 neither; sigmoid outputs, so the probabilities need not sum to 1.
    assert_tags_of_p0_and_p3(tmp.path(), "tags.safetensors");
    // Grad-CAM for a tag that is not the top one.
    let v = json_of(&convlearn(
        &[
            "heatmap",
            "tags.safetensors",
            "img/p0.png",
            "--class",
            "bar",
            "--json",
        ],
        tmp.path(),
    ));
    assert_eq!(v["class"], "bar", "{v}");
    assert!(v["probability"].as_f64().unwrap() > threshold, "{v}");
}

#[test]
#[ignore = "needs ../shared (or $CONVLEARN_DATA): cargo test -- --ignored runs it"]
fn multi_label_csv_trains_predicts_and_interprets() {
    let data = require_shared();
    let tmp = tempfile::tempdir().unwrap();
    write_tagged_pictures(tmp.path(), 120);
    let weights = data.join("weights/mobilenet_v2_imagenet_from_tflite.safetensors");
    let train = |csv: &str, save: &str| {
        json_of(&convlearn(
            &[
                "train",
                "--csv",
                csv,
                "--images",
                "img",
                "--suffix",
                ".png",
                "--pretrained",
                weights.to_str().unwrap(),
                "--size",
                "64",
                "--freeze-epochs",
                "3",
                "--epochs",
                "0",
                "--precompute",
                "--lr",
                "3e-3",
                "--save",
                save,
                "--tta",
                "--json",
            ],
            tmp.path(),
        ))
    };
    let v = train("labels.csv", "tags.safetensors");
    assert_eq!(v["multi_label"], true, "{v}");
    let f2 = v["valid_f2"].as_f64().unwrap();
    let threshold = v["threshold"].as_f64().unwrap();
    assert!(f2 > 0.9, "two easy tags: F2 {f2} ({v})");
    assert!((0.05..=0.5).contains(&threshold), "{v}");
    assert!(v["valid_f2_tta"].as_f64().is_some(), "{v}");
    let metrics = tmp.path().join(v["metrics_png"].as_str().unwrap());
    assert!(metrics.is_file(), "{v}");

    // p0 has both tags, p3 neither: predict lists the tags above the saved threshold.
    assert_tags_of_p0_and_p3(tmp.path(), "tags.safetensors");
    // --threshold overrides: at 0.999 hardly anything passes, at 0.0001 everything does.
    let v = json_of(&convlearn(
        &[
            "predict",
            "tags.safetensors",
            "img/p3.png",
            "--threshold",
            "0.0001",
            "--json",
        ],
        tmp.path(),
    ));
    assert_eq!(
        v["results"][0]["predictions"].as_array().unwrap().len(),
        2,
        "{v}"
    );

    let out = convlearn(
        &[
            "interpret",
            "tags.safetensors",
            "--csv",
            "labels.csv",
            "--images",
            "img",
            "--suffix",
            ".png",
            "-o",
            "why",
            "--tta",
            "2",
        ],
        tmp.path(),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("F2") && text.contains("per tag:") && text.contains("top losses"),
        "{text}"
    );
    for f in [
        "top_losses.png",
        "most_uncertain.png",
        "tags.png",
        "tags.txt",
        "f2_vs_threshold.png",
    ] {
        assert!(
            tmp.path().join("why").join(f).is_file(),
            "{f} missing; {text}"
        );
    }

    // The single-label CSV of the same pictures: softmax, accuracy only, and a confusion matrix.
    let v = train("classes.csv", "classes.safetensors");
    assert_eq!(v["multi_label"], false, "{v}");
    assert!(v["valid_f2"].is_null() && v["threshold"].is_null(), "{v}");
    assert!(v["valid_accuracy"].as_f64().unwrap() > 0.9, "{v}");
    let v = json_of(&convlearn(
        &[
            "interpret",
            "classes.safetensors",
            "--csv",
            "classes.csv",
            "--images",
            "img",
            "--suffix",
            ".png",
            "-o",
            "why1",
            "--json",
        ],
        tmp.path(),
    ));
    let m = v["confusion_matrix"].as_array().unwrap();
    let total: u64 = m
        .iter()
        .flat_map(|r| r.as_array().unwrap())
        .map(|c| c.as_u64().unwrap())
        .sum();
    assert_eq!(total, v["images"].as_u64().unwrap());
    assert!(tmp.path().join("why1/confusion_matrix.png").is_file());
}

#[test]
fn bad_csv_rows_are_reported_with_their_line() {
    let tmp = tempfile::tempdir().unwrap();
    write_tagged_pictures(tmp.path(), 8);
    std::fs::write(
        tmp.path().join("bad.csv"),
        "image_name,tags,extra\np0,bar,1\np404,dot,2\n,bar,3\n",
    )
    .unwrap();
    let out = convlearn(
        &[
            "train",
            "--csv",
            "bad.csv",
            "--images",
            "img",
            "--suffix",
            ".png",
            "--pretrained",
            "no-weights.safetensors",
        ],
        tmp.path(),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown column 'extra'"), "{err}");
    assert!(
        err.contains("bad.csv") && err.contains("line 3: image file") && err.contains("p404.png"),
        "{err}"
    );
    assert!(err.contains("line 4: the image name is empty"), "{err}");
}
