//! Looking inside a trained model: predictions, every layer's activations, the arithmetic of one activation.

mod activations;
pub mod explain;
mod predict;

pub use activations::render_activations;
pub use explain::{Explanation, explain};
pub use predict::{Prediction, model_input, predict_image, read_model_image};
