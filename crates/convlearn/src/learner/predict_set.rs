//! A model's probabilities for every item of a set, optionally averaged over augmented copies
//! (test-time augmentation).

use burn::tensor::Device;

use super::probabilities;
use crate::data::{Batcher, ImageSource};
use crate::host::values;
use crate::model_file::ModelMeta;
use crate::models::Network;

/// A model's probabilities `[len, outputs]` (softmax, or a sigmoid per tag) on every item of a set;
/// NaN for an item that could not be read any more ([`ImageSource::try_item`]).
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
    let outputs = set.classes().len();
    let (mut plain, mut sum): (Vec<f32>, Vec<f32>) = (Vec::new(), Vec::new());
    for copy in 0..=copies {
        let augment = (copy > 0).then(|| seed.wrapping_add(copy as u64 * 104_729));
        // An item that cannot be read any more keeps NaN probabilities (and so counts as wrong).
        let mut probs = vec![f32::NAN; set.len() * outputs];
        batcher
            .for_each(set, &order, augment, |_, batch| -> Result<(), ()> {
                if batch.indices.is_empty() {
                    return Ok(());
                }
                let rows = values(probabilities(
                    network.forward(batch.images),
                    meta.multi_label,
                ));
                for (row, &i) in rows.chunks(outputs).zip(&batch.indices) {
                    probs[i * outputs..(i + 1) * outputs].copy_from_slice(row);
                }
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
