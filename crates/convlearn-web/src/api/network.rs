//! The network explorer: the model's status, an image through every layer with the output, and
//! the arithmetic of one activation — all computed by `convlearn`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use convlearn::device::inference_device;
use convlearn::host::{first_maps, values};
use convlearn::interpret::{explain as explain_activation, model_input};
use convlearn::kernels::percentile_abs;
use convlearn::learner::probabilities;
use convlearn::plot::{ColorMode, map_to_image, picture};
use serde::{Deserialize, Serialize};

use super::{blocking, png_data_url, ready};
use crate::model_slot::ModelStatus;
use crate::{ApiError, AppState};

/// Feature maps drawn per layer, at most.
const MAX_TILES: usize = 32;

/// `GET /api/model`.
pub async fn model(State(state): State<Arc<AppState>>) -> Json<ModelStatus> {
    Json(state.model.status())
}

/// An image to run through the model.
#[derive(Deserialize)]
pub struct ExploreRequest {
    /// Picture id.
    pub image: String,
}

/// One layer's output.
#[derive(Serialize)]
pub struct StageView {
    /// Layer name (`conv1 + ReLU`, `pool1`, …).
    pub name: String,
    /// For conv layers of a plain CNN (and a pretrained network's first layer), the 1-based layer
    /// number `explain` takes.
    pub conv_layer: Option<usize>,
    /// Channels.
    pub channels: usize,
    /// Columns.
    pub width: usize,
    /// Rows.
    pub height: usize,
    /// One PNG per channel (the first [`MAX_TILES`]), green/red at ±`scale`.
    pub tiles: Vec<String>,
    /// |value| at full brightness.
    pub scale: f32,
}

/// One output.
#[derive(Serialize)]
pub struct OutputView {
    /// Class or tag.
    pub class: String,
    /// The dense layer's value (logit).
    pub logit: f32,
    /// Softmax probability, or the tag's sigmoid.
    pub probability: f32,
}

/// Everything the explorer draws.
#[derive(Serialize)]
pub struct ExploreResponse {
    /// The input as the model sees it.
    pub input: String,
    /// Input columns.
    pub width: usize,
    /// Input rows.
    pub height: usize,
    /// Every layer.
    pub stages: Vec<StageView>,
    /// The dense layer's outputs and probabilities, in class order.
    pub outputs: Vec<OutputView>,
    /// Sigmoid per tag (with the threshold) rather than softmax.
    pub multi_label: bool,
    /// The tag threshold.
    pub threshold: f32,
}

/// `POST /api/explore`.
pub async fn explore(
    State(state): State<Arc<AppState>>,
    Json(req): Json<ExploreRequest>,
) -> Result<Json<ExploreResponse>, ApiError> {
    let model = ready(&state)?;
    let image = state.images.get(&req.image)?;
    blocking(move || {
        let device = inference_device();
        let maps = model.meta.preprocess.prepare(&image)?;
        let (logits, stages) = model
            .network
            .forward_with_stages(model_input(&model, &maps, &device));
        let probs = values(probabilities(logits.clone(), model.meta.multi_label));
        let mut conv = 0;
        let explainable = matches!(model.network, convlearn::models::Network::Plain(_));
        // A pretrained body's first layer, a plain convolution (then BatchNorm and the
        // activation), is shown first and explained like a plain CNN's layers.
        let first_layer = model
            .network
            .first_conv_bn()
            .map(|(caption, unit, activation)| {
                let x = model_input(&model, &maps, &device);
                (caption, unit.forward_activated(x, activation))
            });
        let pretrained_first = first_layer.is_some();
        let stages = first_layer
            .into_iter()
            .chain(stages)
            .enumerate()
            .map(|(i, (name, t))| {
                let m = first_maps(t);
                let scale = percentile_abs(&m.data, 0.995).max(1e-6);
                let conv_layer = if pretrained_first {
                    (i == 0).then_some(1)
                } else {
                    (explainable && name.starts_with("conv")).then(|| {
                        conv += 1;
                        conv
                    })
                };
                StageView {
                    tiles: (0..m.channels.min(MAX_TILES))
                        .map(|c| png_data_url(&map_to_image(&m, c, ColorMode::Signed { scale })))
                        .collect(),
                    name,
                    conv_layer,
                    channels: m.channels,
                    width: m.width,
                    height: m.height,
                    scale,
                }
            })
            .collect();
        Ok(Json(ExploreResponse {
            input: png_data_url(&picture(&maps)),
            width: maps.width,
            height: maps.height,
            stages,
            outputs: model
                .meta
                .classes
                .iter()
                .zip(values(logits))
                .zip(probs)
                .map(|((class, logit), probability)| OutputView {
                    class: class.clone(),
                    logit,
                    probability,
                })
                .collect(),
            multi_label: model.meta.multi_label,
            threshold: model.meta.threshold,
        }))
    })
    .await
}

/// One activation to explain.
#[derive(Deserialize)]
pub struct ExplainRequest {
    /// Picture id.
    pub image: String,
    /// Conv layer, 1-based.
    pub layer: usize,
    /// Kernel (output channel), 0-based.
    pub channel: usize,
    /// Column.
    pub x: usize,
    /// Row.
    pub y: usize,
}

/// The explanation as `convlearn explain` prints it, and its value in the network.
#[derive(Serialize)]
pub struct ExplainResponse {
    /// The printed arithmetic.
    pub text: String,
    /// The activation computed by hand.
    pub relu: f32,
    /// The same activation as burn's conv + ReLU computed it.
    pub network_value: f32,
}

/// `POST /api/explain`.
pub async fn explain(
    State(state): State<Arc<AppState>>,
    Json(req): Json<ExplainRequest>,
) -> Result<Json<ExplainResponse>, ApiError> {
    let model = ready(&state)?;
    let image = state.images.get(&req.image)?;
    blocking(move || {
        let device = inference_device();
        let maps = model.meta.preprocess.prepare(&image)?;
        let e = explain_activation(&model, &maps, req.layer, req.channel, req.y, req.x, &device)?;
        Ok(Json(ExplainResponse {
            text: e.to_string(),
            relu: e.value(),
            network_value: e.network_value,
        }))
    })
    .await
}
