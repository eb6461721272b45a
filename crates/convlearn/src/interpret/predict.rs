//! Predicting an image file with a saved model: the top classes (softmax), or every tag above the
//! model's threshold (sigmoid, multi-label); optionally averaged over augmented copies (TTA).

use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::Serialize;

use image::DynamicImage;

use crate::data::{Augment, load_image};
use crate::error::{Error, Result};
use crate::host::values;
use crate::kernels::FeatureMaps;
use crate::learner::probabilities;
use crate::model_file::{ModelMeta, SavedModel};

/// One class (or tag), its probability and its logit.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Prediction {
    /// Class name.
    pub class: String,
    /// Softmax probability, or the tag's sigmoid probability.
    pub probability: f32,
    /// The network's output for the class before softmax or sigmoid.
    pub logit: f32,
}

/// How to predict.
#[derive(Clone, Copy, Debug)]
pub struct PredictOptions {
    /// Single-label: how many classes to return.
    pub top: usize,
    /// Multi-label: overrides the model's threshold.
    pub threshold: Option<f32>,
    /// Augmented copies averaged with the image itself (0 = none).
    pub tta: usize,
    /// Seed of the augmented copies.
    pub seed: u64,
}

impl Default for PredictOptions {
    fn default() -> Self {
        Self {
            top: 3,
            threshold: None,
            tta: 0,
            seed: 42,
        }
    }
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

/// What the network outputs for one image, in class order: each class's probability and its logit
/// (the number before softmax or sigmoid), both averaged over the image and any test-time
/// augmented copies.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageOutputs {
    /// Probabilities.
    pub probabilities: Vec<f32>,
    /// Logits.
    pub logits: Vec<f32>,
}

/// The outputs for the image at `path`, averaged over the image and `tta` augmented copies (the
/// model's training augmentation; side-on when it had none).
pub fn image_outputs(
    model: &SavedModel,
    path: &Path,
    tta: usize,
    seed: u64,
    device: &Device,
) -> Result<ImageOutputs> {
    outputs_of_image(model, &load_image(path)?, tta, seed, device)
}

/// [`image_outputs`] of an image already decoded.
pub fn outputs_of_image(
    model: &SavedModel,
    image: &DynamicImage,
    tta: usize,
    seed: u64,
    device: &Device,
) -> Result<ImageOutputs> {
    let meta = &model.meta;
    let mut views = vec![meta.preprocess.prepare(image)?];
    let augment = match meta.augment {
        Augment::None => Augment::SideOn,
        a => a,
    };
    let mut rng = StdRng::seed_from_u64(seed);
    for _ in 0..tta {
        let p = &meta.preprocess;
        views.push(augment.apply(image, p.crop, p.channels, p.height, &mut rng)?);
    }
    let n = meta.classes.len();
    let mut out = ImageOutputs {
        probabilities: vec![0.0; n],
        logits: vec![0.0; n],
    };
    let share = 1.0 / views.len() as f32;
    for v in &views {
        let logits = model.network.forward(model_input(model, v, device));
        let probs = values(probabilities(logits.clone(), meta.multi_label));
        for (s, p) in out.probabilities.iter_mut().zip(probs) {
            *s += p * share;
        }
        for (s, z) in out.logits.iter_mut().zip(values(logits)) {
            *s += z * share;
        }
    }
    Ok(out)
}

/// What the model predicts for the image at `path`, most probable first: the `top` classes of a
/// single-label model, or every tag above the threshold of a multi-label one.
pub fn predict_image(
    model: &SavedModel,
    path: &Path,
    options: &PredictOptions,
    device: &Device,
) -> Result<Vec<Prediction>> {
    let outputs = image_outputs(model, path, options.tta, options.seed, device)?;
    let scores = Scores::new(&model.meta, outputs, &path.display().to_string())?;
    Ok(if model.meta.multi_label {
        scores.above(options.threshold.unwrap_or(model.meta.threshold))
    } else {
        scores.top(options.top.max(1))
    })
}

/// What a model says about one image: a probability per class, in the model's class order.
#[derive(Clone, Debug, PartialEq)]
pub struct Scores {
    classes: Vec<String>,
    probabilities: Vec<f32>,
    logits: Vec<f32>,
    multi_label: bool,
    threshold: f32,
}

impl Scores {
    /// The model's outputs for one image (`source` names it in errors). A probability
    /// that is not a number is an error naming its class: the weights are damaged.
    pub fn new(meta: &ModelMeta, outputs: ImageOutputs, source: &str) -> Result<Self> {
        let ImageOutputs {
            probabilities,
            logits,
        } = outputs;
        if let Some(bad) = probabilities.iter().position(|p| !p.is_finite()) {
            return Err(Error::Invalid(format!(
                "{source}: the model's output for class '{}' is {} (not a number): its weights \
                 are damaged or it diverged in training; retrain it or use another model",
                meta.classes.get(bad).map_or("?", String::as_str),
                probabilities[bad]
            )));
        }
        Ok(Self {
            classes: meta.classes.clone(),
            probabilities,
            logits,
            multi_label: meta.multi_label,
            threshold: meta.threshold,
        })
    }

    /// The `k` most probable classes, most probable first.
    pub fn top(&self, k: usize) -> Vec<Prediction> {
        let mut ranked = self.all();
        ranked.truncate(k);
        ranked
    }

    /// The most probable class (a model has at least one: [`crate::model_check`] checks that when
    /// it is loaded).
    pub fn best(&self) -> Prediction {
        self.top(1).remove(0)
    }

    /// Every class with its probability, most probable first.
    pub fn all(&self) -> Vec<Prediction> {
        let mut ranked: Vec<Prediction> = self
            .classes
            .iter()
            .zip(self.probabilities.iter().zip(&self.logits))
            .map(|(class, (&probability, &logit))| Prediction {
                class: class.clone(),
                probability,
                logit,
            })
            .collect();
        ranked.sort_by(|a, b| b.probability.total_cmp(&a.probability));
        ranked
    }

    /// The classes whose probability exceeds `threshold`, most probable first.
    pub fn above(&self, threshold: f32) -> Vec<Prediction> {
        let mut ranked = self.all();
        ranked.retain(|p| p.probability > threshold);
        ranked
    }

    /// Multi-label models: the tags above the model's threshold (chosen on its validation set).
    /// For a single-label model, the best class.
    pub fn tags(&self) -> Vec<Prediction> {
        if self.multi_label {
            self.above(self.threshold)
        } else {
            vec![self.best()]
        }
    }

    /// The probability of `class`, if the model has it.
    pub fn probability(&self, class: &str) -> Option<f32> {
        let i = self.classes.iter().position(|c| c == class)?;
        Some(self.probabilities[i])
    }

    /// The probabilities in the model's class order.
    pub fn probabilities(&self) -> &[f32] {
        &self.probabilities
    }

    /// The logits in the model's class order.
    pub fn logits(&self) -> &[f32] {
        &self.logits
    }
}
