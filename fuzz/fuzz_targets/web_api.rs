//! Any request body sent to `serve`'s upload and JSON endpoints: a 2xx or 4xx answer, never a
//! 5xx or a crash. The first byte picks the endpoint.
#![no_main]

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::Request;
use tower::ServiceExt;

fn app() -> &'static (axum::Router, tokio::runtime::Runtime) {
    static APP: OnceLock<(axum::Router, tokio::runtime::Runtime)> = OnceLock::new();
    APP.get_or_init(|| {
        let state = convlearn_web::app_state(&convlearn_web::ServeConfig::default()).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        (convlearn_web::router(Arc::clone(&state)), runtime)
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    let (uri, content_type) = match which % 5 {
        0 => ("/api/upload", "multipart/form-data; boundary=XyZ"),
        1 => ("/api/convolve", "application/json"),
        2 => ("/api/arithmetic", "application/json"),
        3 => ("/api/explore", "application/json"),
        _ => ("/api/explain", "application/json"),
    };
    let (router, runtime) = app();
    let request = Request::post(uri)
        .header("content-type", content_type)
        .body(Body::from(body.to_vec()))
        .unwrap();
    let response = runtime.block_on(router.clone().oneshot(request)).unwrap();
    assert!(
        !response.status().is_server_error(),
        "{uri} answered {}",
        response.status()
    );
});
