//! convlearn's layers as ONNX nodes: convolutions with their padding made explicit (TF-'SAME' as
//! asymmetric `pads`, computed from each layer's input size), BatchNorm with its running
//! statistics, ReLU and ReLU6 (`Clip`), pools, residual sums and dense layers (`Gemm`).

use burn::nn::conv::Conv2d;
use burn::nn::pool::MaxPool2d;
use burn::nn::{Linear, PaddingConfig2d};

use super::graph::{Attr, Graph, Value};
use crate::engine::Activation;
use crate::error::{Error, Result};
use crate::host::values;
use crate::models::{BatchNorm, ConvBn, padding_pairs};

/// Output length of a window `k` (dilation `d`, stride `s`) over `len` padded by `pads`.
fn out_len(len: usize, pads: (usize, usize), k: usize, s: usize, d: usize) -> Option<usize> {
    (len + pads.0 + pads.1)
        .checked_sub(d * (k - 1) + 1)
        .map(|n| n / s + 1)
}

fn ints(v: &[usize]) -> Attr {
    Attr::Ints(v.iter().map(|&x| x as i64).collect())
}

/// `conv` over `x` as a `Conv` node named `module`, its weight (and bias) initializers named
/// `{module}.weight` (`.bias`).
pub fn conv(g: &mut Graph, module: &str, conv: &Conv2d, x: &Value) -> Result<Value> {
    let [h, w] = x.size;
    let [ph, pw] = padding_pairs(conv, h, w);
    let ([kh, kw], [sh, sw], [dh, dw]) = (conv.kernel_size, conv.stride, conv.dilation);
    let (Some(oh), Some(ow)) = (out_len(h, ph, kh, sh, dh), out_len(w, pw, kw, sw, dw)) else {
        return Err(Error::Invalid(format!(
            "ONNX export: layer '{module}': its {kh}×{kw} kernel does not fit its {h}×{w} input"
        )));
    };
    let weight = conv.weight.val();
    let dims = weight.dims();
    let weight = g.weight(&format!("{module}.weight"), &dims, values(weight))?;
    let mut inputs = vec![x.name.clone(), weight];
    if let Some(bias) = &conv.bias {
        inputs.push(g.weight(&format!("{module}.bias"), &[dims[0]], values(bias.val()))?);
    }
    let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
    let name = g.node(
        "Conv",
        module,
        &inputs,
        vec![
            ("kernel_shape", ints(&[kh, kw])),
            ("strides", ints(&[sh, sw])),
            // ONNX orders pads as (top, left, bottom, right)
            ("pads", ints(&[ph.0, pw.0, ph.1, pw.1])),
            ("dilations", ints(&[dh, dw])),
            ("group", Attr::Int(conv.groups as i64)),
        ],
    );
    Ok(Value {
        name,
        channels: dims[0],
        size: [oh, ow],
    })
}

/// `bn` (running statistics) over `x` as a `BatchNormalization` node named `module`, its
/// initializers named as PyTorch's: `{module}.weight`, `.bias`, `.running_mean`, `.running_var`.
pub fn batch_norm(g: &mut Graph, module: &str, bn: &BatchNorm, x: &Value) -> Result<Value> {
    let c = bn.gamma.val().dims()[0];
    let mut inputs = vec![x.name.clone()];
    for (leaf, t) in [
        ("weight", bn.gamma.val()),
        ("bias", bn.beta.val()),
        ("running_mean", bn.running_mean.value()),
        ("running_var", bn.running_var.value()),
    ] {
        inputs.push(g.weight(&format!("{module}.{leaf}"), &[c], values(t))?);
    }
    let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
    let name = g.node(
        "BatchNormalization",
        module,
        &inputs,
        vec![("epsilon", Attr::Float(bn.epsilon as f32))],
    );
    Ok(Value { name, ..x.clone() })
}

/// `activation` over `x`, a node named `name` (none for the identity).
pub fn activation(g: &mut Graph, name: &str, activation: Activation, x: Value) -> Result<Value> {
    let out = match activation {
        Activation::Identity => return Ok(x),
        Activation::Relu => g.node("Relu", name, &[&x.name], vec![]),
        Activation::Relu6 => {
            let [low, high] = g.clip_bounds(0.0, 6.0)?;
            g.node("Clip", name, &[&x.name, &low, &high], vec![])
        }
    };
    Ok(Value { name: out, ..x })
}

/// A convolution, its BatchNorm and `act`. `names(part)` gives the PyTorch name of the
/// convolution's (`part` = `"conv"`) or the BatchNorm's (`"bn"`) weight, e.g.
/// `layer1.0.conv1.weight` and `layer1.0.bn1.weight`; the nodes take those names less `.weight`.
pub fn conv_bn(
    g: &mut Graph,
    names: impl Fn(&str) -> String,
    cb: &ConvBn,
    x: &Value,
    act: Activation,
) -> Result<Value> {
    let module = |part: &str| {
        let name = names(part);
        name.strip_suffix(".weight").unwrap_or(&name).to_string()
    };
    let (conv_name, bn_name) = (module("conv"), module("bn"));
    let y = conv(g, &conv_name, &cb.conv, x)?;
    let y = batch_norm(g, &bn_name, &cb.bn, &y)?;
    let relu = if bn_name.ends_with(".1") {
        // a torchvision Sequential (conv, bn, activation): the activation is index 2
        format!("{}.2", bn_name.trim_end_matches(".1"))
    } else {
        format!("{conv_name}.relu")
    };
    activation(g, &relu, act, y)
}

/// `pool` over `x` as a `MaxPool` node named `module` (padding with −∞, as burn and PyTorch do).
pub fn max_pool(g: &mut Graph, module: &str, pool: &MaxPool2d, x: &Value) -> Result<Value> {
    let [h, w] = x.size;
    let ([kh, kw], [sh, sw], [dh, dw]) = (pool.kernel_size, pool.stride, pool.dilation);
    let (ph, pw) = match pool.padding {
        PaddingConfig2d::Valid => ((0, 0), (0, 0)),
        PaddingConfig2d::Explicit(top, left, bottom, right) => ((top, bottom), (left, right)),
        PaddingConfig2d::Same => {
            return Err(Error::Invalid(format!(
                "ONNX export: layer '{module}': a max-pool with 'same' padding is not exported"
            )));
        }
    };
    if pool.ceil_mode {
        return Err(Error::Invalid(format!(
            "ONNX export: layer '{module}': a max-pool in ceil mode is not exported"
        )));
    }
    let (Some(oh), Some(ow)) = (out_len(h, ph, kh, sh, dh), out_len(w, pw, kw, sw, dw)) else {
        return Err(Error::Invalid(format!(
            "ONNX export: layer '{module}': its {kh}×{kw} window does not fit its {h}×{w} input"
        )));
    };
    let name = g.node(
        "MaxPool",
        module,
        &[&x.name],
        vec![
            ("kernel_shape", ints(&[kh, kw])),
            ("strides", ints(&[sh, sw])),
            ("pads", ints(&[ph.0, pw.0, ph.1, pw.1])),
            ("dilations", ints(&[dh, dw])),
        ],
    );
    Ok(Value {
        name,
        channels: x.channels,
        size: [oh, ow],
    })
}

/// `a + b` then ReLU (a residual block's end), nodes `{module}.add` and `{module}.relu`.
pub fn add(g: &mut Graph, module: &str, a: &Value, b: &Value, act: Activation) -> Result<Value> {
    let sum = g.node("Add", &format!("{module}.add"), &[&a.name, &b.name], vec![]);
    let sum = Value {
        name: sum,
        ..a.clone()
    };
    activation(g, &format!("{module}.relu"), act, sum)
}

/// `[N, C, H, W]` → `[N, C·H·W]` (row-major, as burn's `flatten(1, 3)`), node `name`.
pub fn flatten(g: &mut Graph, name: &str, x: &Value) -> Value {
    let out = g.node("Flatten", name, &[&x.name], vec![("axis", Attr::Int(1))]);
    Value {
        name: out,
        channels: x.channels * x.size[0] * x.size[1],
        size: [1, 1],
    }
}

/// A global pool (`GlobalAveragePool` or `GlobalMaxPool`) to `[N, C, 1, 1]`, node `name`.
pub fn global_pool(g: &mut Graph, op: &str, name: &str, x: &Value) -> Value {
    let out = g.node(op, name, &[&x.name], vec![]);
    Value {
        name: out,
        channels: x.channels,
        size: [1, 1],
    }
}

/// `linear` over `[N, in]` as a `Gemm` node named `module`, its weight stored as PyTorch's
/// `[out, in]` (`transB`), initializers `{module}.weight` and `{module}.bias`.
pub fn dense(g: &mut Graph, module: &str, linear: &Linear, x: &Value) -> Result<Value> {
    let weight = linear.weight.val();
    let [input, output] = weight.dims();
    if input != x.channels {
        return Err(Error::Invalid(format!(
            "ONNX export: layer '{module}' takes {input} features but is given {}",
            x.channels
        )));
    }
    let weight = g.weight(
        &format!("{module}.weight"),
        &[output, input],
        values(weight.transpose()),
    )?;
    let mut inputs = vec![x.name.clone(), weight];
    if let Some(bias) = &linear.bias {
        inputs.push(g.weight(&format!("{module}.bias"), &[output], values(bias.val()))?);
    }
    let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
    let name = g.node("Gemm", module, &inputs, vec![("transB", Attr::Int(1))]);
    Ok(Value {
        name,
        channels: output,
        size: [1, 1],
    })
}
