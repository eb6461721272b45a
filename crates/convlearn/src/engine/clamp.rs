//! The activation as a clamp after a convolution's bias, `y = clamp(x + b[c], lower, upper)`, or
//! after a residual block's sum, forward and backward, each one parallel pass.
//!
//! burn's ops take four single-threaded passes when training with a bias: the broadcast add and
//! the ReLU forward; the ReLU's mask and the bias gradient's sum over the batch and the map
//! backward. Here the backward pass masks the output gradient where the activation passed it
//! (`lower < y < upper`, burn's and PyTorch's choice at the bounds) and sums each map's masked
//! gradient in the same pass (BatchNorm's lane sums); the maps' sums are added per channel in `f64`. A residual sum's
//! backward pass is the mask alone, its result the gradient of both terms.

use multiversion::multiversion;
use rayon::prelude::*;

use super::batch_norm::{ChannelLayout, map_sum};
use super::flex::clamp;

/// Values one rayon task handles at least.
const MIN_TASK_ELEMENTS: usize = 1 << 14;

/// `x[i] ← clamp(x[i] · scale[c] + shift[c], lower, upper)` in place for every value of channel
/// `c`: a BatchNorm's running statistics applied after a convolution, or (scale 1) its bias.
pub fn affine_clamp_in_place(
    x: &mut [f32],
    layout: ChannelLayout,
    [scale, shift]: [&[f32]; 2],
    [lower, upper]: [f32; 2],
) {
    assert!(
        scale.len() == layout.channels
            && shift.len() == layout.channels
            && x.len() == layout.count() * layout.channels,
        "affine_clamp: {layout:?} vs {} values, {} scales and {} shifts",
        x.len(),
        scale.len(),
        shift.len()
    );
    if layout.plane == 0 {
        return;
    }
    let channels = layout.channels;
    x.par_chunks_mut(layout.plane)
        .with_min_len(MIN_TASK_ELEMENTS.div_ceil(layout.plane))
        .enumerate()
        .for_each(|(map, values)| {
            let c = map % channels;
            scale_shift_clamp(values, [scale[c], shift[c]], [lower, upper])
        });
}

/// `clamp(y · scale[c] + shift[c], lower, upper)` per output channel `c`, applied by a convolution
/// to each part of its output as soon as that part is written, while it is still in the core's
/// cache: a BatchNorm with running statistics and its activation, without a pass of their own.
#[derive(Clone, Copy, Debug)]
pub struct Epilogue<'a> {
    scale: &'a [f32],
    shift: &'a [f32],
    bounds: [f32; 2],
}

impl<'a> Epilogue<'a> {
    /// The epilogue of a convolution with `channels` output channels. Panics, naming the lengths,
    /// unless `scale` and `shift` have one value per channel.
    pub fn new(channels: usize, [scale, shift]: [&'a [f32]; 2], bounds: [f32; 2]) -> Self {
        assert!(
            scale.len() == channels && shift.len() == channels,
            "conv2d_affine_clamp: {channels} output channels, {} scales and {} shifts",
            scale.len(),
            shift.len()
        );
        Self {
            scale,
            shift,
            bounds,
        }
    }

    /// Applies channel `c`'s map to `values`, outputs of that channel.
    pub fn apply(&self, c: usize, values: &mut [f32]) {
        scale_shift_clamp(values, [self.scale[c], self.shift[c]], self.bounds)
    }
}

/// `v ← clamp(v · s + t, lower, upper)` over one feature map.
#[multiversion(targets = "simd")]
fn scale_shift_clamp(values: &mut [f32], [s, t]: [f32; 2], [lower, upper]: [f32; 2]) {
    for v in values {
        *v = clamp(*v * s + t, lower, upper);
    }
}

/// The backward pass from the output `y` and its gradient `dy`: `dy` becomes the input's gradient
/// in place (zero where the activation clamped), and the bias gradient (its sum per channel) is
/// returned.
pub fn bias_clamp_backward(
    dy: &mut [f32],
    y: &[f32],
    layout: ChannelLayout,
    [lower, upper]: [f32; 2],
) -> Vec<f32> {
    assert!(
        dy.len() == y.len() && y.len() == layout.count() * layout.channels,
        "bias_clamp backward: {layout:?} vs {} outputs and {} gradients",
        y.len(),
        dy.len()
    );
    if layout.plane == 0 {
        return vec![0.0; layout.channels];
    }
    let map_sums: Vec<f64> = dy
        .par_chunks_mut(layout.plane)
        .zip(y.par_chunks(layout.plane))
        .with_min_len(MIN_TASK_ELEMENTS.div_ceil(layout.plane))
        .map(|(g, y)| mask_and_sum(g, y, lower, upper))
        .collect();
    let mut sums = vec![0f64; layout.channels];
    for (map, s) in map_sums.iter().enumerate() {
        sums[map % layout.channels] += s;
    }
    sums.iter().map(|&s| s as f32).collect()
}

/// The backward pass of `clamp(a + b, lower, upper)` from its output `y`: `dy` becomes the gradient
/// of both terms in place (zero where the activation clamped).
pub fn clamp_backward(dy: &mut [f32], y: &[f32], [lower, upper]: [f32; 2]) {
    assert_eq!(
        dy.len(),
        y.len(),
        "clamp backward: {} outputs and {} gradients",
        y.len(),
        dy.len()
    );
    dy.par_chunks_mut(MIN_TASK_ELEMENTS)
        .zip(y.par_chunks(MIN_TASK_ELEMENTS))
        .for_each(|(g, y)| mask(g, y, lower, upper));
}

/// `g` zeroed where the activation clamped its output `y`.
#[multiversion(targets = "simd")]
fn mask(g: &mut [f32], y: &[f32], lower: f32, upper: f32) {
    for (g, &y) in g.iter_mut().zip(y) {
        *g = if (y > lower) & (y < upper) { *g } else { 0.0 };
    }
}

/// One feature map's gradient `g` masked ([`mask`]) and its sum.
fn mask_and_sum(g: &mut [f32], y: &[f32], lower: f32, upper: f32) -> f64 {
    mask(g, y, lower, upper);
    map_sum(g, g, g, |v, _, _| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_case_by_hand() {
        // Two images, two channels of 2 values: biases 1 and −1, ReLU6.
        let layout = ChannelLayout::of(&[2, 2, 2]);
        let mut x = vec![-2.0, 0.5, 3.0, 8.0, 6.0, -0.5, 1.5, 0.0];
        affine_clamp_in_place(&mut x, layout, [&[1.0; 2], &[1.0, -1.0]], [0.0, 6.0]);
        assert_eq!(x, vec![0.0, 1.5, 2.0, 6.0, 6.0, 0.5, 0.5, 0.0]);
        let mut dy = vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        let db = bias_clamp_backward(&mut dy, &x, layout, [0.0, 6.0]);
        // Clamped at 0 or 6: no gradient.
        assert_eq!(dy, vec![0.0, 2.0, 3.0, 0.0, 0.0, 6.0, 7.0, 0.0]);
        assert_eq!(db, vec![2.0 + 6.0, 3.0 + 7.0]);
        // A residual sum's mask alone.
        let mut dy = vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        clamp_backward(&mut dy, &x, [0.0, 6.0]);
        assert_eq!(dy, vec![0.0, 2.0, 3.0, 0.0, 0.0, 6.0, 7.0, 0.0]);
    }
}
