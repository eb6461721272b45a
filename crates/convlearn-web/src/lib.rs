//! convlearn's web page, served by `convlearn serve`: a **kernel playground** (pick or edit a kernel,
//! see its response, ReLU and max-pool on a picture, hover a pixel for its arithmetic) and a
//! **network explorer** (an image through every layer of a model, its output, and the arithmetic of
//! any activation of a plain CNN's conv layers). Every number is computed by the `convlearn` library on the server;
//! the page only draws what the API returns.
//!
//! The API (JSON unless stated):
//! - `GET /api/presets` — the kernel presets; `GET /api/samples` — the sample pictures;
//!   `GET /api/model` — the loaded model (or its training status).
//! - `POST /api/upload` — multipart field `image`; at most [`MAX_UPLOAD_BYTES`]; returns its id.
//! - `POST /api/convolve`, `POST /api/arithmetic` — the playground.
//! - `POST /api/explore`, `POST /api/explain` — the explorer; `POST /api/heatmap` — Grad-CAM for
//!   one class; `GET /api/spreadsheet?image=ID` — the network on that picture as an `.xlsx` workbook.
//! - `POST /api/training` — train the spreadsheet network on generated shapes (it becomes the
//!   explorer's model); `GET /api/training?since=N` — its loss and first-layer kernels, step by step.
//!
//! Errors are `{"error": "…"}` with a 4xx status; the server keeps serving.

mod api;
mod connections;
mod error;
mod images;
mod model_slot;
mod page;
mod training_log;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

pub use api::spreadsheet::XLSX;
pub use connections::{HEADER_TIMEOUT, MAX_CONNECTIONS, REQUEST_TIMEOUT, serve_connections};
pub use error::ApiError;
pub use images::{ImageStore, MAX_SIDE, MAX_UPLOAD_BYTES};
pub use model_slot::{MAX_EPOCHS, ModelSlot, TrainingRequest};
pub use training_log::{EpochView, StepView, TrainingLog};

/// What the server needs.
#[derive(Clone, Debug, Default)]
pub struct ServeConfig {
    /// Address to listen on (127.0.0.1 unless asked otherwise).
    pub addr: Option<SocketAddr>,
    /// A model saved by convlearn for the explorer; without one, a small network is trained on
    /// generated shapes at start-up (a few seconds).
    pub model: Option<PathBuf>,
    /// A folder of sample pictures (PNG, JPEG, BMP, GIF) offered on the page, besides the built-in
    /// ones. Nothing outside it (and the model file) is ever read.
    pub samples: Option<PathBuf>,
}

/// Shared by every request.
pub struct AppState {
    /// Samples and uploads.
    pub images: ImageStore,
    /// The explorer's model.
    pub model: ModelSlot,
}

/// The application: page, assets and API.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(page::index))
        .route("/app.js", get(page::script))
        .route("/style.css", get(page::style))
        .route("/api/presets", get(api::kernel::presets))
        .route("/api/samples", get(api::images::samples))
        .route("/api/images/{id}", get(api::images::image_png))
        .route("/api/upload", post(api::images::upload))
        .route("/api/convolve", post(api::kernel::convolve))
        .route("/api/arithmetic", post(api::kernel::arithmetic))
        .route("/api/model", get(api::network::model))
        .route("/api/explore", post(api::network::explore))
        .route("/api/explain", post(api::network::explain))
        .route("/api/heatmap", post(api::heatmap::heatmap))
        .route("/api/spreadsheet", get(api::spreadsheet::spreadsheet))
        .route(
            "/api/training",
            get(api::training::log).post(api::training::start),
        )
        // Room for the multipart framing around the largest accepted image.
        .layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES + 64 * 1024))
        .layer(axum::middleware::from_fn(connections::request_deadline))
        .layer(axum::middleware::from_fn(error::json_errors))
        .with_state(state)
}

/// Builds the state: samples from `config.samples` plus the built-in pictures, and the model
/// (loaded now, or trained in the background).
pub fn app_state(config: &ServeConfig) -> Result<Arc<AppState>, convlearn::Error> {
    let images = ImageStore::with_samples(config.samples.as_deref())?;
    let model = match &config.model {
        Some(path) => ModelSlot::load(path)?,
        None => ModelSlot::train_demo_in_background(),
    };
    Ok(Arc::new(AppState { images, model }))
}

/// Serves until interrupted, printing the address once listening (port 0 picks a free one): at
/// most [`MAX_CONNECTIONS`] connections, headers within [`HEADER_TIMEOUT`], requests within
/// [`REQUEST_TIMEOUT`], a handler's panic logged in one line and answered 500.
pub async fn serve(config: ServeConfig) -> Result<(), Box<dyn std::error::Error>> {
    let state = app_state(&config)?;
    let addr = config
        .addr
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 7878)));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr()?;
    println!("serving convlearn on http://{local}/ (Ctrl-C to stop)");
    connections::log_panics_in_one_line();
    serve_connections(listener, router(state), async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await;
    Ok(())
}

/// [`serve`] on a runtime of its own, for callers that are not async (the command line).
pub fn serve_blocking(config: ServeConfig) -> Result<(), Box<dyn std::error::Error>> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(serve(config))
}
