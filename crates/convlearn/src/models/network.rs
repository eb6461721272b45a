//! Every network convlearn trains or runs, behind one type, with the description that rebuilds it.

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::{
    BackboneKind, Body, Cnn, CnnSpec, ConvBn, Head, HeadKind, HeadSpec, PaddingStyle,
    mobilenet_v2_torch_name, resnet_torch_name,
};
use crate::engine::Activation;
use crate::error::Result;

/// What network a model file holds (stored as JSON in the file).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ArchSpec {
    /// A plain CNN trained from scratch.
    Plain {
        /// Preset name (`simple_cnn`, `spreadsheet`).
        preset: String,
        /// Its layers.
        spec: CnnSpec,
    },
    /// A pretrained body with a head.
    Pretrained {
        /// The body.
        backbone: BackboneKind,
        /// How its convolutions pad.
        padding: PaddingStyle,
        /// The head.
        head: HeadSpec,
    },
}

impl ArchSpec {
    /// A short name (`simple_cnn`, `resnet34`, `mobilenet_v2`).
    pub fn name(&self) -> String {
        match self {
            ArchSpec::Plain { preset, .. } => preset.clone(),
            ArchSpec::Pretrained { backbone, .. } => backbone.name().to_string(),
        }
    }

    /// Number of outputs.
    pub fn classes(&self) -> usize {
        match self {
            ArchSpec::Plain { spec, .. } => spec.classes,
            ArchSpec::Pretrained { head, .. } => head.classes,
        }
    }
}

/// How a network's parameters split into layer groups: one group for a plain CNN; early body, late
/// body and head for a pretrained one (ResNet: stem, layer1, layer2 | layer3, layer4 | head;
/// MobileNetV2: features 0–6 | features 7–18 | head).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupLayout {
    /// A plain CNN.
    Plain,
    /// A ResNet body with a head.
    ResNet,
    /// A MobileNetV2 body with a head.
    MobileNetV2,
}

impl GroupLayout {
    /// Number of layer groups.
    pub fn num_groups(self) -> usize {
        match self {
            GroupLayout::Plain => 1,
            _ => 3,
        }
    }

    /// Layer group of a parameter path (as burn names it, e.g. `body.layer1.0.conv1.conv.weight`).
    pub fn group_of(self, path: &str) -> usize {
        let Some(rest) = path.strip_prefix("body.") else {
            return self.num_groups() - 1;
        };
        match self {
            GroupLayout::Plain => 0,
            GroupLayout::ResNet => {
                usize::from(rest.starts_with("layer3") || rest.starts_with("layer4"))
            }
            GroupLayout::MobileNetV2 => {
                let idx: usize = rest
                    .split('.')
                    .nth(1)
                    .and_then(|i| i.parse().ok())
                    .unwrap_or(0);
                usize::from(idx >= 7)
            }
        }
    }

    /// True for the last group of a pretrained network (the new head).
    pub fn is_head(self, group: usize) -> bool {
        self != GroupLayout::Plain && group + 1 == self.num_groups()
    }
}

/// A pretrained body and its head.
#[derive(Module, Debug)]
pub struct Pretrained {
    /// The body (feature extractor).
    pub body: Body,
    /// The classifier.
    pub head: Head,
}

/// Any network.
// Variants are whole layers, built once and moved rarely; burn modules cannot be boxed.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Network {
    /// A plain CNN.
    Plain(Cnn),
    /// Body + head.
    Pretrained(Pretrained),
}

impl Network {
    /// A freshly initialised network for `arch`.
    pub fn new(arch: &ArchSpec, device: &Device) -> Result<Self> {
        Ok(match arch {
            ArchSpec::Plain { spec, .. } => Network::Plain(Cnn::new(spec, device)?),
            ArchSpec::Pretrained {
                backbone,
                padding,
                head,
            } => Network::Pretrained(Pretrained {
                body: Body::new(*backbone, *padding, device)?,
                head: Head::new(head, backbone.features(), device),
            }),
        })
    }

    /// Logits `[batch, classes]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        match self {
            Network::Plain(cnn) => cnn.forward(x),
            Network::Pretrained(p) => p.head.forward_pooled(p.head.pool(p.body.forward(x))),
        }
    }

    /// Logits and the named feature maps of every stage, for display.
    pub fn forward_with_stages(&self, x: Tensor<4>) -> (Tensor<2>, Vec<(String, Tensor<4>)>) {
        match self {
            Network::Plain(cnn) => cnn.forward_with_activations(x),
            Network::Pretrained(p) => {
                let stages = p.body.stages(x);
                let last = stages.last().expect("a body has stages").1.clone();
                (p.head.forward_pooled(p.head.pool(last)), stages)
            }
        }
    }

    /// Logits from `x`, the output of stage `stage` of [`Network::forward_with_stages`]: the rest
    /// of the network after it (Grad-CAM differentiates this); `None` past the last stage.
    pub fn forward_after_stage(&self, stage: usize, x: Tensor<4>) -> Option<Tensor<2>> {
        match self {
            Network::Plain(cnn) => cnn.forward_after_stage(stage, x),
            Network::Pretrained(p) => {
                let maps = p.body.after_stage(stage, x)?;
                Some(p.head.forward_pooled(p.head.pool(maps)))
            }
        }
    }

    /// The first convolution, the one that sees the picture, with its PyTorch name (`conv1`,
    /// `features.0.0`, `convs.0.conv`); `None` for a plain network without convolutions.
    pub fn first_conv(&self) -> Option<(&'static str, &burn::nn::conv::Conv2d)> {
        Some(match self {
            Network::Plain(cnn) => ("convs.0.conv", &cnn.convs.first()?.conv),
            Network::Pretrained(p) => match &p.body {
                crate::models::Body::ResNet(b) => ("conv1", &b.stem.conv),
                crate::models::Body::MobileNetV2(b) => match &b.features[0] {
                    crate::models::MobileStage::ConvBnRelu6(c) => ("features.0.0", &c.conv),
                    crate::models::MobileStage::Block(b) => ("features.0", first_of_block(b)),
                },
            },
        })
    }

    /// A pretrained body's first layer — the plain convolution that sees the picture, its
    /// BatchNorm and activation — with a caption (`features.0: conv 3×3 stride 2, BatchNorm,
    /// ReLU6`); `None` for a plain CNN (whose layers [`Cnn`] explains) or a body that starts
    /// with a residual block.
    pub fn first_conv_bn(&self) -> Option<(String, &ConvBn, Activation)> {
        let Network::Pretrained(p) = self else {
            return None;
        };
        let (name, unit, activation, after) = match &p.body {
            Body::ResNet(b) => ("conv1", &b.stem, Activation::Relu, ", before the max-pool"),
            Body::MobileNetV2(b) => match b.features.first()? {
                crate::models::MobileStage::ConvBnRelu6(c) => {
                    ("features.0", c, Activation::Relu6, "")
                }
                crate::models::MobileStage::Block(_) => return None,
            },
        };
        let [k, _] = unit.conv.kernel_size;
        let [stride, _] = unit.conv.stride;
        let act = match activation {
            Activation::Relu6 => "ReLU6",
            _ => "ReLU",
        };
        Some((
            format!("{name}: conv {k}×{k} stride {stride}, BatchNorm, {act}{after}"),
            unit,
            activation,
        ))
    }

    /// How the parameters split into layer groups.
    pub fn layout(&self) -> GroupLayout {
        match self {
            Network::Plain(_) => GroupLayout::Plain,
            Network::Pretrained(p) => match p.body {
                Body::ResNet(_) => GroupLayout::ResNet,
                Body::MobileNetV2(_) => GroupLayout::MobileNetV2,
            },
        }
    }

    /// Maps parameter paths (as burn names them) to torchvision's names, for loading pretrained
    /// weights; `None` for parameters not in torchvision's file (a new fastai head). The mapper owns
    /// what it needs, so the network itself can be handed to the loader.
    pub fn torch_names(&self, backbone: BackboneKind) -> impl Fn(&str) -> Option<String> + use<> {
        let (expands, imagenet_head) = match self {
            Network::Plain(_) => (None, false),
            Network::Pretrained(p) => (
                Some(match &p.body {
                    Body::ResNet(_) => Vec::new(),
                    Body::MobileNetV2(b) => b.expansions(),
                }),
                matches!(p.head, Head::ImageNet(_)),
            ),
        };
        let layout = self.layout();
        move |path: &str| {
            expands.as_ref()?;
            match path.strip_prefix("body.") {
                Some(rest) if layout == GroupLayout::MobileNetV2 => Some(mobilenet_v2_torch_name(
                    rest,
                    expands.as_deref().unwrap_or(&[]),
                )),
                Some(rest) => Some(resnet_torch_name(rest)),
                None if imagenet_head => {
                    let leaf = path.rsplit('.').next()?;
                    Some(format!("{}.{leaf}", backbone.classifier_name()))
                }
                None => None,
            }
        }
    }

    /// The head's kind, for a pretrained network.
    pub fn head_kind(&self) -> Option<HeadKind> {
        match self {
            Network::Plain(_) => None,
            Network::Pretrained(p) => Some(match p.head {
                Head::ImageNet(_) => HeadKind::ImageNet,
                Head::Fastai(_) => HeadKind::Fastai,
            }),
        }
    }
}

/// The first convolution of an inverted-residual block (its expansion, else its depthwise one).
fn first_of_block(b: &crate::models::InvertedResidual) -> &burn::nn::conv::Conv2d {
    b.expand.as_ref().map_or(&b.depthwise.conv, |e| &e.conv)
}
