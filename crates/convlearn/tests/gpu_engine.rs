//! convlearn's engine on a GPU: every routine that flex runs as one of convlearn's own kernels
//! (`engine/`), run on wgpu — where the same function composes burn's ops, the reference each
//! kernel was written against — and compared with flex's, outputs and gradients both; and a
//! seeded network's initial weights, which are the same on both.
//!
//! Built with `--features wgpu` only, and ignored unless asked for (it needs a Vulkan, Metal or
//! DirectX device; lavapipe, Mesa's Vulkan on the CPU, does): `.ci/run` runs it on lavapipe with
//! `cargo test --release --features wgpu --test gpu_engine -- --ignored`.
#![cfg(feature = "wgpu")]

use burn::module::{Module, ModuleVisitor, Param};
use burn::nn::PaddingConfig2d;
use burn::nn::pool::MaxPool2dConfig;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor, TensorData};
use convlearn::device::{DeviceKind, inference_device, select_device};
use convlearn::engine::{
    Activation, AdamWStep, adamw_step, affine_activation, batch_norm_train, bias_activation,
    conv2d, conv2d_affine_activation, max_pool2d, residual_activation,
};
use convlearn::host::values;
use convlearn::models::{ArchSpec, ModelPreset, Network, build_seeded};
use rand::{Rng, SeedableRng, rngs::StdRng};

/// wgpu's device, or the test's failure saying why there is none.
fn gpu() -> Device {
    select_device(DeviceKind::Wgpu).unwrap_or_else(|e| panic!("{e}"));
    inference_device()
}

fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(-1.0..1.0)).collect()
}

/// A tensor of `shape` holding the values `seed` draws, on `device`.
fn drawn<const D: usize>(shape: [usize; D], seed: u64, device: &Device) -> Tensor<D> {
    let n = shape.iter().product();
    Tensor::from_data(TensorData::new(random(n, seed), shape), device)
}

/// [`drawn`], recording its gradient (a leaf: scale it where it is used, not here).
fn leaf<const D: usize>(shape: [usize; D], seed: u64, device: &Device) -> Tensor<D> {
    drawn(shape, seed, device).require_grad()
}

/// `Σ y · r` for a fixed random `r`: a loss whose gradient with respect to `y` is `r`, so every
/// output value's gradient is checked, not only their sum.
fn weighted_sum<const D: usize>(y: &Tensor<D>, seed: u64) -> Tensor<1> {
    let r = Tensor::from_data(
        TensorData::new(random(y.shape().num_elements(), seed), y.dims()),
        &y.device(),
    );
    (y.clone() * r).sum()
}

/// Runs `case` on flex (convlearn's kernels) and on wgpu (burn's ops), with autodiff where the
/// case takes `gradients`, and compares every tensor it returns, each within `tolerance` of its
/// largest flex value.
fn flex_and_gpu_agree(
    what: &str,
    tolerance: f32,
    gradients: bool,
    case: impl Fn(&Device) -> Vec<Vec<f32>>,
) {
    let (flex, gpu) = match gradients {
        true => (Device::flex().autodiff(), gpu().autodiff()),
        false => (Device::flex(), gpu()),
    };
    let on_flex = case(&flex);
    let on_gpu = case(&gpu);
    assert_eq!(on_flex.len(), on_gpu.len(), "{what}");
    for (i, (want, got)) in on_flex.iter().zip(&on_gpu).enumerate() {
        assert_eq!(want.len(), got.len(), "{what}, tensor {i}");
        let scale = want.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
        let worst = want
            .iter()
            .zip(got)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        eprintln!("{what}, tensor {i}: max |Δ| = {worst:.1e} of {scale:.2}");
        assert!(
            worst <= tolerance * scale,
            "{what}, tensor {i}: max |Δ| = {worst} (largest value {scale})"
        );
    }
}

#[test]
#[ignore = "needs --features wgpu and a GPU (lavapipe will do)"]
fn bias_and_residual_activations_agree_with_flex() {
    for activation in [Activation::Identity, Activation::Relu, Activation::Relu6] {
        flex_and_gpu_agree(&format!("bias + {activation:?}"), 1e-5, true, |device| {
            let x = leaf([2, 5, 6, 7], 1, device);
            let b = leaf([5], 2, device);
            let y = bias_activation(x.clone().mul_scalar(8.0), Some(b.clone()), activation);
            let grads = weighted_sum(&y, 3).backward();
            let dx = x.grad(&grads).unwrap();
            let db = b.grad(&grads).unwrap();
            vec![values(y), values(dx), values(db)]
        });
        flex_and_gpu_agree(
            &format!("residual + {activation:?}"),
            1e-5,
            true,
            |device| {
                let x = leaf([2, 4, 5, 5], 4, device);
                let r = leaf([2, 4, 5, 5], 5, device);
                let y = residual_activation(
                    x.clone().mul_scalar(8.0),
                    r.clone().mul_scalar(8.0),
                    activation,
                );
                let grads = weighted_sum(&y, 6).backward();
                let dx = x.grad(&grads).unwrap();
                let dr = r.grad(&grads).unwrap();
                vec![values(y), values(dx), values(dr)]
            },
        );
    }
}

#[test]
#[ignore = "needs --features wgpu and a GPU (lavapipe will do)"]
fn batchnorm_with_running_and_batch_statistics_agrees_with_flex() {
    // Inference: the running statistics as a scale and shift (flex fuses it without autodiff).
    flex_and_gpu_agree("affine + ReLU6", 1e-5, false, |device| {
        let x = drawn([2, 3, 4, 4], 7, device).mul_scalar(4.0);
        let scale = drawn([3], 8, device);
        let shift = drawn([3], 9, device);
        vec![values(affine_activation(
            x,
            scale,
            shift,
            Activation::Relu6,
        ))]
    });
    // Training: the batch's statistics, their gradients through the mean and variance.
    for activation in [Activation::Identity, Activation::Relu] {
        flex_and_gpu_agree(
            &format!("BatchNorm (batch) + {activation:?}"),
            1e-4,
            true,
            |device| {
                // Values of mean 1 and spread 3, so the statistics are far from the defaults.
                let x = leaf([4, 3, 5, 6], 10, device);
                let gamma = leaf([3], 11, device);
                let beta = leaf([3], 12, device);
                let (y, mean, variance) = batch_norm_train(
                    x.clone().mul_scalar(3.0).add_scalar(1.0),
                    gamma.clone(),
                    beta.clone(),
                    1e-5,
                    activation,
                );
                let grads = weighted_sum(&y, 13).backward();
                vec![
                    values(y),
                    values(mean),
                    values(variance),
                    values(x.grad(&grads).unwrap()),
                    values(gamma.grad(&grads).unwrap()),
                    values(beta.grad(&grads).unwrap()),
                ]
            },
        );
    }
}

#[test]
#[ignore = "needs --features wgpu and a GPU (lavapipe will do)"]
fn convolutions_agree_with_flex_forward_and_backward() {
    // (input, kernels, stride, padding, groups): the small CNN's, a ResNet stem's, a strided 3×3,
    // a 1×1, a 3×3 'same' of 64 channels (Winograd's on flex), MobileNetV2's depthwise 3×3.
    let cases = [
        ([2, 1, 12, 12], [4, 1, 3, 3], 1, 1, 1),
        ([1, 3, 20, 20], [8, 3, 7, 7], 2, 3, 1),
        ([2, 6, 9, 9], [10, 6, 3, 3], 2, 1, 1),
        ([2, 16, 5, 5], [12, 16, 1, 1], 1, 0, 1),
        ([1, 64, 6, 6], [64, 64, 3, 3], 1, 1, 1),
        ([2, 8, 9, 9], [8, 1, 3, 3], 2, 1, 8),
    ];
    for (input, kernels, stride, padding, groups) in cases {
        flex_and_gpu_agree(
            &format!(
                "conv {kernels:?} on {input:?}, stride {stride}, padding {padding}, groups {groups}"
            ),
            1e-4,
            true,
            |device| {
                let x = leaf(input, 20, device);
                let w = leaf(kernels, 21, device);
                let options =
                    ConvOptions::new([stride, stride], [padding, padding], [1, 1], groups);
                let y = conv2d(x.clone(), w.clone(), options);
                let grads = weighted_sum(&y, 22).backward();
                vec![
                    values(y),
                    values(x.grad(&grads).unwrap()),
                    values(w.grad(&grads).unwrap()),
                ]
            },
        );
    }
}

#[test]
#[ignore = "needs --features wgpu and a GPU (lavapipe will do)"]
fn convolutions_with_their_batchnorm_and_activation_agree_with_flex() {
    // (input, kernels, stride, groups, activation): flex applies the BatchNorm and activation as
    // each convolution routine writes its output — im2col tiles, Winograd, depthwise.
    let cases = [
        ([4, 6, 12, 12], [8, 6, 3, 3], 1, 1, Activation::Relu),
        ([2, 64, 6, 6], [64, 64, 3, 3], 1, 1, Activation::Relu),
        ([2, 8, 9, 9], [8, 1, 3, 3], 2, 8, Activation::Relu6),
        ([2, 8, 9, 9], [8, 1, 3, 3], 1, 8, Activation::Identity),
    ];
    for (input, kernels, stride, groups, activation) in cases {
        let what = format!(
            "conv {kernels:?} on {input:?}, stride {stride}, then BatchNorm + {activation:?}"
        );
        flex_and_gpu_agree(&what, 1e-4, false, |device| {
            let options = ConvOptions::new([stride, stride], [1, 1], [1, 1], groups);
            let y = conv2d_affine_activation(
                drawn(input, 23, device),
                drawn(kernels, 24, device),
                options,
                [
                    drawn([kernels[0]], 25, device),
                    drawn([kernels[0]], 26, device),
                ],
                activation,
            );
            vec![values(y)]
        });
    }
}

#[test]
#[ignore = "needs --features wgpu and a GPU (lavapipe will do)"]
fn max_pools_agree_with_flex_forward_and_backward() {
    // The small CNN's 2×2, ResNet's 3×3 stem pool (stride 2, one cell of padding), an odd size.
    let pools = [
        (
            MaxPool2dConfig::new([2, 2]).with_strides([2, 2]),
            [2, 3, 8, 8],
        ),
        (
            MaxPool2dConfig::new([3, 3])
                .with_strides([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)),
            [2, 4, 11, 11],
        ),
        (
            MaxPool2dConfig::new([2, 2]).with_strides([2, 2]),
            [1, 2, 7, 9],
        ),
    ];
    for (config, shape) in pools {
        let pool = config.init();
        flex_and_gpu_agree(&format!("{pool:?} on {shape:?}"), 1e-6, true, |device| {
            let x = leaf(shape, 30, device);
            let y = max_pool2d(&pool, x.clone());
            let grads = weighted_sum(&y, 31).backward();
            vec![values(y), values(x.grad(&grads).unwrap())]
        });
    }
}

#[test]
#[ignore = "needs --features wgpu and a GPU (lavapipe will do)"]
fn adamw_steps_agree_with_flex() {
    flex_and_gpu_agree("three AdamW steps", 1e-5, false, |device| {
        let (mut param, mut m1, mut m2) = (
            drawn([7, 13], 40, device),
            drawn([7, 13], 41, device).mul_scalar(0.0),
            drawn([7, 13], 42, device).abs(),
        );
        for time in 1..=3 {
            let step = AdamWStep {
                lr: 1e-2,
                beta_1: 0.9,
                beta_2: 0.999,
                epsilon: 1e-8,
                weight_decay: 0.01,
                time,
            };
            let grad = drawn([7, 13], 50 + time as u64, device);
            (param, m1, m2) = adamw_step(param, grad, m1, m2, step);
        }
        vec![values(param), values(m1), values(m2)]
    });
}

/// Every parameter's values, each checked to be on `device`.
fn parameters_on(network: &Network, device: &Device) -> Vec<Vec<f32>> {
    struct Collect<'a>(&'a Device, Vec<Vec<f32>>);
    impl ModuleVisitor for Collect<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let value = param.val();
            assert!(
                value.device() == *self.0,
                "a parameter left on {:?}",
                value.device()
            );
            self.1.push(values(value));
        }
    }
    let mut collect = Collect(device, Vec::new());
    network.visit(&mut collect);
    collect.1
}

#[test]
#[ignore = "needs --features wgpu and a GPU (lavapipe will do)"]
fn one_seed_gives_the_same_initial_weights_on_the_gpu_as_on_the_cpu() {
    // wgpu's generator turns a seed into other numbers than flex's: the CPU draws for both.
    let arch = ArchSpec::Plain {
        preset: ModelPreset::SimpleCnn.name().to_string(),
        spec: ModelPreset::SimpleCnn.spec(3, 28, 28, 6),
    };
    for gradients in [false, true] {
        flex_and_gpu_agree(
            "the small CNN's initial weights",
            0.0,
            gradients,
            |device| {
                let network = build_seeded(9, device, |cpu| Network::new(&arch, cpu)).unwrap();
                parameters_on(&network, device)
            },
        );
    }
}
