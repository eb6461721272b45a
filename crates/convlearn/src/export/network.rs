//! Every network convlearn builds, walked layer by layer into ONNX nodes: plain CNNs with the
//! model file's parameter names, ResNet and MobileNetV2 bodies with torchvision's, and both heads.

use super::graph::{Graph, Value};
use super::layers::{
    activation, add, batch_norm, conv, conv_bn, dense, flatten, global_pool, max_pool,
};
use crate::engine::Activation::{Identity, Relu, Relu6};
use crate::error::Result;
use crate::models::{
    BackboneKind, Body, Cnn, Head, MobileNetV2Body, MobileStage, Network, ResBlock, ResNetBody,
    mobilenet_v2_torch_name, resnet_torch_name,
};

/// Adds `network`'s nodes over the input `x`; returns the logits `[N, classes]`.
pub fn network(
    g: &mut Graph,
    network: &Network,
    backbone: Option<BackboneKind>,
    x: Value,
) -> Result<Value> {
    match network {
        Network::Plain(cnn) => plain(g, cnn, x),
        Network::Pretrained(p) => {
            let maps = match &p.body {
                Body::ResNet(b) => resnet(g, b, x)?,
                Body::MobileNetV2(b) => mobilenet_v2(g, b, x)?,
            };
            let classifier = backbone.map_or("fc", BackboneKind::classifier_name);
            head(g, &p.head, classifier, &maps)
        }
    }
}

/// Conv blocks (conv → ReLU → max-pool), flatten, dense layers with ReLU between; named as the
/// model file names them (`convs.0.conv`, `dense.1`).
fn plain(g: &mut Graph, cnn: &Cnn, mut x: Value) -> Result<Value> {
    for (i, block) in cnn.convs.iter().enumerate() {
        x = conv(g, &format!("convs.{i}.conv"), &block.conv, &x)?;
        x = activation(g, &format!("convs.{i}.relu"), Relu, x)?;
        if let Some(pool) = &block.pool {
            x = max_pool(g, &format!("convs.{i}.pool"), pool, &x)?;
        }
    }
    x = flatten(g, "flatten", &x);
    let last = cnn.dense.len() - 1;
    for (i, layer) in cnn.dense.iter().enumerate() {
        x = dense(g, &format!("dense.{i}"), layer, &x)?;
        if i < last {
            x = activation(g, &format!("dense.{i}.relu"), Relu, x)?;
        }
    }
    Ok(x)
}

/// torchvision's ResNet: stem, max-pool, four stages of residual blocks.
fn resnet(g: &mut Graph, body: &ResNetBody, x: Value) -> Result<Value> {
    let names =
        |path: String| move |part: &str| resnet_torch_name(&format!("{path}.{part}.weight"));
    let mut x = conv_bn(g, names("stem".into()), &body.stem, &x, Relu)?;
    x = max_pool(g, "maxpool", &body.pool, &x)?;
    for stage in 1..=4 {
        for (i, block) in body.stage(stage).iter().enumerate() {
            let path = format!("layer{stage}.{i}");
            let at = |part: &str| format!("{path}.{part}");
            let (out, downsample) = match block {
                ResBlock::Basic(b) => {
                    let out = conv_bn(g, names(at("conv1")), &b.conv1, &x, Relu)?;
                    let out = conv_bn(g, names(at("conv2")), &b.conv2, &out, Identity)?;
                    (out, &b.downsample)
                }
                ResBlock::Bottleneck(b) => {
                    let out = conv_bn(g, names(at("conv1")), &b.conv1, &x, Relu)?;
                    let out = conv_bn(g, names(at("conv2")), &b.conv2, &out, Relu)?;
                    let out = conv_bn(g, names(at("conv3")), &b.conv3, &out, Identity)?;
                    (out, &b.downsample)
                }
            };
            let shortcut = match downsample {
                Some(d) => conv_bn(g, names(at("downsample")), d, &x, Identity)?,
                None => x.clone(),
            };
            x = add(g, &path, &out, &shortcut, Relu)?;
        }
    }
    Ok(x)
}

/// torchvision's MobileNetV2: `features.0` … `features.18`, inverted residual blocks between.
fn mobilenet_v2(g: &mut Graph, body: &MobileNetV2Body, mut x: Value) -> Result<Value> {
    let expansions = body.expansions();
    let names = |path: String| {
        let expansions = &expansions;
        move |part: &str| mobilenet_v2_torch_name(&format!("{path}.{part}.weight"), expansions)
    };
    for (i, stage) in body.features.iter().enumerate() {
        match stage {
            MobileStage::ConvBnRelu6(c) => {
                x = conv_bn(g, names(format!("features.{i}")), c, &x, Relu6)?;
            }
            MobileStage::Block(b) => {
                let mut out = x.clone();
                if let Some(e) = &b.expand {
                    out = conv_bn(g, names(format!("features.{i}.expand")), e, &out, Relu6)?;
                }
                out = conv_bn(
                    g,
                    names(format!("features.{i}.depthwise")),
                    &b.depthwise,
                    &out,
                    Relu6,
                )?;
                out = conv_bn(
                    g,
                    names(format!("features.{i}.project")),
                    &b.project,
                    &out,
                    Identity,
                )?;
                x = if b.residual {
                    add(g, &format!("features.{i}"), &out, &x, Identity)?
                } else {
                    out
                };
            }
        }
    }
    Ok(x)
}

/// ImageNet's head (average pool, `classifier` linear) or fastai's (concat max+avg pool →
/// BatchNorm → dropout → linear → ReLU → BatchNorm → dropout → linear; dropout is the identity at
/// inference and is left out), named as the model file names it (`head.bn1`, `head.fc2`).
fn head(g: &mut Graph, head: &Head, classifier: &str, maps: &Value) -> Result<Value> {
    match head {
        Head::ImageNet(fc) => {
            let pooled = global_pool(g, "GlobalAveragePool", "avgpool", maps);
            let flat = flatten(g, "flatten", &pooled);
            dense(g, classifier, fc, &flat)
        }
        Head::Fastai(h) => {
            let max = global_pool(g, "GlobalMaxPool", "head.max_pool", maps);
            let avg = global_pool(g, "GlobalAveragePool", "head.avg_pool", maps);
            let cat = g.node(
                "Concat",
                "head.concat_pool",
                &[&max.name, &avg.name],
                vec![("axis", super::graph::Attr::Int(1))],
            );
            let cat = Value {
                name: cat,
                channels: 2 * maps.channels,
                size: [1, 1],
            };
            let x = flatten(g, "head.flatten", &cat);
            let x = batch_norm(g, "head.bn1", &h.bn1, &x)?;
            let x = dense(g, "head.fc1", &h.fc1, &x)?;
            let x = activation(g, "head.relu", Relu, x)?;
            let x = batch_norm(g, "head.bn2", &h.bn2, &x)?;
            dense(g, "head.fc2", &h.fc2, &x)
        }
    }
}
