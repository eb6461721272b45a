//! The page and its assets, compiled into the binary.

use axum::http::header;
use axum::response::{Html, IntoResponse};

/// `GET /`.
pub async fn index() -> Html<&'static str> {
    Html(include_str!("../assets/index.html"))
}

/// `GET /app.js`.
pub async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../assets/app.js"),
    )
}

/// `GET /style.css`.
pub async fn style() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../assets/style.css"),
    )
}
