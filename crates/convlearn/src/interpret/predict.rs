//! Predicting the class of an image file with a saved model.

use std::path::Path;

use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor, TensorData};
use serde::Serialize;

use crate::error::Result;
use crate::host::values;
use crate::kernels::FeatureMaps;
use crate::model_file::SavedModel;

/// One class and its probability.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Prediction {
    /// Class name.
    pub class: String,
    /// Softmax probability.
    pub probability: f32,
}

/// Reads an image file as the model expects it: channels, crop and input size, values 0..1
/// (not yet normalised).
pub fn read_model_image(model: &SavedModel, path: &Path) -> Result<FeatureMaps> {
    model.meta.preprocess.load(path)
}

/// A batch of one: `maps` normalised as the model expects, as `[1, c, h, w]` on `device`.
pub fn model_input(model: &SavedModel, maps: &FeatureMaps, device: &Device) -> Tensor<4> {
    let mut values = maps.data.clone();
    model
        .meta
        .preprocess
        .normalization
        .apply(&mut values, maps.channels);
    Tensor::from_data(
        TensorData::new(values, [1, maps.channels, maps.height, maps.width]),
        device,
    )
}

/// Class probabilities of the image at `path`, best first, `top` of them.
pub fn predict_image(
    model: &SavedModel,
    path: &Path,
    top: usize,
    device: &Device,
) -> Result<Vec<Prediction>> {
    let maps = read_model_image(model, path)?;
    let probs = values(softmax(
        model.network.forward(model_input(model, &maps, device)),
        1,
    ));
    let mut ranked: Vec<Prediction> = model
        .meta
        .classes
        .iter()
        .zip(probs)
        .map(|(class, probability)| Prediction {
            class: class.clone(),
            probability,
        })
        .collect();
    ranked.sort_by(|a, b| b.probability.total_cmp(&a.probability));
    ranked.truncate(top.max(1));
    Ok(ranked)
}
