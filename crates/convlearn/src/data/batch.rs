//! Turning images into batches of tensors: normalise, stack, put on the device.

use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use super::{ImageSet, Normalization};

/// A batch: images `[batch, channels, height, width]` and their class indices.
pub struct Batch {
    /// Normalised images.
    pub images: Tensor<4>,
    /// Class index per image.
    pub targets: Tensor<1, Int>,
    /// The same class indices on the host.
    pub labels: Vec<usize>,
    /// Which images of the set these are.
    pub indices: Vec<usize>,
}

/// Makes batches of a given size from an [`ImageSet`].
#[derive(Clone, Debug)]
pub struct Batcher {
    /// Applied to 0..1 pixel values.
    pub normalization: Normalization,
    /// Images per batch (the last batch may be smaller).
    pub batch_size: usize,
    /// Where the tensors are created.
    pub device: Device,
}

impl Batcher {
    /// Normalised pixel values of `indices`, stacked `[n, c, h, w]` (host side).
    pub fn stack(&self, set: &ImageSet, indices: &[usize]) -> Vec<f32> {
        let n = set.image_len();
        let mut values = Vec::with_capacity(indices.len() * n);
        for &i in indices {
            let start = values.len();
            values.extend(
                set.pixels[i * n..(i + 1) * n]
                    .iter()
                    .map(|&p| p as f32 / 255.0),
            );
            self.normalization.apply(&mut values[start..], set.channels);
        }
        values
    }

    /// One batch of the given images.
    pub fn batch(&self, set: &ImageSet, indices: &[usize]) -> Batch {
        let values = self.stack(set, indices);
        let images = Tensor::<4>::from_data(
            TensorData::new(values, [indices.len(), set.channels, set.height, set.width]),
            &self.device,
        );
        let labels: Vec<usize> = indices.iter().map(|&i| set.labels[i]).collect();
        let targets = Tensor::<1, Int>::from_data(
            TensorData::new(
                labels.iter().map(|&l| l as i64).collect::<Vec<_>>(),
                [labels.len()],
            ),
            &self.device,
        );
        Batch {
            images,
            targets,
            labels,
            indices: indices.to_vec(),
        }
    }

    /// The index lists of one pass over `len` images, shuffled when a seed is given.
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

    /// Number of batches in one pass over `len` images.
    pub fn num_batches(&self, len: usize) -> usize {
        len.div_ceil(self.batch_size.max(1))
    }
}
