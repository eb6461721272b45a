//! What the API tests share: the router on a fresh state, and requests sent to it directly.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use convlearn_web::{AppState, ServeConfig, app_state, router};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

pub fn app() -> (Router, Arc<AppState>) {
    let state = app_state(&ServeConfig::default()).unwrap();
    (router(state.clone()), state)
}

pub async fn send(app: &Router, req: Request<Body>) -> (StatusCode, Vec<u8>) {
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes().to_vec();
    (status, body)
}

pub async fn get(app: &Router, uri: &str) -> (StatusCode, Value) {
    let (s, b) = send(app, Request::get(uri).body(Body::empty()).unwrap()).await;
    (s, serde_json::from_slice(&b).unwrap_or(Value::Null))
}

pub async fn post(app: &Router, uri: &str, body: Value) -> (StatusCode, Value) {
    let req = Request::post(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let (s, b) = send(app, req).await;
    (s, serde_json::from_slice(&b).unwrap())
}

/// Waits (at most a minute) for the model to leave `training`; its final status.
pub async fn wait_until_trained(app: &Router) -> Value {
    let mut status = Value::Null;
    for _ in 0..600 {
        status = get(app, "/api/model").await.1;
        if status["status"] != "training" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    status
}
