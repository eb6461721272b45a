//! Pictures: the list, one as PNG, and uploads.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Multipart, Path, State};
use axum::http::header;
use axum::response::IntoResponse;

use super::png_bytes;
use crate::images::{ImageInfo, too_large};
use crate::{ApiError, AppState};

/// `GET /api/samples`: every picture the page can use.
pub async fn samples(State(state): State<Arc<AppState>>) -> Json<Vec<ImageInfo>> {
    Json(state.images.list())
}

/// `GET /api/images/{id}`: a picture as PNG.
pub async fn image_png(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let image = state.images.get(&id)?.to_rgb8();
    Ok(([(header::CONTENT_TYPE, "image/png")], png_bytes(&image)))
}

/// `POST /api/upload`: multipart with the picture in field `image`.
pub async fn upload(
    State(state): State<Arc<AppState>>,
    mut multipart: Multipart,
) -> Result<Json<ImageInfo>, ApiError> {
    let bad = |e: axum::extract::multipart::MultipartError| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            too_large()
        } else {
            ApiError::bad_request(format!("malformed upload: {}", e.body_text()))
        }
    };
    while let Some(field) = multipart.next_field().await.map_err(bad)? {
        if field.name() != Some("image") {
            continue;
        }
        let name = field.file_name().unwrap_or("").to_string();
        let bytes = field.bytes().await.map_err(bad)?;
        if bytes.is_empty() {
            return Err(ApiError::bad_request(
                "the upload is empty: choose a picture file",
            ));
        }
        let store = state.clone();
        return super::blocking(move || store.images.add_upload(&name, &bytes))
            .await
            .map(Json);
    }
    Err(ApiError::bad_request(
        "no field 'image' in the upload (send multipart/form-data with the picture in 'image')",
    ))
}
