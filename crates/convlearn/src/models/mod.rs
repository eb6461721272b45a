//! Models: a configurable plain CNN (the lesson's networks are presets of it), pretrained ResNets
//! and MobileNetV2 with torchvision's names, heads, and the one `Network` type over all of them.

mod backbone;
mod batch_norm;
mod cnn;
mod conv_bn;
mod head;
mod initial_weights;
mod mobilenet_v2;
mod network;
mod param_path;
mod pretrained;
mod resnet;
mod spec;
mod torch_import;
mod weights;

pub use backbone::{BackboneKind, Body};
pub use batch_norm::BatchNorm;
pub use cnn::{Cnn, ConvBlock};
pub(crate) use conv_bn::padding_pairs;
pub use conv_bn::{ConvBn, PaddingStyle, conv_activation};
pub use head::{FastaiHead, Head, HeadKind, HeadSpec, avg_pool, concat_pool};
pub use initial_weights::build_seeded;
pub use mobilenet_v2::{InvertedResidual, MobileNetV2Body, MobileStage, mobilenet_v2_torch_name};
pub use network::{ArchSpec, GroupLayout, Network, Pretrained};
pub use param_path::PathStack;
pub use pretrained::PretrainedWeights;
pub use resnet::{BasicBlock, Bottleneck, ResBlock, ResNetBody, resnet_torch_name};
pub use spec::{CnnSpec, ConvSpec, MapShape, ModelPreset};
pub use torch_import::load_torch_cnn_weights;
pub use weights::load_named_weights;
