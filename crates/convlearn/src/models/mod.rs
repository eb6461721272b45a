//! Models: a configurable plain CNN (the lesson's networks are presets of it), its description, and
//! layers whose semantics must match PyTorch's.

mod batch_norm;
mod cnn;
mod spec;
mod torch_import;

pub use batch_norm::BatchNorm;
pub use cnn::{Cnn, ConvBlock, LayerActivation};
pub use spec::{CnnSpec, ConvSpec, MapShape, ModelPreset};
pub use torch_import::load_torch_cnn_weights;
