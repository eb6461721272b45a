//! Convolution followed by batch normalisation: the unit ResNet and MobileNetV2 are built of.

use burn::module::Module;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::{Device, Tensor};

use super::BatchNorm;

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
        self.bn.forward(self.conv.forward(x))
    }
}
