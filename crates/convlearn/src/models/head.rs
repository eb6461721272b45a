//! Classifier heads put on a pretrained body: ImageNet's original linear layer, or fastai's head.

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::BatchNorm;

/// Global average pool: `[b, c, h, w]` → `[b, c]`.
pub fn avg_pool(maps: Tensor<4>) -> Tensor<2> {
    maps.flatten::<3>(2, 3).mean_dim(2).flatten(1, 2)
}

/// fastai's `AdaptiveConcatPool2d`: global max and global average, concatenated → `[b, 2c]`.
pub fn concat_pool(maps: Tensor<4>) -> Tensor<2> {
    let flat = maps.flatten::<3>(2, 3);
    let max = flat.clone().max_dim(2).flatten(1, 2);
    let avg = flat.mean_dim(2).flatten(1, 2);
    Tensor::cat(vec![max, avg], 1)
}

/// fastai's head: concat-pool → BN → dropout → linear(hidden) → ReLU → BN → dropout → linear(classes).
#[derive(Module, Debug)]
pub struct FastaiHead {
    /// BatchNorm over the pooled features.
    pub bn1: BatchNorm,
    /// Dropout before the hidden layer.
    pub drop1: Dropout,
    /// Hidden layer.
    pub fc1: Linear,
    /// BatchNorm over the hidden layer.
    pub bn2: BatchNorm,
    /// Dropout before the output layer.
    pub drop2: Dropout,
    /// Output layer.
    pub fc2: Linear,
}

impl FastaiHead {
    /// A head for `features` body channels (it sees `2 × features` after concat-pool).
    pub fn new(features: usize, hidden: usize, classes: usize, device: &Device) -> Self {
        Self {
            bn1: BatchNorm::new(2 * features, device),
            drop1: DropoutConfig::new(0.25).init(),
            fc1: LinearConfig::new(2 * features, hidden).init(device),
            bn2: BatchNorm::new(hidden, device),
            drop2: DropoutConfig::new(0.5).init(),
            fc2: LinearConfig::new(hidden, classes).init(device),
        }
    }

    /// Logits from pooled features `[b, 2c]` (what precompute caches).
    pub fn forward_pooled(&self, x: Tensor<2>) -> Tensor<2> {
        let x = self.fc1.forward(self.drop1.forward(self.bn1.forward(x)));
        self.fc2
            .forward(self.drop2.forward(self.bn2.forward(relu(x))))
    }
}

/// Which head a pretrained network carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeadKind {
    /// The original ImageNet classifier: average pool → linear (1000 classes).
    ImageNet,
    /// fastai's head for new classes.
    Fastai,
}

/// A head's description, stored in the model file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeadSpec {
    /// Which head.
    pub kind: HeadKind,
    /// Hidden width of fastai's head (unused for ImageNet).
    pub hidden: usize,
    /// Output classes.
    pub classes: usize,
}

/// Either head.
// Variants are whole layers, built once and moved rarely; burn modules cannot be boxed.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Head {
    /// Average pool → linear.
    ImageNet(Linear),
    /// fastai's head.
    Fastai(FastaiHead),
}

impl Head {
    /// A fresh head for a body of `features` channels.
    pub fn new(spec: &HeadSpec, features: usize, device: &Device) -> Self {
        match spec.kind {
            HeadKind::ImageNet => {
                Head::ImageNet(LinearConfig::new(features, spec.classes).init(device))
            }
            HeadKind::Fastai => {
                Head::Fastai(FastaiHead::new(features, spec.hidden, spec.classes, device))
            }
        }
    }

    /// The pooled features this head starts from.
    pub fn pool(&self, maps: Tensor<4>) -> Tensor<2> {
        match self {
            Head::ImageNet(_) => avg_pool(maps),
            Head::Fastai(_) => concat_pool(maps),
        }
    }

    /// Logits from pooled features.
    pub fn forward_pooled(&self, pooled: Tensor<2>) -> Tensor<2> {
        match self {
            Head::ImageNet(fc) => fc.forward(pooled),
            Head::Fastai(h) => h.forward_pooled(pooled),
        }
    }
}
