//! A convolution with its BatchNorm (running statistics) and activation applied as the output is
//! written (`engine::conv2d_affine_activation`, inference on flex) gives exactly what the
//! convolution followed by its own affine pass gives, and what burn's ops give, in every way
//! convlearn splits a convolution: tiles of output rows, images side by side, one image alone,
//! Winograd's 3×3, depthwise 3×3 at stride 1 and 2 and any other depthwise window, and a grouped
//! convolution that stays burn's.

use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor, TensorData};
use convlearn::engine::{Activation, affine_activation, conv2d, conv2d_affine_activation};
use convlearn::host::values;

/// `n` values in [-1, 1], a different sequence for each `seed`.
fn pattern(n: usize, seed: u64) -> Vec<f32> {
    (0..n)
        .map(|i| ((i as f64 * 0.618_034 + seed as f64 * 0.377).sin() * 1.7).tanh() as f32)
        .collect()
}

fn tensor<const D: usize>(shape: [usize; D], seed: u64) -> Tensor<D> {
    let n = shape.iter().product();
    Tensor::from_data(TensorData::new(pattern(n, seed), shape), &Device::flex())
}

/// One case: input `[batch, cin, h, w]`, weight `[cout, cin / groups, k, k]`, stride, padding
/// ((top, bottom), (left, right)), groups, activation.
fn check(
    input: [usize; 4],
    weight: [usize; 4],
    stride: usize,
    padding: [(usize, usize); 2],
    groups: usize,
    activation: Activation,
) {
    let case = format!("{input:?} * {weight:?} s{stride} {padding:?} g{groups} {activation:?}");
    let options = ConvOptions::new_with_padding([stride, stride], padding, [1, 1], groups);
    let (x, w) = (tensor(input, 1), tensor(weight, 2));
    let cout = weight[0];
    // Scales of both signs and shifts that move values across the clamp's bounds.
    let scale: Vec<f32> = pattern(cout, 3).iter().map(|v| 3.0 * v).collect();
    let shift: Vec<f32> = pattern(cout, 4).iter().map(|v| 2.0 * v + 1.0).collect();
    let (scale, shift) = (
        Tensor::<1>::from_data(TensorData::new(scale, [cout]), &Device::flex()),
        Tensor::<1>::from_data(TensorData::new(shift, [cout]), &Device::flex()),
    );
    let fused = conv2d_affine_activation(
        x.clone(),
        w.clone(),
        options.clone(),
        [scale.clone(), shift.clone()],
        activation,
    );
    let apart = affine_activation(
        conv2d(x.clone(), w.clone(), options.clone()),
        scale.clone(),
        shift.clone(),
        activation,
    );
    assert_eq!(fused.dims(), apart.dims(), "{case}: shape");
    let fused = values(fused);
    assert_eq!(fused, values(apart), "{case}: the fused pass differs");
    // burn's ops, the reference the engine's routines were written against.
    let y = burn::tensor::module::conv2d(x, w, None, options);
    let burns = values(
        activation.apply(y * scale.reshape([1, cout, 1, 1]) + shift.reshape([1, cout, 1, 1])),
    );
    let largest = burns.iter().fold(1f32, |m, v| m.max(v.abs()));
    for (i, (a, b)) in fused.iter().zip(&burns).enumerate() {
        assert!(
            (a - b).abs() <= 1e-5 * largest,
            "{case}: output {i} is {a}, burn's {b}"
        );
    }
}

#[test]
fn the_fused_batchnorm_and_activation_match_the_separate_pass_and_burns_ops() {
    use Activation::{Identity, Relu, Relu6};
    // Tiles of output rows (four 20×20 images on two or more threads).
    check([4, 8, 20, 20], [12, 8, 3, 3], 1, [(1, 1), (1, 1)], 1, Relu);
    // A ResNet stem: 7×7 at stride 2.
    check([3, 3, 32, 32], [8, 3, 7, 7], 2, [(3, 3), (3, 3)], 1, Relu6);
    // Maps under 64 positions: images side by side in one product, and one image alone.
    check([3, 16, 6, 6], [10, 16, 3, 3], 1, [(1, 1), (1, 1)], 1, Relu);
    check(
        [1, 16, 6, 6],
        [10, 16, 1, 1],
        1,
        [(0, 0), (0, 0)],
        1,
        Identity,
    );
    // Winograd's F(2×2, 3×3): 64 channels in and out, an odd side.
    check([2, 64, 9, 10], [64, 64, 3, 3], 1, [(1, 1), (1, 1)], 1, Relu);
    // Depthwise: 3×3 at stride 1, TensorFlow's 'same' at stride 2, and a 5×5 window.
    check([2, 6, 11, 9], [6, 1, 3, 3], 1, [(1, 1), (1, 1)], 6, Relu6);
    check([2, 6, 10, 12], [6, 1, 3, 3], 2, [(0, 1), (0, 1)], 6, Relu6);
    check([2, 5, 9, 9], [5, 1, 5, 5], 1, [(2, 2), (2, 2)], 5, Identity);
    // Two groups of three channels: burn's convolution, then the affine pass.
    check([2, 6, 8, 8], [4, 3, 3, 3], 1, [(1, 1), (1, 1)], 2, Relu);
}
