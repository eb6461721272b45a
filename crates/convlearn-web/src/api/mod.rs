//! The JSON API, one file per part of the page.

pub mod heatmap;
pub mod images;
pub mod kernel;
pub mod network;
pub mod spreadsheet;
pub mod training;

use std::sync::Arc;

use axum::http::StatusCode;
use base64::Engine;
use convlearn::model_file::SavedModel;
use image::RgbImage;

use crate::{ApiError, AppState};

/// An image encoded as PNG.
pub fn png_bytes(image: &RgbImage) -> Vec<u8> {
    let mut bytes = Vec::new();
    image
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .expect("encoding a PNG in memory cannot fail");
    bytes
}

/// A PNG as a `data:` URL the page can show directly.
pub fn png_data_url(image: &RgbImage) -> String {
    format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(png_bytes(image))
    )
}

/// Runs CPU-bound work off the async threads.
pub async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, crate::ApiError> + Send + 'static,
) -> Result<T, crate::ApiError> {
    // A panic is logged once, in a line, by the hook `serve` installs; the client learns only
    // that the server failed, not its internals.
    tokio::task::spawn_blocking(work).await.map_err(|_| {
        crate::ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "the server failed to compute this (the failure is in its log)",
        )
    })?
}

/// The explorer's model, or 409 Conflict saying why it is not ready (training, or failed).
pub fn ready(state: &AppState) -> Result<Arc<SavedModel>, ApiError> {
    state.model.ready().ok_or_else(|| {
        let s = state.model.status();
        let why = s
            .error
            .unwrap_or_else(|| "it is still training — try again in a few seconds".into());
        ApiError::new(
            StatusCode::CONFLICT,
            format!("the model is not ready: {why}"),
        )
    })
}
