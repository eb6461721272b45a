//! The spreadsheet view of one activation: `=MAX(0, SUM(window·kernel) + … + bias)`, with every number.
//!
//! The arithmetic is done in plain Rust ([`crate::kernels::arithmetic_at`]) on the layer's real input,
//! and the value burn's convolution produced at the same place is reported beside it.

use std::fmt;

use burn::tensor::Device;
use burn::tensor::activation::relu;
use serde::Serialize;

use super::model_input;
use crate::error::{Error, Result};
use crate::host::{first_maps, values};
use crate::kernels::{Arithmetic, FeatureMaps, Kernel, Padding, arithmetic_at};
use crate::model_file::SavedModel;
use crate::models::{ArchSpec, Network};

/// One activation explained.
#[derive(Clone, Debug)]
pub struct Explanation {
    /// 1-based conv layer.
    pub layer: usize,
    /// Output channel (kernel) of that layer, 0-based.
    pub channel: usize,
    /// The hand computation.
    pub arithmetic: Arithmetic,
    /// The value burn's conv + ReLU computed at the same place.
    pub network_value: f32,
}

/// Explains activation (`y`, `x`) of kernel `channel` in conv layer `layer` (1-based) for `image`
/// (0..1 values, already at the model's input size).
pub fn explain(
    model: &SavedModel,
    image: &FeatureMaps,
    layer: usize,
    channel: usize,
    y: usize,
    x: usize,
    device: &Device,
) -> Result<Explanation> {
    let (Network::Plain(net), ArchSpec::Plain { spec, .. }) = (&model.network, &model.meta.arch)
    else {
        return Err(Error::Invalid(format!(
            "explain shows the arithmetic of a plain CNN's conv layers; this model is {}",
            model.meta.arch.name()
        )));
    };
    let input = net.conv_input(model_input(model, image, device), layer)?;
    let conv = &net.convs[layer - 1].conv;
    let [out, cin, kh, kw] = conv.weight.dims();
    if channel >= out {
        return Err(Error::Invalid(format!(
            "layer {layer} has {out} kernels: channel must be 0..{}",
            out - 1
        )));
    }
    let weights = values(conv.weight.val());
    let kernel = Kernel {
        channels: cin,
        height: kh,
        width: kw,
        weights: weights[channel * cin * kh * kw..(channel + 1) * cin * kh * kw].to_vec(),
    };
    let bias = match &conv.bias {
        Some(b) => values(b.val())[channel],
        None => 0.0,
    };
    let padding = match spec.convs[layer - 1].padding {
        0 => Padding::Valid,
        p if p == kh / 2 && p == kw / 2 => Padding::Zero,
        p => {
            return Err(Error::Invalid(format!(
                "explain supports padding 0 or kernel/2, layer {layer} has {p}"
            )));
        }
    };
    let network = relu(conv.forward(input.clone()));
    let maps = first_maps(input);
    let arithmetic = arithmetic_at(&maps, &kernel, bias, padding, y, x)?;
    let network_value = first_maps(network).get(channel, y, x);
    Ok(Explanation {
        layer,
        channel,
        arithmetic,
        network_value,
    })
}

/// The JSON form of an explanation.
#[derive(Serialize)]
pub struct ExplanationJson {
    /// Conv layer (1-based).
    pub layer: usize,
    /// Kernel index.
    pub channel: usize,
    /// Row.
    pub y: usize,
    /// Column.
    pub x: usize,
    /// Input windows, one per input channel.
    pub windows: Vec<Vec<f32>>,
    /// Kernel slices, one per input channel.
    pub kernels: Vec<Vec<f32>>,
    /// Per-channel sums.
    pub sums: Vec<f32>,
    /// Bias.
    pub bias: f32,
    /// Total before ReLU.
    pub total: f32,
    /// After ReLU.
    pub relu: f32,
    /// burn's value at the same place.
    pub network_value: f32,
}

impl Explanation {
    /// The explanation as a serialisable record.
    pub fn to_json(&self) -> ExplanationJson {
        let a = &self.arithmetic;
        ExplanationJson {
            layer: self.layer,
            channel: self.channel,
            y: a.y,
            x: a.x,
            windows: a.channels.iter().map(|c| c.window.clone()).collect(),
            kernels: a.channels.iter().map(|c| c.kernel.clone()).collect(),
            sums: a.channels.iter().map(|c| c.sum).collect(),
            bias: a.bias,
            total: a.total,
            relu: a.relu,
            network_value: self.network_value,
        }
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = &self.arithmetic;
        writeln!(
            f,
            "conv layer {}, kernel {} ({}×{}×{}), activation at y={}, x={}",
            self.layer,
            self.channel,
            a.channels.len(),
            a.kernel_height,
            a.kernel_width,
            a.y,
            a.x
        )?;
        writeln!(f, "{a}")?;
        write!(
            f,
            "the network computed {:.4} here (conv + ReLU in burn)",
            self.network_value
        )
    }
}
