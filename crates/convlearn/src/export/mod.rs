//! Export to ONNX: a saved model as an ONNX file that onnxruntime, tract and others run, with the
//! model file's metadata in `metadata_props`.
//!
//! The graph takes the normalised image `[N, C, H, W]` (`input`; N is dynamic unless
//! [`OnnxOptions::batch`] fixes it) and gives `logits` `[N, classes]`, or with
//! [`OnnxOptions::probabilities`] ends in Softmax (one label) or Sigmoid (several) as
//! `probabilities`. BatchNorm keeps its own nodes and PyTorch's parameter names (runtimes fold it
//! into the convolutions); dropout, the identity at inference, is left out. Opset 13.
//!
//! ```no_run
//! # fn main() -> convlearn::Result<()> {
//! use convlearn::export::{OnnxOptions, write_onnx};
//! use convlearn::model_file::SavedModel;
//!
//! let model = SavedModel::load("model.safetensors".as_ref(), &convlearn::device::inference_device())?;
//! write_onnx(&model, &OnnxOptions::default(), "model.onnx".as_ref())?;
//! # Ok(()) }
//! ```

mod graph;
mod layers;
mod network;
pub mod onnx_proto;
mod samples;

pub use samples::{Samples, npy, samples};

use std::path::Path;

use prost::Message;

use self::graph::{Graph, Value};
use self::onnx_proto::tensor_proto::DataType;
use self::onnx_proto::tensor_shape_proto::{Dimension, dimension};
use self::onnx_proto::type_proto;
use self::onnx_proto::{
    GraphProto, ModelProto, OperatorSetIdProto, StringStringEntryProto, TensorShapeProto,
    TypeProto, ValueInfoProto,
};
use crate::error::{Error, Result};
use crate::model_file::SavedModel;
use crate::models::ArchSpec;

/// The ONNX operator set the graph uses.
pub const OPSET: i64 = 13;

/// ONNX's IR version for opset 13 (ONNX 1.8).
const IR_VERSION: i64 = 7;

/// The prefix of convlearn's keys in `metadata_props`.
pub const METADATA_PREFIX: &str = "convlearn.";

/// How to export.
#[derive(Clone, Debug, Default)]
pub struct OnnxOptions {
    /// End in Softmax (single-label) or Sigmoid (multi-label), output `probabilities`, instead of
    /// the logits.
    pub probabilities: bool,
    /// A fixed batch size; `None` leaves the batch dimension dynamic (`N`).
    pub batch: Option<usize>,
}

/// The model as an ONNX model.
pub fn onnx_model(model: &SavedModel, options: &OnnxOptions) -> Result<ModelProto> {
    let p = &model.meta.preprocess;
    if options.batch == Some(0) {
        return Err(Error::Invalid(
            "ONNX export: the batch size must be at least 1".into(),
        ));
    }
    let backbone = match &model.meta.arch {
        ArchSpec::Pretrained { backbone, .. } => Some(*backbone),
        ArchSpec::Plain { .. } => None,
    };
    let mut g = Graph::default();
    let input = Value {
        name: "input".into(),
        channels: p.channels,
        size: [p.height, p.width],
    };
    let logits = network::network(&mut g, &model.network, backbone, input)?;
    let classes = logits.channels;
    g.rename_output(&logits.name, "logits");
    let output = match (options.probabilities, model.meta.multi_label) {
        (false, _) => "logits".to_string(),
        (true, true) => g.node("Sigmoid", "probabilities", &["logits"], vec![]),
        (true, false) => g.node(
            "Softmax",
            "probabilities",
            &["logits"],
            vec![("axis", graph::Attr::Int(1))],
        ),
    };
    let batch = options.batch;
    let graph = GraphProto {
        name: Some(model.meta.arch.name()),
        node: g.nodes,
        initializer: g.initializers,
        input: vec![tensor_info(
            "input",
            batch,
            &[p.channels, p.height, p.width],
        )],
        output: vec![tensor_info(&output, batch, &[classes])],
        ..Default::default()
    };
    Ok(ModelProto {
        ir_version: Some(IR_VERSION),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(OPSET),
        }],
        producer_name: Some("convlearn".into()),
        producer_version: Some(env!("CARGO_PKG_VERSION").into()),
        doc_string: Some(format!(
            "{} exported by convlearn: input = (pixels in 0..1 − mean) / std, as metadata_props' \
             convlearn.mean and convlearn.std say",
            model.meta.arch.name()
        )),
        graph: Some(graph),
        metadata_props: metadata(model)?,
        ..Default::default()
    })
}

/// The model as ONNX protobuf bytes.
pub fn onnx_bytes(model: &SavedModel, options: &OnnxOptions) -> Result<Vec<u8>> {
    Ok(onnx_model(model, options)?.encode_to_vec())
}

/// Writes the model to `path` as ONNX, atomically and durably ([`crate::output_file`]).
pub fn write_onnx(model: &SavedModel, options: &OnnxOptions, path: &Path) -> Result<()> {
    crate::output_file::write_bytes(path, &onnx_bytes(model, options)?)
}

/// `convlearn.classes`, `.mean`, `.std`, `.crop`, `.multi_label`, `.threshold`, `.architecture`,
/// each value JSON.
fn metadata(model: &SavedModel) -> Result<Vec<StringStringEntryProto>> {
    let m = &model.meta;
    let json = |v: serde_json::Result<String>| {
        v.map_err(|e| Error::Invalid(format!("ONNX export: metadata: {e}")))
    };
    let entries = [
        ("classes", json(serde_json::to_string(&m.classes))?),
        (
            "mean",
            json(serde_json::to_string(&m.preprocess.normalization.mean))?,
        ),
        (
            "std",
            json(serde_json::to_string(&m.preprocess.normalization.std))?,
        ),
        ("crop", json(serde_json::to_string(&m.preprocess.crop))?),
        ("multi_label", m.multi_label.to_string()),
        ("threshold", json(serde_json::to_string(&m.threshold))?),
        ("architecture", json(serde_json::to_string(&m.arch))?),
    ];
    Ok(entries
        .into_iter()
        .map(|(k, v)| StringStringEntryProto {
            key: Some(format!("{METADATA_PREFIX}{k}")),
            value: Some(v),
        })
        .collect())
}

/// A float tensor's declaration `[batch or N, dims…]`.
fn tensor_info(name: &str, batch: Option<usize>, dims: &[usize]) -> ValueInfoProto {
    let batch = match batch {
        Some(n) => dimension::Value::DimValue(n as i64),
        None => dimension::Value::DimParam("N".into()),
    };
    let dim = std::iter::once(batch)
        .chain(dims.iter().map(|&d| dimension::Value::DimValue(d as i64)))
        .map(|v| Dimension {
            value: Some(v),
            denotation: None,
        })
        .collect();
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(DataType::Float as i32),
                shape: Some(TensorShapeProto { dim }),
            })),
            denotation: None,
        }),
        ..Default::default()
    }
}
