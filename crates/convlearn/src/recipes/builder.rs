//! [`FineTune`]: fastai's `fine_tune` as a builder over [`TransferConfig`], so the common path is
//! a few chained calls and every option keeps its measured default.

use std::path::{Path, PathBuf};

use super::{TransferConfig, TransferReport, fine_tune};
use crate::data::Dataset;
use crate::error::Result;
use crate::learner::LayerRates;
use crate::model_file::SavedModel;
use crate::models::BackboneKind;

/// Fine-tunes ImageNet-pretrained weights on labelled photos: a new head, the body frozen (with
/// its BatchNorm), the learning rate from the LR finder, one-cycle; then, if asked, everything
/// unfrozen with differential rates.
///
/// ```no_run
/// # fn main() -> convlearn::Result<()> {
/// use convlearn::FineTune;
///
/// let (model, report) = FineTune::new("mobilenet_v2.safetensors")
///     .freeze_epochs(3)
///     .unfrozen_epochs(1)
///     .on_folder("hymenoptera")?;
/// println!("validation accuracy {:.1}%", 100.0 * report.valid_accuracy);
/// model.save("bees.safetensors".as_ref())?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct FineTune {
    config: TransferConfig,
}

impl FineTune {
    /// From pretrained weights (a torchvision state dict, `.safetensors` or `.pth`), with every
    /// other option at [`TransferConfig::default`].
    pub fn new(weights: impl Into<PathBuf>) -> Self {
        Self {
            config: TransferConfig {
                weights: weights.into(),
                ..TransferConfig::default()
            },
        }
    }

    /// The architecture of the weights (recognised from their tensor names when not given).
    pub fn arch(mut self, arch: BackboneKind) -> Self {
        self.config.arch = Some(arch);
        self
    }

    /// Epochs with the body frozen (default 5).
    pub fn freeze_epochs(mut self, epochs: usize) -> Self {
        self.config.freeze_epochs = epochs;
        self
    }

    /// Epochs with everything unfrozen after the frozen ones (default 0).
    pub fn unfrozen_epochs(mut self, epochs: usize) -> Self {
        self.config.epochs = epochs;
        self
    }

    /// Input size in pixels (default: chosen from the photos).
    pub fn size(mut self, pixels: usize) -> Self {
        self.config.size = Some(pixels);
        self
    }

    /// One peak learning rate instead of the LR finder's.
    pub fn lr(mut self, rate: f64) -> Self {
        self.config.lr = Some(LayerRates::Single(rate));
        self
    }

    /// Images per step (default 32).
    pub fn batch_size(mut self, images: usize) -> Self {
        self.config.batch_size = images;
        self
    }

    /// Seed of the split, shuffling, augmentation, dropout and new weights (default 42); see
    /// [`TransferConfig::seed`] for what makes a run repeat bit for bit.
    pub fn seed(mut self, seed: u64) -> Self {
        self.config.seed = seed;
        self
    }

    /// No progress bars or per-epoch lines.
    pub fn quiet(mut self) -> Self {
        self.config.verbose = false;
        self
    }

    /// Every other option.
    pub fn config_mut(&mut self) -> &mut TransferConfig {
        &mut self.config
    }

    /// Trains on `data`; returns the model and what happened.
    pub fn run(&self, data: &Dataset) -> Result<(SavedModel, TransferReport)> {
        fine_tune(data, &self.config)
    }

    /// Trains on a folder of photos (`train/<class>/…` + `valid/<class>/…`, or `<class>/…`).
    pub fn on_folder(&self, dir: impl AsRef<Path>) -> Result<(SavedModel, TransferReport)> {
        self.run(&Dataset::Folder(dir.as_ref().to_path_buf()))
    }
}
