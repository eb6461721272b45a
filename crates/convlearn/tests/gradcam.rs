//! Grad-CAM against PyTorch's autograd on the shared TF-'SAME' MobileNetV2: the reference maps are
//! `../shared/fixtures/gradcam_mobilenet_v2.json`, made by `fixtures/make_gradcam_fixture.py` (the
//! gradient of the top-1 logit with respect to `features.18`, 1280 × 7 × 7 at 224 px, averaged per
//! channel, the weighted sum ReLU'd and scaled to a maximum of 1).

mod common;

use burn::tensor::Device;
use common::{max_abs_diff, pil, require_shared};
use convlearn::FeatureMaps;
use convlearn::interpret::{grad_cam, read_model_image};
use convlearn::model_file::SavedModel;
use convlearn::models::PretrainedWeights;
use serde_json::Value;

/// The lock every test here that makes a network holds until all of its weights are drawn
/// ([`draw_every_weight`]). flex's random generator is one for the whole process and burn draws a
/// parameter's initial values on its first use, not when the network is built: a test using the
/// generator meanwhile on another thread gave a seeded network other weights (CI's failure,
/// 2026-12-03).
fn random_numbers() -> std::sync::MutexGuard<'static, ()> {
    static RANDOM_NUMBERS: std::sync::Mutex<()> = std::sync::Mutex::new(());
    RANDOM_NUMBERS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Draws the initial values of every parameter `network` has not used yet.
fn draw_every_weight(network: &convlearn::models::Network) {
    struct Draw;
    impl burn::module::ModuleVisitor for Draw {
        fn visit_float<const D: usize>(
            &mut self,
            param: &burn::module::Param<burn::tensor::Tensor<D>>,
        ) {
            let _ = param.val();
        }
    }
    burn::module::Module::visit(network, &mut Draw);
}

/// `arch` with the weights flex's generator gives from `seed`.
fn seeded(
    arch: &convlearn::models::ArchSpec,
    seed: u64,
    device: &Device,
) -> convlearn::models::Network {
    let _only_us = random_numbers();
    device.seed(seed);
    let network = convlearn::models::Network::new(arch, device).unwrap();
    draw_every_weight(&network);
    network
}

fn mobilenet(dir: &std::path::Path, device: &Device) -> SavedModel {
    let weights = dir.join("weights/mobilenet_v2_imagenet_from_tflite.safetensors");
    let weights = PretrainedWeights::open(&weights, None).unwrap();
    let _only_us = random_numbers();
    let model = SavedModel::imagenet(&weights, device).unwrap();
    draw_every_weight(&model.network);
    model
}

fn reference(dir: &std::path::Path) -> Value {
    let text = std::fs::read_to_string(dir.join("fixtures/gradcam_mobilenet_v2.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn cam_of(v: &Value) -> Vec<f32> {
    v["cam"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| row.as_array().unwrap().iter())
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

#[test]
#[ignore = "needs ../shared (or $CONVLEARN_DATA): cargo test -- --ignored runs it"]
fn grad_cam_matches_pytorch_on_the_fixtures_own_pixels() {
    // The photos preprocessed as the fixture's script did (Pillow's crop and bilinear resize,
    // reproduced to the bit by `common::pil`; checked against Pillow 12 on all six shared photos),
    // so both sides differentiate the very same input.
    let dir = require_shared();
    let device = Device::flex();
    let model = mobilenet(&dir, &device);
    for (photo, want) in reference(&dir).as_object().unwrap() {
        let image = image::open(dir.join("data/images").join(photo))
            .unwrap()
            .to_rgb8();
        let pixels = pil::crop_resize(&image, 0.0625, 224);
        let maps = FeatureMaps {
            channels: 3,
            height: 224,
            width: 224,
            data: (0..3)
                .flat_map(|c| pixels.pixels().map(move |p| p[c] as f32 / 255.0))
                .collect(),
        };
        let heat = grad_cam(&model, &maps, None, None, &device).unwrap();
        assert_eq!(heat.layer, "features.18");
        assert_eq!(heat.class, want["class"].as_str().unwrap(), "{photo}");
        assert_eq!(heat.heatmap.len(), 7);
        let d = max_abs_diff(&heat.heatmap.concat(), &cam_of(want), photo);
        eprintln!(
            "{photo}: {} {:.3}, max |Δcam| = {d:.2e}",
            heat.class, heat.probability
        );
        assert!(d <= 1e-4, "{photo}: max |Δcam| = {d:e}");
    }
}

#[test]
#[ignore = "needs ../shared (or $CONVLEARN_DATA): cargo test -- --ignored runs it"]
fn grad_cam_from_convlearns_preprocessing_finds_what_pytorch_found() {
    // Every fixture photo through convlearn's own crop and resize (the image crate's triangle
    // filter in floating point, the crop's side rounded rather than its corners: a mean of < 0.005
    // per input value from Pillow's): the same class, a peak where PyTorch's map is above 0.9, and
    // every cell within 0.15 (measured: 0.046 … 0.110 over the four photos).
    let dir = require_shared();
    let device = Device::flex();
    let model = mobilenet(&dir, &device);
    let reference = reference(&dir);
    for (photo, want) in reference.as_object().unwrap() {
        let maps = read_model_image(&model, &dir.join("data/images").join(photo)).unwrap();
        let heat = grad_cam(&model, &maps, None, None, &device).unwrap();
        let (ours, theirs) = (heat.heatmap.concat(), cam_of(want));
        assert_eq!(heat.class, want["class"].as_str().unwrap(), "{photo}");
        let peak = |m: &[f32]| (0..m.len()).max_by(|&a, &b| m[a].total_cmp(&m[b])).unwrap();
        let d = max_abs_diff(&ours, &theirs, photo);
        eprintln!(
            "{photo}: peak {} vs {}, max |Δcam| = {d:.3}",
            peak(&ours),
            peak(&theirs)
        );
        assert!(d < 0.15, "{photo}: max |Δcam| = {d}");
        assert!(
            theirs[peak(&ours)] > 0.9,
            "{photo}: our peak is not PyTorch's"
        );
    }
}

#[test]
#[ignore = "needs ../shared (or $CONVLEARN_DATA): cargo test -- --ignored runs it"]
fn grad_cam_names_unknown_classes_and_layers() {
    let dir = require_shared();
    let device = Device::flex();
    let model = mobilenet(&dir, &device);
    let maps = read_model_image(&model, &dir.join("data/images/cat.bmp")).unwrap();
    let err = grad_cam(&model, &maps, Some("unicorn"), None, &device).unwrap_err();
    assert!(err.to_string().contains("no class 'unicorn'"), "{err}");
    let err = grad_cam(&model, &maps, None, Some("features.99"), &device).unwrap_err();
    assert!(err.to_string().contains("features.18"), "{err}");
    // Another class and an earlier layer work, and say which they are.
    let heat = grad_cam(
        &model,
        &maps,
        Some("tabby, tabby cat"),
        Some("features.13"),
        &device,
    );
    let heat = heat.unwrap();
    assert_eq!(
        (heat.class.as_str(), heat.layer.as_str()),
        ("tabby, tabby cat", "features.13")
    );
    assert_eq!(heat.heatmap.len(), 14);
}

/// Every parameter and running statistic in 64-bit floats, every training switch off: for the
/// finite differences, whose steps fp32 would round away. Mapping changes a BatchNorm's running
/// statistics in place, in every clone of the network, so it is applied to a twin drawn from the
/// same seed.
struct Double;

impl burn::module::ModuleMapper for Double {
    fn map_float<const D: usize>(
        &mut self,
        param: burn::module::Param<burn::tensor::Tensor<D>>,
    ) -> burn::module::Param<burn::tensor::Tensor<D>> {
        param.map(|t| t.cast(burn::tensor::DType::F64))
    }

    fn map_flag(
        &mut self,
        flag: burn::module::Param<burn::module::Flag>,
    ) -> burn::module::Param<burn::module::Flag> {
        flag.with_value(false)
    }
}

/// Grad-CAM's map computed without autodiff: each channel's mean gradient as a difference of the
/// class's logit when the whole channel moves by a multiple of ε (a uniform shift keeps every
/// max-pool's choice), through the rest of the network in inference mode and in f64 (burn's
/// reference ops; convlearn's fused kernels take f32 only).
///
/// After the layer the network is piecewise linear (ReLU, ReLU6, max-pool, inference BatchNorm),
/// so a difference is exact up to rounding unless a kink lies within the step. In fp32 with
/// ε = 10⁻³ kinks were common: for some weights a shift of 10⁻⁴ in one channel carried one of the
/// plain CNN's hidden units across zero, a central difference over it averaged the slopes on its
/// two sides, and the map was off by up to 100 % of its peak (seed 12; CI's failure, 4 %, had
/// weights drawn while another test used the generator). In f64, ε = 10⁻⁷ of the
/// layer's largest value, and the slope is taken on the side of 0 whose two steps, [0, ε] and
/// [ε, 2ε] (or their mirror images), agree: that side holds no kink and its slope is the gradient.
fn finite_difference_cam(
    model: &SavedModel,
    double: &convlearn::models::Network,
    maps: &FeatureMaps,
    stage: usize,
    class: usize,
) -> Vec<f32> {
    use burn::tensor::{DType, Tensor, TensorData};
    let device = Device::flex();
    let x = convlearn::interpret::model_input(model, maps, &device);
    let (_, stages) = model.network.forward_with_stages(x);
    let a = stages[stage].1.clone();
    let [_, channels, h, w] = a.dims();
    let values: Vec<f64> = convlearn::host::values(a)
        .into_iter()
        .map(f64::from)
        .collect();
    let eps = 1e-7 * values.iter().fold(1e-3, |m, v| v.abs().max(m));
    let logit = |shifted: Vec<f64>| {
        let data = TensorData::new(shifted, [1, channels, h, w]);
        let t = Tensor::<4>::from_data(data, (&device, DType::F64));
        let out = double.forward_after_stage(stage, t).unwrap();
        out.into_data().try_to_vec::<f64>().expect("f64 logits")[class]
    };
    let at_zero = logit(values.clone());
    let mut cam = vec![0.0f64; h * w];
    for k in 0..channels {
        let plane = k * h * w..(k + 1) * h * w;
        let shifted = |steps: f64| {
            let mut v = values.clone();
            v[plane.clone()].iter_mut().for_each(|x| *x += steps * eps);
            logit(v)
        };
        let (up, twice_up) = (shifted(1.0), shifted(2.0));
        let (down, twice_down) = (shifted(-1.0), shifted(-2.0));
        let after = [up - at_zero, twice_up - up];
        let before = [at_zero - down, down - twice_down];
        // Equal within f64's rounding of the logit.
        let noise = 1e-12 * at_zero.abs().max(1.0);
        let straight = |[a, b]: [f64; 2]| (a - b).abs() <= 1e-6 * (a.abs() + b.abs()) + noise;
        let step = match (straight(after), straight(before)) {
            (true, false) => after[0],
            (false, true) => before[0],
            _ => (after[0] + before[0]) / 2.0,
        };
        let alpha = step / eps / (h * w) as f64;
        for (c, &v) in cam.iter_mut().zip(&values[plane]) {
            *c += alpha * v;
        }
    }
    let peak = cam.iter().copied().fold(0.0, f64::max);
    let scale = if peak > 0.0 { 1.0 / peak } else { 0.0 };
    cam.iter().map(|&c| (c.max(0.0) * scale) as f32).collect()
}

#[test]
fn grad_cam_agrees_with_finite_differences_through_both_heads_and_a_plain_cnn() {
    use convlearn::data::{Crop, Normalization, Preprocess};
    use convlearn::model_file::ModelMeta;
    use convlearn::models::{
        ArchSpec, BackboneKind, HeadKind, HeadSpec, ModelPreset, PaddingStyle,
    };
    let device = Device::flex();
    let cases = [
        (
            ArchSpec::Plain {
                preset: "simple_cnn".into(),
                spec: ModelPreset::SimpleCnn.spec(1, 28, 28, 5),
            },
            1,
            28,
        ),
        (
            ArchSpec::Pretrained {
                backbone: BackboneKind::Resnet18,
                padding: PaddingStyle::Torch,
                head: HeadSpec {
                    kind: HeadKind::Fastai,
                    hidden: 32,
                    classes: 5,
                },
            },
            3,
            96,
        ),
        (
            ArchSpec::Pretrained {
                backbone: BackboneKind::MobilenetV2,
                padding: PaddingStyle::TfSame,
                head: HeadSpec {
                    kind: HeadKind::ImageNet,
                    hidden: 0,
                    classes: 5,
                },
            },
            3,
            64,
        ),
    ];
    for (arch, channels, side) in cases {
        let name = arch.name();
        let classes = (0..arch.classes()).map(|i| format!("c{i}")).collect();
        let preprocess = Preprocess {
            channels,
            height: side,
            width: side,
            normalization: Normalization::identity(channels),
            crop: Crop::None,
        };
        let network = || seeded(&arch, 7, &device);
        let double = burn::module::Module::map(network(), &mut Double);
        let model = SavedModel {
            network: network(),
            meta: ModelMeta::new(arch, classes, preprocess, false),
        };
        let data = (0..channels * side * side)
            .map(|i| ((i * 7919) % 255) as f32 / 255.0)
            .collect();
        let maps = FeatureMaps {
            channels,
            height: side,
            width: side,
            data,
        };
        let mut shown = 0;
        for class in ["c0", "c1", "c2", "c3", "c4"] {
            let heat = grad_cam(&model, &maps, Some(class), None, &device).unwrap();
            let (_, stages) = model
                .network
                .forward_with_stages(convlearn::interpret::model_input(&model, &maps, &device));
            let stage = stages.iter().position(|(n, _)| *n == heat.layer).unwrap();
            let want = finite_difference_cam(&model, &double, &maps, stage, heat.class_index);
            let ours = heat.heatmap.concat();
            // A class with no evidence anywhere (all 0) agrees trivially: count the others.
            shown += ours.contains(&1.0) as usize;
            let d = max_abs_diff(&ours, &want, &name);
            eprintln!("{name} {class} on {}: max |Δcam| = {d:.1e}", heat.layer);
            // Over seeds 0–40 the worst was 2.1e-6 (fp32 autodiff against f64 differences).
            assert!(d < 2e-5, "{name} {class}: max |Δcam| = {d}");
        }
        assert!(shown >= 3, "{name}: only {shown} of 5 classes have a map");
    }
}

#[test]
fn a_network_without_feature_maps_is_refused_not_a_panic() {
    use convlearn::data::{Crop, Normalization, Preprocess};
    use convlearn::model_file::ModelMeta;
    use convlearn::models::{ArchSpec, CnnSpec};
    // A plain CNN of dense layers only, as a crafted model file may declare.
    let spec = CnnSpec {
        channels: 1,
        height: 4,
        width: 4,
        convs: Vec::new(),
        hidden: Vec::new(),
        classes: 2,
    };
    let arch = ArchSpec::Plain {
        preset: "custom".into(),
        spec,
    };
    let preprocess = Preprocess {
        channels: 1,
        height: 4,
        width: 4,
        normalization: Normalization::identity(1),
        crop: Crop::None,
    };
    let device = Device::flex();
    let model = SavedModel {
        network: seeded(&arch, 0, &device),
        meta: ModelMeta::new(arch, vec!["a".into(), "b".into()], preprocess, false),
    };
    let maps = FeatureMaps {
        channels: 1,
        height: 4,
        width: 4,
        data: vec![0.5; 16],
    };
    let err = grad_cam(&model, &maps, None, None, &device).unwrap_err();
    assert!(err.to_string().contains("no feature map"), "{err}");
}
