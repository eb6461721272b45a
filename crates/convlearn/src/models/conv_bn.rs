//! Convolution followed by batch normalisation: the unit ResNet and MobileNetV2 are built of.

use burn::module::Module;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor};

use super::BatchNorm;
use crate::engine::{self, Activation, bias_activation, conv2d_affine_activation, on_flex};

/// How a pretrained network's convolutions pad.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaddingStyle {
    /// PyTorch: `kernel / 2` on every side.
    #[default]
    Torch,
    /// TensorFlow 'SAME': `total = max((ceil(in/s) − 1)·s + k − in, 0)`, the extra pixel after
    /// (bottom/right). Weights converted from TensorFlow need it.
    TfSame,
}

/// A bias-free convolution and its BatchNorm.
#[derive(Module, Debug)]
pub struct ConvBn {
    /// The convolution (PyTorch index 0 in a `Sequential`).
    pub conv: Conv2d,
    /// The normalisation (PyTorch index 1).
    pub bn: BatchNorm,
}

impl ConvBn {
    /// `cin → cout` channels, `k × k` kernel, `stride`, `groups`, padded as `style` says.
    pub fn new(
        [cin, cout]: [usize; 2],
        k: usize,
        stride: usize,
        groups: usize,
        style: PaddingStyle,
        device: &Device,
    ) -> Self {
        let padding = match style {
            PaddingStyle::TfSame if k > 1 => PaddingConfig2d::Same,
            _ => PaddingConfig2d::Explicit(k / 2, k / 2, k / 2, k / 2),
        };
        let conv = Conv2dConfig::new([cin, cout], [k, k])
            .with_stride([stride, stride])
            .with_groups(groups)
            .with_bias(false)
            .with_padding(padding)
            .init(device);
        Self {
            conv,
            bn: BatchNorm::new(cout, device),
        }
    }

    /// Convolution then BatchNorm (no activation).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_activated(x, Activation::Identity)
    }

    /// Convolution, BatchNorm, then `activation`. With running statistics (inference, or a frozen
    /// BatchNorm), the normalisation is one affine map per output channel: on flex without
    /// gradients the convolution applies it and the activation to its output as it writes it
    /// ([`engine::conv2d_affine_activation`]); elsewhere it is folded into the convolution —
    /// weights scaled per output channel, the shift as its bias.
    pub fn forward_activated(&self, x: Tensor<4>, activation: Activation) -> Tensor<4> {
        let device = x.device();
        if self.bn.uses_batch_statistics(&device) {
            let y = conv_activation(&self.conv, x, Activation::Identity);
            return self.bn.forward_activated(y, activation);
        }
        let (scale, shift) = self.bn.scale_shift(&device);
        let shift = match &self.conv.bias {
            Some(b) => b.val() * scale.clone() + shift,
            None => shift,
        };
        if engine::fused(&x) {
            // On flex the scale goes onto the output with the shift and the activation, as the
            // convolution writes it: folding it into the weights cost a pass over every weight per
            // forward, and a pass of its own over the output cost a tenth of MobileNetV2's
            // inference.
            let [_, _, h, w] = x.dims();
            return conv2d_affine_activation(
                x,
                self.conv.weight.val(),
                conv_options(&self.conv, h, w),
                [scale, shift],
                activation,
            );
        }
        let cout = scale.dims()[0];
        let weight = self.conv.weight.val() * scale.reshape([cout, 1, 1, 1]);
        conv_bias_activation(&self.conv, x, weight, Some(shift), activation)
    }
}

/// `activation(conv(x))` for a convolution with its own weights and bias.
pub fn conv_activation(conv: &Conv2d, x: Tensor<4>, activation: Activation) -> Tensor<4> {
    let bias = conv.bias.as_ref().map(|b| b.val());
    conv_bias_activation(conv, x, conv.weight.val(), bias, activation)
}

/// `conv`'s geometry with `weight` and `bias`, then `activation`. On flex the convolution is
/// convlearn's ([`engine::conv2d`], with gradients when training), and the bias and activation
/// follow as one fused pass (inference) or burn's ops (training); elsewhere all of it is burn's.
fn conv_bias_activation(
    conv: &Conv2d,
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    activation: Activation,
) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    let options = conv_options(conv, h, w);
    if on_flex(&x) {
        bias_activation(engine::conv2d(x, weight, options), bias, activation)
    } else {
        activation.apply(conv2d(x, weight, bias, options))
    }
}

/// `conv`'s stride, padding, dilation and groups on an `h × w` input.
fn conv_options(conv: &Conv2d, h: usize, w: usize) -> ConvOptions<2> {
    ConvOptions::new_with_padding(
        conv.stride,
        padding_pairs(conv, h, w),
        conv.dilation,
        conv.groups,
    )
}

/// `conv`'s padding of an `h × w` input as ((top, bottom), (left, right)), as burn's `Conv2d`
/// computes it ('same' pads the extra pixel after, as TensorFlow does).
pub(crate) fn padding_pairs(conv: &Conv2d, h: usize, w: usize) -> [(usize, usize); 2] {
    let same = |k: usize, s: usize, len: usize| {
        let total = ((len.div_ceil(s).max(1) - 1) * s + k).saturating_sub(len);
        (total / 2, total - total / 2)
    };
    match conv.padding {
        PaddingConfig2d::Valid => [(0, 0), (0, 0)],
        PaddingConfig2d::Same => [
            same(conv.kernel_size[0], conv.stride[0], h),
            same(conv.kernel_size[1], conv.stride[1], w),
        ],
        PaddingConfig2d::Explicit(top, left, bottom, right) => [(top, bottom), (left, right)],
    }
}
