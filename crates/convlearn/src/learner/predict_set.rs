//! A model's probabilities for every item of a set, optionally averaged over augmented copies
//! (test-time augmentation).

use burn::tensor::Device;

use super::probabilities;
use crate::data::{Batcher, ImageSource};
use crate::host::values;
use crate::model_file::ModelMeta;
use crate::models::Network;

/// A model's probabilities `[len, outputs]` (softmax, or a sigmoid per tag) on every item of a set.
#[derive(Clone, Debug, PartialEq)]
pub struct SetPredictions {
    /// On each item as it is.
    pub plain: Vec<f32>,
    /// Averaged over the item as it is and the augmented copies (test-time augmentation); equal to
    /// `plain` without copies.
    pub averaged: Vec<f32>,
}

/// The probabilities of `network` on every item of `set`, as it is and averaged with `copies`
/// augmented versions (the set's training augmentation, seeded by `seed`) — one pass over the
/// items per copy. `network` must live on `device` (no autodiff needed).
pub fn predict_set(
    network: &Network,
    meta: &ModelMeta,
    set: &dyn ImageSource,
    copies: usize,
    batch_size: usize,
    seed: u64,
    device: &Device,
) -> SetPredictions {
    let batcher = Batcher {
        normalization: meta.preprocess.normalization.clone(),
        batch_size,
        device: device.clone(),
    };
    let order = batcher.epoch_indices(set.len(), None);
    let (mut plain, mut sum): (Vec<f32>, Vec<f32>) = (Vec::new(), Vec::new());
    for copy in 0..=copies {
        let augment = (copy > 0).then(|| seed.wrapping_add(copy as u64 * 104_729));
        let mut probs = Vec::with_capacity(sum.len());
        batcher
            .for_each(set, &order, augment, |_, batch| -> Result<(), ()> {
                probs.extend(values(probabilities(
                    network.forward(batch.images),
                    meta.multi_label,
                )));
                Ok(())
            })
            .expect("the step never fails");
        if copy == 0 {
            plain = probs.clone();
            sum = probs;
        } else {
            sum.iter_mut().zip(probs).for_each(|(s, p)| *s += p);
        }
    }
    sum.iter_mut().for_each(|s| *s /= (copies + 1) as f32);
    SetPredictions {
        plain,
        averaged: sum,
    }
}
