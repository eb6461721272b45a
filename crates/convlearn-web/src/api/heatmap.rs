//! Grad-CAM on the page: where in the picture the evidence for one class lies.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use convlearn::device::inference_device;
use convlearn::interpret::{grad_cam, heatmap_overlay};
use serde::{Deserialize, Serialize};

use super::{blocking, png_data_url, ready};
use crate::{ApiError, AppState};

/// A picture and the class to explain.
#[derive(Deserialize)]
pub struct HeatmapRequest {
    /// Picture id.
    pub image: String,
    /// Class or tag; the most probable one when absent.
    pub class: Option<String>,
}

/// The map and the picture with the map over it.
#[derive(Serialize)]
pub struct HeatmapResponse {
    /// The class explained.
    pub class: String,
    /// Its probability.
    pub probability: f32,
    /// Its logit.
    pub logit: f32,
    /// The feature map differentiated.
    pub layer: String,
    /// The map at the layer's resolution (rows of columns, 0 to 1).
    pub heatmap: Vec<Vec<f32>>,
    /// The input as the model sees it, enlarged, with the map over it (PNG `data:` URL).
    pub overlay: String,
}

/// `POST /api/heatmap`.
pub async fn heatmap(
    State(state): State<Arc<AppState>>,
    Json(req): Json<HeatmapRequest>,
) -> Result<Json<HeatmapResponse>, ApiError> {
    let model = ready(&state)?;
    let image = state.images.get(&req.image)?;
    blocking(move || {
        let maps = model.meta.preprocess.prepare(&image)?;
        let heat = grad_cam(
            &model,
            &maps,
            req.class.as_deref(),
            None,
            &inference_device(),
        )?;
        Ok(Json(HeatmapResponse {
            overlay: png_data_url(&heatmap_overlay(&heat, &maps)),
            class: heat.class,
            probability: heat.probability,
            logit: heat.logit,
            layer: heat.layer,
            heatmap: heat.heatmap,
        }))
    })
    .await
}
