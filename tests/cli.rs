//! The `convlearn` command as a user runs it: outputs, JSON, and errors on bad input.

mod common;

use std::path::Path;

use common::{convlearn, json_of, numbers, require_shared, write_shapes};

/// A 20×20 picture: black, with a white square at rows 8..14, columns 6..14.
fn square_png(dir: &Path) -> std::path::PathBuf {
    let img = image::GrayImage::from_fn(20, 20, |x, y| {
        image::Luma([if (6..14).contains(&x) && (8..14).contains(&y) {
            255
        } else {
            0
        }])
    });
    let p = dir.join("square.png");
    img.save(&p).unwrap();
    p
}

/// `convlearn BASE ARGS` fails, its message containing `needle`.
fn fails_naming(dir: &Path, base: &[&str], args: &[&str], needle: &str) {
    let all: Vec<&str> = base.iter().chain(args).copied().collect();
    let out = convlearn(&all, dir);
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        !out.status.success() && err.contains(needle),
        "{args:?}: {err}"
    );
}

#[test]
fn kernel_writes_a_figure_and_explains_a_pixel() {
    let tmp = tempfile::tempdir().unwrap();
    square_png(tmp.path());
    // Output pixel x=7, y=6 (valid padding) covers input rows 6..9, columns 7..10: rows 6,7 black,
    // row 8 white → bottom-edge = 3 × 1 = 3.
    let out = convlearn(
        &[
            "kernel",
            "square.png",
            "--kernel",
            "bottom-edge",
            "--at",
            "7,6",
            "-o",
            "k.png",
            "--json",
        ],
        tmp.path(),
    );
    let v = json_of(&out);
    assert!((v["at"]["sum"].as_f64().unwrap() - 3.0).abs() < 1e-6, "{v}");
    assert_eq!(v["response"], serde_json::json!([18, 18]));
    assert_eq!(v["pooled"], serde_json::json!([9, 9]));
    let png = image::open(tmp.path().join("k.png")).unwrap();
    assert!(png.width() > 600, "four panels side by side");

    // Text mode prints the arithmetic; zero padding keeps the size; rgb makes a 3×3×3 kernel.
    let out = convlearn(
        &[
            "kernel",
            "square.png",
            "--kernel",
            "top-edge",
            "--padding",
            "zero",
            "--channels",
            "rgb",
            "--at",
            "0,0",
            "-o",
            "k2.png",
        ],
        tmp.path(),
    );
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("3×3×3 kernel on a 20×20 image: response 20×20"),
        "{text}"
    );
    assert!(
        text.contains("products (window × kernel)") && text.contains("after ReLU"),
        "{text}"
    );
}

#[test]
fn bad_kernels_and_unreadable_images_give_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    square_png(tmp.path());
    let out = convlearn(
        &["kernel", "square.png", "--kernel", "1 2 3; 4 5"],
        tmp.path(),
    );
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("not rectangular") && err.contains("-1 -1 -1; 0 0 0; 1 1 1"),
        "{err}"
    );

    std::fs::write(tmp.path().join("broken.png"), b"GIF89a but not really").unwrap();
    let out = convlearn(&["kernel", "broken.png"], tmp.path());
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("broken.png") && err.contains("cannot decode"),
        "{err}"
    );

    let out = convlearn(&["train", "mnist", "--data", "nowhere"], tmp.path());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        !out.status.success() && err.contains("nowhere") && err.contains("train-images-idx3-ubyte"),
        "{err}"
    );
}

#[test]
fn train_predict_explain_activations_on_generated_shapes() {
    let tmp = tempfile::tempdir().unwrap();
    let v = json_of(&convlearn(
        &[
            "train",
            "shapes",
            "--epochs",
            "2",
            "--limit",
            "1800",
            "--save",
            "m.safetensors",
            "--plot",
            "loss.png",
            "--json",
        ],
        tmp.path(),
    ));
    assert!(v["valid_accuracy"].as_f64().unwrap() > 0.8, "{v}");
    assert!(v["images_per_second"].as_f64().unwrap() > 0.0);
    assert!(image::open(tmp.path().join("loss.png")).is_ok());

    let img = square_png(tmp.path());
    let v = json_of(&convlearn(
        &[
            "predict",
            "m.safetensors",
            img.to_str().unwrap(),
            "--top",
            "2",
            "--json",
        ],
        tmp.path(),
    ));
    let preds = v["results"][0]["predictions"].as_array().unwrap();
    assert_eq!(preds.len(), 2);
    assert!(preds[0]["probability"].as_f64().unwrap() >= preds[1]["probability"].as_f64().unwrap());

    let v = json_of(&convlearn(
        &[
            "explain",
            "m.safetensors",
            "square.png",
            "--layer",
            "2",
            "--channel",
            "3",
            "--at",
            "4,5",
            "--json",
        ],
        tmp.path(),
    ));
    assert_eq!(
        v["windows"].as_array().unwrap().len(),
        32,
        "layer 2 sees 32 channels"
    );
    // Each channel's sum recomputed here from the window and kernel slice the JSON shows, then the
    // total with the bias and the ReLU, checked against the value burn's convolution computed.
    let (windows, kernels) = (
        v["windows"].as_array().unwrap(),
        v["kernels"].as_array().unwrap(),
    );
    let mut total = v["bias"].as_f64().unwrap();
    for (c, (w, k)) in windows.iter().zip(kernels).enumerate() {
        let (w, k) = (numbers(w), numbers(k));
        assert_eq!((w.len(), k.len()), (9, 9), "3×3 window and kernel slice");
        let sum: f64 = w.iter().zip(&k).map(|(a, b)| a * b).sum();
        assert!(
            (sum - v["sums"][c].as_f64().unwrap()).abs() < 1e-4,
            "channel {c}"
        );
        total += sum;
    }
    assert!((total.max(0.0) - v["network_value"].as_f64().unwrap()).abs() < 1e-3);
    assert!((v["relu"].as_f64().unwrap() - v["network_value"].as_f64().unwrap()).abs() < 1e-4);

    let v = json_of(&convlearn(
        &[
            "activations",
            "m.safetensors",
            "square.png",
            "-o",
            "acts.png",
            "--json",
        ],
        tmp.path(),
    ));
    let total: f64 = v["probabilities"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| p.as_f64().unwrap())
        .sum();
    assert!((total - 1.0).abs() < 1e-4);
    assert!(image::open(tmp.path().join("acts.png")).unwrap().height() > 400);
    // Each prediction carries its logit: softmax of the logits gives the probabilities.
    let preds = v["predictions"].as_array().unwrap();
    let logits: Vec<f64> = preds.iter().map(|p| p["logit"].as_f64().unwrap()).collect();
    let sum: f64 = logits.iter().map(|z| z.exp()).sum();
    for (p, z) in preds.iter().zip(&logits) {
        let want = z.exp() / sum;
        assert!(
            (p["probability"].as_f64().unwrap() - want).abs() < 1e-5,
            "{p}"
        );
    }

    // Grad-CAM: by default for the top class, on the last convolution's output (14 × 14 here).
    let v = json_of(&convlearn(
        &[
            "heatmap",
            "m.safetensors",
            "square.png",
            "-o",
            "heat.png",
            "--json",
        ],
        tmp.path(),
    ));
    assert_eq!(v["class"], preds[0]["class"], "{v}");
    assert_eq!(v["layer"], "conv2 + ReLU", "{v}");
    let map = v["heatmap"].as_array().unwrap();
    assert_eq!((map.len(), map[0].as_array().unwrap().len()), (14, 14));
    let cells: Vec<f64> = map.iter().flat_map(numbers).collect();
    assert!(
        cells.iter().all(|c| (0.0..=1.0).contains(c)) && cells.contains(&1.0),
        "{v}"
    );
    assert!(image::open(tmp.path().join("heat.png")).unwrap().width() >= 640);
    for (args, needle) in [
        (
            &["--layer", "conv9"][..],
            "conv1 + ReLU, pool1, conv2 + ReLU, pool2",
        ),
        (&["--class", "hexagon"][..], "no class 'hexagon'"),
        (&["-o", "m.safetensors"][..], "--output"),
    ] {
        fails_naming(
            tmp.path(),
            &["heatmap", "m.safetensors", "square.png"],
            args,
            needle,
        );
    }

    // The first layer's kernels: 32 tiles, largest norm first, the norms those of the file's tensor.
    let v = json_of(&convlearn(
        &["kernels", "m.safetensors", "-o", "k.png", "--json"],
        tmp.path(),
    ));
    assert_eq!(v["layer"], "convs.0.conv", "{v}");
    assert_eq!(v["shape"], serde_json::json!([32, 1, 3, 3]));
    let bytes = std::fs::read(tmp.path().join("m.safetensors")).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let weight = file.tensor("convs.0.conv.weight").unwrap();
    let w: Vec<f32> = weight
        .data()
        .chunks(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let norms = numbers(&v["norms"]);
    for (k, kernel) in w.chunks(9).enumerate() {
        let norm = kernel.iter().map(|x| (x * x) as f64).sum::<f64>().sqrt();
        assert!(
            (norm - norms[k]).abs() < 1e-5,
            "kernel {k}: {norm} vs {}",
            norms[k]
        );
    }
    let order: Vec<usize> = numbers(&v["order"]).iter().map(|&i| i as usize).collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(sorted, (0..32).collect::<Vec<_>>());
    assert!(
        order.windows(2).all(|p| norms[p[0]] >= norms[p[1]]),
        "{order:?}"
    );
    assert!(image::open(tmp.path().join("k.png")).unwrap().width() >= 600);

    // A deeper channel's strongest pictures in a folder: squares at four places, a file that only
    // looks like a PNG (left out, named) and a note (not a picture, not looked at).
    let pics = tmp.path().join("pics");
    std::fs::create_dir_all(pics.join("more")).unwrap();
    for (i, (x0, y0)) in [(2u32, 3u32), (9, 1), (4, 10), (11, 11)]
        .into_iter()
        .enumerate()
    {
        let img = image::GrayImage::from_fn(20, 20, |x, y| {
            image::Luma([if (x0..x0 + 6).contains(&x) && (y0..y0 + 5).contains(&y) {
                255
            } else {
                0
            }])
        });
        let dir = if i % 2 == 0 {
            pics.clone()
        } else {
            pics.join("more")
        };
        img.save(dir.join(format!("sq{i}.png"))).unwrap();
    }
    std::fs::write(pics.join("broken.png"), b"not a png").unwrap();
    std::fs::write(pics.join("notes.txt"), b"hello").unwrap();
    let v = json_of(&convlearn(
        &[
            "kernels",
            "m.safetensors",
            "--layer",
            "conv2 + ReLU",
            "--channel",
            "5",
            "--images",
            "pics",
            "--top",
            "3",
            "-o",
            "top.png",
            "--json",
        ],
        tmp.path(),
    ));
    assert_eq!(
        (v["images"].as_u64(), v["channels"].as_u64()),
        (Some(4), Some(64)),
        "{v}"
    );
    assert_eq!(v["map_size"], serde_json::json!([14, 14]));
    let skipped = v["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 1, "{v}");
    assert!(
        skipped[0][0].as_str().unwrap().ends_with("broken.png"),
        "{v}"
    );
    let patches = v["patches"].as_array().unwrap();
    assert_eq!(patches.len(), 3, "{v}");
    let values: Vec<f64> = patches
        .iter()
        .map(|p| p["activation"].as_f64().unwrap())
        .collect();
    assert!(values.windows(2).all(|w| w[0] >= w[1]), "{values:?}");
    for p in patches {
        // Each value is what `explain` computes by hand at that place (layer 2, channel 5)…
        let [row, col] = [0, 1].map(|i| p["position"][i].as_u64().unwrap());
        let image = p["image"].as_str().unwrap();
        let e = json_of(&convlearn(
            &[
                "explain",
                "m.safetensors",
                image,
                "--layer",
                "2",
                "--channel",
                "5",
                "--at",
                &format!("{col},{row}"),
                "--json",
            ],
            tmp.path(),
        ));
        let relu = e["relu"].as_f64().unwrap();
        assert!(
            (relu - p["activation"].as_f64().unwrap()).abs() < 1e-4,
            "{p} {e}"
        );
        // …and its region lies inside the 28 × 28 picture the model saw, no larger than conv 2's
        // receptive field there (conv 3×3, pool 2, conv 3×3: 8 × 8).
        let r: Vec<u64> = p["region"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        // (A value the ReLU holds at zero depends on nothing: the whole picture is shown.)
        if relu > 0.0 {
            assert!(
                r[0] + r[2] <= 28 && r[1] + r[3] <= 28 && r[2] <= 8 && r[3] <= 8,
                "{p}"
            );
            assert!(r[2] >= 1 && r[3] >= 1, "{p}");
        } else {
            assert_eq!(r, [0, 0, 28, 28], "{p}");
        }
    }
    assert!(image::open(tmp.path().join("top.png")).unwrap().width() >= 400);
    for (args, needle) in [
        (&["--channel", "64", "--images", "pics"][..], "64 channels"),
        (&["--channel", "0", "--images", "nowhere"][..], "nowhere"),
        (&["--channel", "0"][..], "--images"),
        (
            &["--channel", "0", "--images", "pics", "-o", "pics/sq0.png"][..],
            "--output",
        ),
    ] {
        let base = ["kernels", "m.safetensors", "--layer", "conv2 + ReLU"];
        fails_naming(tmp.path(), &base, args, needle);
    }

    let out = convlearn(&["predict", "loss.png", "square.png"], tmp.path());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(!out.status.success() && err.contains("loss.png"), "{err}");
}

#[test]
fn the_lessons_networks_train_from_scratch_on_a_folder_of_small_gray_pictures() {
    // 25 × 25 gray squares and circles of radius 3 … 10, 300 of each class to train on.
    let tmp = tempfile::tempdir().unwrap();
    let radius = |i: usize| 3 + (i / 2 % 8) as i32;
    write_shapes(
        &tmp.path().join("pics"),
        &[("train", 600), ("valid", 200)],
        25,
        radius,
        (230, 20),
    );
    // The spreadsheet's two kernels learn slower (80 % after 3 epochs here).
    for (arch, epochs, bar) in [("simple_cnn", "3", 0.95), ("spreadsheet", "10", 0.9)] {
        let save = format!("{arch}.safetensors");
        let v = json_of(&convlearn(
            &[
                "train", "pics", "--arch", arch, "--epochs", epochs, "--save", &save, "--json",
            ],
            tmp.path(),
        ));
        assert_eq!(v["architecture"], arch, "{v}");
        assert_eq!(
            (v["train_images"].as_u64(), v["valid_images"].as_u64()),
            (Some(600), Some(200))
        );
        assert!(v["valid_accuracy"].as_f64().unwrap() > bar, "{arch}: {v}");
        // Gray pictures make a one-channel network: conv 1's window has one input channel, at the
        // pictures' 28 × 28 (squashed from 25).
        let v = json_of(&convlearn(
            &[
                "explain",
                &save,
                "pics/valid/circle/1.png",
                "--at",
                "5,5",
                "--json",
            ],
            tmp.path(),
        ));
        assert_eq!(v["windows"].as_array().unwrap().len(), 1, "{v}");
        let v = json_of(&convlearn(
            &["predict", &save, "pics/valid/square/0.png", "--json"],
            tmp.path(),
        ));
        assert_eq!(v["results"][0]["predictions"][0]["class"], "square", "{v}");
        // The workbook's own arithmetic (the values cached in its formulas) ends where the network
        // does; LibreOffice's recalculation of every cell is tests/spreadsheet's check.
        let picture = "pics/valid/circle/1.png";
        let out = convlearn(
            &["spreadsheet", &save, picture, "-o", "net.xlsx", "--json"],
            tmp.path(),
        );
        if arch == "simple_cnn" {
            let err = String::from_utf8(out.stderr).unwrap();
            assert!(
                !out.status.success() && err.contains("formula cells"),
                "{err}"
            );
            continue;
        }
        let sheet = json_of(&out);
        let acts = json_of(&convlearn(
            &["activations", &save, picture, "--json"],
            tmp.path(),
        ));
        let probs = acts["probabilities"].as_object().unwrap();
        for (class, p) in ["circle", "square"]
            .iter()
            .zip(numbers(&sheet["probabilities"]))
        {
            let q = probs[*class].as_f64().unwrap();
            assert!((p - q).abs() < 1e-5, "{class}: workbook {p}, network {q}");
        }
        assert!(sheet["formulas"].as_u64().unwrap() > 2000, "{sheet}");
    }
    let out = convlearn(&["train", "pics", "--size", "16,32"], tmp.path());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        !out.status.success() && err.contains("progressive resizing"),
        "{err}"
    );
}

#[test]
fn demo_runs_without_data_and_reaches_high_accuracy() {
    let tmp = tempfile::tempdir().unwrap();
    let v = json_of(&convlearn(&["demo", "-o", "out", "--json"], tmp.path()));
    assert!(v["valid_accuracy"].as_f64().unwrap() >= 0.95, "{v}");
    for key in ["kernel_png", "activations_png", "loss_png", "model"] {
        let p = tmp.path().join(v[key].as_str().unwrap());
        assert!(p.is_file(), "{key}: {}", p.display());
    }
}

#[test]
#[ignore = "needs ../shared (or $CONVLEARN_DATA): cargo test -- --ignored runs it"]
fn fine_tuning_works_unchanged_on_small_grayscale_images() {
    let data = require_shared();
    let tmp = tempfile::tempdir().unwrap();
    // 28×28 grayscale squares and circles, far from the weights' 224 px
    // 200 training images give the LR finder (at most one epoch, batches of 4) 50 steps; with the
    // 24 this test once used it saw 6, and its suggestion was noise.
    write_shapes(
        tmp.path(),
        &[("train", 200), ("valid", 12)],
        28,
        |i| if i % 2 == 0 { 8 } else { 9 },
        (230, 20),
    );
    let weights = data.join("weights/mobilenet_v2_imagenet_from_tflite.safetensors");
    let out = convlearn(
        &[
            "train",
            ".",
            "--pretrained",
            weights.to_str().unwrap(),
            "--size",
            "64",
            "--freeze-epochs",
            "2",
            "--epochs",
            "1",
            "--save",
            "g.safetensors",
            "--json",
        ],
        tmp.path(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        stderr.contains("far from the 224 px"),
        "size warning: {stderr}"
    );
    let v = json_of(&out);
    assert!(v["valid_accuracy"].as_f64().unwrap() > 0.5, "{v}");
    assert_eq!(v["size"], 64);
    let v = json_of(&convlearn(
        &["predict", "g.safetensors", "valid/square/0.png", "--json"],
        tmp.path(),
    ));
    assert_eq!(v["results"][0]["predictions"].as_array().unwrap().len(), 2);
    // every stage of the pretrained body, tiled, plus the probabilities
    let v = json_of(&convlearn(
        &[
            "activations",
            "g.safetensors",
            "valid/circle/1.png",
            "-o",
            "a.png",
            "--json",
        ],
        tmp.path(),
    ));
    assert_eq!(v["probabilities"].as_object().unwrap().len(), 2);
    assert!(image::open(tmp.path().join("a.png")).unwrap().height() > 1000);
}
