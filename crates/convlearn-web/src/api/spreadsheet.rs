//! The explorer's network on one picture as a live Excel workbook, for download.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use convlearn::interpret::workbook_bytes;
use serde::Deserialize;

use super::{blocking, ready};
use crate::{ApiError, AppState};

/// The media type of an `.xlsx` file.
pub const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// Which picture.
#[derive(Deserialize)]
pub struct SpreadsheetQuery {
    /// Picture id.
    pub image: String,
}

/// `GET /api/spreadsheet?image=ID`: the workbook of `convlearn spreadsheet` (plain CNNs only; for
/// another model a 400 saying so).
pub async fn spreadsheet(
    State(state): State<Arc<AppState>>,
    Query(q): Query<SpreadsheetQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let model = ready(&state)?;
    let image = state.images.get(&q.image)?;
    // The name comes from the model file: only its plain characters go into the header.
    let arch: String = model
        .meta
        .arch
        .name()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .take(64)
        .collect();
    let bytes = blocking(move || {
        let maps = model.meta.preprocess.prepare(&image)?;
        Ok(workbook_bytes(&model, &maps)?.0)
    })
    .await?;
    let file = format!("attachment; filename=\"convlearn-{arch}.xlsx\"");
    Ok((
        [
            (header::CONTENT_TYPE, XLSX.to_string()),
            (header::CONTENT_DISPOSITION, file),
        ],
        bytes,
    ))
}
