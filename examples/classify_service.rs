//! A tiny web service: the model is loaded once, and every `POST /classify` with an image as its
//! body is answered with the top three classes as JSON.
//!
//! `cargo run --release --example classify_service [MODEL]` serves on 127.0.0.1:3000 (default
//! model: the shared ImageNet MobileNetV2); try
//! `curl --data-binary @cat.jpg http://127.0.0.1:3000/classify`.
//! `… --example classify_service -- --check PHOTO` starts it on a free port, sends PHOTO once,
//! prints the answer and exits.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use convlearn::Classifier;
use convlearn::device::inference_device;
use convlearn::model_file::SavedModel;
use convlearn::models::PretrainedWeights;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn classify(
    State(classifier): State<Arc<Classifier>>,
    body: axum::body::Bytes,
) -> (StatusCode, Json<Value>) {
    // the network computes on rayon's threads; keep the async workers free meanwhile
    let answer = tokio::task::spawn_blocking(move || classifier.predict_bytes(&body)).await;
    match answer {
        Ok(Ok(scores)) => (StatusCode::OK, Json(json!({ "top": scores.top(3) }))),
        Ok(Err(e)) => (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": e.to_string() })),
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({ "error": e.to_string() })),
        ),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let check = args
        .iter()
        .position(|a| a == "--check")
        .map(|i| args[i + 1].clone());
    let model = args.first().filter(|a| !a.starts_with("--"));
    let shared = std::env::var("CONVLEARN_DATA").unwrap_or_else(|_| "../shared".into());
    let classifier = match model {
        Some(path) => Classifier::load(path)?,
        None => {
            let weights = format!("{shared}/weights/mobilenet_v2_imagenet_from_tflite.safetensors");
            Classifier::new(SavedModel::imagenet(
                &PretrainedWeights::open(weights.as_ref(), None)?,
                &inference_device(),
            )?)
        }
    };
    let app = Router::new()
        .route("/classify", post(classify))
        .with_state(Arc::new(classifier))
        .layer(axum::extract::DefaultBodyLimit::max(16 << 20));
    let address = if check.is_some() {
        "127.0.0.1:0"
    } else {
        "127.0.0.1:3000"
    };
    let listener = tokio::net::TcpListener::bind(address).await?;
    let local = listener.local_addr()?;
    let Some(photo) = check else {
        println!("classifying on http://{local}/classify (POST an image)");
        axum::serve(listener, app).await?;
        return Ok(());
    };
    tokio::spawn(async move { axum::serve(listener, app).await });
    let body = std::fs::read(&photo)?;
    let mut stream = tokio::net::TcpStream::connect(local).await?;
    let head = format!(
        "POST /classify HTTP/1.1\r\nHost: {local}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(&body).await?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await?;
    let status = answer.lines().next().unwrap_or("");
    let json = answer.split("\r\n\r\n").nth(1).unwrap_or("");
    println!("{photo}: {status} {json}");
    if !status.contains(" 200 ") {
        return Err(format!("the service answered {status}").into());
    }
    Ok(())
}
