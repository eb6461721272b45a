//! The engine: convlearn's own CPU routines, registered with burn as a backend extension ([`FusedOps`]) on its
//! `flex` backend (`flex.rs`), with backward passes of their own for training (`autodiff.rs`):
//!
//! - the passes after a convolution — a BatchNorm's scale and shift, or a bias, or a residual,
//!   apply ReLU or ReLU6 — as one parallel pass instead of burn's separate single-threaded ones,
//!   with and without gradients (`clamp.rs`);
//! - convolution as im2col + one matrix product per group of images (`conv.rs`), forward and
//!   backward, instead of flex's product per image; 3×3 'same' convolutions of 64 channels and
//!   more by Winograd's F(2×2, 3×3) (`winograd/`), forward and input gradient; depthwise
//!   convolutions map by map, row by row (`depthwise.rs`), forward and backward;
//! - hot loops compiled for AVX-512 and AVX2 as well as the baseline, picked at run time
//!   (`multiversion`);
//! - max-pooling without per-element index bookkeeping, and when training a `u32` record of each
//!   maximum with a parallel backward pass (`max_pool.rs`);
//! - BatchNorm with the batch's statistics and its activation, forward and backward, in two
//!   parallel passes each (`batch_norm.rs`);
//! - the AdamW step as one parallel pass per parameter (`adamw.rs`).
//!
//! This file is the extension's interface — the `FusedOps` trait, one function per fused
//! operation with its burn-ops reference body, and the functions models call — kept together so
//! every operation's contract sits beside its reference; over 40 % of it is the tests of those
//! references. The routines themselves are in the files named above.
//!
//! Here, as in the rest of the crate, a *kernel* is only ever a convolution's weights (the lesson's
//! 3×3 matrices); the code that computes is called a routine or a fused operation.
//!
//! On a GPU back-end the functions below use burn's ops. Tests check every routine against burn's
//! own (values and gradients) and small cases by hand.
//!
//! This file is the trait and the functions models call, one concept: about 430 lines of code,
//! the rest their tests (the routines themselves are in the files named above).

mod adamw;
mod autodiff;
mod batch_norm;
#[cfg(target_arch = "x86_64")]
mod bf16;
mod buffers;
mod clamp;
mod conv;
mod conv_shape;
mod depthwise;
mod flex;
mod matmul;
mod max_pool;
mod precision;
mod winograd;

pub use adamw::{AdamWStep, adamw_step};
pub use conv_shape::{ConvGeometry, ConvShape, Pads};
pub use max_pool::PoolWindow;
pub use precision::{Precision, bf16_hardware, current_precision, set_precision};

use burn::backend::{
    Backend, DispatchDevice, TensorMetadata, backend_extension, tensor::FloatTensor,
};
use burn::nn::PaddingConfig2d;
use burn::nn::pool::MaxPool2d;
use burn::tensor::activation::{relu, relu6};
use burn::tensor::ops::ConvOptions;
use burn::tensor::{DType, Shape, Tensor};

/// The activation applied after a convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// None: the convolution's output as it is.
    Identity,
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, 0), 6)` (MobileNetV2).
    Relu6,
}

impl Activation {
    /// The activation as burn's differentiable ops.
    pub fn apply<const D: usize>(self, x: Tensor<D>) -> Tensor<D> {
        match self {
            Activation::Identity => x,
            Activation::Relu => relu(x),
            Activation::Relu6 => relu6(x),
        }
    }

    /// The activation as a clamp to `[lower, upper]`.
    fn bounds(self) -> (f32, f32) {
        match self {
            Activation::Identity => (f32::NEG_INFINITY, f32::INFINITY),
            Activation::Relu => (0.0, f32::INFINITY),
            Activation::Relu6 => (0.0, 6.0),
        }
    }
}

/// convlearn's routines, as a burn backend extension. NaN stays NaN, as in PyTorch.
#[backend_extension(Flex, Autodiff)]
pub trait FusedOps: Backend {
    /// `clamp(x · scale[c] + shift[c], lower, upper)` for `x` laid out `[batch, channels, …]`,
    /// `scale` and `shift` `[channels]`. (The default body is the definition, in burn's ops; flex
    /// replaces it with one pass.)
    fn affine_clamp(
        x: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        shift: FloatTensor<Self>,
        lower: f32,
        upper: f32,
    ) -> FloatTensor<Self> {
        let mut dims = vec![1; x.shape().num_dims()];
        dims[1] = shift.shape()[0];
        let scale = Self::float_reshape(scale, Shape::from(dims.clone()));
        let shift = Self::float_reshape(shift, Shape::from(dims));
        let y = Self::float_add(Self::float_mul(x, scale), shift);
        Self::float_clamp(y, lower.into(), upper.into())
    }

    /// `clamp(x + bias[c], lower, upper)` for `x` laid out `[batch, channels, …]`, `bias`
    /// `[channels]`: a convolution's bias and activation, on autodiff with a backward pass of its
    /// own (`clamp.rs`).
    fn bias_clamp(
        x: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        lower: f32,
        upper: f32,
    ) -> FloatTensor<Self> {
        let mut dims = vec![1; x.shape().num_dims()];
        dims[1] = bias.shape()[0];
        let bias = Self::float_reshape(bias, Shape::from(dims));
        Self::float_clamp(Self::float_add(x, bias), lower.into(), upper.into())
    }

    /// `clamp(x + residual, lower, upper)`, element by element (same shapes); on autodiff with a
    /// backward pass of its own (`clamp.rs`).
    fn add_clamp(
        x: FloatTensor<Self>,
        residual: FloatTensor<Self>,
        lower: f32,
        upper: f32,
    ) -> FloatTensor<Self> {
        Self::float_clamp(Self::float_add(x, residual), lower.into(), upper.into())
    }

    /// The convolution of `x` `[batch, cin, h, w]` with `weight` `[cout, cin, kh, kw]` (one group,
    /// no bias). flex's runs as im2col + one matrix product per group of images (`conv.rs`).
    fn conv2d_batched(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        Self::conv2d(x, weight, None, options)
    }

    /// The depthwise convolution of `x` `[batch, channels, h, w]` with `weight` `[channels, 1,
    /// kh, kw]` (`groups = channels`, no bias: MobileNetV2's). flex's runs each feature map on its
    /// own, row by row (`depthwise.rs`).
    fn depthwise_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        Self::conv2d(x, weight, None, options)
    }

    /// The convolution of `x` with `weight` (one group, or depthwise: see
    /// [`FusedOps::conv2d_batched`] and [`FusedOps::depthwise_conv2d`]), then
    /// `clamp(y · scale[c] + shift[c], lower, upper)` per output channel: a BatchNorm with
    /// running statistics and its activation. flex's applies the map to each part of the output
    /// as the convolution writes it (an im2col tile, a Winograd band, a depthwise map), while it
    /// is in the core's cache, instead of in a pass of its own; images side by side in one
    /// product get it in one pass after their products.
    #[allow(clippy::too_many_arguments)]
    fn conv2d_affine_clamp(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        shift: FloatTensor<Self>,
        lower: f32,
        upper: f32,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        let y = Self::conv2d(x, weight, None, options);
        Self::affine_clamp(y, scale, shift, lower, upper)
    }

    /// BatchNorm of `x` `[batch, channels, …]` with the batch's statistics, then a clamp to
    /// `[lower, upper]` (the activation): the output, and the batch's mean and biased variance per
    /// channel.
    fn batch_norm_clamp(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
        lower: f32,
        upper: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let r = Self::batch_norm_train(x, gamma, beta, epsilon);
        let output = Self::float_clamp(r.output, lower.into(), upper.into());
        (output, r.mean, r.variance)
    }

    /// One AdamW step ([`AdamWStep`]): `(param, moment_1, moment_2)` after it. (Other back-ends
    /// take [`AdamWStep::tensors`], burn's ops, in [`adamw_step`].)
    fn adamw_step(
        param: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        moment_1: FloatTensor<Self>,
        moment_2: FloatTensor<Self>,
        step: AdamWStep,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);

    /// Max-pooling of `x` `[batch, channels, h, w]` over a `kernel` window (padding counts as −∞);
    /// on autodiff it records where each maximum came from for its backward pass.
    fn max_pool(
        x: FloatTensor<Self>,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: Pads,
    ) -> FloatTensor<Self>;
}

/// Whether the engine's routines run on `x`: on flex without autodiff, in 32-bit floats. Elsewhere the
/// functions below compose burn's ops.
pub fn fused<const D: usize>(x: &Tensor<D>) -> bool {
    flex_f32(x) == Some(false)
}

/// Whether `x` is a 32-bit float tensor on flex, with or without autodiff: where convlearn's
/// convolution and max-pool run.
pub fn on_flex<const D: usize>(x: &Tensor<D>) -> bool {
    flex_f32(x).is_some()
}

/// For a 32-bit float tensor on flex, whether it records gradients; `None` elsewhere.
fn flex_f32<const D: usize>(x: &Tensor<D>) -> Option<bool> {
    if x.dtype() != DType::F32 {
        return None;
    }
    match x.device().as_dispatch() {
        DispatchDevice::Flex(_) => Some(false),
        DispatchDevice::Autodiff(inner) => {
            matches!(inner.clone().inner(), DispatchDevice::Flex(_)).then_some(true)
        }
        #[allow(unreachable_patterns)] // reachable when a GPU back-end is compiled in
        _ => None,
    }
}

/// `activation(x + bias)`, the bias per channel (dim 1) of a `[batch, channels, height, width]`
/// convolution output: on flex one parallel pass, with or without gradients.
pub fn bias_activation(x: Tensor<4>, bias: Option<Tensor<1>>, activation: Activation) -> Tensor<4> {
    match bias {
        None if activation == Activation::Identity => x,
        _ if on_flex(&x) => {
            let channels = x.dims()[1];
            let bias = bias.unwrap_or_else(|| Tensor::zeros([channels], &x.device()));
            let (lower, upper) = activation.bounds();
            let out = <burn::backend::Dispatch as FusedOps>::bias_clamp(
                x.into_dispatch(),
                bias.into_dispatch(),
                lower,
                upper,
            );
            Tensor::from_dispatch(out)
        }
        Some(b) => {
            let c = b.dims()[0];
            activation.apply(x + b.reshape([1, c, 1, 1]))
        }
        None => activation.apply(x),
    }
}

/// `activation(x · scale + shift)`, both per channel (dim 1) of a `[batch, channels, height, width]`
/// convolution output: a BatchNorm with running statistics applied to the convolution's output
/// (one fused pass on flex) instead of folded into its weights.
pub fn affine_activation(
    x: Tensor<4>,
    scale: Tensor<1>,
    shift: Tensor<1>,
    activation: Activation,
) -> Tensor<4> {
    if fused(&x) {
        let (lower, upper) = activation.bounds();
        let out = <burn::backend::Dispatch as FusedOps>::affine_clamp(
            x.into_dispatch(),
            scale.into_dispatch(),
            shift.into_dispatch(),
            lower,
            upper,
        );
        return Tensor::from_dispatch(out);
    }
    let c = scale.dims()[0];
    activation.apply(x * scale.reshape([1, c, 1, 1]) + shift.reshape([1, c, 1, 1]))
}

/// `activation(x + residual)`: the end of a residual block.
pub fn residual_activation(x: Tensor<4>, residual: Tensor<4>, activation: Activation) -> Tensor<4> {
    if on_flex(&x) && x.dims() == residual.dims() {
        let (lower, upper) = activation.bounds();
        let out = <burn::backend::Dispatch as FusedOps>::add_clamp(
            x.into_dispatch(),
            residual.into_dispatch(),
            lower,
            upper,
        );
        return Tensor::from_dispatch(out);
    }
    activation.apply(x + residual)
}

/// `activation(BatchNorm(x))` with the batch's statistics (training), `x` `[batch, channels, …]`:
/// the output, and the batch's mean and biased variance per channel (for the running statistics).
/// On flex, with or without gradients, convlearn's routines (`batch_norm.rs`); elsewhere burn's
/// `batch_norm_train` and activation.
pub fn batch_norm_train<const D: usize>(
    x: Tensor<D>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    epsilon: f64,
    activation: Activation,
) -> (Tensor<D>, Tensor<1>, Tensor<1>) {
    if !on_flex(&x) {
        let r = burn::tensor::module::batch_norm_train(x, gamma, beta, epsilon);
        return (activation.apply(r.output), r.mean, r.variance);
    }
    let (lower, upper) = activation.bounds();
    let (y, mean, variance) = <burn::backend::Dispatch as FusedOps>::batch_norm_clamp(
        x.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        epsilon,
        lower,
        upper,
    );
    (
        Tensor::from_dispatch(y),
        Tensor::from_dispatch(mean),
        Tensor::from_dispatch(variance),
    )
}

/// The convolution of `x` with `weight` (no bias): on flex, with or without gradients, by
/// convlearn's batched im2col routine (one group) or its depthwise one (a kernel per channel);
/// other grouped convolutions, and every convolution elsewhere, are burn's.
pub fn conv2d(x: Tensor<4>, weight: Tensor<4>, options: ConvOptions<2>) -> Tensor<4> {
    if !on_flex(&x) || !convlearns_grouping(&x, &weight, &options) {
        return burn::tensor::module::conv2d(x, weight, None, options);
    }
    let (x, weight) = (x.into_dispatch(), weight.into_dispatch());
    let out = if options.groups == 1 {
        <burn::backend::Dispatch as FusedOps>::conv2d_batched(x, weight, options)
    } else {
        <burn::backend::Dispatch as FusedOps>::depthwise_conv2d(x, weight, options)
    };
    Tensor::from_dispatch(out)
}

/// `activation(conv(x, weight) · scale + shift)`, scale and shift per output channel: a
/// convolution without bias, its BatchNorm with running statistics and its activation. On flex
/// without gradients, for the convolutions [`conv2d`] computes itself, one routine applies the
/// affine map and the activation to the output as the convolution writes it
/// ([`FusedOps::conv2d_affine_clamp`]); otherwise [`conv2d`], then [`affine_activation`].
pub fn conv2d_affine_activation(
    x: Tensor<4>,
    weight: Tensor<4>,
    options: ConvOptions<2>,
    [scale, shift]: [Tensor<1>; 2],
    activation: Activation,
) -> Tensor<4> {
    if !fused(&x) || !convlearns_grouping(&x, &weight, &options) {
        let y = conv2d(x, weight, options);
        return affine_activation(y, scale, shift, activation);
    }
    let (lower, upper) = activation.bounds();
    let out = <burn::backend::Dispatch as FusedOps>::conv2d_affine_clamp(
        x.into_dispatch(),
        weight.into_dispatch(),
        scale.into_dispatch(),
        shift.into_dispatch(),
        lower,
        upper,
        options,
    );
    Tensor::from_dispatch(out)
}

/// Whether convlearn's flex routines compute this convolution: one group, or depthwise (a kernel
/// per channel). Other grouped convolutions are burn's.
fn convlearns_grouping(x: &Tensor<4>, weight: &Tensor<4>, options: &ConvOptions<2>) -> bool {
    let [_, channels, _, _] = x.dims();
    let [kernels, kernel_channels, _, _] = weight.dims();
    let depthwise = options.groups == channels && kernels == channels && kernel_channels == 1;
    options.groups == 1 || depthwise
}

/// `pool(x)` on flex by convlearn's routine — a plain parallel pass, and when training, a `u32`
/// record of each maximum's cell and a parallel backward pass (flex's own tracks `i64` indices
/// with a division per element and adds gradients back on one thread). Other back-ends, and
/// dilated, ceil-mode or 'same' windows, use burn's.
pub fn max_pool2d(pool: &MaxPool2d, x: Tensor<4>) -> Tensor<4> {
    let padding = match pool.padding {
        PaddingConfig2d::Valid => Some(Pads::NONE),
        PaddingConfig2d::Explicit(top, left, bottom, right) => Some(Pads {
            top,
            bottom,
            left,
            right,
        }),
        PaddingConfig2d::Same => None,
    };
    let [_, _, h, w] = x.dims();
    match padding {
        Some(padding) if on_flex(&x) && pool.dilation == [1, 1] && !pool.ceil_mode => {
            let window = PoolWindow {
                kernel: pool.kernel_size,
                stride: pool.stride,
                padding,
            };
            if window.output_size([h, w]).is_none() {
                return pool.forward(x); // burn reports the misfit
            }
            let out = <burn::backend::Dispatch as FusedOps>::max_pool(
                x.into_dispatch(),
                window.kernel,
                window.stride,
                window.padding,
            );
            Tensor::from_dispatch(out)
        }
        _ => pool.forward(x),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::pool::MaxPool2dConfig;
    use burn::tensor::{Device, Distribution, TensorData};

    use crate::host::values;

    /// A `[batch, channels, h, w]` tensor of normal values with a NaN at element `nan_at`.
    fn sample(shape: [usize; 4], nan_at: usize) -> Tensor<4> {
        let device = Device::flex();
        let x = Tensor::<4>::random(shape, Distribution::Normal(0.0, 4.0), &device);
        let mut v = values(x);
        v[nan_at] = f32::NAN;
        Tensor::from_data(TensorData::new(v, shape), &device)
    }

    /// Element-wise equality, NaN equal to NaN.
    fn assert_same<const D: usize>(got: Tensor<D>, want: Tensor<D>, what: &str) {
        assert_eq!(got.dims(), want.dims(), "{what}: shape");
        let got = values(got);
        let want = values(want);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                g == w || (g.is_nan() && w.is_nan()),
                "{what}: element {i} is {g}, burn's ops give {w}"
            );
        }
    }

    #[test]
    fn bias_and_activation_match_burns_ops_with_nan_views_and_shared_inputs() {
        let device = Device::flex();
        // 6 × 40 × 40 planes: more than one rayon task, so chunk edges are crossed.
        let x = sample([3, 6, 40, 40], 1234);
        let bias = Tensor::<1>::from_floats([0.5, -1.0, 2.0, 0.0, -3.0, 7.0], &device);
        for activation in [Activation::Identity, Activation::Relu, Activation::Relu6] {
            let want = activation.apply(x.clone() + bias.clone().reshape([1, 6, 1, 1]));
            // `x` is shared (cloned here and above): the fused pass must not write into it.
            let kept = x.clone().into_data();
            let got = bias_activation(x.clone(), Some(bias.clone()), activation);
            assert_same(got, want.clone(), &format!("{activation:?}"));
            assert_eq!(
                x.clone().into_data(),
                kept,
                "the input was modified in place"
            );
            // A transposed view (not contiguous) gives the same values.
            let t = x.clone().swap_dims(2, 3);
            let want_t = want.swap_dims(2, 3);
            let got_t = bias_activation(t, Some(bias.clone()), activation);
            assert_same(got_t, want_t, &format!("{activation:?} on a view"));
        }
        let no_bias = bias_activation(x.clone(), None, Activation::Relu6);
        assert_same(no_bias, relu6(x), "no bias");
    }

    #[test]
    fn bias_and_activation_gradients_match_burns_ops() {
        let device = Device::flex().autodiff();
        // 6 × 40 × 40 planes: more than one rayon task, and maps longer than the 16 lanes.
        let x = Tensor::<4>::random([3, 6, 40, 40], Distribution::Normal(0.0, 4.0), &device);
        let bias = Tensor::<1>::from_floats([0.5, -1.0, 2.0, 0.0, -3.0, 7.0], &device);
        let r = Tensor::<4>::random([3, 6, 40, 40], Distribution::Normal(0.0, 1.0), &device);
        for activation in [Activation::Identity, Activation::Relu, Activation::Relu6] {
            let run = |ours: bool| {
                let (x, b) = (x.clone().require_grad(), bias.clone().require_grad());
                let y = if ours {
                    bias_activation(x.clone(), Some(b.clone()), activation)
                } else {
                    activation.apply(x.clone() + b.clone().reshape([1, 6, 1, 1]))
                };
                let grads = (y.clone() * r.clone()).sum().backward();
                [
                    values(y),
                    values(x.grad(&grads).unwrap()),
                    values(b.grad(&grads).unwrap()),
                ]
            };
            let (ours, theirs) = (run(true), run(false));
            assert_eq!(ours[0], theirs[0], "{activation:?}: output");
            assert_eq!(ours[1], theirs[1], "{activation:?}: d/dx");
            for (c, (a, b)) in ours[2].iter().zip(&theirs[2]).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-4 * b.abs().max(1.0),
                    "{activation:?}: d/dbias[{c}] is {a}, burn's {b}"
                );
            }
        }
    }

    #[test]
    fn scale_shift_and_activation_match_burns_ops() {
        let device = Device::flex();
        let x = sample([3, 6, 40, 40], 99);
        let scale = Tensor::<1>::from_floats([0.5, -2.0, 1.0, 0.0, 3.0, 1.5], &device);
        let shift = Tensor::<1>::from_floats([0.5, -1.0, 2.0, 0.0, -3.0, 7.0], &device);
        for activation in [Activation::Identity, Activation::Relu, Activation::Relu6] {
            let want = activation.apply(
                x.clone() * scale.clone().reshape([1, 6, 1, 1])
                    + shift.clone().reshape([1, 6, 1, 1]),
            );
            let got = affine_activation(x.clone(), scale.clone(), shift.clone(), activation);
            assert_same(got, want, &format!("{activation:?}"));
        }
    }

    #[test]
    fn residual_activation_gradients_match_burns_ops() {
        let device = Device::flex().autodiff();
        let x = Tensor::<4>::random([2, 5, 33, 31], Distribution::Normal(0.0, 1.0), &device);
        let residual = Tensor::<4>::random([2, 5, 33, 31], Distribution::Normal(0.0, 1.0), &device);
        let r = Tensor::<4>::random([2, 5, 33, 31], Distribution::Normal(0.0, 1.0), &device);
        for activation in [Activation::Identity, Activation::Relu, Activation::Relu6] {
            let run = |ours: bool| {
                let (x, res) = (x.clone().require_grad(), residual.clone().require_grad());
                let y = if ours {
                    residual_activation(x.clone(), res.clone(), activation)
                } else {
                    activation.apply(x.clone() + res.clone())
                };
                let grads = (y.clone() * r.clone()).sum().backward();
                [
                    values(y),
                    values(x.grad(&grads).unwrap()),
                    values(res.grad(&grads).unwrap()),
                ]
            };
            let (ours, theirs) = (run(true), run(false));
            for (what, (a, b)) in ["output", "d/dx", "d/dresidual"]
                .iter()
                .zip(ours.iter().zip(&theirs))
            {
                assert_eq!(a, b, "{activation:?}: {what}");
            }
        }
    }

    #[test]
    fn residual_activation_matches_burns_ops() {
        let x = sample([2, 5, 33, 31], 7);
        let r = sample([2, 5, 33, 31], 4000);
        let got = residual_activation(x.clone(), r.clone(), Activation::Relu);
        assert_same(got, relu(x + r), "relu(x + residual)");
    }

    #[test]
    fn max_pool_matches_burns_for_lenet_and_resnet_windows() {
        let x = sample([2, 9, 29, 35], 300);
        let configs = [
            MaxPool2dConfig::new([2, 2]),
            MaxPool2dConfig::new([3, 3])
                .with_strides([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)),
            MaxPool2dConfig::new([3, 2]).with_strides([1, 2]),
        ];
        for config in configs {
            let pool = config.init();
            assert_same(
                max_pool2d(&pool, x.clone()),
                pool.forward(x.clone()),
                &format!("{config:?}"),
            );
        }
    }

    #[test]
    fn max_pool_gradients_match_burns_including_overlapping_windows() {
        let device = Device::flex().autodiff();
        let configs = [
            MaxPool2dConfig::new([2, 2]),
            // ResNet's stem pool: windows overlap, so one cell can collect two gradients.
            MaxPool2dConfig::new([3, 3])
                .with_strides([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)),
        ];
        for config in configs {
            let pool = config.init();
            let x = Tensor::<4>::random([2, 3, 13, 12], Distribution::Normal(0.0, 1.0), &device);
            let out_dims = pool.forward(x.clone()).dims();
            let weights = Tensor::<4>::random(out_dims, Distribution::Normal(0.0, 1.0), &device);
            let gradient = |ours: bool| {
                let x = x.clone().require_grad();
                let y = if ours {
                    max_pool2d(&pool, x.clone())
                } else {
                    pool.forward(x.clone())
                };
                let grads = (y.clone() * weights.clone()).sum().backward();
                (values(y), values(x.grad(&grads).unwrap()))
            };
            let (ours, theirs) = (gradient(true), gradient(false));
            assert_eq!(ours.0, theirs.0, "{config:?}: forward");
            for (i, (a, b)) in ours.1.iter().zip(&theirs.1).enumerate() {
                assert!(
                    (a - b).abs() < 1e-6,
                    "{config:?}: d/dx[{i}] is {a}, burn's {b}"
                );
            }
            assert!(ours.1.iter().any(|g| *g != 0.0));
        }
    }

    #[test]
    fn convolution_and_its_gradients_match_burns_for_strides_paddings_and_dilations() {
        let device = Device::flex().autodiff();
        // (kernel, stride, ((top, bottom), (left, right)), dilation)
        let cases = [
            (3, 1, [(1, 1), (1, 1)], 1),
            (3, 2, [(1, 0), (0, 1)], 1), // TensorFlow-style 'same' on even sizes
            (7, 2, [(3, 3), (3, 3)], 1), // ResNet's stem
            (1, 1, [(0, 0), (0, 0)], 1), // pointwise
            (1, 2, [(0, 0), (0, 0)], 1), // ResNet's downsample
            (3, 1, [(2, 2), (2, 2)], 2),
            (2, 2, [(0, 0), (0, 0)], 1),
        ];
        for (k, s, padding, d) in cases {
            let options = ConvOptions::new_with_padding([s, s], padding, [d, d], 1);
            let x = Tensor::<4>::random([3, 4, 11, 9], Distribution::Normal(0.0, 1.0), &device);
            let w = Tensor::<4>::random([5, 4, k, k], Distribution::Normal(0.0, 1.0), &device);
            let run = |ours: bool| {
                let (x, w) = (x.clone().require_grad(), w.clone().require_grad());
                let y = if ours {
                    conv2d(x.clone(), w.clone(), options.clone())
                } else {
                    burn::tensor::module::conv2d(x.clone(), w.clone(), None, options.clone())
                };
                // A weighted sum, so every output's gradient differs.
                let dims = y.dims();
                let r: Vec<f32> = (0..dims.iter().product::<usize>())
                    .map(|i| (i % 7) as f32 - 3.0)
                    .collect();
                let r = Tensor::<4>::from_data(TensorData::new(r, dims), &device);
                let grads = (y.clone() * r).sum().backward();
                [
                    values(y),
                    values(x.grad(&grads).unwrap()),
                    values(w.grad(&grads).unwrap()),
                ]
            };
            let (ours, theirs) = (run(true), run(false));
            for (what, (a, b)) in ["output", "d/dx", "d/dw"]
                .iter()
                .zip(ours.iter().zip(&theirs))
            {
                assert_eq!(a.len(), b.len(), "k{k} s{s} {padding:?} d{d}: {what} size");
                let scale = b.iter().fold(1f32, |m, v| m.max(v.abs()));
                for (i, (p, q)) in a.iter().zip(b).enumerate() {
                    assert!(
                        (p - q).abs() <= 1e-5 * scale,
                        "k{k} s{s} {padding:?} d{d}: {what}[{i}] is {p}, burn's {q}"
                    );
                }
            }
        }
    }

    #[test]
    fn with_gradients_the_functions_are_burns_differentiable_ops() {
        let device = Device::flex().autodiff();
        let x = Tensor::<4>::from_floats([[[[-1.0, 2.0], [3.0, 8.0]]]], &device).require_grad();
        let bias = Tensor::<1>::from_floats([-0.5], &device).require_grad();
        let y = bias_activation(x.clone(), Some(bias.clone()), Activation::Relu6);
        let grads = y.sum().backward();
        // x + b = [-1.5, 1.5, 2.5, 7.5]: ReLU6 passes the gradient for the middle two only.
        let gx = values(x.grad(&grads).unwrap());
        assert_eq!(gx, vec![0.0, 1.0, 1.0, 0.0]);
        let gb = values(bias.grad(&grads).unwrap());
        assert_eq!(gb, vec![2.0]);
    }
}
