//! The HTTP API, request by request (no network: the router is called directly).

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{app, get, post, send, wait_until_trained};
use convlearn::data::generate_shapes;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

fn multipart(field: &str, filename: &str, bytes: &[u8]) -> Request<Body> {
    let mut body = format!(
        "--XyZ\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(b"\r\n--XyZ--\r\n");
    Request::post("/api/upload")
        .header("content-type", "multipart/form-data; boundary=XyZ")
        .body(Body::from(body))
        .unwrap()
}

fn png_bytes(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x * 20) as u8, (y * 20) as u8, 90])
    });
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

#[tokio::test]
async fn page_presets_and_samples() {
    let (app, _) = app();
    let (s, html) = send(&app, Request::get("/").body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::OK);
    let html = String::from_utf8(html).unwrap();
    assert!(html.contains("Kernel playground") && html.contains("Network explorer"));
    let (s, presets) = get(&app, "/api/presets").await;
    assert_eq!(s, StatusCode::OK);
    let bottom = presets
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "bottom-edge")
        .unwrap();
    assert_eq!(
        bottom["rows"],
        json!([[-1.0, -1.0, -1.0], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    );
    let (_, samples) = get(&app, "/api/samples").await;
    assert_eq!(samples[0]["id"], "sample-0");
    assert_eq!(
        (samples[0]["width"].as_u64(), samples[0]["height"].as_u64()),
        (Some(96), Some(96))
    );
}

#[tokio::test]
async fn convolution_and_arithmetic_match_a_hand_computation() {
    let (app, _) = app();
    let kernel = json!([[-1, -1, -1], [0, 0, 0], [1, 1, 1]]);
    let (s, r) = post(
        &app,
        "/api/convolve",
        json!({"image": "sample-0", "kernel": kernel}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    // 96×96 input, valid 3×3 → 94×94; 2×2 max-pool → 47×47.
    assert_eq!(
        (
            r["response"]["width"].as_u64(),
            r["pooled"]["width"].as_u64()
        ),
        (Some(94), Some(47))
    );
    assert!(
        r["response"]["png"]
            .as_str()
            .unwrap()
            .starts_with("data:image/png;base64,")
    );

    // The same picture the server generated (sample-0), convolved by hand at several places.
    let picture = generate_shapes(4, 96, 7).image(0);
    let rgb = convlearn::plot::picture(&picture);
    let gray = image::DynamicImage::ImageRgb8(rgb).to_luma32f();
    for (x, y) in [(0usize, 0usize), (40, 20), (93, 93), (17, 60)] {
        let mut expected = 0.0f32;
        for ky in 0..3 {
            for kx in 0..3 {
                let w = [-1.0, 0.0, 1.0][ky];
                expected += w * gray.get_pixel((x + kx) as u32, (y + ky) as u32)[0];
            }
        }
        let (s, a) = post(
            &app,
            "/api/arithmetic",
            json!({"image": "sample-0", "kernel": kernel, "x": x, "y": y}),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{a}");
        let total = a["total"].as_f64().unwrap() as f32;
        assert!(
            (total - expected).abs() < 1e-4,
            "({x},{y}): {total} vs {expected}"
        );
        assert_eq!(a["relu"].as_f64().unwrap() as f32, total.max(0.0));
        assert!(
            a["text"]
                .as_str()
                .unwrap()
                .contains(&format!("output pixel x={x}, y={y}"))
        );
    }
    // Outside the output, an even kernel, or a bad padding: 400 with a message.
    for body in [
        json!({"image": "sample-0", "kernel": kernel, "x": 94, "y": 0}),
        json!({"image": "sample-0", "kernel": [[1, 2], [3, 4]], "x": 0, "y": 0}),
        json!({"image": "sample-0", "kernel": kernel, "padding": "wrap", "x": 0, "y": 0}),
    ] {
        let (s, e) = post(&app, "/api/arithmetic", body).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
        assert!(!e["error"].as_str().unwrap().is_empty());
    }
    let (s, e) = post(
        &app,
        "/api/convolve",
        json!({"image": "nope", "kernel": kernel}),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{e}");
}

#[tokio::test]
async fn uploads_are_checked_and_the_server_keeps_serving() {
    let (app, _) = app();
    let (s, b) = send(
        &app,
        multipart("image", "notes.txt", b"hello, not a picture"),
    )
    .await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(String::from_utf8_lossy(&b).contains("not an image"));
    let (s, b) = send(
        &app,
        multipart("image", "big.png", &vec![0u8; 6 * 1024 * 1024]),
    )
    .await;
    assert_eq!(
        s,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        String::from_utf8_lossy(&b)
    );
    assert!(String::from_utf8_lossy(&b).contains("5 MiB"));
    let (s, b) = send(&app, multipart("file", "a.png", &png_bytes(8, 8))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(&b).contains("no field 'image'"));
    let garbage = Request::post("/api/upload")
        .header("content-type", "multipart/form-data; boundary=XyZ")
        .body(Body::from("garbage"))
        .unwrap();
    assert_eq!(send(&app, garbage).await.0, StatusCode::BAD_REQUEST);
    // A truncated PNG: recognised, but not decodable.
    let png = png_bytes(16, 16);
    let (s, b) = send(&app, multipart("image", "cut.png", &png[..png.len() / 2])).await;
    assert_eq!(
        s,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "{}",
        String::from_utf8_lossy(&b)
    );

    let (s, b) = send(&app, multipart("image", "ok.png", &png_bytes(12, 10))).await;
    assert_eq!(s, StatusCode::OK);
    let info: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(
        (info["width"].as_u64(), info["height"].as_u64()),
        (Some(12), Some(10))
    );
    let id = info["id"].as_str().unwrap();
    let (s, r) = post(
        &app,
        "/api/convolve",
        json!({"image": id, "kernel": [[0,0,0],[0,1,0],[0,0,0]]}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(
        (
            r["response"]["width"].as_u64(),
            r["response"]["height"].as_u64()
        ),
        (Some(10), Some(8))
    );
    let (_, list) = get(&app, "/api/samples").await;
    assert!(list.as_array().unwrap().iter().any(|i| i["id"] == id));
}

#[tokio::test]
async fn nothing_outside_the_samples_can_be_read() {
    let (app, _) = app();
    for uri in [
        "/api/images/..%2F..%2F..%2Fetc%2Fpasswd",
        "/api/images/%2Fetc%2Fpasswd",
        "/api/images/sample-999",
        "/api/images/Cargo.toml",
    ] {
        let (s, _) = send(&app, Request::get(uri).body(Body::empty()).unwrap()).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{uri}");
    }
    for uri in ["/../Cargo.toml", "/etc/passwd", "/assets/app.js"] {
        let (s, _) = send(&app, Request::get(uri).body(Body::empty()).unwrap()).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{uri}");
    }
    let (s, b) = send(
        &app,
        Request::get("/api/images/sample-1")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(&b[1..4], b"PNG");
}

#[tokio::test]
async fn the_explorer_runs_the_built_in_network_and_explains_an_activation() {
    let (app, _) = app();
    let status = wait_until_trained(&app).await;
    assert_eq!(status["status"], "ready", "{status}");
    assert_eq!(status["explainable"], true);
    let (s, r) = post(&app, "/api/explore", json!({"image": "sample-2"})).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    let stages = r["stages"].as_array().unwrap();
    assert_eq!(stages[0]["name"], "conv1 + ReLU");
    assert_eq!(stages[0]["conv_layer"], 1);
    assert_eq!(stages[0]["channels"], 2);
    let total: f64 = r["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["probability"].as_f64().unwrap())
        .sum();
    assert!((total - 1.0).abs() < 1e-4, "softmax sums to 1: {total}");
    let (s, e) = post(
        &app,
        "/api/explain",
        json!({"image": "sample-2", "layer": 2, "channel": 1, "x": 5, "y": 7}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{e}");
    let (hand, net) = (
        e["relu"].as_f64().unwrap(),
        e["network_value"].as_f64().unwrap(),
    );
    assert!((hand - net).abs() < 1e-4, "hand {hand} vs burn {net}");
    let (s, e) = post(
        &app,
        "/api/explain",
        json!({"image": "sample-2", "layer": 9, "channel": 0, "x": 0, "y": 0}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
}

/// Pictures too small for the kernel, or of extreme shapes, get a 4xx naming the problem, never
/// a 5xx with a panic's text; uploads are kept shrunk.
#[tokio::test]
async fn kernels_larger_than_the_picture_are_a_clear_4xx() {
    let (app, _) = app();
    let nine = json!(vec![vec![1.0; 9]; 9]);
    for (w, h) in [(1, 1), (8000, 3), (3, 8000), (2, 2)] {
        let (s, b) = send(&app, multipart("image", "odd.png", &png_bytes(w, h))).await;
        assert_eq!(
            s,
            StatusCode::OK,
            "{w}×{h}: {}",
            String::from_utf8_lossy(&b)
        );
        let up: Value = serde_json::from_slice(&b).unwrap();
        assert!(
            up["width"].as_u64().unwrap() <= 512 && up["height"].as_u64().unwrap() <= 512,
            "{up}"
        );
        let id = up["id"].as_str().unwrap().to_string();
        for padding in ["valid", "zero", "replicate"] {
            for color in [false, true] {
                let req = json!({"image": id, "kernel": nine, "padding": padding, "color": color});
                let (s, r) = post(&app, "/api/convolve", req.clone()).await;
                assert!(
                    s.is_success() || s.is_client_error(),
                    "{w}×{h} {padding}: {s} {r}"
                );
                if !s.is_success() {
                    assert!(r["error"].as_str().unwrap().contains("9×9"), "{r}");
                }
                let mut arith = req.clone();
                arith["x"] = json!(0);
                arith["y"] = json!(0);
                let (s, r) = post(&app, "/api/arithmetic", arith).await;
                assert!(
                    s.is_success() || s.is_client_error(),
                    "{w}×{h} {padding}: {s} {r}"
                );
            }
        }
    }
}

#[tokio::test]
async fn every_error_is_json_even_axums_own_rejections() {
    let (app, _) = app();
    let raw = |uri: &str, content_type: Option<&str>, body: &'static str| {
        let mut req = Request::post(uri);
        if let Some(t) = content_type {
            req = req.header("content-type", t);
        }
        req.body(Body::from(body)).unwrap()
    };
    let cases = [
        // malformed JSON, a field of the wrong type, no content type, a multipart without its boundary
        (raw("/api/convolve", Some("application/json"), "{"), "EOF"),
        (
            raw("/api/convolve", Some("application/json"), r#"{"image": 3}"#),
            "image",
        ),
        (raw("/api/explain", None, "{}"), "Content-Type"),
        (
            raw("/api/upload", Some("multipart/form-data"), "x"),
            "boundary",
        ),
        // an unknown endpoint, a known one with the wrong method
        (
            Request::get("/api/nothing").body(Body::empty()).unwrap(),
            "/api/nothing",
        ),
        (
            Request::get("/api/convolve").body(Body::empty()).unwrap(),
            "GET",
        ),
    ];
    for (req, mentions) in cases {
        let what = format!("{} {}", req.method(), req.uri());
        let res = app.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let content_type = res.headers()["content-type"].to_str().unwrap().to_string();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert!(status.is_client_error(), "{what}: {status}");
        assert!(
            content_type.starts_with("application/json"),
            "{what}: {content_type}"
        );
        let v: Value = serde_json::from_slice(&body).unwrap_or_else(|_| panic!("{what}: {body:?}"));
        let message = v["error"].as_str().unwrap_or_else(|| panic!("{what}: {v}"));
        assert!(message.contains(mentions), "{what}: {message}");
    }
}
