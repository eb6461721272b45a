//! MobileNetV2 (Sandler et al. 2018) with torchvision's structure and parameter names, and a padding
//! option for weights converted from TensorFlow ('SAME' padding).

use burn::module::Module;
use burn::tensor::{Device, Tensor};

use super::{ConvBn, PaddingStyle};
use crate::engine::Activation::Relu6;

/// Expand (1×1, ReLU6) → depthwise 3×3 (ReLU6) → project (1×1, linear), with a residual when the
/// shape is kept.
#[derive(Module, Debug)]
pub struct InvertedResidual {
    /// 1×1 expansion (absent when the expansion factor is 1).
    pub expand: Option<ConvBn>,
    /// Depthwise 3×3 (carries the stride).
    pub depthwise: ConvBn,
    /// 1×1 linear projection.
    pub project: ConvBn,
    /// Whether the input is added to the output.
    pub residual: bool,
}

/// One entry of `features`.
// Variants are whole layers, built once and moved rarely; burn modules cannot be boxed.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum MobileStage {
    /// Conv + BN + ReLU6 (the first and the last entries).
    ConvBnRelu6(ConvBn),
    /// An inverted-residual block.
    Block(InvertedResidual),
}

/// MobileNetV2's `features`: the body a new head is put on (1280 output channels).
#[derive(Module, Debug)]
pub struct MobileNetV2Body {
    /// torchvision's `features.0` … `features.18`.
    pub features: Vec<MobileStage>,
}

/// (expansion t, channels c, repeats n, first stride s), as in the paper and torchvision.
const SETTING: [[usize; 4]; 7] = [
    [1, 16, 1, 1],
    [6, 24, 2, 2],
    [6, 32, 3, 2],
    [6, 64, 4, 2],
    [6, 96, 3, 1],
    [6, 160, 3, 2],
    [6, 320, 1, 1],
];

impl MobileNetV2Body {
    /// Width 1.0 MobileNetV2 features, padded as `style` says.
    pub fn new(style: PaddingStyle, device: &Device) -> Self {
        let mut features = vec![MobileStage::ConvBnRelu6(ConvBn::new(
            [3, 32],
            3,
            2,
            1,
            style,
            device,
        ))];
        let mut cin = 32;
        for [t, c, n, s] in SETTING {
            for i in 0..n {
                let stride = if i == 0 { s } else { 1 };
                let hidden = cin * t;
                features.push(MobileStage::Block(InvertedResidual {
                    expand: (t != 1).then(|| ConvBn::new([cin, hidden], 1, 1, 1, style, device)),
                    depthwise: ConvBn::new([hidden, hidden], 3, stride, hidden, style, device),
                    project: ConvBn::new([hidden, c], 1, 1, 1, style, device),
                    residual: stride == 1 && cin == c,
                }));
                cin = c;
            }
        }
        features.push(MobileStage::ConvBnRelu6(ConvBn::new(
            [cin, 1280],
            1,
            1,
            1,
            style,
            device,
        )));
        Self { features }
    }

    /// Runs `features[range]`.
    pub fn run(&self, range: std::ops::Range<usize>, x: Tensor<4>) -> Tensor<4> {
        self.features[range].iter().fold(x, |x, stage| match stage {
            MobileStage::ConvBnRelu6(c) => c.forward_activated(x, Relu6),
            MobileStage::Block(b) => {
                let mut out = x.clone();
                if let Some(e) = &b.expand {
                    out = e.forward_activated(out, Relu6);
                }
                out = b.project.forward(b.depthwise.forward_activated(out, Relu6));
                if b.residual { out + x } else { out }
            }
        })
    }

    /// Feature maps `[batch, 1280, h/32, w/32]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.run(0..self.features.len(), x)
    }

    /// For each entry of `features`, whether it is a block with an expansion conv.
    pub fn expansions(&self) -> Vec<bool> {
        self.features
            .iter()
            .map(|s| matches!(s, MobileStage::Block(b) if b.expand.is_some()))
            .collect()
    }
}

/// torchvision's name for a [`MobileNetV2Body`] parameter path (relative to the body);
/// `expands[i]` says whether block `i` has an expansion conv (it shifts the indices inside the block).
pub fn mobilenet_v2_torch_name(path: &str, expands: &[bool]) -> String {
    let parts: Vec<&str> = path.split('.').collect();
    let ["features", i, rest @ ..] = parts.as_slice() else {
        return path.to_string();
    };
    let idx: usize = i.parse().unwrap_or(0);
    let sub = |which: &str| if which == "conv" { "0" } else { "1" };
    let mapped = match rest {
        // stems: features.i.conv → features.i.0, bn → .1
        [which @ ("conv" | "bn"), leaf] => format!("{}.{leaf}", sub(which)),
        [block_part, which, leaf] => {
            let d = usize::from(expands.get(idx).copied().unwrap_or(false));
            match *block_part {
                "expand" => format!("conv.0.{}.{leaf}", sub(which)),
                "depthwise" => format!("conv.{d}.{}.{leaf}", sub(which)),
                _ if *which == "conv" => format!("conv.{}.{leaf}", d + 1),
                _ => format!("conv.{}.{leaf}", d + 2),
            }
        }
        _ => rest.join("."),
    };
    format!("features.{idx}.{mapped}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torchvision_names() {
        let ex = [false, false, true];
        assert_eq!(
            mobilenet_v2_torch_name("features.0.conv.weight", &ex),
            "features.0.0.weight"
        );
        assert_eq!(
            mobilenet_v2_torch_name("features.0.bn.running_mean", &ex),
            "features.0.1.running_mean"
        );
        assert_eq!(
            mobilenet_v2_torch_name("features.1.depthwise.conv.weight", &ex),
            "features.1.conv.0.0.weight"
        );
        assert_eq!(
            mobilenet_v2_torch_name("features.1.project.conv.weight", &ex),
            "features.1.conv.1.weight"
        );
        assert_eq!(
            mobilenet_v2_torch_name("features.1.project.bn.bias", &ex),
            "features.1.conv.2.bias"
        );
        assert_eq!(
            mobilenet_v2_torch_name("features.2.expand.bn.weight", &ex),
            "features.2.conv.0.1.weight"
        );
        assert_eq!(
            mobilenet_v2_torch_name("features.2.depthwise.conv.weight", &ex),
            "features.2.conv.1.0.weight"
        );
        assert_eq!(
            mobilenet_v2_torch_name("features.2.project.conv.weight", &ex),
            "features.2.conv.2.weight"
        );
        assert_eq!(
            mobilenet_v2_torch_name("features.2.project.bn.weight", &ex),
            "features.2.conv.3.weight"
        );
    }
}
