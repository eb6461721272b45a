//! Models: a configurable plain CNN (the lesson's networks are presets of it) and its description.

mod cnn;
mod spec;
mod torch_import;

pub use cnn::{Cnn, ConvBlock, LayerActivation};
pub use spec::{CnnSpec, ConvSpec, ModelPreset};
pub use torch_import::load_torch_cnn_weights;
