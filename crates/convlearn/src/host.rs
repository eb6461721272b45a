//! Copying tensors back to host memory.

use burn::tensor::Tensor;

use crate::feature_maps::FeatureMaps;

/// The values of a float tensor, row-major.
pub fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .try_into_vec_as::<f32>()
        .expect("float tensor")
}

/// The first item of a `[batch, c, h, w]` tensor as feature maps.
pub fn first_maps(t: Tensor<4>) -> FeatureMaps {
    let [_, c, h, w] = t.dims();
    let mut data = values(t);
    data.truncate(c * h * w);
    FeatureMaps::new(c, h, w, data)
}
