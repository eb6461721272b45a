//! An ONNX graph under construction: named initializers, nodes in order, and the spatial shape of
//! each value, so every layer knows its input's size (TF-'SAME' pads depend on it).

use std::collections::HashSet;

use super::onnx_proto::attribute_proto::AttributeType;
use super::onnx_proto::tensor_proto::DataType;
use super::onnx_proto::{AttributeProto, NodeProto, TensorProto};
use crate::error::{Error, Result};

/// A value in the graph: its name, and for feature maps its channels and spatial size.
#[derive(Clone, Debug)]
pub struct Value {
    /// The value's name in the graph.
    pub name: String,
    /// Channels (or features, for a `[N, F]` value).
    pub channels: usize,
    /// Height and width (`[1, 1]` for a `[N, F]` value).
    pub size: [usize; 2],
}

/// Nodes and initializers of one graph.
#[derive(Default)]
pub struct Graph {
    /// The nodes, in the order they run.
    pub nodes: Vec<NodeProto>,
    /// The weights.
    pub initializers: Vec<TensorProto>,
    names: HashSet<String>,
}

/// A node attribute.
pub enum Attr {
    /// One integer.
    Int(i64),
    /// A list of integers.
    Ints(Vec<i64>),
    /// One float.
    Float(f32),
}

impl Graph {
    /// Adds an f32 initializer `name` of shape `dims`; names must be unique.
    pub fn weight(&mut self, name: &str, dims: &[usize], values: Vec<f32>) -> Result<String> {
        if dims.iter().product::<usize>() != values.len() {
            return Err(Error::Invalid(format!(
                "ONNX export: tensor '{name}' has {} values for shape {dims:?}",
                values.len()
            )));
        }
        let name = self.claim(name);
        self.initializers.push(TensorProto {
            name: Some(name.clone()),
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: Some(DataType::Float as i32),
            raw_data: Some(values.iter().flat_map(|v| v.to_le_bytes()).collect()),
            ..Default::default()
        });
        Ok(name)
    }

    /// Adds a node `op` named `name` over `inputs`; its one output has the node's name.
    pub fn node(
        &mut self,
        op: &str,
        name: &str,
        inputs: &[&str],
        attrs: Vec<(&str, Attr)>,
    ) -> String {
        let name = self.claim(name);
        self.nodes.push(NodeProto {
            op_type: Some(op.to_string()),
            name: Some(name.clone()),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![name.clone()],
            attribute: attrs.into_iter().map(|(n, a)| attribute(n, a)).collect(),
            ..Default::default()
        });
        name
    }

    /// Renames the value `from` (a node's output) to `to`.
    pub fn rename_output(&mut self, from: &str, to: &str) {
        for node in &mut self.nodes {
            for name in node.output.iter_mut().chain(node.input.iter_mut()) {
                if name == from {
                    *name = to.to_string();
                }
            }
        }
        self.names.insert(to.to_string());
    }

    /// The two scalar initializers `Clip` takes as its bounds, added once per graph.
    pub fn clip_bounds(&mut self, low: f32, high: f32) -> Result<[String; 2]> {
        let names = [format!("clip.min.{low}"), format!("clip.max.{high}")];
        for (name, v) in names.iter().zip([low, high]) {
            if !self.names.contains(name) {
                self.weight(name, &[], vec![v])?;
            }
        }
        Ok(names)
    }

    /// `name`, made unique by a suffix `:1`, `:2`, … when taken.
    fn claim(&mut self, name: &str) -> String {
        let unique = (0..)
            .map(|i| {
                if i == 0 {
                    name.to_string()
                } else {
                    format!("{name}:{i}")
                }
            })
            .find(|n| !self.names.contains(n))
            .expect("an unused name exists");
        self.names.insert(unique.clone());
        unique
    }
}

fn attribute(name: &str, value: Attr) -> AttributeProto {
    let mut a = AttributeProto {
        name: Some(name.to_string()),
        ..Default::default()
    };
    match value {
        Attr::Int(i) => {
            a.r#type = Some(AttributeType::Int as i32);
            a.i = Some(i);
        }
        Attr::Ints(v) => {
            a.r#type = Some(AttributeType::Ints as i32);
            a.ints = v;
        }
        Attr::Float(f) => {
            a.r#type = Some(AttributeType::Float as i32);
            a.f = Some(f);
        }
    }
    a
}
