//! The spreadsheet view of one activation: `=MAX(0, SUM(window·kernel) + … + bias)`, with every number.
//!
//! The arithmetic is done in plain Rust ([`crate::kernels::arithmetic_at`]) on the layer's real input,
//! and the value the network produced at the same place is reported beside it. A plain CNN's every
//! conv layer is explained; a pretrained network's first layer (a strided convolution, then
//! BatchNorm and ReLU or ReLU6), the one that sees the picture.

use std::fmt;

use burn::nn::conv::Conv2d;
use burn::tensor::Device;
use burn::tensor::activation::relu;
use serde::Serialize;

use super::model_input;
use crate::engine::Activation;
use crate::error::{Error, Result};
use crate::host::{first_maps, values};
use crate::kernels::{
    Arithmetic, FeatureMaps, Kernel, Padding, arithmetic_at, strided_arithmetic_at,
};
use crate::model_file::SavedModel;
use crate::models::{ArchSpec, Network, padding_pairs};

/// One activation explained.
#[derive(Clone, Debug)]
pub struct Explanation {
    /// 1-based conv layer.
    pub layer: usize,
    /// Output channel (kernel) of that layer, 0-based.
    pub channel: usize,
    /// The hand computation.
    pub arithmetic: Arithmetic,
    /// For a convolution followed by BatchNorm (a pretrained network's first layer): how its sum
    /// is normalised and activated.
    pub normalized: Option<Normalized>,
    /// The value the network computed at the same place.
    pub network_value: f32,
}

/// BatchNorm with running statistics, then the activation, on one convolution output.
#[derive(Clone, Debug)]
pub struct Normalized {
    /// The channel's `γ / √(σ² + ε)`.
    pub scale: f32,
    /// The channel's `β − μ · scale`.
    pub shift: f32,
    /// `total · scale + shift`.
    pub normalized: f32,
    /// `ReLU` or `ReLU6`.
    pub activation: &'static str,
    /// The activation of `normalized`: the layer's output.
    pub value: f32,
}

impl Explanation {
    /// The activation as computed by hand: after ReLU, or after BatchNorm and the activation.
    pub fn value(&self) -> f32 {
        self.normalized
            .as_ref()
            .map_or(self.arithmetic.relu, |n| n.value)
    }
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
        return explain_first_layer(model, image, layer, channel, (y, x), device);
    };
    let input = net.conv_input(model_input(model, image, device), layer)?;
    let conv = &net.convs[layer - 1].conv;
    let (kernel, bias) = kernel_of(conv, layer, channel)?;
    let [kh, kw] = conv.kernel_size;
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
        normalized: None,
        network_value,
    })
}

/// Kernel `channel` of `conv` (conv layer `layer`) and its bias (0 without one).
fn kernel_of(conv: &Conv2d, layer: usize, channel: usize) -> Result<(Kernel, f32)> {
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
    let bias = conv.bias.as_ref().map_or(0.0, |b| values(b.val())[channel]);
    Ok((kernel, bias))
}

/// A pretrained network's first layer: its strided convolution by hand, then BatchNorm (running
/// statistics) and the activation; the network's own output of the layer beside it.
fn explain_first_layer(
    model: &SavedModel,
    image: &FeatureMaps,
    layer: usize,
    channel: usize,
    (y, x): (usize, usize),
    device: &Device,
) -> Result<Explanation> {
    let Some((_, unit, activation)) = model.network.first_conv_bn() else {
        return Err(Error::Invalid(format!(
            "explain shows the arithmetic of a plain CNN's conv layers or of a pretrained \
             network's first convolution; this model ({}) has neither",
            model.meta.arch.name()
        )));
    };
    if layer != 1 {
        return Err(Error::Invalid(format!(
            "a pretrained network is explained at its first layer (1), the plain convolution that \
             sees the picture, not layer {layer}: its deeper layers are depthwise and residual \
             blocks (`convlearn heatmap` shows where they look)"
        )));
    }
    let input = model_input(model, image, device);
    let [_, _, h, w] = input.dims();
    let output = first_maps(unit.forward_activated(input.clone(), activation));
    let conv = &unit.conv;
    let (kernel, bias) = kernel_of(conv, 1, channel)?;
    if y >= output.height || x >= output.width {
        return Err(Error::Invalid(format!(
            "position x={x}, y={y} is outside the layer's {}×{} output",
            output.width, output.height
        )));
    }
    if conv.dilation != [1, 1] {
        return Err(Error::Invalid(
            "the first convolution is dilated: explain shows undilated convolutions only".into(),
        ));
    }
    let [(top, _), (left, _)] = padding_pairs(conv, h, w);
    let maps = first_maps(input);
    let arithmetic = strided_arithmetic_at(&maps, &kernel, bias, conv.stride, (top, left), y, x)?;
    let (scale, shift) = unit.bn.scale_shift(device);
    let (scale, shift) = (values(scale)[channel], values(shift)[channel]);
    let normalized = arithmetic.total * scale + shift;
    let (name, value) = match activation {
        Activation::Relu6 => ("ReLU6", normalized.clamp(0.0, 6.0)),
        _ => ("ReLU", normalized.max(0.0)),
    };
    Ok(Explanation {
        layer,
        channel,
        arithmetic,
        normalized: Some(Normalized {
            scale,
            shift,
            normalized,
            activation: name,
            value,
        }),
        network_value: output.get(channel, y, x),
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
    /// After ReLU (plain CNNs), or after BatchNorm and the activation (a pretrained first layer).
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
            relu: self.value(),
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
        match &self.normalized {
            None => {
                writeln!(f, "{a}")?;
                write!(
                    f,
                    "the network computed {:.4} here (conv + ReLU in burn)",
                    self.network_value
                )
            }
            Some(n) => {
                a.write_sums(f)?;
                writeln!(
                    f,
                    "BatchNorm (running statistics) = {:.4} × {:.4} + {:.4} = {:.4}",
                    a.total, n.scale, n.shift, n.normalized
                )?;
                let formula = match n.activation {
                    "ReLU6" => "min(max(0, x), 6)",
                    _ => "max(0, x)",
                };
                writeln!(f, "after {} = {formula} = {:.4}", n.activation, n.value)?;
                write!(
                    f,
                    "the network computed {:.4} here (conv, BatchNorm and {} in burn)",
                    self.network_value, n.activation
                )
            }
        }
    }
}
