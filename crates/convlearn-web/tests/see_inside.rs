//! The explorer's Grad-CAM, spreadsheet download and training view, request by request, checked
//! against the library computing the same thing directly and against the workbook read back.

mod common;

use std::io::Cursor;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use calamine::{Data, Reader, Xlsx};
use common::{app, get, post, wait_until_trained};
use convlearn::device::inference_device;
use convlearn::host::values;
use convlearn::interpret::grad_cam;
use serde_json::{Value, json};
use tower::ServiceExt;

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .flat_map(|x| match x.as_array() {
            Some(row) => row.iter().map(|y| y.as_f64().unwrap()).collect(),
            None => vec![x.as_f64().unwrap()],
        })
        .collect()
}

/// The server on `model`, saved to a file as a user would give it (the folder lives as long as the
/// returned guard).
fn serve(model: &convlearn::model_file::SavedModel) -> (axum::Router, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    model.save(&path).unwrap();
    let config = convlearn_web::ServeConfig {
        model: Some(path),
        ..Default::default()
    };
    (
        convlearn_web::router(convlearn_web::app_state(&config).unwrap()),
        dir,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn clicking_a_class_gives_the_librarys_grad_cam() {
    let (app, state) = app();
    assert_eq!(wait_until_trained(&app).await["status"], "ready");
    let (s, explored) = post(&app, "/api/explore", json!({"image": "sample-2"})).await;
    assert_eq!(s, StatusCode::OK, "{explored}");
    let outputs = explored["outputs"].as_array().unwrap();
    let top = outputs
        .iter()
        .max_by(|a, b| {
            a["probability"]
                .as_f64()
                .partial_cmp(&b["probability"].as_f64())
                .unwrap()
        })
        .unwrap();
    // No class: the most probable one.
    let (s, h) = post(&app, "/api/heatmap", json!({"image": "sample-2"})).await;
    assert_eq!(s, StatusCode::OK, "{h}");
    assert_eq!(h["class"], top["class"]);
    assert!(
        h["overlay"]
            .as_str()
            .unwrap()
            .starts_with("data:image/png;base64,")
    );
    // Every class, against the library on the same model and picture.
    let model = state.model.ready().unwrap();
    let picture = state.images.get("sample-2").unwrap();
    let maps = model.meta.preprocess.prepare(&picture).unwrap();
    for o in outputs {
        let class = o["class"].as_str().unwrap();
        let (s, h) = post(
            &app,
            "/api/heatmap",
            json!({"image": "sample-2", "class": class}),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{h}");
        let want = grad_cam(&model, &maps, Some(class), None, &inference_device()).unwrap();
        assert_eq!(h["layer"], want.layer.as_str());
        let got = floats(&h["heatmap"]);
        let want: Vec<f64> = want.heatmap.concat().into_iter().map(f64::from).collect();
        assert_eq!(got.len(), want.len());
        assert!(
            got.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-6),
            "{class}"
        );
        let peak = got.iter().copied().fold(0.0, f64::max);
        assert!(
            peak == 0.0 || (peak - 1.0).abs() < 1e-6,
            "scaled to 1: {peak}"
        );
    }
    let (s, e) = post(
        &app,
        "/api/heatmap",
        json!({"image": "sample-2", "class": "unicorn"}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        e["error"].as_str().unwrap().contains("no class 'unicorn'"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_spreadsheet_download_is_a_workbook_of_the_explored_numbers() {
    let (app, _) = app();
    assert_eq!(wait_until_trained(&app).await["spreadsheet"], true);
    let (_, explored) = post(&app, "/api/explore", json!({"image": "sample-1"})).await;
    let req = Request::get("/api/spreadsheet?image=sample-1")
        .body(Body::empty())
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let headers = res.headers().clone();
    assert_eq!(headers["content-type"], convlearn_web::XLSX);
    assert_eq!(
        headers["content-disposition"],
        "attachment; filename=\"convlearn-spreadsheet.xlsx\""
    );
    let bytes = http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap()
        .to_bytes();
    let mut book: Xlsx<_> = Xlsx::new(Cursor::new(bytes.to_vec())).unwrap();
    let formulas = book.worksheet_formula("network").unwrap();
    let cells = book.worksheet_range("network").unwrap();
    // The softmax row: its formulas' cached values are the explorer's probabilities.
    let mut probabilities = Vec::new();
    for (row, col, f) in formulas.used_cells() {
        if f.starts_with("EXP(") {
            let (r, c) = (
                formulas.start().unwrap().0 + row as u32,
                formulas.start().unwrap().1 + col as u32,
            );
            match cells.get_value((r, c)) {
                Some(Data::Float(v)) => probabilities.push(*v),
                other => panic!("softmax cell without a number: {other:?}"),
            }
        }
    }
    let want: Vec<f64> = explored["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["probability"].as_f64().unwrap())
        .collect();
    assert_eq!(
        probabilities.len(),
        want.len(),
        "one softmax cell per class"
    );
    for (p, w) in probabilities.iter().zip(&want) {
        assert!((p - w).abs() < 1e-5, "{p} vs {w}");
    }
    assert!(
        formulas.used_cells().count() > 2000,
        "the whole network is formulas"
    );
    let (s, e) = get(&app, "/api/spreadsheet?image=nope").await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_training_view_records_every_step_and_hands_over_the_model() {
    let (app, state) = app();
    assert_eq!(wait_until_trained(&app).await["status"], "ready");
    // Bad requests are refused before anything starts.
    for (body, what) in [
        (json!({"epochs": 0}), "epochs"),
        (json!({"epochs": 21}), "epochs"),
        (json!({"learning_rate": 2.0}), "learning_rate"),
        (json!({"learning_rate": -1.0}), "learning_rate"),
    ] {
        let (s, e) = post(&app, "/api/training", body).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
        assert!(e["error"].as_str().unwrap().contains(what), "{e}");
    }
    let (s, e) = post(&app, "/api/training", json!({"epoch": 1})).await;
    assert!(s.is_client_error(), "an unknown field: {e}");
    let (s, started) = post(
        &app,
        "/api/training",
        json!({"epochs": 1, "learning_rate": 0.03}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{started}");
    assert_eq!(started["run"], 2, "the start-up run was the first");
    let (s, e) = post(&app, "/api/training", json!({})).await;
    assert_eq!(s, StatusCode::CONFLICT, "one run at a time: {e}");
    let status = wait_until_trained(&app).await;
    assert_eq!(status["status"], "ready", "{status}");
    assert!(
        status["source"].as_str().unwrap().contains("1 epochs"),
        "{status}"
    );
    let (_, log) = get(&app, "/api/training").await;
    let steps = log["steps"].as_array().unwrap();
    // 6 000 shapes in batches of 64: 94 steps, numbered in order.
    assert_eq!(log["total_steps"], 94);
    assert_eq!(steps.len(), 94);
    assert!(
        steps
            .iter()
            .enumerate()
            .all(|(i, s)| s["step"] == i && s["epoch"] == 1)
    );
    assert_eq!(log["epochs"].as_array().unwrap().len(), 1);
    // The last step's kernels are the explorer's model's first layer, exactly.
    let model = state.model.ready().unwrap();
    let (_, conv) = model.network.first_conv().unwrap();
    let want = values(conv.weight.val());
    // JSON carries each f32 in its shortest form: read back as f32, it is the same number.
    let last: Vec<f32> = steps[93]["kernels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|k| k.as_array().unwrap().iter().flat_map(floats))
        .map(|v| v as f32)
        .collect();
    assert_eq!(last, want, "[2 kernels][1 channel][3][3]");
    let first: Vec<f64> = floats(&steps[0]["kernels"][0][0]);
    assert_ne!(
        first,
        floats(&steps[93]["kernels"][0][0]),
        "the kernels changed"
    );
    // Learning: the loss of the last ten steps is below the first ten's.
    let loss =
        |r: std::ops::Range<usize>| r.map(|i| steps[i]["loss"].as_f64().unwrap()).sum::<f64>();
    assert!(
        loss(84..94) < loss(0..10),
        "{} vs {}",
        loss(84..94),
        loss(0..10)
    );
    // `since` leaves out what the page has.
    let (_, tail) = get(&app, "/api/training?since=90").await;
    assert_eq!(tail["steps"].as_array().unwrap().len(), 4);
    assert_eq!(tail["steps"][0]["step"], 90);
    let (_, none) = get(&app, "/api/training?since=1000").await;
    assert_eq!(none["steps"].as_array().unwrap().len(), 0);
    let (s, e) = get(&app, "/api/training?since=-1").await;
    assert!(s.is_client_error(), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pretrained_networks_first_layer_is_shown_and_explained() {
    use convlearn::data::{Crop, Normalization, Preprocess};
    use convlearn::model_file::{ModelMeta, SavedModel};
    use convlearn::models::{ArchSpec, BackboneKind, HeadKind, HeadSpec, Network, PaddingStyle};
    // A MobileNetV2 (TF 'SAME') with fresh weights, saved as a fine-tuned model would be.
    let arch = ArchSpec::Pretrained {
        backbone: BackboneKind::MobilenetV2,
        padding: PaddingStyle::TfSame,
        head: HeadSpec {
            kind: HeadKind::Fastai,
            hidden: 16,
            classes: 2,
        },
    };
    let preprocess = Preprocess {
        channels: 3,
        height: 64,
        width: 64,
        normalization: Normalization::identity(3),
        crop: Crop::None,
    };
    let device = inference_device();
    device.seed(3);
    let model = SavedModel {
        network: Network::new(&arch, &device).unwrap(),
        meta: ModelMeta::new(arch, vec!["ants".into(), "bees".into()], preprocess, false),
    };
    let (app, _dir) = serve(&model);
    let (_, status) = get(&app, "/api/model").await;
    assert_eq!(status["explainable"], true, "{status}");
    assert_eq!(status["spreadsheet"], false, "{status}");
    let (s, r) = post(&app, "/api/explore", json!({"image": "sample-0"})).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    let first = &r["stages"][0];
    assert_eq!(
        first["name"],
        "features.0: conv 3×3 stride 2, BatchNorm, ReLU6"
    );
    assert_eq!(first["conv_layer"], 1);
    assert_eq!(
        (first["channels"].as_u64(), first["width"].as_u64()),
        (Some(32), Some(32))
    );
    assert!(
        r["stages"].as_array().unwrap()[1..]
            .iter()
            .all(|s| s["conv_layer"].is_null())
    );
    let (s, e) = post(
        &app,
        "/api/explain",
        json!({"image": "sample-0", "layer": 1, "channel": 4, "x": 31, "y": 31}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{e}");
    let (hand, net) = (
        e["relu"].as_f64().unwrap(),
        e["network_value"].as_f64().unwrap(),
    );
    assert!((hand - net).abs() < 1e-4, "by hand {hand} vs network {net}");
    assert!(e["text"].as_str().unwrap().contains("ReLU6"), "{e}");
    let (s, e) = get(&app, "/api/spreadsheet?image=sample-0").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    assert!(e["error"].as_str().unwrap().contains("plain CNNs"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_network_too_large_for_a_workbook_offers_no_download() {
    use convlearn::data::{Crop, Normalization, Preprocess};
    use convlearn::model_file::{ModelMeta, SavedModel};
    use convlearn::models::{ArchSpec, ModelPreset, Network};
    // simple_cnn: 32 + 64 kernels, about 47 000 formula cells, over the workbook's 20 000.
    let arch = ArchSpec::Plain {
        preset: "simple_cnn".into(),
        spec: ModelPreset::SimpleCnn.spec(1, 28, 28, 2),
    };
    let preprocess = Preprocess {
        channels: 1,
        height: 28,
        width: 28,
        normalization: Normalization::identity(1),
        crop: Crop::None,
    };
    let model = SavedModel {
        network: Network::new(&arch, &inference_device()).unwrap(),
        meta: ModelMeta::new(arch, vec!["a".into(), "b".into()], preprocess, false),
    };
    let (app, _dir) = serve(&model);
    let (_, status) = get(&app, "/api/model").await;
    assert_eq!(
        (&status["explainable"], &status["spreadsheet"]),
        (&json!(true), &json!(false)),
        "{status}"
    );
    let (s, e) = get(&app, "/api/spreadsheet?image=sample-0").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    assert!(
        e["error"].as_str().unwrap().contains("formula cells"),
        "{e}"
    );
}
