//! The record of a training run: loss per batch and metrics per epoch, with its PNG.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::plot::{Panel, Series, plot_curves, plot_panels};

/// Metrics at the end of one epoch.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean training loss over the epoch.
    pub train_loss: f64,
    /// Loss on the validation set.
    pub valid_loss: f64,
    /// Accuracy on the validation set (multi-label: per image and tag, at the threshold).
    pub valid_accuracy: f64,
    /// Multi-label: F2 on the validation set at the threshold.
    #[serde(default)]
    pub valid_f2: Option<f64>,
    /// Seconds the epoch took (training and validation).
    pub seconds: f64,
    /// Photos that could not be read in this epoch's training and validation passes (changed on
    /// disk since they were checked); they were left out of their batches.
    #[serde(default)]
    pub unreadable: usize,
}

/// Everything recorded while training.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct History {
    /// (step, training loss) per batch.
    pub batch_losses: Vec<(usize, f64)>,
    /// (step, learning rate) per batch.
    pub learning_rates: Vec<(usize, f64)>,
    /// (step, AdamW's β₁) per batch.
    #[serde(default)]
    pub momentums: Vec<(usize, f64)>,
    /// Per-epoch metrics.
    pub epochs: Vec<EpochRecord>,
    /// Batches per epoch.
    pub steps_per_epoch: usize,
}

impl History {
    /// Draws the schedule to `path`: the learning rate of the last layer group per batch, and below
    /// it AdamW's β₁ (momentum), which one-cycle moves the other way.
    pub fn plot_schedule(&self, path: &Path) -> Result<()> {
        let points = |v: &[(usize, f64)]| v.iter().map(|&(s, y)| (s as f64, y)).collect();
        let rate = [Series {
            name: "learning rate".into(),
            points: points(&self.learning_rates),
        }];
        let momentum = [Series {
            name: "β₁".into(),
            points: points(&self.momentums),
        }];
        let mut panels = vec![Panel {
            y_label: "learning rate (last layer group)",
            series: &rate,
        }];
        if !self.momentums.is_empty() {
            panels.push(Panel {
                y_label: "momentum (AdamW β₁)",
                series: &momentum,
            });
        }
        plot_panels(
            path,
            "Learning-rate and momentum schedule",
            "batches",
            &panels,
        )
    }

    /// Draws the training loss (per batch, smoothed) and the validation loss (per epoch) to `path`.
    pub fn plot_loss(&self, path: &Path) -> Result<()> {
        let mut smooth = Vec::with_capacity(self.batch_losses.len());
        let mut avg = 0.0;
        for (i, &(step, loss)) in self.batch_losses.iter().enumerate() {
            // fastai's debiased exponential moving average (β = 0.98)
            avg = 0.98 * avg + 0.02 * loss;
            smooth.push((step as f64, avg / (1.0 - 0.98f64.powi(i as i32 + 1))));
        }
        let per = self.steps_per_epoch.max(1) as f64;
        let valid = self
            .epochs
            .iter()
            .map(|e| (e.epoch as f64 * per, e.valid_loss))
            .collect();
        plot_curves(
            path,
            "Loss while training",
            "batches",
            "loss",
            &[
                Series {
                    name: "training loss (smoothed)".into(),
                    points: smooth,
                },
                Series {
                    name: "validation loss (end of epoch)".into(),
                    points: valid,
                },
            ],
        )
    }

    /// Draws, per epoch, the training and validation loss and the validation accuracy (and F2 for
    /// multi-label models) to `path`.
    pub fn plot_metrics(&self, path: &Path) -> Result<()> {
        let per_epoch = |f: &dyn Fn(&EpochRecord) -> Option<f64>| -> Vec<(f64, f64)> {
            self.epochs
                .iter()
                .filter_map(|e| f(e).map(|v| (e.epoch as f64, v)))
                .collect()
        };
        let mut series = vec![
            Series {
                name: "training loss".into(),
                points: per_epoch(&|e| Some(e.train_loss)),
            },
            Series {
                name: "validation loss".into(),
                points: per_epoch(&|e| Some(e.valid_loss)),
            },
            Series {
                name: "validation accuracy".into(),
                points: per_epoch(&|e| Some(e.valid_accuracy)),
            },
        ];
        let f2 = per_epoch(&|e| e.valid_f2);
        if !f2.is_empty() {
            series.push(Series {
                name: "validation F2".into(),
                points: f2,
            });
        }
        plot_curves(
            path,
            "Loss and metrics per epoch",
            "epoch",
            "value",
            &series,
        )
    }
}
