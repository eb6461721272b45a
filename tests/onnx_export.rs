//! `convlearn export` checked by tract, an ONNX runtime in pure Rust that shares no code with
//! convlearn: every architecture and head, with every weight and BatchNorm statistic random so a
//! misplaced tensor shows, run by both on the same inputs.

mod common;

use std::collections::HashMap;
use std::path::Path;

use convlearn::data::{Crop, Normalization, Preprocess};
use convlearn::device::inference_device;
use convlearn::export::{OnnxOptions, onnx_bytes, samples};
use convlearn::model_file::{ModelMeta, SavedModel};
use convlearn::models::{
    ArchSpec, BackboneKind, HeadKind, HeadSpec, ModelPreset, Network, PaddingStyle,
};
use rand::{Rng, SeedableRng};
use tract_onnx::prelude::*;

/// A model of `arch` on `channels × side × side` inputs whose every tensor is random: weights
/// uniform in ±√(3 / fan-in), BatchNorm's scale in 0.5…1.5, running variances in 0.5…2, biases,
/// shifts and running means in ±0.5.
fn random_model(
    arch: ArchSpec,
    channels: usize,
    side: usize,
    multi_label: bool,
    dir: &Path,
) -> SavedModel {
    let device = inference_device();
    let classes = (0..arch.classes()).map(|i| format!("c{i}")).collect();
    let preprocess = Preprocess {
        channels,
        height: side,
        width: side,
        normalization: Normalization::identity(channels),
        crop: Crop::EachSide { fraction: 0.875 },
    };
    let model = SavedModel {
        network: Network::new(&arch, &device).unwrap(),
        meta: ModelMeta::new(arch, classes, preprocess, multi_label),
    };
    let path = dir.join("random.safetensors");
    model.save(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut tensors = Vec::new();
    let mut named = file.tensors();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, view) in named {
        let n = view.data().len() / 4;
        let shape = view.shape();
        // weights scaled to their fan-in, so activations keep their size through 50 layers:
        // with ±0.5 everywhere a deep network amplifies rounding until no two runtimes agree
        let bound = match (name.ends_with("weight"), shape.len()) {
            (true, 4) => (3.0 / (shape[1] * shape[2] * shape[3]) as f32).sqrt(),
            (true, 2) => (3.0 / shape[0] as f32).sqrt(),
            _ => 0.5,
        };
        let values: Vec<f32> = (0..n)
            .map(|_| {
                if name.ends_with("running_var") {
                    rng.random_range(0.5..2.0)
                } else if name.ends_with("gamma") {
                    rng.random_range(0.5..1.5)
                } else {
                    rng.random_range(-bound..bound)
                }
            })
            .collect();
        let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        tensors.push((name, view.shape().to_vec(), data));
    }
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .map(|(n, s, d)| {
            let v = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), d)
                .unwrap();
            (n.clone(), v)
        })
        .collect();
    let meta: Option<HashMap<String, String>> = header.metadata().clone();
    safetensors::serialize_to_file(views, meta, &path).unwrap();
    SavedModel::load(&path, &device).unwrap()
}

/// tract's outputs for `inputs` `[n, c, h, w]` through the ONNX `bytes`.
fn run_tract(bytes: &[u8], inputs: &[f32], shape: [usize; 4]) -> Vec<f32> {
    let model = tract_onnx::onnx()
        .model_for_read(&mut std::io::Cursor::new(bytes))
        .expect("tract reads the export")
        .with_input_fact(0, f32::fact(shape).into())
        .unwrap()
        .into_optimized()
        .expect("tract optimises the export")
        .into_runnable()
        .unwrap();
    let input = Tensor::from_shape(&shape, inputs).unwrap();
    let out = model
        .run(tvec!(input.into()))
        .expect("tract runs the export");
    out[0]
        .to_plain_array_view::<f32>()
        .unwrap()
        .iter()
        .copied()
        .collect()
}

/// Exports `model`, runs it in tract on random inputs and checks tract's outputs against
/// convlearn's: max |Δ| ≤ 1e-4 × max(1, largest |output|). Returns (max |Δ|, largest |output|).
fn agrees_with_tract(model: &SavedModel, options: &OnnxOptions) -> (f32, f32) {
    let device = inference_device();
    let bytes = onnx_bytes(model, options).unwrap();
    let s = samples(model, &[], 3, 1, options, &device).unwrap();
    let got = run_tract(&bytes, &s.inputs, s.input_shape);
    assert_eq!(got.len(), s.outputs.len());
    let scale = s.outputs.iter().fold(0f32, |m, v| m.max(v.abs()));
    let diff = got
        .iter()
        .zip(&s.outputs)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    eprintln!(
        "{}: max |Δ| {diff:.2e} over outputs up to {scale:.2e}",
        model.meta.arch.name()
    );
    assert!(
        diff <= 1e-4 * scale.max(1.0),
        "{}: tract and convlearn differ by {diff} (outputs up to {scale})",
        model.meta.arch.name()
    );
    (diff, scale)
}

fn pretrained(backbone: BackboneKind, padding: PaddingStyle, kind: HeadKind) -> ArchSpec {
    ArchSpec::Pretrained {
        backbone,
        padding,
        head: HeadSpec {
            kind,
            hidden: 16,
            classes: 5,
        },
    }
}

#[test]
fn plain_cnns_agree_with_tract() {
    let dir = tempfile::tempdir().unwrap();
    for (preset, channels, side) in [
        (ModelPreset::SimpleCnn, 1, 28),
        (ModelPreset::SimpleCnn, 3, 33),
        (ModelPreset::Spreadsheet, 1, 28),
    ] {
        let spec = preset.spec(channels, side, side, 10);
        let arch = ArchSpec::Plain {
            preset: preset.name().into(),
            spec,
        };
        let model = random_model(arch, channels, side, false, dir.path());
        agrees_with_tract(&model, &OnnxOptions::default());
    }
}

#[test]
fn resnets_with_both_heads_agree_with_tract() {
    let dir = tempfile::tempdir().unwrap();
    for (backbone, head) in [
        (BackboneKind::Resnet18, HeadKind::ImageNet),
        (BackboneKind::Resnet34, HeadKind::Fastai),
        (BackboneKind::Resnet50, HeadKind::Fastai),
    ] {
        let arch = pretrained(backbone, PaddingStyle::Torch, head);
        let model = random_model(arch, 3, 64, false, dir.path());
        agrees_with_tract(&model, &OnnxOptions::default());
    }
}

#[test]
fn mobilenet_v2_with_tf_same_padding_agrees_with_tract_at_odd_sizes() {
    let dir = tempfile::tempdir().unwrap();
    // 75 px: every stride-2 'SAME' convolution pads unevenly (0 before, 1 after, or 1 and 2)
    for (padding, side, head) in [
        (PaddingStyle::TfSame, 75, HeadKind::Fastai),
        (PaddingStyle::TfSame, 64, HeadKind::ImageNet),
        (PaddingStyle::Torch, 64, HeadKind::Fastai),
    ] {
        let arch = pretrained(BackboneKind::MobilenetV2, padding, head);
        let model = random_model(arch, 3, side, false, dir.path());
        agrees_with_tract(&model, &OnnxOptions::default());
    }
}

#[test]
fn probabilities_end_in_softmax_or_sigmoid_and_a_fixed_batch_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    for multi_label in [false, true] {
        let arch = pretrained(
            BackboneKind::Resnet18,
            PaddingStyle::Torch,
            HeadKind::Fastai,
        );
        let model = random_model(arch, 3, 32, multi_label, dir.path());
        let options = OnnxOptions {
            probabilities: true,
            batch: Some(3),
        };
        agrees_with_tract(&model, &options);
        let s = samples(&model, &[], 3, 1, &options, &inference_device()).unwrap();
        let rows: Vec<f32> = s.outputs.chunks(5).map(|r| r.iter().sum()).collect();
        if multi_label {
            assert!(s.outputs.iter().all(|p| (0.0..=1.0).contains(p)));
            assert!(
                rows.iter().any(|&sum| (sum - 1.0).abs() > 1e-3),
                "sigmoids: {rows:?}"
            );
        } else {
            assert!(
                rows.iter().all(|&sum| (sum - 1.0).abs() < 1e-5),
                "softmax: {rows:?}"
            );
        }
    }
}

#[test]
#[ignore = "slow: 100 and 150 random-weight blocks"]
fn the_deepest_resnets_agree_with_tract() {
    let dir = tempfile::tempdir().unwrap();
    for backbone in [BackboneKind::Resnet101, BackboneKind::Resnet152] {
        let arch = pretrained(backbone, PaddingStyle::Torch, HeadKind::Fastai);
        let model = random_model(arch, 3, 32, false, dir.path());
        agrees_with_tract(&model, &OnnxOptions::default());
    }
}

#[test]
fn the_cli_exports_with_metadata_and_samples() {
    let dir = tempfile::tempdir().unwrap();
    let out = common::convlearn(
        &[
            "train",
            "shapes",
            "--epochs",
            "1",
            "--limit",
            "64",
            "--save",
            "m.safetensors",
        ],
        dir.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = common::convlearn(
        &[
            "export",
            "m.safetensors",
            "-o",
            "m.onnx",
            "--samples",
            "s",
            "--json",
        ],
        dir.path(),
    );
    let v = common::json_of(&out);
    assert_eq!(v["output"], "logits");
    let bytes = std::fs::read(dir.path().join("m.onnx")).unwrap();
    // the metadata travels: read back through tract's own protobuf types
    let proto = tract_onnx::onnx()
        .proto_model_for_read(&mut bytes.as_slice())
        .unwrap();
    let meta: HashMap<String, String> = proto
        .metadata_props
        .iter()
        .map(|p| (p.key.clone(), p.value.clone()))
        .collect();
    let classes: Vec<String> = serde_json::from_str(&meta["convlearn.classes"]).unwrap();
    assert!(!classes.is_empty());
    let crop: serde_json::Value = serde_json::from_str(&meta["convlearn.crop"]).unwrap();
    assert!(crop.get("mode").is_some(), "{crop}");
    for key in [
        "convlearn.mean",
        "convlearn.std",
        "convlearn.multi_label",
        "convlearn.threshold",
    ] {
        assert!(meta.contains_key(key), "{key} missing: {meta:?}");
    }
    // an output may not replace the model it exports
    let out = common::convlearn(
        &["export", "m.safetensors", "-o", "m.safetensors"],
        dir.path(),
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--output"));
}

#[test]
#[ignore = "needs ../shared (hymenoptera, MobileNetV2 weights); trains for about 15 s"]
fn an_exported_fine_tune_predicts_every_hymenoptera_photo_as_convlearn_does() {
    let data = common::require_shared();
    let dir = tempfile::tempdir().unwrap();
    let weights = data.join("weights/mobilenet_v2_imagenet_from_tflite.safetensors");
    let hymenoptera = data.join("data/hymenoptera");
    let out = common::convlearn(
        &[
            "train",
            hymenoptera.to_str().unwrap(),
            "--pretrained",
            weights.to_str().unwrap(),
            "--save",
            "h.safetensors",
        ],
        dir.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = common::convlearn(&["export", "h.safetensors", "-o", "h.onnx"], dir.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut photos: Vec<_> = ["ants", "bees"]
        .iter()
        .flat_map(|c| std::fs::read_dir(hymenoptera.join("val").join(c)).unwrap())
        .map(|e| e.unwrap().path())
        .collect();
    photos.sort();
    let mut args = vec![
        "predict".to_string(),
        "h.safetensors".into(),
        "--top".into(),
        "1".into(),
        "--json".into(),
    ];
    args.extend(photos.iter().map(|p| p.to_str().unwrap().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let predicted = common::json_of(&common::convlearn(&args, dir.path()));
    let device = inference_device();
    let model = SavedModel::load(&dir.path().join("h.safetensors"), &device).unwrap();
    let bytes = std::fs::read(dir.path().join("h.onnx")).unwrap();
    let s = samples(&model, &photos, 0, 0, &OnnxOptions::default(), &device).unwrap();
    let logits = run_tract(&bytes, &s.inputs, s.input_shape);
    let classes = model.meta.classes.len();
    let results = predicted["results"].as_array().unwrap();
    assert_eq!(results.len(), photos.len());
    for ((photo, row), result) in photos.iter().zip(logits.chunks(classes)).zip(results) {
        let top = (0..classes)
            .max_by(|&a, &b| row[a].total_cmp(&row[b]))
            .unwrap();
        assert_eq!(
            model.meta.classes[top],
            result["predictions"][0]["class"].as_str().unwrap(),
            "{}",
            photo.display()
        );
    }
    eprintln!(
        "{} validation photos: tract's top-1 equals convlearn predict's on every one",
        photos.len()
    );
}
