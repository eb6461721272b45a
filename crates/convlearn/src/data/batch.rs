//! Turning items into batches of tensors — prepared in parallel on a background thread, ahead of the
//! model, so training is not data-bound.

use std::sync::mpsc::{TryRecvError, sync_channel};
use std::time::Duration;

use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rayon::prelude::*;

use super::{ImageSource, Normalization, Targets};

/// Waits until `ready` gives a value. On a thread of rayon's pool (the command line's main thread
/// is one, [`crate::device::compute_on_this_thread`]) it runs the pool's pending jobs meanwhile:
/// the batch being waited for is prepared with rayon too, and with `RAYON_NUM_THREADS=1` that
/// thread is the only one that can prepare it.
fn wait_helping<T>(mut ready: impl FnMut() -> Option<T>) -> T {
    loop {
        if let Some(value) = ready() {
            return value;
        }
        if rayon::current_thread_index().is_none()
            || rayon::yield_now() != Some(rayon::Yield::Executed)
        {
            std::thread::sleep(Duration::from_micros(50));
        }
    }
}

/// A batch: images `[batch, channels, height, width]` and what they are labelled with.
pub struct Batch {
    /// Normalised images.
    pub images: Tensor<4>,
    /// Their labels as the loss wants them.
    pub targets: BatchTargets,
    /// Which items of the source these are.
    pub indices: Vec<usize>,
    /// Items asked for that could not be had ([`ImageSource::try_item`]), with why.
    pub unreadable: Vec<(usize, String)>,
}

/// Labels of a batch on the device.
#[derive(Clone, Debug)]
pub enum BatchTargets {
    /// Class index per image `[batch]` (cross-entropy).
    Classes(Tensor<1, Int>),
    /// 0/1 per image and tag `[batch, tags]` (binary cross-entropy).
    Tags(Tensor<2>),
}

impl BatchTargets {
    /// The same targets on another device.
    pub fn to_device(self, device: &Device) -> Self {
        match self {
            BatchTargets::Classes(t) => {
                BatchTargets::Classes(Tensor::from_data(t.into_data(), device))
            }
            BatchTargets::Tags(t) => BatchTargets::Tags(Tensor::from_data(t.into_data(), device)),
        }
    }
}

/// A batch still on the host.
pub struct HostBatch {
    /// Normalised values, `[n, c, h, w]` row-major.
    pub values: Vec<f32>,
    /// `[n, c, h, w]`.
    pub shape: [usize; 4],
    /// Which items.
    pub indices: Vec<usize>,
    /// Items asked for that could not be had, with why (left out of `values`).
    pub unreadable: Vec<(usize, String)>,
    /// Their labels.
    pub targets: Targets,
    /// Number of classes (or tags) the model outputs.
    pub outputs: usize,
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
    /// Items the source cannot give now are left out and listed in [`HostBatch::unreadable`].
    pub fn host_batch(
        &self,
        source: &dyn ImageSource,
        indices: &[usize],
        augment_seed: Option<u64>,
    ) -> HostBatch {
        let [c, h, w] = source.item_shape();
        let items: Vec<(usize, Result<Vec<f32>, String>)> = indices
            .par_iter()
            .map(|&i| {
                let mut rng = augment_seed.map(|s| {
                    StdRng::seed_from_u64(s.wrapping_mul(1_000_003).wrapping_add(i as u64))
                });
                let item = source.try_item(i, rng.as_mut()).map(|maps| {
                    let mut values = maps.data;
                    self.normalization.apply(&mut values, c);
                    values
                });
                (i, item)
            })
            .collect();
        let (mut values, mut kept, mut unreadable) = (Vec::new(), Vec::new(), Vec::new());
        for (i, item) in items {
            match item {
                Ok(v) => {
                    values.extend(v);
                    kept.push(i);
                }
                Err(why) => unreadable.push((i, why)),
            }
        }
        HostBatch {
            values,
            shape: [kept.len(), c, h, w],
            targets: source.labels().select(&kept),
            indices: kept,
            unreadable,
            outputs: source.classes().len(),
        }
    }

    /// Moves a host batch to the device.
    pub fn to_device(&self, host: HostBatch) -> Batch {
        let images = Tensor::<4>::from_data(TensorData::new(host.values, host.shape), &self.device);
        let n = host.indices.len();
        let targets = match &host.targets {
            Targets::Classes(c) => BatchTargets::Classes(Tensor::from_data(
                TensorData::new(c.iter().map(|&l| l as i64).collect::<Vec<_>>(), [n]),
                &self.device,
            )),
            Targets::Tags(_) => {
                let rows: Vec<f32> = (0..n)
                    .flat_map(|i| host.targets.view().multi_hot(i, host.outputs))
                    .collect();
                BatchTargets::Tags(Tensor::from_data(
                    TensorData::new(rows, [n, host.outputs]),
                    &self.device,
                ))
            }
        };
        Batch {
            images,
            targets,
            indices: host.indices,
            unreadable: host.unreadable,
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
        step: impl FnMut(usize, Batch) -> Result<(), E>,
    ) -> Result<(), E> {
        self.for_each_from(source, order, 0, augment_seed, step)
    }

    /// [`Batcher::for_each`] from batch `first` of `order` on (a resumed epoch): each batch is
    /// numbered, and augmented, as in a whole pass.
    pub fn for_each_from<E>(
        &self,
        source: &dyn ImageSource,
        order: &[Vec<usize>],
        first: usize,
        augment_seed: Option<u64>,
        mut step: impl FnMut(usize, Batch) -> Result<(), E>,
    ) -> Result<(), E> {
        std::thread::scope(|scope| {
            let (tx, rx) = sync_channel::<HostBatch>(2);
            let producer = scope.spawn(move || {
                for (b, idx) in order.iter().enumerate().skip(first) {
                    let seed = augment_seed.map(|s| s.wrapping_add(b as u64 * 7919));
                    if tx.send(self.host_batch(source, idx, seed)).is_err() {
                        break; // the consumer stopped early
                    }
                }
            });
            let mut result = Ok(());
            let mut b = first;
            while let Some(host) = wait_helping(|| match rx.try_recv() {
                Ok(host) => Some(Some(host)),
                Err(TryRecvError::Empty) => None,
                Err(TryRecvError::Disconnected) => Some(None),
            }) {
                result = step(b, self.to_device(host));
                if result.is_err() {
                    break;
                }
                b += 1;
            }
            // An early stop: the producer's next send fails; let it finish its batch first.
            drop(rx);
            wait_helping(|| producer.is_finished().then_some(()));
            result
        })
    }
}
