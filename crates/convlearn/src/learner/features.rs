//! Precomputed body activations: with the body frozen and no augmentation, the body's output for an
//! image never changes, so it is computed once and the head trains on the cache.

use rand::rngs::StdRng;

use crate::data::{ImageSource, Labels, Targets};
use crate::feature_maps::FeatureMaps;

/// Pooled body activations, one row per image.
pub struct FeatureSet {
    /// `len × dim` values.
    pub values: Vec<f32>,
    /// Features per image.
    pub dim: usize,
    /// Class (or tags) per image.
    pub targets: Targets,
    /// Class names.
    pub classes: Vec<String>,
}

impl ImageSource for FeatureSet {
    fn len(&self) -> usize {
        self.targets.len()
    }
    fn labels(&self) -> Labels<'_> {
        self.targets.view()
    }
    fn classes(&self) -> &[String] {
        &self.classes
    }
    fn item_shape(&self) -> [usize; 3] {
        [self.dim, 1, 1]
    }
    fn item(&self, i: usize, _rng: Option<&mut StdRng>) -> FeatureMaps {
        FeatureMaps::new(
            self.dim,
            1,
            1,
            self.values[i * self.dim..(i + 1) * self.dim].to_vec(),
        )
    }
}
