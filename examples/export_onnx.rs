//! A model exported to ONNX, with its metadata, ready for onnxruntime or tract.
//!
//! `cargo run --release --example export_onnx [MODEL]` (default: the shared ImageNet MobileNetV2
//! weights as an ImageNet classifier). Writes `model.onnx`.

use convlearn::Classifier;
use convlearn::device::inference_device;
use convlearn::export::OnnxOptions;
use convlearn::model_file::SavedModel;
use convlearn::models::PretrainedWeights;

fn main() -> convlearn::Result<()> {
    let shared = std::env::var("CONVLEARN_DATA").unwrap_or_else(|_| "../shared".into());
    let classifier = match std::env::args().nth(1) {
        Some(model) => Classifier::load(model)?,
        None => {
            let weights = format!("{shared}/weights/mobilenet_v2_imagenet_from_tflite.safetensors");
            let model = SavedModel::imagenet(
                &PretrainedWeights::open(weights.as_ref(), None)?,
                &inference_device(),
            )?;
            Classifier::new(model)
        }
    };
    classifier.export_onnx("model.onnx", &OnnxOptions::default())?;
    let p = &classifier.model().meta.preprocess;
    println!(
        "wrote model.onnx: {} with input [N, {}, {}, {}] and {} logits; mean {:?}, std {:?} in its metadata_props",
        classifier.model().meta.arch.name(),
        p.channels,
        p.height,
        p.width,
        classifier.classes().len(),
        p.normalization.mean,
        p.normalization.std
    );
    Ok(())
}
