//! Pretrained networks against PyTorch: torchvision ResNet-18 (safetensors) and MobileNetV2 (.pth)
//! with random BatchNorm statistics, and the TF-'SAME' MobileNetV2 ImageNet weights — eval-mode
//! logits within 1e-4 (1e-3 on a GPU: `CONVLEARN_DEVICE=wgpu` runs them there).

mod common;

use burn::tensor::{Device, Tensor, TensorData};
use common::{max_abs_diff, require_shared, tolerance};
use convlearn::device::inference_device;
use convlearn::host::values;
use convlearn::models::{BackboneKind, PaddingStyle, PretrainedWeights};
use convlearn::tensor_file::TensorFile;

fn check(
    weights: &std::path::Path,
    io: &std::path::Path,
    input: &str,
    logits: &str,
    tol: f32,
) -> PretrainedWeights {
    let w = PretrainedWeights::open(weights, None).unwrap();
    let device = inference_device();
    let net = w.build(&w.imagenet_arch().unwrap(), &device).unwrap();
    let io = TensorFile::read(io).unwrap();
    let x = io.get(input).unwrap();
    let shape: [usize; 4] = x.shape.clone().try_into().unwrap();
    let out = values(net.forward(Tensor::from_data(
        TensorData::new(x.values.clone(), shape),
        &device,
    )));
    let d = max_abs_diff(&out, &io.get(logits).unwrap().values, logits);
    eprintln!("{}: max |Δ{logits}| = {d:e}", weights.display());
    let tol = tolerance(tol);
    assert!(
        d <= tol,
        "{}: max |Δ{logits}| = {d:e} > {tol:e}",
        weights.display()
    );
    w
}

#[test]
#[ignore = "needs ../shared (or $CONVLEARN_DATA): cargo test -- --ignored runs it"]
fn resnet18_safetensors_matches_torchvision() {
    let dir = require_shared();
    let f = dir.join("fixtures");
    let w = check(
        &f.join("resnet18_bnrand.safetensors"),
        &f.join("resnet18_bnrand_io.safetensors"),
        "input",
        "logits",
        1e-4,
    );
    assert_eq!(
        w.backbone,
        BackboneKind::Resnet18,
        "recognised from the names"
    );
}

#[test]
#[ignore = "needs ../shared (or $CONVLEARN_DATA): cargo test -- --ignored runs it"]
fn mobilenet_v2_pth_matches_torchvision() {
    let dir = require_shared();
    let f = dir.join("fixtures");
    let w = check(
        &f.join("mobilenet_v2_bnrand.pth"),
        &f.join("mobilenet_v2_bnrand_io.safetensors"),
        "input",
        "logits",
        1e-4,
    );
    assert_eq!(
        (w.backbone, w.padding),
        (BackboneKind::MobilenetV2, PaddingStyle::Torch)
    );
}

#[test]
#[ignore = "needs ../shared (or $CONVLEARN_DATA): cargo test -- --ignored runs it"]
fn tf_same_mobilenet_v2_matches_its_reference_and_knows_its_preprocessing() {
    let dir = require_shared();
    let weights = dir.join("weights/mobilenet_v2_imagenet_from_tflite.safetensors");
    let io = dir.join("fixtures/mobilenet_v2_tfsame_io.safetensors");
    let w = check(&weights, &io, "input", "logits", 1e-4);
    check(&weights, &io, "photo_input", "photo_logits", 1e-4);
    assert_eq!(w.padding, PaddingStyle::TfSame);
    assert_eq!(w.normalization.mean, vec![0.5; 3]);
    assert_eq!(w.labels.as_ref().map(Vec::len), Some(1000));
}

#[test]
#[ignore = "needs ../shared (or $CONVLEARN_DATA): cargo test -- --ignored runs it"]
fn misfitting_weights_name_every_tensor_with_shapes() {
    let dir = require_shared();
    let err = PretrainedWeights::open(
        &dir.join("fixtures/resnet18_bnrand.safetensors"),
        Some(BackboneKind::Resnet34),
    )
    .and_then(|w| w.build(&w.imagenet_arch()?, &Device::flex()))
    .expect_err("resnet18 weights do not fit resnet34")
    .to_string();
    assert!(err.contains("resnet18_bnrand.safetensors"), "{err}");
    assert!(
        err.contains("missing 'layer3.2.conv1.weight' (expected shape [256, 256, 3, 3])"),
        "{err}"
    );
    let err = PretrainedWeights::open(
        &dir.join("fixtures/mobilenet_v2_bnrand.pth"),
        Some(BackboneKind::Resnet18),
    )
    .and_then(|w| w.build(&w.imagenet_arch()?, &Device::flex()))
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("fc.weight"), "{err}");
}

#[test]
#[ignore = "needs ../shared (or $CONVLEARN_DATA): cargo test -- --ignored runs it"]
fn pretrained_predictions_on_photos_match_the_reference_preprocessing_and_classes() {
    let dir = require_shared();
    let device = inference_device();
    let w = PretrainedWeights::open(
        &dir.join("weights/mobilenet_v2_imagenet_from_tflite.safetensors"),
        None,
    )
    .unwrap();
    let model = convlearn::model_file::SavedModel::imagenet(&w, &device).unwrap();
    let io = TensorFile::read(&dir.join("fixtures/mobilenet_v2_tfsame_io.safetensors")).unwrap();
    let reference = &io.get("photo_input").unwrap().values;
    for (k, (photo, class, p)) in [
        ("cat.bmp", "Egyptian cat", 0.77),
        ("grace_hopper.bmp", "military uniform", 0.72),
    ]
    .into_iter()
    .enumerate()
    {
        let path = dir.join("data/images").join(photo);
        // central 87.5 % of each side, bilinear 224, (x − 127.5) / 127.5
        let mut ours = model.meta.preprocess.load(&path).unwrap().data;
        model.meta.preprocess.normalization.apply(&mut ours, 3);
        let refv = &reference[k * 3 * 224 * 224..(k + 1) * 3 * 224 * 224];
        let mean_diff: f32 = ours
            .iter()
            .zip(refv)
            .map(|(a, b)| (a - b).abs())
            .sum::<f32>()
            / refv.len() as f32;
        assert!(mean_diff < 0.005, "{photo}: mean |Δinput| = {mean_diff}");
        let top = &convlearn::interpret::predict_image(
            &model,
            &path,
            &convlearn::interpret::PredictOptions {
                top: 1,
                ..Default::default()
            },
            &device,
        )
        .unwrap()[0];
        assert!(top.class.starts_with(class), "{photo}: {top:?}");
        assert!(
            (top.probability - p).abs() < 0.03,
            "{photo}: {top:?} vs PyTorch {p}"
        );
    }
}
