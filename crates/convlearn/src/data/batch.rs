//! Turning items into batches of tensors — prepared in parallel on a background thread, ahead of the
//! model, so training is not data-bound.

use std::sync::mpsc::sync_channel;

use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rayon::prelude::*;

use super::{ImageSource, Normalization};

/// A batch: images `[batch, channels, height, width]` and their class indices.
pub struct Batch {
    /// Normalised images.
    pub images: Tensor<4>,
    /// Class index per image.
    pub targets: Tensor<1, Int>,
    /// The same class indices on the host.
    pub labels: Vec<usize>,
    /// Which items of the source these are.
    pub indices: Vec<usize>,
}

/// A batch still on the host.
pub struct HostBatch {
    /// Normalised values, `[n, c, h, w]` row-major.
    pub values: Vec<f32>,
    /// `[n, c, h, w]`.
    pub shape: [usize; 4],
    /// Which items.
    pub indices: Vec<usize>,
    /// Their classes.
    pub labels: Vec<usize>,
}

/// Makes batches of a given size from an [`ImageSource`].
#[derive(Clone, Debug)]
pub struct Batcher {
    /// Applied to 0..1 pixel values.
    pub normalization: Normalization,
    /// Items per batch (the last batch may be smaller).
    pub batch_size: usize,
    /// Where the tensors are created.
    pub device: Device,
}

impl Batcher {
    /// Prepares `indices` in parallel; `augment_seed` makes training items random (reproducibly).
    pub fn host_batch(
        &self,
        source: &dyn ImageSource,
        indices: &[usize],
        augment_seed: Option<u64>,
    ) -> HostBatch {
        let [c, h, w] = source.item_shape();
        let items: Vec<Vec<f32>> = indices
            .par_iter()
            .map(|&i| {
                let mut rng = augment_seed.map(|s| {
                    StdRng::seed_from_u64(s.wrapping_mul(1_000_003).wrapping_add(i as u64))
                });
                let mut values = source.item(i, rng.as_mut()).data;
                self.normalization.apply(&mut values, c);
                values
            })
            .collect();
        HostBatch {
            values: items.concat(),
            shape: [indices.len(), c, h, w],
            indices: indices.to_vec(),
            labels: indices.iter().map(|&i| source.labels()[i]).collect(),
        }
    }

    /// Moves a host batch to the device.
    pub fn to_device(&self, host: HostBatch) -> Batch {
        let images = Tensor::<4>::from_data(TensorData::new(host.values, host.shape), &self.device);
        let targets = Tensor::<1, Int>::from_data(
            TensorData::new(
                host.labels.iter().map(|&l| l as i64).collect::<Vec<_>>(),
                [host.labels.len()],
            ),
            &self.device,
        );
        Batch {
            images,
            targets,
            labels: host.labels,
            indices: host.indices,
        }
    }

    /// One batch of the given items, prepared for evaluation.
    pub fn batch(&self, source: &dyn ImageSource, indices: &[usize]) -> Batch {
        self.to_device(self.host_batch(source, indices, None))
    }

    /// The index lists of one pass over `len` items, shuffled when a seed is given.
    pub fn epoch_indices(&self, len: usize, shuffle_seed: Option<u64>) -> Vec<Vec<usize>> {
        let mut order: Vec<usize> = (0..len).collect();
        if let Some(seed) = shuffle_seed {
            order.shuffle(&mut StdRng::seed_from_u64(seed));
        }
        order
            .chunks(self.batch_size.max(1))
            .map(<[usize]>::to_vec)
            .collect()
    }

    /// Number of batches in one pass over `len` items.
    pub fn num_batches(&self, len: usize) -> usize {
        len.div_ceil(self.batch_size.max(1))
    }

    /// Calls `step` on every batch of `order`, preparing the next two batches on a background thread
    /// while the model works. Stops at the first error `step` returns.
    pub fn for_each<E>(
        &self,
        source: &dyn ImageSource,
        order: &[Vec<usize>],
        augment_seed: Option<u64>,
        mut step: impl FnMut(usize, Batch) -> Result<(), E>,
    ) -> Result<(), E> {
        std::thread::scope(|scope| {
            let (tx, rx) = sync_channel::<HostBatch>(2);
            scope.spawn(move || {
                for (b, idx) in order.iter().enumerate() {
                    let seed = augment_seed.map(|s| s.wrapping_add(b as u64 * 7919));
                    if tx.send(self.host_batch(source, idx, seed)).is_err() {
                        break; // the consumer stopped early
                    }
                }
            });
            for (b, host) in rx.iter().enumerate() {
                step(b, self.to_device(host))?;
            }
            Ok(())
        })
    }
}
