//! A plain CNN built from a [`CnnSpec`]: conv blocks (conv → ReLU → optional max-pool), flatten,
//! dense layers with ReLU between them. Its layers can be read back one by one for inspection.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use super::CnnSpec;
use super::conv_bn::conv_activation;
use crate::engine::{Activation, max_pool2d};
use crate::error::{Error, Result};

/// Conv → ReLU → optional max-pool.
#[derive(Module, Debug)]
pub struct ConvBlock {
    /// The kernels (`[out, in, k, k]`) and biases.
    pub conv: Conv2d,
    /// Max-pool after the ReLU, if any.
    pub pool: Option<MaxPool2d>,
}

/// A plain convolutional classifier.
#[derive(Module, Debug)]
pub struct Cnn {
    /// Conv blocks in order.
    pub convs: Vec<ConvBlock>,
    /// Dense layers in order; the last produces the logits.
    pub dense: Vec<Linear>,
}

impl Cnn {
    /// A freshly initialised network for `spec`.
    pub fn new(spec: &CnnSpec, device: &Device) -> Result<Self> {
        let (_, flat) = spec.shapes()?;
        let mut in_channels = spec.channels;
        let convs = spec
            .convs
            .iter()
            .map(|c| {
                let p = c.padding;
                let conv = Conv2dConfig::new([in_channels, c.out], [c.kernel, c.kernel])
                    .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
                    .init(device);
                in_channels = c.out;
                ConvBlock {
                    conv,
                    pool: (c.pool >= 2).then(|| MaxPool2dConfig::new([c.pool, c.pool]).init()),
                }
            })
            .collect();
        let mut widths = vec![flat];
        widths.extend(&spec.hidden);
        widths.push(spec.classes);
        let dense = widths
            .windows(2)
            .map(|w| LinearConfig::new(w[0], w[1]).init(device))
            .collect();
        Ok(Self { convs, dense })
    }

    /// Runs conv block `i` (conv, ReLU, pool).
    pub fn block(&self, i: usize, x: Tensor<4>) -> Tensor<4> {
        let b = &self.convs[i];
        let x = conv_activation(&b.conv, x, Activation::Relu);
        match &b.pool {
            Some(pool) => max_pool2d(pool, x),
            None => x,
        }
    }

    /// Logits `[batch, classes]` for images `[batch, channels, height, width]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = (0..self.convs.len()).fold(x, |x, i| self.block(i, x));
        self.head(x)
    }

    fn head(&self, x: Tensor<4>) -> Tensor<2> {
        let mut x: Tensor<2> = x.flatten(1, 3);
        let last = self.dense.len() - 1;
        for (i, layer) in self.dense.iter().enumerate() {
            x = layer.forward(x);
            if i < last {
                x = relu(x);
            }
        }
        x
    }

    /// Logits plus the named feature maps after every conv+ReLU and every pool.
    pub fn forward_with_activations(
        &self,
        mut x: Tensor<4>,
    ) -> (Tensor<2>, Vec<(String, Tensor<4>)>) {
        let mut stages = Vec::new();
        for (i, b) in self.convs.iter().enumerate() {
            x = conv_activation(&b.conv, x, Activation::Relu);
            stages.push((format!("conv{} + ReLU", i + 1), x.clone()));
            if let Some(pool) = &b.pool {
                x = max_pool2d(pool, x);
                stages.push((format!("pool{}", i + 1), x.clone()));
            }
        }
        (self.head(x), stages)
    }

    /// Logits from `x`, the output of stage `stage` (0-based) of
    /// [`Cnn::forward_with_activations`] — conv 1 + ReLU, pool 1 when there is one, conv 2 + ReLU,
    /// … — through the rest of the network; `None` past the last stage.
    pub fn forward_after_stage(&self, stage: usize, x: Tensor<4>) -> Option<Tensor<2>> {
        let mut stages = self.convs.iter().enumerate().flat_map(|(i, b)| {
            std::iter::once((i, false)).chain(b.pool.as_ref().map(|_| (i, true)))
        });
        let (block, pooled) = stages.nth(stage)?;
        let pool = self.convs[block].pool.as_ref().filter(|_| !pooled);
        let x = pool.map_or(x.clone(), |p| max_pool2d(p, x));
        let x = (block + 1..self.convs.len()).fold(x, |x, i| self.block(i, x));
        Some(self.head(x))
    }

    /// The input that conv layer `layer` (1-based) sees: the image after the blocks before it.
    pub fn conv_input(&self, x: Tensor<4>, layer: usize) -> Result<Tensor<4>> {
        if layer == 0 || layer > self.convs.len() {
            return Err(Error::Invalid(format!(
                "layer {layer} does not exist: this model has conv layers 1..={}",
                self.convs.len()
            )));
        }
        Ok((0..layer - 1).fold(x, |x, i| self.block(i, x)))
    }
}
