//! ResNet (He et al. 2015) with torchvision's structure and parameter names: `resnet18/34` (basic
//! blocks) and `resnet50/101/152` (bottlenecks, stride on the 3×3 as in torchvision's v1.5).

use burn::module::Module;
use burn::nn::PaddingConfig2d;
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::tensor::{Device, Tensor};

use super::{ConvBn, PaddingStyle};
use crate::engine::Activation::Relu;
use crate::engine::{max_pool2d, residual_activation};

/// Two 3×3 convolutions with a shortcut (ResNet-18/34).
#[derive(Module, Debug)]
pub struct BasicBlock {
    /// First 3×3 (carries the stride).
    pub conv1: ConvBn,
    /// Second 3×3.
    pub conv2: ConvBn,
    /// 1×1 projection of the shortcut when shape changes.
    pub downsample: Option<ConvBn>,
}

/// 1×1 reduce, 3×3 (carries the stride), 1×1 expand ×4, with a shortcut (ResNet-50+).
#[derive(Module, Debug)]
pub struct Bottleneck {
    /// 1×1 reduce.
    pub conv1: ConvBn,
    /// 3×3.
    pub conv2: ConvBn,
    /// 1×1 expand.
    pub conv3: ConvBn,
    /// 1×1 projection of the shortcut when shape changes.
    pub downsample: Option<ConvBn>,
}

/// Either kind of residual block.
// Variants are whole layers, built once and moved rarely; burn modules cannot be boxed.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum ResBlock {
    /// ResNet-18/34.
    Basic(BasicBlock),
    /// ResNet-50/101/152.
    Bottleneck(Bottleneck),
}

impl ResBlock {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let (out, shortcut) = match self {
            ResBlock::Basic(b) => {
                let out = b.conv2.forward(b.conv1.forward_activated(x.clone(), Relu));
                (
                    out,
                    b.downsample.as_ref().map_or(x.clone(), |d| d.forward(x)),
                )
            }
            ResBlock::Bottleneck(b) => {
                let out = b.conv1.forward_activated(x.clone(), Relu);
                let out = b.conv3.forward(b.conv2.forward_activated(out, Relu));
                (
                    out,
                    b.downsample.as_ref().map_or(x.clone(), |d| d.forward(x)),
                )
            }
        };
        residual_activation(out, shortcut, Relu)
    }
}

/// ResNet up to (not including) the global pool: the body a new head is put on.
#[derive(Module, Debug)]
pub struct ResNetBody {
    /// 7×7 stride-2 stem.
    pub stem: ConvBn,
    /// 3×3 stride-2 max-pool.
    pub pool: MaxPool2d,
    /// Stage 1 (64 channels · expansion).
    pub layer1: Vec<ResBlock>,
    /// Stage 2 (128 · expansion, stride 2).
    pub layer2: Vec<ResBlock>,
    /// Stage 3 (256 · expansion, stride 2).
    pub layer3: Vec<ResBlock>,
    /// Stage 4 (512 · expansion, stride 2).
    pub layer4: Vec<ResBlock>,
}

impl ResNetBody {
    /// A ResNet body with `blocks` per stage; `bottleneck` selects the block type.
    pub fn new(blocks: [usize; 4], bottleneck: bool, device: &Device) -> Self {
        let style = PaddingStyle::Torch;
        let expansion = if bottleneck { 4 } else { 1 };
        let mut inplanes = 64;
        let mut stage = |planes: usize, n: usize, stride: usize| -> Vec<ResBlock> {
            (0..n)
                .map(|i| {
                    let s = if i == 0 { stride } else { 1 };
                    let out = planes * expansion;
                    let downsample = (s != 1 || inplanes != out)
                        .then(|| ConvBn::new([inplanes, out], 1, s, 1, style, device));
                    let block = if bottleneck {
                        ResBlock::Bottleneck(Bottleneck {
                            conv1: ConvBn::new([inplanes, planes], 1, 1, 1, style, device),
                            conv2: ConvBn::new([planes, planes], 3, s, 1, style, device),
                            conv3: ConvBn::new([planes, out], 1, 1, 1, style, device),
                            downsample,
                        })
                    } else {
                        ResBlock::Basic(BasicBlock {
                            conv1: ConvBn::new([inplanes, planes], 3, s, 1, style, device),
                            conv2: ConvBn::new([planes, planes], 3, 1, 1, style, device),
                            downsample,
                        })
                    };
                    inplanes = out;
                    block
                })
                .collect()
        };
        let layer1 = stage(64, blocks[0], 1);
        let layer2 = stage(128, blocks[1], 2);
        let layer3 = stage(256, blocks[2], 2);
        let layer4 = stage(512, blocks[3], 2);
        Self {
            stem: ConvBn::new([3, 64], 7, 2, 1, style, device),
            pool: MaxPool2dConfig::new([3, 3])
                .with_strides([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(),
            layer1,
            layer2,
            layer3,
            layer4,
        }
    }

    /// The stem: conv, BN, ReLU, max-pool.
    pub fn stem_forward(&self, x: Tensor<4>) -> Tensor<4> {
        max_pool2d(&self.pool, self.stem.forward_activated(x, Relu))
    }

    /// Stage `i` (1–4).
    pub fn stage(&self, i: usize) -> &[ResBlock] {
        match i {
            1 => &self.layer1,
            2 => &self.layer2,
            3 => &self.layer3,
            _ => &self.layer4,
        }
    }

    /// Runs `blocks` in order.
    pub fn run(blocks: &[ResBlock], x: Tensor<4>) -> Tensor<4> {
        blocks.iter().fold(x, |x, b| b.forward(x))
    }

    /// Feature maps `[batch, 512·expansion, h/32, w/32]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        (1..=4).fold(self.stem_forward(x), |x, i| Self::run(self.stage(i), x))
    }
}

/// torchvision's name for a [`ResNetBody`] parameter path (relative to the body).
pub fn resnet_torch_name(path: &str) -> String {
    let path = path
        .replace("stem.conv.", "conv1.")
        .replace("stem.bn.", "bn1.")
        .replace(".downsample.conv.", ".downsample.0.")
        .replace(".downsample.bn.", ".downsample.1.");
    // inside blocks: convN.conv.* → convN.*, convN.bn.* → bnN.*
    let mut out = path.clone();
    for n in 1..=3 {
        out = out
            .replace(&format!(".conv{n}.conv."), &format!(".conv{n}."))
            .replace(&format!(".conv{n}.bn."), &format!(".bn{n}."));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torchvision_names() {
        assert_eq!(resnet_torch_name("stem.conv.weight"), "conv1.weight");
        assert_eq!(resnet_torch_name("stem.bn.running_var"), "bn1.running_var");
        assert_eq!(
            resnet_torch_name("layer2.0.conv1.bn.weight"),
            "layer2.0.bn1.weight"
        );
        assert_eq!(
            resnet_torch_name("layer2.0.conv2.conv.weight"),
            "layer2.0.conv2.weight"
        );
        assert_eq!(
            resnet_torch_name("layer3.0.downsample.bn.bias"),
            "layer3.0.downsample.1.bias"
        );
    }
}
