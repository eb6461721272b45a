//! AdamW whose β₁ (Adam's momentum) can change between steps: fastai's one-cycle cycles it against
//! the learning rate (0.95 → 0.85 while the rate warms up, back to 0.95 while it anneals), as
//! PyTorch's `OneCycleLR(cycle_momentum=True)` does with Adam's `betas[0]`.
//!
//! burn's AdamW fixes β₁ when it is built and keeps the moment estimates per parameter; this wrapper
//! keeps those same estimates (burn's `AdamWState`, so checkpoints store them unchanged) and builds
//! the per-step AdamW with the current β₁ — PyTorch's semantics: the new β₁ applies to this step's
//! moment update and bias correction.
//!
//! On flex the step is convlearn's fused pass ([`crate::engine::adamw_step`]): the same arithmetic
//! in one parallel pass per parameter, in place.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use burn::optim::{
    AdamWConfig, AdamWState, AdaptiveMomentumState, LearningRate, ModuleOptimizer, Optimizer,
};
use burn::tensor::{Device, Tensor};

use crate::engine::{self, AdamWStep, adamw_step};

/// burn's (and PyTorch's) β₂.
const BETA_2: f32 = 0.999;
/// burn's ε (PyTorch's is 1e-8).
const EPSILON: f32 = 1e-5;

/// The handle that sets β₁ for the next steps.
#[derive(Clone, Debug)]
pub struct Momentum(Arc<AtomicU32>);

impl Momentum {
    /// Sets β₁.
    pub fn set(&self, beta_1: f64) {
        self.0.store((beta_1 as f32).to_bits(), Ordering::Relaxed);
    }

    /// The current β₁.
    pub fn get(&self) -> f64 {
        f32::from_bits(self.0.load(Ordering::Relaxed)) as f64
    }
}

/// AdamW with a β₁ read at every step from a shared [`Momentum`].
#[derive(Clone)]
pub struct CyclingAdamW {
    beta_1: Momentum,
    weight_decay: f32,
}

impl Optimizer for CyclingAdamW {
    type State<const D: usize> = AdamWState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let amsgrad = matches!(&state, Some(s) if s.momentum.max_moment_2.is_some());
        if engine::fused(&tensor) && !amsgrad {
            // One parallel pass, in place, with burn's arithmetic (same moments, same bits).
            let (time, moment_1, moment_2) = match state {
                Some(s) => (
                    s.momentum.time + 1,
                    s.momentum.moment_1,
                    s.momentum.moment_2,
                ),
                None => (1, grad.zeros_like(), grad.zeros_like()),
            };
            let step = AdamWStep {
                lr,
                beta_1: self.beta_1.get() as f32,
                beta_2: BETA_2,
                epsilon: EPSILON,
                weight_decay: self.weight_decay,
                time: time as i32,
            };
            let (tensor, moment_1, moment_2) = adamw_step(tensor, grad, moment_1, moment_2, step);
            let momentum = AdaptiveMomentumState::new(time, moment_1, moment_2);
            return (tensor, Some(AdamWState::new(momentum)));
        }
        AdamWConfig::new()
            .with_beta_1(self.beta_1.get() as f32)
            .with_beta_2(BETA_2)
            .with_epsilon(EPSILON)
            .with_weight_decay(self.weight_decay)
            .build()
            .step(lr, tensor, grad, state)
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        <burn::optim::AdamW as Optimizer>::to_device(state, device)
    }
}

/// An AdamW optimiser for a whole module (burn's defaults otherwise: β₂ 0.999, ε 1e-5) and the
/// handle that moves its β₁ (starting at 0.9, PyTorch's default).
pub fn adamw_with_momentum(weight_decay: f64) -> (ModuleOptimizer, Momentum) {
    let beta_1 = Momentum(Arc::new(AtomicU32::new(0.9f32.to_bits())));
    let optim = CyclingAdamW {
        beta_1: beta_1.clone(),
        weight_decay: weight_decay as f32,
    };
    (ModuleOptimizer::from(optim), beta_1)
}

#[cfg(test)]
mod tests {
    use burn::module::{Module, Param};
    use burn::optim::GradientsParams;
    use burn::tensor::{Device, Tensor, TensorData};

    use super::*;

    #[derive(Module, Debug)]
    struct Scalar {
        w: Param<Tensor<1>>,
    }

    /// Adam by hand (PyTorch's formula with a per-step β₁, burn's ε): the reference.
    fn adam_by_hand(grads: &[f64], betas: &[f64], lr: f64, w0: f64) -> f64 {
        let (mut m, mut v, mut w) = (0.0, 0.0, w0);
        for (t, (&g, &b1)) in grads.iter().zip(betas).enumerate() {
            m = b1 * m + (1.0 - b1) * g;
            v = 0.999 * v + 0.001 * g * g;
            let m_hat = m / (1.0 - b1.powi(t as i32 + 1));
            let v_hat = v / (1.0 - 0.999f64.powi(t as i32 + 1));
            w -= lr * m_hat / (v_hat.sqrt() + 1e-5);
        }
        w
    }

    #[test]
    fn beta_1_changes_between_steps_as_in_pytorch() {
        let device = Device::flex().autodiff();
        let mut model = Scalar {
            w: Param::from_tensor(Tensor::from_data(TensorData::from([1.0f32]), &device)),
        };
        let (mut optim, momentum) = adamw_with_momentum(0.0);
        // loss = 3 w² → gradient 6 w
        let betas = [0.95, 0.9, 0.85, 0.9];
        let mut grads_seen = Vec::new();
        for &b in &betas {
            momentum.set(b);
            let w = model.w.val();
            grads_seen.push(6.0 * w.clone().into_scalar::<f32>() as f64);
            let loss = w.clone().mul(w).sum().mul_scalar(3.0);
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(0.1, model, grads);
        }
        let got = model.w.val().into_scalar::<f32>() as f64;
        // the reference follows the same gradients, so compare the final weight
        let betas32: Vec<f64> = betas.iter().map(|&b| b as f32 as f64).collect();
        let want = adam_by_hand(&grads_seen, &betas32, 0.1, 1.0);
        assert!((got - want).abs() < 1e-5, "burn {got} vs by hand {want}");
        // and it differs from a fixed β₁ = 0.9
        let fixed = adam_by_hand(&grads_seen, &[0.9; 4], 0.1, 1.0);
        assert!((got - fixed).abs() > 1e-4);
    }
}
