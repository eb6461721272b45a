//! The pretrained bodies by name, with what the rest needs to know about each: output channels,
//! the classifier's torchvision name, and the stages `activations` shows (the layer groups are
//! [`super::GroupLayout`]'s).

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::{MobileNetV2Body, PaddingStyle, ResNetBody};
use crate::error::{Error, Result};

/// Where MobileNetV2's displayed stages end in `features` (torchvision's indices, exclusive): the
/// stem, then the last block of each resolution and channel count, then the final 1×1 conv.
const MOBILENET_V2_STAGE_ENDS: [usize; 7] = [1, 2, 4, 7, 14, 18, 19];

/// Backbone architectures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackboneKind {
    /// ResNet-18.
    Resnet18,
    /// ResNet-34.
    Resnet34,
    /// ResNet-50.
    Resnet50,
    /// ResNet-101.
    Resnet101,
    /// ResNet-152.
    Resnet152,
    /// MobileNetV2 (width 1.0).
    MobilenetV2,
}

impl BackboneKind {
    /// Every backbone with its CLI name.
    pub const ALL: [(&'static str, BackboneKind); 6] = [
        ("resnet18", BackboneKind::Resnet18),
        ("resnet34", BackboneKind::Resnet34),
        ("resnet50", BackboneKind::Resnet50),
        ("resnet101", BackboneKind::Resnet101),
        ("resnet152", BackboneKind::Resnet152),
        ("mobilenet_v2", BackboneKind::MobilenetV2),
    ];

    /// Looks a backbone up by name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, k)| *k)
    }

    /// The CLI name.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, k)| *k == self)
            .map(|(n, _)| *n)
            .expect("listed")
    }

    /// Channels of the body's last feature maps.
    pub fn features(self) -> usize {
        match self {
            BackboneKind::Resnet18 | BackboneKind::Resnet34 => 512,
            BackboneKind::MobilenetV2 => 1280,
            _ => 2048,
        }
    }

    /// torchvision's name of the ImageNet classifier layer.
    pub fn classifier_name(self) -> &'static str {
        match self {
            BackboneKind::MobilenetV2 => "classifier.1",
            _ => "fc",
        }
    }
}

/// A pretrained body.
// Variants are whole layers, built once and moved rarely; burn modules cannot be boxed.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Body {
    /// A ResNet.
    ResNet(ResNetBody),
    /// A MobileNetV2.
    MobileNetV2(MobileNetV2Body),
}

impl Body {
    /// A freshly initialised body.
    pub fn new(kind: BackboneKind, padding: PaddingStyle, device: &Device) -> Result<Self> {
        let resnet = |blocks, bottleneck| {
            if padding == PaddingStyle::TfSame {
                return Err(Error::Invalid(
                    "TF-'SAME' padding is only implemented for mobilenet_v2".into(),
                ));
            }
            Ok(Body::ResNet(ResNetBody::new(blocks, bottleneck, device)))
        };
        match kind {
            BackboneKind::Resnet18 => resnet([2, 2, 2, 2], false),
            BackboneKind::Resnet34 => resnet([3, 4, 6, 3], false),
            BackboneKind::Resnet50 => resnet([3, 4, 6, 3], true),
            BackboneKind::Resnet101 => resnet([3, 4, 23, 3], true),
            BackboneKind::Resnet152 => resnet([3, 8, 36, 3], true),
            BackboneKind::MobilenetV2 => {
                Ok(Body::MobileNetV2(MobileNetV2Body::new(padding, device)))
            }
        }
    }

    /// Feature maps `[b, features, h/32, w/32]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Body::ResNet(b) => b.forward(x),
            Body::MobileNetV2(b) => b.forward(x),
        }
    }

    /// The body's output from `x`, the output of stage `stage` of [`Body::stages`]: the stages
    /// after it; `None` past the last stage.
    pub fn after_stage(&self, stage: usize, x: Tensor<4>) -> Option<Tensor<4>> {
        match self {
            Body::ResNet(b) => {
                (stage <= 4).then(|| (stage + 1..=4).fold(x, |x, i| ResNetBody::run(b.stage(i), x)))
            }
            Body::MobileNetV2(b) => {
                let end = *MOBILENET_V2_STAGE_ENDS.get(stage)?;
                Some(b.run(end..MOBILENET_V2_STAGE_ENDS[6], x))
            }
        }
    }

    /// The output of each stage, named, for display.
    pub fn stages(&self, x: Tensor<4>) -> Vec<(String, Tensor<4>)> {
        let mut out = Vec::new();
        match self {
            Body::ResNet(b) => {
                let mut x = b.stem_forward(x);
                out.push(("stem (conv 7×7, BN, ReLU, max-pool)".to_string(), x.clone()));
                for i in 1..=4 {
                    x = ResNetBody::run(b.stage(i), x);
                    out.push((format!("layer{i}"), x.clone()));
                }
            }
            Body::MobileNetV2(b) => {
                let mut x = x;
                let mut start = 0;
                for end in MOBILENET_V2_STAGE_ENDS {
                    x = b.run(start..end, x);
                    out.push((format!("features.{}", end - 1), x.clone()));
                    start = end;
                }
            }
        }
        out
    }
}
