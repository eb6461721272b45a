//! The training view: start a run of the spreadsheet network on generated shapes, and follow it
//! step by step.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};

use crate::model_slot::TrainingRequest;
use crate::training_log::TrainingLog;
use crate::{ApiError, AppState};

/// Which steps the page already has.
#[derive(Deserialize)]
pub struct LogQuery {
    /// Steps before this one are left out of the answer.
    #[serde(default)]
    pub since: usize,
}

/// The run and the model's state.
#[derive(Serialize)]
pub struct TrainingView {
    /// `training`, `ready` or `failed` (the explorer's model).
    pub status: &'static str,
    /// Why the run failed.
    pub error: Option<String>,
    /// The run's record from `since` on.
    #[serde(flatten)]
    pub log: TrainingLog,
}

/// `GET /api/training?since=N`.
pub async fn log(
    State(state): State<Arc<AppState>>,
    Query(q): Query<LogQuery>,
) -> Json<TrainingView> {
    // The log first: a run that ends between the two reads then shows all its steps as done.
    let log = state.model.training_log(q.since);
    let status = state.model.status();
    Json(TrainingView {
        status: status.status,
        error: status.error,
        log,
    })
}

/// The run started.
#[derive(Serialize)]
pub struct Started {
    /// Its number (the `run` of `GET /api/training`).
    pub run: u64,
}

/// `POST /api/training` with `{"epochs": N, "learning_rate": R}` (both optional).
pub async fn start(
    State(state): State<Arc<AppState>>,
    Json(req): Json<TrainingRequest>,
) -> Result<Json<Started>, ApiError> {
    Ok(Json(Started {
        run: state.model.start_training(&req)?,
    }))
}
