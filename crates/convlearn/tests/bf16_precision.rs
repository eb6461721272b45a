//! `--precision bf16` on the pretrained networks: logits near fp32's (and PyTorch's), the same
//! top-1 class. One test function, because the precision is the whole process's setting and the
//! test harness runs the functions of a file side by side.

mod common;

use burn::tensor::{Device, Tensor, TensorData};
use common::require_shared;
use convlearn::engine::{Precision, bf16_hardware, current_precision, set_precision};
use convlearn::host::values;
use convlearn::models::PretrainedWeights;
use convlearn::tensor_file::TensorFile;

/// The logits of the network in `weights` for the fixture tensor `input`, in `precision`.
fn logits(
    weights: &std::path::Path,
    io: &TensorFile,
    input: &str,
    precision: Precision,
) -> Vec<f32> {
    assert_eq!(
        set_precision(precision),
        precision,
        "bf16 products: {}",
        bf16_hardware()
    );
    let w = PretrainedWeights::open(weights, None).unwrap();
    let device = Device::flex();
    let net = w.build(&w.imagenet_arch().unwrap(), &device).unwrap();
    let x = io.get(input).unwrap();
    let shape: [usize; 4] = x.shape.clone().try_into().unwrap();
    values(net.forward(Tensor::from_data(
        TensorData::new(x.values.clone(), shape),
        &device,
    )))
}

fn argmax(row: &[f32]) -> usize {
    (0..row.len()).fold(0, |best, i| if row[i] > row[best] { i } else { best })
}

#[test]
#[ignore = "needs ../shared (or $CONVLEARN_DATA) and AVX512-BF16: cargo test -- --ignored runs it"]
fn bf16_logits_stay_near_fp32_and_pick_the_same_class() {
    let dir = require_shared();
    let f = dir.join("fixtures");
    let tf = dir.join("weights/mobilenet_v2_imagenet_from_tflite.safetensors");
    let cases = [
        (
            "resnet18",
            f.join("resnet18_bnrand.safetensors"),
            "resnet18_bnrand_io",
            "input",
            "logits",
        ),
        (
            "mobilenet_v2",
            f.join("mobilenet_v2_bnrand.pth"),
            "mobilenet_v2_bnrand_io",
            "input",
            "logits",
        ),
        (
            "mobilenet_v2 imagenet, photos",
            tf.clone(),
            "mobilenet_v2_tfsame_io",
            "photo_input",
            "photo_logits",
        ),
        (
            "mobilenet_v2 imagenet, noise",
            tf,
            "mobilenet_v2_tfsame_io",
            "input",
            "logits",
        ),
    ];
    for (name, weights, io, input, reference) in cases {
        let io = TensorFile::read(&f.join(format!("{io}.safetensors"))).unwrap();
        let full = logits(&weights, &io, input, Precision::Fp32);
        let half = logits(&weights, &io, input, Precision::Bf16);
        let torch = &io.get(reference).unwrap().values;
        let classes = torch.len() / 2;
        let spread = full.iter().fold(0f32, |m, v| m.max(v.abs()));
        let diff =
            |a: &[f32], b: &[f32]| a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        let (d, dt) = (diff(&full, &half), diff(torch, &half));
        let agree = (0..2)
            .filter(|&i| {
                let row = |v: &[f32]| argmax(&v[i * classes..][..classes]);
                row(&half) == row(&full)
            })
            .count();
        eprintln!(
            "{name}: bf16 − fp32 max |Δ| = {d:.4} ({:.2} % of max |logit| {spread:.2}), bf16 − PyTorch {dt:.4}; top-1 agrees on {agree} of 2",
            100.0 * d / spread
        );
        assert!(
            d <= 0.05 * spread,
            "{name}: bf16 logits {d} from fp32's (max |logit| {spread})"
        );
        assert_eq!(agree, 2, "{name}: bf16 picks another class");
    }
    set_precision(Precision::Fp32);
    assert_eq!(current_precision(), Precision::Fp32);
}
