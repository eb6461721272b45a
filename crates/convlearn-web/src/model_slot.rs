//! The explorer's model: loaded from a file, or the lesson's small "spreadsheet" network (2 kernels,
//! then 2 kernels of 2×3×3, then a dense layer) trained on generated shapes in the background.

use std::path::Path;
use std::sync::{Arc, RwLock};

use convlearn::data::generate_shapes;
use convlearn::device::inference_device;
use convlearn::learner::{FitConfig, LayerRates};
use convlearn::model_file::SavedModel;
use convlearn::models::ModelPreset;
use convlearn::recipes::train_classifier;
use serde::Serialize;

/// Where the model is.
pub enum SlotState {
    /// Being trained.
    Training,
    /// Ready, with its accuracy on held-out shapes when it is the built-in model.
    Ready(Arc<SavedModel>, Option<f64>),
    /// Training failed.
    Failed(String),
}

/// What the page is told about the model.
#[derive(Clone, Debug, Serialize)]
pub struct ModelStatus {
    /// `training`, `ready` or `failed`.
    pub status: &'static str,
    /// Where it came from.
    pub source: String,
    /// Architecture name.
    pub architecture: Option<String>,
    /// Class (or tag) names.
    pub classes: Vec<String>,
    /// Several tags per image (sigmoid outputs).
    pub multi_label: bool,
    /// The tag threshold (multi-label).
    pub threshold: f32,
    /// Whether `explain` works (plain CNNs).
    pub explainable: bool,
    /// Accuracy on held-out shapes (the built-in model).
    pub accuracy: Option<f64>,
    /// Why it failed.
    pub error: Option<String>,
}

/// The model shared by all requests.
pub struct ModelSlot {
    state: Arc<RwLock<SlotState>>,
    source: String,
}

impl ModelSlot {
    /// Loads a saved model.
    pub fn load(path: &Path) -> convlearn::Result<Self> {
        let model = SavedModel::load(path, &inference_device())?;
        Ok(Self {
            state: Arc::new(RwLock::new(SlotState::Ready(Arc::new(model), None))),
            source: path.display().to_string(),
        })
    }

    /// Trains the spreadsheet network on generated shapes on a background thread (seconds).
    pub fn train_demo_in_background() -> Self {
        let slot = Self {
            state: Arc::new(RwLock::new(SlotState::Training)),
            source: "built in: the spreadsheet network trained on generated shapes".into(),
        };
        let state = slot.state.clone();
        std::thread::spawn(move || {
            // About 3 s on 2 cores; measured 97 % on the held-out shapes.
            let train = generate_shapes(6000, 28, 1);
            let valid = generate_shapes(1200, 28, 2);
            let fit = FitConfig {
                epochs: 6,
                lr: LayerRates::Single(3e-2),
                verbose: false,
                ..FitConfig::default()
            };
            let result = train_classifier(ModelPreset::Spreadsheet, &train, &valid, &fit);
            let next = match result {
                Ok((model, report)) => {
                    SlotState::Ready(Arc::new(model), Some(report.valid_accuracy))
                }
                Err(e) => SlotState::Failed(e.to_string()),
            };
            *state.write().expect("not poisoned") = next;
        });
        slot
    }

    /// The model, when ready.
    pub fn ready(&self) -> Option<Arc<SavedModel>> {
        match &*self.state.read().expect("not poisoned") {
            SlotState::Ready(m, _) => Some(m.clone()),
            _ => None,
        }
    }

    /// Its status for the page.
    pub fn status(&self) -> ModelStatus {
        let mut s = ModelStatus {
            status: "training",
            source: self.source.clone(),
            architecture: None,
            classes: Vec::new(),
            multi_label: false,
            threshold: 0.5,
            explainable: false,
            accuracy: None,
            error: None,
        };
        match &*self.state.read().expect("not poisoned") {
            SlotState::Training => {}
            SlotState::Failed(e) => {
                s.status = "failed";
                s.error = Some(e.clone());
            }
            SlotState::Ready(m, accuracy) => {
                s.status = "ready";
                s.accuracy = *accuracy;
                s.architecture = Some(m.meta.arch.name());
                s.classes = m.meta.classes.clone();
                s.multi_label = m.meta.multi_label;
                s.threshold = m.meta.threshold;
                s.explainable = matches!(m.network, convlearn::models::Network::Plain(_));
            }
        }
        s
    }
}
