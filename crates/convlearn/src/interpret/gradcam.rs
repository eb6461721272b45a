//! Grad-CAM (Selvaraju et al., 2017): where in the picture a class's evidence lies. The gradient of
//! the class's logit with respect to a feature map, averaged over each channel's positions, weights
//! that channel; the weighted sum of the channels, ReLU'd and scaled to a maximum of 1, is the map.

use std::path::Path;

use burn::module::{Flag, Module, ModuleMapper, Param};
use burn::tensor::{Device, Tensor};
use image::RgbImage;
use serde::Serialize;

use super::model_input;
use crate::error::{Error, Result};
use crate::feature_maps::FeatureMaps;
use crate::host::values;
use crate::learner::probabilities;
use crate::model_file::SavedModel;
use crate::models::Network;
use crate::plot::{Canvas, overlay, picture};

/// Where the network looked for one class in one picture.
#[derive(Clone, Debug, Serialize)]
pub struct Heatmap {
    /// The class explained.
    pub class: String,
    /// Its index in the model's outputs.
    pub class_index: usize,
    /// The model's probability for it.
    pub probability: f32,
    /// Its logit (the number before softmax or sigmoid).
    pub logit: f32,
    /// The feature map differentiated (a stage name of [`Network::forward_with_stages`]).
    pub layer: String,
    /// The map at the layer's resolution, rows of columns, between 0 and 1 (all 0 when nothing in
    /// the layer speaks for the class).
    pub heatmap: Vec<Vec<f32>>,
}

/// Turns every layer's training switch off (BatchNorm on running statistics, no dropout) and
/// every parameter's gradient: the network is differentiated only with respect to a feature map.
pub(super) struct Inference;

impl ModuleMapper for Inference {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        param.set_require_grad(false)
    }

    fn map_flag(&mut self, flag: Param<Flag>) -> Param<Flag> {
        flag.with_value(false)
    }
}

/// The index of the stage called `layer` among `names` (as
/// [`Network::forward_with_stages`] names them), or an error listing them.
pub(super) fn stage_named(names: &[impl AsRef<str>], layer: &str) -> Result<usize> {
    names
        .iter()
        .position(|n| n.as_ref() == layer)
        .ok_or_else(|| {
            let all: Vec<&str> = names.iter().map(AsRef::as_ref).collect();
            Error::Invalid(format!(
                "this model has no layer '{layer}'; its feature maps are: {}",
                all.join(", ")
            ))
        })
}

/// The layer Grad-CAM uses by default: the last feature map of a pretrained body, the last
/// convolution's output (before its pool) of a plain CNN.
fn default_layer(network: &Network, names: &[String]) -> usize {
    let last = names.len() - 1;
    match network {
        Network::Pretrained(_) => last,
        Network::Plain(_) => names
            .iter()
            .rposition(|n| n.starts_with("conv"))
            .unwrap_or(last),
    }
}

/// Grad-CAM of `input` (as [`super::read_model_image`] gives it) for `class` (default: the most
/// probable) on `layer` (default: the last feature map of a pretrained body, the last convolution's
/// output of a plain CNN). A class or layer the model does not have
/// is an error listing the ones it has.
pub fn grad_cam(
    model: &SavedModel,
    input: &FeatureMaps,
    class: Option<&str>,
    layer: Option<&str>,
    device: &Device,
) -> Result<Heatmap> {
    let network = model.network.clone().map(&mut Inference);
    let meta = &model.meta;
    let (logits, stages) = network.forward_with_stages(model_input(model, input, device));
    let names: Vec<String> = stages.iter().map(|(n, _)| n.clone()).collect();
    if names.is_empty() {
        return Err(Error::Invalid(
            "this model has no feature map to explain".into(),
        ));
    }
    let stage = match layer {
        None => default_layer(&network, &names),
        Some(l) => stage_named(&names, l)?,
    };
    let probs = values(probabilities(logits.clone(), meta.multi_label));
    let logits = values(logits);
    let class_index = match class {
        None => (0..probs.len())
            .max_by(|&a, &b| probs[a].total_cmp(&probs[b]))
            .unwrap_or(0),
        Some(name) => meta.classes.iter().position(|c| c == name).ok_or_else(|| {
            let shown: Vec<&str> = meta.classes.iter().take(20).map(String::as_str).collect();
            let more = meta.classes.len().saturating_sub(20);
            Error::Invalid(format!(
                "this model has no class '{name}'; its classes are: {}{}",
                shown.join(", "),
                if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                }
            ))
        })?,
    };
    let maps = stages[stage].1.clone();
    let [_, channels, height, width] = maps.dims();
    // The feature map as a leaf that keeps its gradient; the rest of the network runs on it.
    let leaf = maps.clone().autodiff().require_grad();
    let out = network
        .forward_after_stage(stage, leaf.clone())
        .expect("the stage exists");
    let target = out.slice([0..1, class_index..class_index + 1]).sum();
    let gradient = leaf.grad(&target.backward()).ok_or_else(|| {
        Error::Invalid(format!(
            "layer '{}' does not reach the output: no gradient",
            names[stage]
        ))
    })?;
    let cam = weighted_map(&values(maps), &values(gradient), channels, height * width);
    Ok(Heatmap {
        class: meta.classes.get(class_index).cloned().unwrap_or_default(),
        class_index,
        probability: probs[class_index],
        logit: logits[class_index],
        layer: names[stage].clone(),
        heatmap: cam.chunks(width).map(<[f32]>::to_vec).collect(),
    })
}

/// The picture the model saw (`input`), enlarged to at least 320 pixels a side, with `heat` over it.
pub fn heatmap_overlay(heat: &Heatmap, input: &FeatureMaps) -> RgbImage {
    overlay(&enlarged_picture(input), &heat.heatmap, 0.6)
}

/// `input` as a picture, each pixel repeated so that its longer side is at least 320 pixels.
fn enlarged_picture(input: &FeatureMaps) -> RgbImage {
    let side = input.width.max(input.height).max(1) as u32;
    let scale = 320u32.div_ceil(side).max(1);
    let small = picture(input);
    RgbImage::from_fn(small.width() * scale, small.height() * scale, |x, y| {
        *small.get_pixel(x / scale, y / scale)
    })
}

/// The figure of `heat` for `input` (the picture the model saw): the picture and the map over it,
/// side by side, at least 320 pixels a side, titled with the class, its probability and the layer.
pub fn render_heatmap(heat: &Heatmap, input: &FeatureMaps, path: &Path) -> Result<()> {
    let big = enlarged_picture(input);
    let over = overlay(&big, &heat.heatmap, 0.6);
    let (w, h) = big.dimensions();
    let (margin, title) = (16, 46);
    let mut canvas = Canvas::new(2 * w + 3 * margin, h + title + margin);
    let caption = format!(
        "{}: {:.1}% — where the evidence is (Grad-CAM on {})",
        heat.class,
        100.0 * heat.probability,
        heat.layer
    );
    canvas.text(margin as i32, 14, 18.0, &caption, [20, 20, 20]);
    canvas.blit(&big, margin, title, 1);
    canvas.blit(&over, 2 * margin + w, title, 1);
    canvas.save(path)
}

/// `relu(Σ_k α_k A_k)` scaled to a maximum of 1, with `α_k` the mean of channel `k`'s gradient:
/// `maps` and `gradient` are `[channels, positions]`.
fn weighted_map(maps: &[f32], gradient: &[f32], channels: usize, positions: usize) -> Vec<f32> {
    let mut cam = vec![0.0f64; positions];
    for k in 0..channels {
        let plane = k * positions..(k + 1) * positions;
        let alpha = gradient[plane.clone()]
            .iter()
            .map(|&g| g as f64)
            .sum::<f64>()
            / positions as f64;
        for (c, &a) in cam.iter_mut().zip(&maps[plane]) {
            *c += alpha * a as f64;
        }
    }
    let peak = cam.iter().copied().fold(0.0, f64::max);
    cam.iter()
        .map(|&c| {
            if peak > 0.0 {
                (c.max(0.0) / peak) as f32
            } else {
                0.0
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::weighted_map;

    #[test]
    fn channels_are_weighted_by_their_mean_gradient_then_relued_and_scaled() {
        // Two channels of 2 positions. α₀ = (1 + 3) / 2 = 2, α₁ = (−1 − 1) / 2 = −1.
        // Σ = [2·1 − 1·3, 2·4 − 1·2] = [−1, 6] → ReLU [0, 6] → scaled [0, 1].
        let maps = [1.0, 4.0, 3.0, 2.0];
        let gradient = [1.0, 3.0, -1.0, -1.0];
        assert_eq!(weighted_map(&maps, &gradient, 2, 2), vec![0.0, 1.0]);
        // Nothing for the class: all zero, not NaN.
        assert_eq!(weighted_map(&maps, &[-1.0; 4], 2, 2), vec![0.0, 0.0]);
    }
}
