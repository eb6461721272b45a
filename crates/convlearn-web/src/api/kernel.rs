//! The kernel playground: presets, a kernel applied to a picture (response, ReLU, max-pool), and
//! the arithmetic of one output pixel — all computed by `convlearn::kernels`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use convlearn::data::image_to_maps;
use convlearn::kernels::{
    Arithmetic, FeatureMaps, Kernel, KernelFigure, PRESETS, Padding, arithmetic_at, percentile_abs,
};
use convlearn::plot::{ColorMode, map_to_image, picture};
use image::DynamicImage;
use serde::{Deserialize, Serialize};

use super::{blocking, png_data_url};
use crate::{ApiError, AppState, MAX_SIDE};

/// A preset kernel.
#[derive(Serialize)]
pub struct Preset {
    /// Its name.
    pub name: &'static str,
    /// Its rows.
    pub rows: Vec<Vec<f32>>,
}

/// `GET /api/presets`.
pub async fn presets() -> Json<Vec<Preset>> {
    Json(
        PRESETS
            .iter()
            .map(|&name| {
                let k = Kernel::preset(name).expect("listed presets exist");
                Preset {
                    name,
                    rows: k.weights.chunks(k.width).map(<[f32]>::to_vec).collect(),
                }
            })
            .collect(),
    )
}

/// A kernel applied to a picture.
#[derive(Clone, Debug, Deserialize)]
pub struct ConvolveRequest {
    /// Picture id (from `/api/samples` or an upload).
    pub image: String,
    /// The kernel's rows (odd, square or not, at most 9×9).
    pub kernel: Vec<Vec<f32>>,
    /// `valid`, `zero` or `replicate` (`same` is refused as ambiguous).
    #[serde(default = "default_padding")]
    pub padding: String,
    /// Apply the kernel to each of the R, G, B channels (a 3×3×3 kernel) instead of to gray.
    #[serde(default)]
    pub color: bool,
}

fn default_padding() -> String {
    "valid".into()
}

/// One map as the page shows it.
#[derive(Serialize)]
pub struct MapView {
    /// PNG data URL.
    pub png: String,
    /// Columns.
    pub width: usize,
    /// Rows.
    pub height: usize,
    /// Smallest value.
    pub min: f32,
    /// Largest value.
    pub max: f32,
}

/// The playground's panels.
#[derive(Serialize)]
pub struct ConvolveResponse {
    /// The input as the kernel sees it (fitted within 128 px).
    pub input: MapView,
    /// The raw response: green positive, red negative.
    pub response: MapView,
    /// After ReLU.
    pub relu: MapView,
    /// After a 2×2 max-pool.
    pub pooled: MapView,
    /// |value| shown at full brightness (99.5th percentile of |response|).
    pub scale: f32,
    /// The padding, in words.
    pub padding: String,
}

/// The arithmetic of one output pixel.
#[derive(Clone, Debug, Deserialize)]
pub struct ArithmeticRequest {
    /// The kernel and picture.
    #[serde(flatten)]
    pub convolve: ConvolveRequest,
    /// Output column.
    pub x: usize,
    /// Output row.
    pub y: usize,
}

/// One input channel's share.
#[derive(Serialize)]
pub struct ChannelView {
    /// The window under the kernel.
    pub window: Vec<f32>,
    /// The kernel's weights.
    pub kernel: Vec<f32>,
    /// Products.
    pub products: Vec<f32>,
    /// Their sum.
    pub sum: f32,
}

/// The arithmetic, as numbers and as the text `convlearn kernel --at` prints.
#[derive(Serialize)]
pub struct ArithmeticResponse {
    /// Output column.
    pub x: usize,
    /// Output row.
    pub y: usize,
    /// Kernel rows.
    pub kernel_height: usize,
    /// Kernel columns.
    pub kernel_width: usize,
    /// Per input channel.
    pub channels: Vec<ChannelView>,
    /// Sum over channels.
    pub total: f32,
    /// After ReLU.
    pub relu: f32,
    /// The printed form.
    pub text: String,
}

/// The picture fitted within [`MAX_SIDE`] and turned into 1 (gray) or 3 (RGB) planes.
pub fn playground_input(image: &DynamicImage, color: bool) -> Result<FeatureMaps, ApiError> {
    let (w, h) = (image.width().max(1), image.height().max(1));
    let s = (MAX_SIDE as f32 / w.max(h) as f32).min(1.0);
    let size = (
        ((w as f32 * s).round() as u32).max(1),
        ((h as f32 * s).round() as u32).max(1),
    );
    Ok(image_to_maps(image, if color { 3 } else { 1 }, Some(size))?)
}

fn kernel_of(req: &ConvolveRequest, channels: usize) -> Result<(Kernel, Padding), ApiError> {
    if req.kernel.len() > 9 || req.kernel.iter().any(|r| r.len() > 9) {
        return Err(ApiError::bad_request("kernels are at most 9×9"));
    }
    if req.kernel.iter().flatten().any(|v| !v.is_finite()) {
        return Err(ApiError::bad_request("every kernel cell must be a number"));
    }
    let kernel = Kernel::from_rows(&req.kernel)?.for_channels(channels)?;
    Ok((kernel, Padding::parse(&req.padding)?))
}

fn view(maps: &FeatureMaps, mode: ColorMode) -> MapView {
    let (min, max) = maps.range();
    MapView {
        png: png_data_url(&map_to_image(maps, 0, mode)),
        width: maps.width,
        height: maps.height,
        min,
        max,
    }
}

/// `POST /api/convolve`.
pub async fn convolve(
    State(state): State<Arc<AppState>>,
    Json(req): Json<ConvolveRequest>,
) -> Result<Json<ConvolveResponse>, ApiError> {
    let image = state.images.get(&req.image)?;
    blocking(move || {
        let input = playground_input(&image, req.color)?;
        let (kernel, padding) = kernel_of(&req, input.channels)?;
        let fig = KernelFigure::compute(input, &kernel, padding, 2)?;
        let scale = percentile_abs(&fig.response.data, 0.995).max(1e-6);
        let signed = ColorMode::Signed { scale };
        let (lo, hi) = fig.input.range();
        let input = MapView {
            png: png_data_url(&picture(&fig.input)),
            width: fig.input.width,
            height: fig.input.height,
            min: lo,
            max: hi,
        };
        let pooled = fig.pooled.as_ref().unwrap_or(&fig.relu);
        Ok(Json(ConvolveResponse {
            input,
            response: view(&fig.response, signed),
            relu: view(&fig.relu, signed),
            pooled: view(pooled, signed),
            scale,
            padding: padding.describe(kernel.height, kernel.width),
        }))
    })
    .await
}

/// The response form of an [`Arithmetic`].
pub fn arithmetic_view(a: &Arithmetic) -> ArithmeticResponse {
    ArithmeticResponse {
        x: a.x,
        y: a.y,
        kernel_height: a.kernel_height,
        kernel_width: a.kernel_width,
        channels: a
            .channels
            .iter()
            .map(|c| ChannelView {
                window: c.window.clone(),
                kernel: c.kernel.clone(),
                products: c.products.clone(),
                sum: c.sum,
            })
            .collect(),
        total: a.total,
        relu: a.relu,
        text: a.to_string(),
    }
}

/// `POST /api/arithmetic`.
pub async fn arithmetic(
    State(state): State<Arc<AppState>>,
    Json(req): Json<ArithmeticRequest>,
) -> Result<Json<ArithmeticResponse>, ApiError> {
    let image = state.images.get(&req.convolve.image)?;
    blocking(move || {
        let input = playground_input(&image, req.convolve.color)?;
        let (kernel, padding) = kernel_of(&req.convolve, input.channels)?;
        let a = arithmetic_at(&input, &kernel, 0.0, padding, req.y, req.x)?;
        Ok(Json(arithmetic_view(&a)))
    })
    .await
}
