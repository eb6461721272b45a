//! The plain-Rust teaching path (kernels, explain) agrees with burn's convolution, and `explain`
//! agrees with an independent hand computation from the saved weights.

mod common;

use burn::module::Param;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2dConfig;
use burn::tensor::{Device, Tensor, TensorData};
use common::assert_close;
use convlearn::data::{Crop, Normalization, Preprocess};
use convlearn::host::values;
use convlearn::interpret::{explain, image_files, render_top_patches, top_patches};
use convlearn::kernels::{FeatureMaps, Kernel, Padding, convolve};
use convlearn::model_file::{FORMAT_VERSION, ModelMeta, SavedModel};
use convlearn::models::{ArchSpec, ModelPreset, Network};
use convlearn::tensor_file::TensorFile;
use rand::{Rng, SeedableRng, rngs::StdRng};

fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(-1.0..1.0)).collect()
}

#[test]
fn plain_convolution_equals_burn_conv2d() {
    let device = Device::flex();
    let (cin, cout, h, w) = (3, 4, 9, 11);
    let input = FeatureMaps::new(cin, h, w, random(cin * h * w, 1));
    let weights = random(cout * cin * 9, 2);
    let biases = random(cout, 3);
    let kernels: Vec<Kernel> = (0..cout)
        .map(|k| Kernel {
            channels: cin,
            height: 3,
            width: 3,
            weights: weights[k * cin * 9..(k + 1) * cin * 9].to_vec(),
        })
        .collect();
    for (padding, pad) in [(Padding::Valid, 0), (Padding::Zero, 1)] {
        let mut conv = Conv2dConfig::new([cin, cout], [3, 3])
            .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
            .init(&device);
        conv.weight = Param::from_tensor(Tensor::from_data(
            TensorData::new(weights.clone(), [cout, cin, 3, 3]),
            &device,
        ));
        conv.bias = Some(Param::from_tensor(Tensor::from_data(
            TensorData::new(biases.clone(), [cout]),
            &device,
        )));
        let x =
            Tensor::<4>::from_data(TensorData::new(input.data.clone(), [1, cin, h, w]), &device);
        let burn = values(conv.forward(x));
        let ours = convolve(&input, &kernels, &biases, padding).unwrap();
        assert_close(&ours.data, &burn, 1e-5, &format!("{padding:?}"));
    }
}

/// The spreadsheet network with random weights, saved and loaded as a user would.
fn spreadsheet_model(dir: &std::path::Path) -> (SavedModel, std::path::PathBuf) {
    let device = Device::flex();
    let spec = ModelPreset::Spreadsheet.spec(1, 28, 28, 10);
    let arch = ArchSpec::Plain {
        preset: "spreadsheet".into(),
        spec: spec.clone(),
    };
    let model = SavedModel {
        meta: ModelMeta {
            format_version: FORMAT_VERSION,
            multi_label: false,
            threshold: 0.5,
            augment: Default::default(),
            arch: arch.clone(),
            classes: (0..10).map(|d| d.to_string()).collect(),
            preprocess: Preprocess {
                channels: 1,
                height: 28,
                width: 28,
                normalization: Normalization {
                    mean: vec![0.25],
                    std: vec![0.5],
                },
                crop: Crop::None,
            },
        },
        network: Network::new(&arch, &device).unwrap(),
    };
    let path = dir.join("sheet.safetensors");
    model.save(&path).unwrap();
    (SavedModel::load(&path, &device).unwrap(), path)
}

#[test]
fn explain_matches_a_hand_computation_of_the_spreadsheet() {
    let tmp = tempfile::tempdir().unwrap();
    let (model, path) = spreadsheet_model(tmp.path());
    // Independent: read the raw tensors back from the file and compute with loops.
    let f = TensorFile::read(&path).unwrap();
    let names: Vec<&String> = f.tensors.keys().collect();
    let get = |n: &str| {
        &f.tensors
            .get(n)
            .unwrap_or_else(|| panic!("no {n} in {names:?}"))
            .values
    };
    let (w1, b1, w2, b2) = (
        get("convs.0.conv.weight"),
        get("convs.0.conv.bias"),
        get("convs.1.conv.weight"),
        get("convs.1.conv.bias"),
    );
    let image = FeatureMaps::new(
        1,
        28,
        28,
        random(784, 9).iter().map(|v| (v + 1.0) / 2.0).collect(),
    );
    let x: Vec<f32> = image.data.iter().map(|v| (v - 0.25) / 0.5).collect();
    // layer 1: 2 kernels 3×3, valid, ReLU → 2×26×26
    let mut a1 = vec![0f32; 2 * 26 * 26];
    for k in 0..2 {
        for y in 0..26 {
            for xx in 0..26 {
                let mut s = b1[k];
                for i in 0..3 {
                    for j in 0..3 {
                        s += x[(y + i) * 28 + xx + j] * w1[k * 9 + i * 3 + j];
                    }
                }
                a1[k * 676 + y * 26 + xx] = s.max(0.0);
            }
        }
    }
    let device = Device::flex();
    for (k, y, xx) in [(0, 0, 0), (1, 5, 17), (1, 23, 23), (0, 12, 3)] {
        let mut sums = [0f32; 2];
        for (c, sum) in sums.iter_mut().enumerate() {
            for i in 0..3 {
                for j in 0..3 {
                    *sum += a1[c * 676 + (y + i) * 26 + xx + j] * w2[((k * 2 + c) * 3 + i) * 3 + j];
                }
            }
        }
        let total = sums[0] + sums[1] + b2[k];
        let e = explain(&model, &image, 2, k, y, xx, &device).unwrap();
        assert_eq!(e.arithmetic.channels.len(), 2, "layer 2 kernels are 2×3×3");
        for (c, (ours, hand)) in e.arithmetic.channels.iter().zip(sums).enumerate() {
            assert!((ours.sum - hand).abs() < 1e-4, "channel {c} sum");
        }
        assert!((e.arithmetic.bias - b2[k]).abs() < 1e-7);
        assert!(
            (e.arithmetic.total - total).abs() < 1e-4,
            "{} vs {total}",
            e.arithmetic.total
        );
        assert!((e.arithmetic.relu - total.max(0.0)).abs() < 1e-4);
        assert!(
            (e.network_value - e.arithmetic.relu).abs() < 1e-4,
            "burn agrees"
        );
    }
    // layer 1 has a single input channel
    let e = explain(&model, &image, 1, 1, 4, 7, &device).unwrap();
    assert!((e.arithmetic.relu - a1[676 + 4 * 26 + 7]).abs() < 1e-4);
    // bad requests name the problem
    assert!(
        explain(&model, &image, 3, 0, 0, 0, &device)
            .unwrap_err()
            .to_string()
            .contains("layer 3")
    );
    assert!(
        explain(&model, &image, 2, 2, 0, 0, &device)
            .unwrap_err()
            .to_string()
            .contains("2 kernels")
    );
    assert!(
        explain(&model, &image, 2, 0, 24, 0, &device)
            .unwrap_err()
            .to_string()
            .contains("outside")
    );
}

#[test]
fn top_patches_rank_a_folder_by_a_hand_computed_convolution() {
    let tmp = tempfile::tempdir().unwrap();
    let (model, path) = spreadsheet_model(tmp.path());
    let f = TensorFile::read(&path).unwrap();
    let (w1, b1) = (
        &f.tensors["convs.0.conv.weight"].values,
        &f.tensors["convs.0.conv.bias"].values,
    );
    // Seven 28 × 28 gray pictures of random pixels (one in a sub-folder), a broken one, a note.
    let pics = tmp.path().join("pics");
    std::fs::create_dir_all(pics.join("sub")).unwrap();
    let mut pixels = Vec::new();
    for i in 0..7u64 {
        let p: Vec<u8> = random(784, 100 + i)
            .iter()
            .map(|v| ((v + 1.0) * 127.5) as u8)
            .collect();
        let dir = if i == 3 {
            pics.join("sub")
        } else {
            pics.clone()
        };
        let file = dir.join(format!("p{i}.png"));
        image::GrayImage::from_raw(28, 28, p.clone())
            .unwrap()
            .save(&file)
            .unwrap();
        pixels.push((file, p));
    }
    std::fs::write(pics.join("broken.png"), b"no").unwrap();
    std::fs::write(pics.join("notes.txt"), b"no").unwrap();
    std::fs::write(pics.join(".hidden.png"), b"no").unwrap();
    let files = image_files(&pics, 100).unwrap();
    assert_eq!(files.len(), 8, "{files:?}");
    assert_eq!(image_files(&pics, 3).unwrap().len(), 3, "the limit");

    // By hand: channel k of conv 1 (3 × 3, valid, ReLU) on (pixel/255 − 0.25) / 0.5; each
    // picture's largest value and where it is (the first place it is reached), strongest first.
    let hand = |k: usize| {
        let mut best: Vec<(f32, std::path::PathBuf, [usize; 2])> = pixels
            .iter()
            .map(|(file, p)| {
                let x: Vec<f32> = p.iter().map(|&v| (v as f32 / 255.0 - 0.25) / 0.5).collect();
                let mut best = (f32::NEG_INFINITY, [0, 0]);
                for r in 0..26 {
                    for c in 0..26 {
                        let mut s = b1[k];
                        for i in 0..3 {
                            for j in 0..3 {
                                s += x[(r + i) * 28 + c + j] * w1[9 * k + i * 3 + j];
                            }
                        }
                        if s.max(0.0) > best.0 {
                            best = (s.max(0.0), [r, c]);
                        }
                    }
                }
                (best.0, file.clone(), best.1)
            })
            .collect();
        best.sort_by(|a, b| b.0.total_cmp(&a.0));
        best
    };
    // The weights are random: the kernel that responds more (a kernel silent on every picture
    // would make the ranking a tie).
    let k = if hand(0)[0].0 >= hand(1)[0].0 { 0 } else { 1 };
    let hand = hand(k);
    assert!(hand[0].0 > 0.0, "a random 3 × 3 kernel responds somewhere");
    let device = Device::flex();
    let top = top_patches(&model, &files, "conv1 + ReLU", k, 4, &device).unwrap();
    assert_eq!((top.images, top.channels, top.map_size), (7, 2, [26, 26]));
    assert_eq!(top.skipped.len(), 1);
    assert!(top.skipped[0].0.ends_with("broken.png"));
    assert_eq!(top.patches.len(), 4);
    for (patch, (value, file, at)) in top.patches.iter().zip(&hand) {
        assert!(
            (patch.activation - value).abs() < 1e-4,
            "{patch:?} vs {value}"
        );
        assert_eq!((&patch.image, patch.position), (file, *at));
        // A valid 3 × 3 convolution at (r, c) depends on rows r..r+3 and columns c..c+3; a value
        // the ReLU holds at zero depends on nothing, and is shown whole.
        let want = if *value > 0.0 {
            [at[0], at[1], 3, 3]
        } else {
            [0, 0, 28, 28]
        };
        assert_eq!(patch.region, want, "{patch:?}");
    }
    // Deeper, after the second convolution and the pool: inside the 6 × 6 pixels a pooled value
    // of two valid 3 × 3 convolutions sees (again the channel that responds more).
    let pooled = [0, 1].map(|c| top_patches(&model, &files, "pool2", c, 3, &device).unwrap());
    let strongest = pooled
        .iter()
        .max_by(|a, b| a.patches[0].activation.total_cmp(&b.patches[0].activation))
        .unwrap();
    assert!(strongest.patches[0].activation > 0.0, "{strongest:?}");
    for p in pooled.iter().flat_map(|t| &t.patches) {
        let ([r, c], [y, x, h, w]) = (p.position, p.region);
        if p.activation > 0.0 {
            assert!(
                y >= 2 * r && x >= 2 * c && y + h <= 2 * r + 6 && x + w <= 2 * c + 6,
                "{p:?}"
            );
        } else {
            assert_eq!(p.region, [0, 0, 28, 28], "{p:?}");
        }
    }
    render_top_patches(&model, &top, &tmp.path().join("top.png")).unwrap();
    assert!(image::open(tmp.path().join("top.png")).unwrap().width() >= 400);

    let err = |layer: &str, channel| {
        top_patches(&model, &files, layer, channel, 3, &device)
            .unwrap_err()
            .to_string()
    };
    assert!(
        err("conv3", 0).contains("conv1 + ReLU, conv2 + ReLU, pool2"),
        "{}",
        err("conv3", 0)
    );
    assert!(
        err("pool2", 2).contains("2 channels"),
        "{}",
        err("pool2", 2)
    );
    let only_broken = [pics.join("broken.png")];
    let e = top_patches(&model, &only_broken, "pool2", 0, 3, &device).unwrap_err();
    assert!(e.to_string().contains("broken.png"), "{e}");
}

#[test]
fn model_files_round_trip_and_report_misfits() {
    let tmp = tempfile::tempdir().unwrap();
    let (model, path) = spreadsheet_model(tmp.path());
    let again = SavedModel::load(&path, &Device::flex()).unwrap();
    assert_eq!(again.meta, model.meta);
    let x = Tensor::<4>::from_data(
        TensorData::new(random(784, 4), [1, 1, 28, 28]),
        &Device::flex(),
    );
    assert_close(
        &values(model.network.forward(x.clone())),
        &values(again.network.forward(x)),
        0.0,
        "round trip",
    );

    // The same weights described as another architecture: every misfit is named with its shapes.
    let mut meta = model.meta.clone();
    meta.arch = ArchSpec::Plain {
        preset: "simple_cnn".into(),
        spec: ModelPreset::SimpleCnn.spec(1, 28, 28, 10),
    };
    let wrong = tmp.path().join("wrong.safetensors");
    SavedModel {
        meta,
        network: model.network.clone(),
    }
    .save(&wrong)
    .unwrap();
    // (saving used the spreadsheet network, so the file's tensors are the spreadsheet's)
    let err = SavedModel::load(&wrong, &Device::flex())
        .err()
        .expect("misfit")
        .to_string();
    assert!(
        err.contains("wrong.safetensors") && err.contains("convs.0.conv.weight"),
        "{err}"
    );
    assert!(
        err.contains("[32, 1, 3, 3]") && err.contains("[2, 1, 3, 3]"),
        "shapes listed: {err}"
    );
    assert!(err.contains("dense.1"), "missing layers listed: {err}");

    let bare = tmp.path().join("bare.safetensors");
    std::fs::write(&bare, b"not a model").unwrap();
    let err = SavedModel::load(&bare, &Device::flex())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("bare.safetensors"), "{err}");
}

/// A pretrained architecture with fresh weights on `side`² colour pictures.
fn fresh_pretrained(backbone: convlearn::models::BackboneKind, side: usize) -> SavedModel {
    use convlearn::models::{HeadKind, HeadSpec, PaddingStyle};
    let padding = match backbone {
        convlearn::models::BackboneKind::MobilenetV2 => PaddingStyle::TfSame,
        _ => PaddingStyle::Torch,
    };
    let arch = ArchSpec::Pretrained {
        backbone,
        padding,
        head: HeadSpec {
            kind: HeadKind::ImageNet,
            hidden: 0,
            classes: 3,
        },
    };
    let device = Device::flex();
    device.seed(11);
    let preprocess = Preprocess {
        channels: 3,
        height: side,
        width: side,
        normalization: Normalization::identity(3),
        crop: Crop::None,
    };
    SavedModel {
        network: Network::new(&arch, &device).unwrap(),
        meta: ModelMeta::new(
            arch,
            vec!["a".into(), "b".into(), "c".into()],
            preprocess,
            false,
        ),
    }
}

#[test]
fn a_pretrained_first_layer_is_explained_as_a_strided_convolution_then_batchnorm() {
    use convlearn::models::BackboneKind;
    let device = Device::flex();
    // ResNet-18: 7×7 stride 2, 3 zeros on every side. MobileNetV2 (TF 'SAME'): 3×3 stride 2; a
    // 32-pixel side pads 0 before and 1 after (total (16 − 1)·2 + 3 − 32 = 1), so the last row and
    // column read a zero the first do not.
    for (backbone, side, k, pad_before) in [
        (BackboneKind::Resnet18, 30, 7, 3),
        (BackboneKind::MobilenetV2, 32, 3, 0),
    ] {
        let model = fresh_pretrained(backbone, side);
        let image = FeatureMaps::new(3, side, side, random(3 * side * side, 5));
        let (_, unit, _) = model.network.first_conv_bn().unwrap();
        let w = values(unit.conv.weight.val());
        let out = side.div_ceil(2);
        for (c, y, x) in [(0, 0, 0), (5, out - 1, out - 1), (17, 3, out / 2)] {
            // By hand from the weights: the window at (2y − pad, 2x − pad), zeros outside.
            let mut total = 0f32;
            for ch in 0..3 {
                for i in 0..k {
                    for j in 0..k {
                        let (yy, xx) = (
                            (2 * y + i) as isize - pad_before,
                            (2 * x + j) as isize - pad_before,
                        );
                        if yy < 0 || xx < 0 || yy >= side as isize || xx >= side as isize {
                            continue;
                        }
                        let v = image.data[(ch * side + yy as usize) * side + xx as usize];
                        total += v * w[((c * 3 + ch) * k + i) * k + j];
                    }
                }
            }
            let e = explain(&model, &image, 1, c, y, x, &device).unwrap();
            assert!(
                (e.arithmetic.total - total).abs() < 1e-4,
                "{backbone:?} ({c}, {y}, {x}): {} vs {total}",
                e.arithmetic.total
            );
            // Fresh BatchNorm: γ = 1, β = 0, μ = 0, σ² = 1, ε = 1e-5.
            let n = e.normalized.as_ref().expect("a BatchNorm step");
            assert!((n.normalized - total / (1.0f32 + 1e-5).sqrt()).abs() < 1e-4);
            assert!(
                (e.value() - e.network_value).abs() < 1e-4,
                "{backbone:?}: by hand {} vs network {}",
                e.value(),
                e.network_value
            );
            let text = e.to_string();
            assert!(text.contains("BatchNorm (running statistics)"), "{text}");
        }
        let deeper = explain(&model, &image, 2, 0, 0, 0, &device)
            .unwrap_err()
            .to_string();
        assert!(deeper.contains("first layer"), "{deeper}");
        let outside = explain(&model, &image, 1, 0, out, 0, &device)
            .unwrap_err()
            .to_string();
        assert!(outside.contains("outside"), "{outside}");
    }
}

#[test]
#[ignore = "needs ../shared (or $CONVLEARN_DATA): cargo test -- --ignored runs it"]
fn the_imagenet_mobilenet_v2_first_layer_is_explained_with_its_real_batchnorm() {
    let dir = common::require_shared();
    let device = Device::flex();
    let weights = convlearn::models::PretrainedWeights::open(
        &dir.join("weights/mobilenet_v2_imagenet_from_tflite.safetensors"),
        None,
    )
    .unwrap();
    let model = SavedModel::imagenet(&weights, &device).unwrap();
    let image =
        convlearn::interpret::read_model_image(&model, &dir.join("data/images/cat.bmp")).unwrap();
    let mut shifts = Vec::new();
    for c in 0..32 {
        for (y, x) in [(0, 0), (111, 111), (56, 40)] {
            let e = explain(&model, &image, 1, c, y, x, &device).unwrap();
            let n = e.normalized.as_ref().unwrap();
            assert_eq!(n.activation, "ReLU6");
            assert!(
                (e.value() - e.network_value).abs() <= 1e-4 * (1.0 + e.network_value.abs()),
                "kernel {c} at ({y}, {x}): by hand {} vs network {}",
                e.value(),
                e.network_value
            );
            shifts.push(n.shift);
        }
    }
    // The converted file folds each BatchNorm into scale 1 and a shift (the TFLite bias): real
    // shifts, not a fresh layer's zeros.
    assert!(shifts.iter().any(|s| s.abs() > 0.05), "{shifts:?}");
}
