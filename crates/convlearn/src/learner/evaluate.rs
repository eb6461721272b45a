//! What a learner computes without training: loss and scores on a set, predictions (with test-time
//! augmentation), and the body's activations precomputed for head-only training.

use burn::module::Module;
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use super::{
    FeatureSet, Learner, Progress, Scores, SetPredictions, loss_for, predict_set, probabilities,
    score,
};
use crate::data::{Batcher, ImageSource, Normalization};
use crate::error::{Error, Result};
use crate::host::values;
use crate::models::Network;

/// A model's loss and scores on a labelled set.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Evaluation {
    /// Mean loss (cross-entropy or binary cross-entropy).
    pub loss: f64,
    /// Accuracy (and F2 for multi-label) at the model's threshold.
    pub scores: Scores,
}

impl Learner {
    pub(super) fn batcher(
        &self,
        batch_size: usize,
        normalization: Normalization,
        train: bool,
    ) -> Batcher {
        let device = if train {
            self.device.clone()
        } else {
            self.device.clone().without_autodiff()
        };
        Batcher {
            normalization,
            batch_size,
            device,
        }
    }

    /// Probabilities on `set`, as each item is and averaged with `copies` randomly augmented
    /// versions (test-time augmentation with the source's training augmentation).
    pub fn predict_tta(
        &self,
        set: &dyn ImageSource,
        copies: usize,
        batch_size: usize,
        seed: u64,
    ) -> SetPredictions {
        predict_set(
            &self.model.valid(),
            &self.meta,
            set,
            copies,
            batch_size,
            seed,
            &self.device.clone().without_autodiff(),
        )
    }

    /// Mean loss and scores on `set`.
    pub fn evaluate(&self, set: &dyn ImageSource, batch_size: usize) -> Evaluation {
        self.evaluate_with(set, batch_size, false)
    }

    fn evaluate_with(
        &self,
        set: &dyn ImageSource,
        batch_size: usize,
        features: bool,
    ) -> Evaluation {
        self.evaluate_counting(set, batch_size, features).0
    }

    /// The evaluation, on the items that could be read, and how many could not.
    pub(super) fn evaluate_counting(
        &self,
        set: &dyn ImageSource,
        batch_size: usize,
        features: bool,
    ) -> (Evaluation, usize) {
        let run = self.run_over(set, batch_size, features);
        let labels = set.labels().select(&run.items);
        let scores = score(
            &run.probs,
            labels.view(),
            set.classes().len(),
            self.meta.threshold,
        );
        let evaluation = Evaluation {
            loss: run.loss,
            scores,
        };
        (evaluation, run.unreadable)
    }

    /// Probabilities `[len, outputs]` of the head on precomputed activations.
    pub fn predict_features(&self, set: &FeatureSet) -> Vec<f32> {
        self.run_over(set, 256, true).probs
    }

    /// Mean loss and probabilities over the items of `set` that can be read.
    fn run_over(&self, set: &dyn ImageSource, batch_size: usize, features: bool) -> RunOver {
        let model = self.model.valid();
        let norm = self.normalization_for(features);
        let batcher = self.batcher(batch_size, norm, false);
        let mut run = RunOver::default();
        let mut loss_sum = 0.0;
        for idx in batcher.epoch_indices(set.len(), None) {
            let batch = batcher.batch(set, &idx);
            run.unreadable += batch.unreadable.len();
            if batch.indices.is_empty() {
                continue;
            }
            let logits = forward(&model, batch.images, features);
            let loss = loss_for(logits.clone(), batch.targets).into_scalar::<f32>() as f64;
            loss_sum += loss * batch.indices.len() as f64;
            run.probs
                .extend(values(probabilities(logits, self.meta.multi_label)));
            run.items.extend(batch.indices);
        }
        run.loss = loss_sum / run.items.len().max(1) as f64;
        run
    }

    /// The body's pooled activations for every item of `set` that can be read (no augmentation),
    /// computed once.
    pub fn precompute(
        &self,
        set: &dyn ImageSource,
        batch_size: usize,
        title: &str,
        verbose: bool,
    ) -> Result<FeatureSet> {
        let Network::Pretrained(p) = self.model.valid() else {
            return Err(Error::Invalid("precompute needs a pretrained body".into()));
        };
        let batcher = self.batcher(
            batch_size,
            self.meta.preprocess.normalization.clone(),
            false,
        );
        let order = batcher.epoch_indices(set.len(), None);
        let bar = Progress::new(order.len() as u64, title, verbose);
        let (mut features, mut items) = (Vec::new(), Vec::new());
        let mut dim = 0;
        batcher.for_each(set, &order, None, |_, batch| -> Result<()> {
            bar.step(String::new());
            if batch.indices.is_empty() {
                return Ok(());
            }
            let pooled = p.head.pool(p.body.forward(batch.images));
            dim = pooled.dims()[1];
            features.extend(values(pooled));
            items.extend(batch.indices);
            Ok(())
        })?;
        bar.finish();
        let left_out = set.len() - items.len();
        if left_out > 0 && verbose {
            eprintln!(
                "warning: {left_out} photo(s) could not be read any more and were left out of the precomputed activations"
            );
        }
        Ok(FeatureSet {
            values: features,
            dim,
            targets: set.labels().select(&items),
            classes: set.classes().to_vec(),
        })
    }
}

/// What a pass over a set gives: the mean loss and the probabilities `[items, outputs]` of the
/// items that could be read, which items those are, and how many could not be.
#[derive(Default)]
struct RunOver {
    loss: f64,
    probs: Vec<f32>,
    items: Vec<usize>,
    unreadable: usize,
}

/// Logits from images (or, with `features`, from precomputed pooled activations `[b, f, 1, 1]`).
pub(crate) fn forward(model: &Network, x: Tensor<4>, features: bool) -> Tensor<2> {
    match (model, features) {
        (Network::Pretrained(p), true) => p.head.forward_pooled(x.flatten(1, 3)),
        _ => model.forward(x),
    }
}
