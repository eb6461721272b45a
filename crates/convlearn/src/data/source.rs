//! What the learner trains on: any labelled source of same-sized images.

use rand::rngs::StdRng;

use super::{ImageSet, Labels};
use crate::feature_maps::FeatureMaps;

/// A labelled collection of images the learner can batch.
pub trait ImageSource: Sync {
    /// Number of items.
    fn len(&self) -> usize;
    /// True when there are no items.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The class (or, multi-label, the tags) of every item.
    fn labels(&self) -> Labels<'_>;
    /// Class (or tag) names.
    fn classes(&self) -> &[String];
    /// (channels, height, width) of every item.
    fn item_shape(&self) -> [usize; 3];
    /// Item `i` with values in 0..1 (not normalised); with `rng`, a randomly augmented version.
    fn item(&self, i: usize, rng: Option<&mut StdRng>) -> FeatureMaps;
    /// [`ImageSource::item`], or why it cannot be had now (a photo read from disk each time that
    /// changed and no longer decodes); batches leave such items out and count them.
    fn try_item(
        &self,
        i: usize,
        rng: Option<&mut StdRng>,
    ) -> std::result::Result<FeatureMaps, String> {
        Ok(self.item(i, rng))
    }
}

impl ImageSource for ImageSet {
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
        [self.channels, self.height, self.width]
    }
    fn item(&self, i: usize, _rng: Option<&mut StdRng>) -> FeatureMaps {
        self.image(i)
    }
}
