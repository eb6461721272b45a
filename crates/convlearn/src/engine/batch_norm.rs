//! BatchNorm with the batch's statistics (training), followed by its activation, forward and
//! backward, each as two parallel passes.
//!
//! burn's `batch_norm_train` builds the statistics from tensor ops — a transposed copy of the
//! activations per statistic, a subtraction, a square, a normalisation of four passes — and its
//! backward pass takes a dozen more, each on one thread and each a fresh tensor; the ReLU after it
//! is two more (forward, and its mask backward). Here:
//!
//! - forward: per channel (one rayon task per group of channels) the mean, then the biased
//!   variance of the centred values; then per feature map `clamp(x · scale + shift)`, with
//!   `scale = γ / √(var + ε)` and `shift = β − mean · scale`;
//! - backward: per channel `Σ dz` and `Σ dz · (x − mean)`, where `dz` is the output gradient where
//!   the activation passed it (`lower < y < upper`); they are β's and (times `1/σ`) γ's gradients;
//!   then per feature map `dx = γ/σ · (dz − mean(dz) − x̂ · mean(dz · x̂))`.
//!
//! Sums run in 16 `f32` lanes per feature map, added up in `f64`.

use std::mem::MaybeUninit;

use multiversion::multiversion;
use rayon::prelude::*;

/// Values one rayon task handles at least.
const MIN_TASK_ELEMENTS: usize = 1 << 14;
/// Independent partial sums per feature map (vectorised by the compiler).
const LANES: usize = 16;

/// How a `[batch, channels, …]` tensor splits into feature maps: `batch × channels` maps of
/// `plane` values, map `n · channels + c` belonging to channel `c`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelLayout {
    /// Images.
    pub batch: usize,
    /// Channels (dimension 1).
    pub channels: usize,
    /// Values per feature map (the product of the dimensions after 1; 1 for `[batch, features]`).
    pub plane: usize,
}

impl ChannelLayout {
    /// The layout of `shape` (at least two dimensions).
    pub fn of(shape: &[usize]) -> Self {
        assert!(
            shape.len() >= 2,
            "a channel layout: expected [batch, channels, …], got {shape:?}"
        );
        Self {
            batch: shape[0],
            channels: shape[1],
            plane: shape[2..].iter().product(),
        }
    }

    /// Values per channel over the batch (the statistics' count).
    pub fn count(&self) -> usize {
        self.batch * self.plane
    }

    fn len(&self) -> usize {
        self.batch * self.channels * self.plane
    }

    /// Channel `c`'s feature maps in `values`.
    fn maps<'a>(&self, values: &'a [f32], c: usize) -> impl Iterator<Item = &'a [f32]> + Clone {
        let (channels, plane) = (self.channels, self.plane);
        (0..self.batch).map(move |n| &values[(n * channels + c) * plane..][..plane])
    }

    /// Channels per rayon task.
    fn channels_per_task(&self) -> usize {
        MIN_TASK_ELEMENTS.div_ceil(self.count().max(1))
    }

    /// Feature maps per rayon task.
    fn maps_per_task(&self) -> usize {
        MIN_TASK_ELEMENTS.div_ceil(self.plane.max(1))
    }
}

/// `Σ f(a[i], b[i], c[i])` over one feature map, in [`LANES`] partial sums.
#[multiversion(targets = "simd")]
pub(super) fn map_sum(a: &[f32], b: &[f32], c: &[f32], f: impl Fn(f32, f32, f32) -> f32) -> f64 {
    let mut lanes = [0f32; LANES];
    let (ac, bc, cc) = (
        a.chunks_exact(LANES),
        b.chunks_exact(LANES),
        c.chunks_exact(LANES),
    );
    let rest: f64 = (ac
        .remainder()
        .iter()
        .zip(bc.remainder())
        .zip(cc.remainder()))
    .map(|((&a, &b), &c)| f(a, b, c) as f64)
    .sum();
    for ((a, b), c) in ac.zip(bc).zip(cc) {
        for i in 0..LANES {
            lanes[i] += f(a[i], b[i], c[i]);
        }
    }
    lanes.iter().map(|&s| s as f64).sum::<f64>() + rest
}

/// Per channel of `x`: the mean and the biased variance (PyTorch's and burn's batch statistics).
pub fn channel_statistics(x: &[f32], layout: ChannelLayout) -> (Vec<f32>, Vec<f32>) {
    assert_eq!(
        x.len(),
        layout.len(),
        "batch_norm: {layout:?} vs {} values",
        x.len()
    );
    let count = layout.count().max(1) as f64;
    (0..layout.channels)
        .into_par_iter()
        .with_min_len(layout.channels_per_task())
        .map(|c| {
            let maps = layout.maps(x, c);
            let sum: f64 = maps.clone().map(|m| map_sum(m, m, m, |v, _, _| v)).sum();
            let mean = (sum / count) as f32;
            let squares: f64 = maps
                .map(|m| map_sum(m, m, m, |v, _, _| (v - mean) * (v - mean)))
                .sum();
            (mean, (squares / count) as f32)
        })
        .unzip()
}

/// `clamp(x · scale[c] + shift[c], lower, upper)` for every value of channel `c`, in a new vector.
pub fn normalize(
    x: &[f32],
    layout: ChannelLayout,
    scale: &[f32],
    shift: &[f32],
    [lower, upper]: [f32; 2],
) -> Vec<f32> {
    let channels = layout.channels;
    let mut out = Vec::with_capacity(x.len());
    if layout.plane > 0 {
        out.spare_capacity_mut()[..x.len()]
            .par_chunks_mut(layout.plane)
            .zip(x.par_chunks(layout.plane))
            .with_min_len(layout.maps_per_task())
            .enumerate()
            .for_each(|(map, (o, x))| {
                let (s, t) = (scale[map % channels], shift[map % channels]);
                normalize_map(o, x, [s, t], [lower, upper]);
            });
    }
    // SAFETY: the loop above wrote every one of the `x.len()` values (`layout.plane` divides it).
    unsafe { out.set_len(x.len()) };
    out
}

/// `o = clamp(x · s + t, lower, upper)` over one feature map.
#[multiversion(targets = "simd")]
fn normalize_map(
    o: &mut [MaybeUninit<f32>],
    x: &[f32],
    [s, t]: [f32; 2],
    [lower, upper]: [f32; 2],
) {
    for (o, &x) in o.iter_mut().zip(x) {
        o.write(super::flex::clamp(x * s + t, lower, upper));
    }
}

/// The batch statistics' per-channel scale `γ / √(var + ε)` and shift `β − mean · scale`, and
/// `1 / √(var + ε)`.
pub fn affine(
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    variance: &[f32],
    epsilon: f64,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let inv_std: Vec<f32> = variance
        .iter()
        .map(|&v| (1.0 / (v as f64 + epsilon).sqrt()) as f32)
        .collect();
    let scale: Vec<f32> = gamma.iter().zip(&inv_std).map(|(g, s)| g * s).collect();
    let shift = beta
        .iter()
        .zip(mean.iter().zip(&scale))
        .map(|(b, (m, s))| b - m * s)
        .collect();
    (scale, shift, inv_std)
}

/// What the backward pass needs from the forward one.
pub struct BatchNormSaved<'a> {
    /// The input.
    pub x: &'a [f32],
    /// The output (after the activation; its mask).
    pub y: &'a [f32],
    /// Its layout.
    pub layout: ChannelLayout,
    /// γ.
    pub gamma: &'a [f32],
    /// The batch means.
    pub mean: &'a [f32],
    /// `1 / √(var + ε)` per channel.
    pub inv_std: &'a [f32],
    /// The activation's clamp: the gradient passes where `lower < y < upper`.
    pub bounds: [f32; 2],
}

/// The gradients of the input (when `want_dx`), γ and β from the output's gradient `dy`.
pub fn batch_norm_backward(
    saved: &BatchNormSaved<'_>,
    dy: &[f32],
    want_dx: bool,
) -> (Option<Vec<f32>>, Vec<f32>, Vec<f32>) {
    let BatchNormSaved {
        x,
        y,
        layout,
        gamma,
        mean,
        inv_std,
        bounds: [lower, upper],
    } = *saved;
    assert!(
        x.len() == layout.len() && y.len() == x.len() && dy.len() == x.len(),
        "batch_norm backward: {layout:?} vs {} inputs, {} outputs, {} gradients",
        x.len(),
        y.len(),
        dy.len()
    );
    let pass = move |y: f32, g: f32| if (y > lower) & (y < upper) { g } else { 0.0 };
    // Per channel: Σ dz and Σ dz · (x − mean).
    let (sum_dz, sum_dz_centred): (Vec<f64>, Vec<f64>) = (0..layout.channels)
        .into_par_iter()
        .with_min_len(layout.channels_per_task())
        .map(|c| {
            let m = mean[c];
            layout
                .maps(x, c)
                .zip(layout.maps(y, c))
                .zip(layout.maps(dy, c))
                .map(|((x, y), g)| {
                    (
                        map_sum(y, g, g, |y, g, _| pass(y, g)),
                        map_sum(x, y, g, |x, y, g| pass(y, g) * (x - m)),
                    )
                })
                .fold((0.0, 0.0), |(a, b), (p, q)| (a + p, b + q))
        })
        .unzip();
    let beta_grad: Vec<f32> = sum_dz.iter().map(|&s| s as f32).collect();
    let gamma_grad: Vec<f32> = (sum_dz_centred.iter().zip(inv_std))
        .map(|(&s, &i)| (s * i as f64) as f32)
        .collect();
    if !want_dx || layout.plane == 0 {
        return (None, gamma_grad, beta_grad);
    }
    // dx = k·(dz − a) − b·(x − mean), k = γ/σ, a = mean(dz), b = k · mean(dz·(x − mean)) / σ².
    let count = layout.count().max(1) as f64;
    let per_channel: Vec<[f32; 4]> = (0..layout.channels)
        .map(|c| {
            let i = inv_std[c] as f64;
            let k = gamma[c] as f64 * i;
            let a = sum_dz[c] / count;
            let b = k * sum_dz_centred[c] / count * i * i;
            [k as f32, (k * a) as f32, b as f32, mean[c]]
        })
        .collect();
    let channels = layout.channels;
    let mut dx = Vec::with_capacity(x.len());
    dx.spare_capacity_mut()[..x.len()]
        .par_chunks_mut(layout.plane)
        .zip(x.par_chunks(layout.plane))
        .zip(y.par_chunks(layout.plane))
        .zip(dy.par_chunks(layout.plane))
        .with_min_len(layout.maps_per_task())
        .enumerate()
        .for_each(|(map, (((d, x), y), g))| {
            input_gradient_map(d, [x, y, g], per_channel[map % channels], [lower, upper])
        });
    // SAFETY: the loop above wrote every one of the `x.len()` values.
    unsafe { dx.set_len(x.len()) };
    (Some(dx), gamma_grad, beta_grad)
}

/// One feature map's input gradient `d = k·(dz − a) − b·(x − mean)` from its input `x`, output
/// `y` and output gradient `g` (`dz` is `g` where `lower < y < upper`), with the channel's
/// `[k, k·a, b, mean]`.
#[multiversion(targets = "simd")]
fn input_gradient_map(
    d: &mut [MaybeUninit<f32>],
    [x, y, g]: [&[f32]; 3],
    [k, ka, b, m]: [f32; 4],
    [lower, upper]: [f32; 2],
) {
    for (((d, &x), &y), &g) in d.iter_mut().zip(x).zip(y).zip(g) {
        let dz = if (y > lower) & (y < upper) { g } else { 0.0 };
        d.write(k * dz - ka - b * (x - m));
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, Tensor, TensorData};

    use crate::engine::{Activation, batch_norm_train};
    use crate::host::values;

    /// `a` and `b` equal within `tol` of the larger magnitude in `b`.
    fn assert_close(a: Vec<f32>, b: Vec<f32>, tol: f32, what: &str) {
        assert_eq!(a.len(), b.len(), "{what}: length");
        let scale = b.iter().fold(1f32, |m, v| m.max(v.abs()));
        for (i, (p, q)) in a.iter().zip(&b).enumerate() {
            assert!(
                (p - q).abs() <= tol * scale,
                "{what}[{i}] is {p}, burn's {q}"
            );
        }
    }

    /// Output, batch statistics and the gradients of x, γ and β against burn's `batch_norm_train`
    /// followed by its activation, for feature maps, a `[batch, features]` head and a map size
    /// that is not a multiple of the 16 lanes.
    #[test]
    fn forward_and_gradients_match_burns_batch_norm_and_activation() {
        let device = Device::flex().autodiff();
        let shapes: [&[usize]; 3] = [&[4, 6, 9, 7], &[5, 12], &[2, 3, 40, 40]];
        for shape in shapes {
            let channels = shape[1];
            for activation in [Activation::Identity, Activation::Relu, Activation::Relu6] {
                let n: usize = shape.iter().product();
                // Mean 1, spread 3: ReLU6 clips at both ends. Drawn from a seeded generator (the
                // device's is shared by the tests running at once): with random data, a value a
                // rounding away from 0 or 6 could fall on either side of the clip in the two
                // computations, now and then, and flip that element's mask.
                let x = normal_values(n, 1.0, 3.0, n as u64);
                let gamma: Vec<f32> = (0..channels).map(|c| 0.5 + c as f32 * 0.3).collect();
                let beta: Vec<f32> = (0..channels).map(|c| c as f32 * 0.7 - 1.0).collect();
                let weights: Vec<f32> = (0..n).map(|i| (i % 7) as f32 - 3.0).collect();
                let run = |ours: bool| {
                    let x =
                        Tensor::<4>::from_data(TensorData::new(x.clone(), pad4(shape)), &device)
                            .require_grad();
                    let g = Tensor::<1>::from_floats(gamma.as_slice(), &device).require_grad();
                    let b = Tensor::<1>::from_floats(beta.as_slice(), &device).require_grad();
                    let (y, mean, var) = if ours {
                        batch_norm_train(x.clone(), g.clone(), b.clone(), 1e-5, activation)
                    } else {
                        let r = burn::tensor::module::batch_norm_train(
                            x.clone(),
                            g.clone(),
                            b.clone(),
                            1e-5,
                        );
                        (activation.apply(r.output), r.mean, r.variance)
                    };
                    let w = Tensor::<4>::from_data(
                        TensorData::new(weights.clone(), pad4(shape)),
                        &device,
                    );
                    let grads = (y.clone() * w).sum().backward();
                    [
                        values(y),
                        values(mean),
                        values(var),
                        values(x.grad(&grads).unwrap()),
                        values(g.grad(&grads).unwrap()),
                        values(b.grad(&grads).unwrap()),
                    ]
                };
                let (ours, theirs) = (run(true), run(false));
                let names = ["output", "mean", "variance", "d/dx", "d/dgamma", "d/dbeta"];
                for ((what, a), b) in names.iter().zip(ours).zip(theirs) {
                    let what = format!("{shape:?} {activation:?}: {what}");
                    assert_close(a, b, 2e-5, &what);
                }
            }
        }
    }

    /// `n` values drawn from N(`mean`, `std`²) by a generator seeded with `seed` (Box–Muller).
    fn normal_values(n: usize, mean: f32, std: f32, seed: u64) -> Vec<f32> {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        (0..n)
            .map(|_| {
                let (u, v): (f32, f32) = (rng.random_range(1e-7..1.0), rng.random());
                mean + std * (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
            })
            .collect()
    }

    /// `shape` as four dimensions (trailing 1s): the `[batch, features]` case as `[b, f, 1, 1]`.
    fn pad4(shape: &[usize]) -> [usize; 4] {
        let mut dims = [1; 4];
        dims[..shape.len()].copy_from_slice(shape);
        dims
    }

    /// Two channels of two values, by hand: means 2 and 0, variances 1 and 4; γ = (1, 2), β = (0, 1).
    #[test]
    fn a_small_batch_by_hand() {
        let device = Device::flex().autodiff();
        let x = Tensor::<2>::from_floats([[1.0, -2.0], [3.0, 2.0]], &device).require_grad();
        let gamma = Tensor::<1>::from_floats([1.0, 2.0], &device).require_grad();
        let beta = Tensor::<1>::from_floats([0.0, 1.0], &device).require_grad();
        let (y, mean, var) =
            batch_norm_train(x.clone(), gamma.clone(), beta, 0.0, Activation::Relu);
        assert_eq!(values(mean), vec![2.0, 0.0]);
        assert_eq!(values(var), vec![1.0, 4.0]);
        // x̂ = [[-1, -1], [1, 1]]; y = relu(γ·x̂ + β) = [[0, 0], [1, 3]].
        assert_eq!(values(y.clone()), vec![0.0, 0.0, 1.0, 3.0]);
        let grads = y.sum().backward();
        // Only the second row passes ReLU: dγ = Σ dz·x̂ = 1 per channel.
        assert_eq!(values(gamma.grad(&grads).unwrap()), vec![1.0, 1.0]);
        // dx = γ/σ·(dz − mean(dz) − x̂·mean(dz·x̂)) = γ/σ·(dz − ½ − x̂/2): channel 0 (σ 1) gives
        // −½+½ = 0 and ½−½ = 0; channel 1 (σ 2, γ 2) the same.
        assert_eq!(values(x.grad(&grads).unwrap()), vec![0.0, 0.0, 0.0, 0.0]);
    }
}
