//! One AdamW step as a single parallel pass over a parameter, its gradient and its two moment
//! estimates, written in place. burn's `AdamW` takes about fifteen single-threaded passes per
//! parameter (each a fresh tensor): for ResNet-18's 11.7 M parameters that was a tenth of a training
//! step, spent on one core while the other waited.
//!
//! The arithmetic is burn's, operation for operation in `f32` (so the two give the same bits, which
//! a test checks): `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²`,
//! `p ← p(1 − lr·wd) − lr · (m / (1−β₁ᵗ)) / (√(v / (1−β₂ᵗ)) + ε)`.

use burn::tensor::Tensor;
use multiversion::multiversion;
use rayon::prelude::*;

use super::{FusedOps, fused};

/// Elements one rayon task updates at least.
const MIN_TASK_ELEMENTS: usize = 1 << 15;

/// The hyper-parameters of one AdamW step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamWStep {
    /// Learning rate.
    pub lr: f64,
    /// Decay of the first moment (Adam's momentum).
    pub beta_1: f32,
    /// Decay of the second moment.
    pub beta_2: f32,
    /// Added to the root of the second moment.
    pub epsilon: f32,
    /// Decoupled weight decay (multiplied by the learning rate).
    pub weight_decay: f32,
    /// The step's number, from 1 (bias correction).
    pub time: i32,
}

impl AdamWStep {
    /// Updates `param`, `moment_1` and `moment_2` in place from `grad` (all the same length).
    pub fn apply(
        &self,
        param: &mut [f32],
        grad: &[f32],
        moment_1: &mut [f32],
        moment_2: &mut [f32],
    ) {
        assert!(
            param.len() == grad.len()
                && grad.len() == moment_1.len()
                && grad.len() == moment_2.len(),
            "adamw: parameter ({}), gradient ({}) and moments ({}, {}) differ in length",
            param.len(),
            grad.len(),
            moment_1.len(),
            moment_2.len()
        );
        let (b1, b2) = (self.beta_1, self.beta_2);
        let (c1, c2) = (1.0 - b1.powi(self.time), 1.0 - b2.powi(self.time));
        let constants = StepConstants {
            b1,
            b2,
            f1: 1.0 - b1,
            f2: 1.0 - b2,
            c1,
            c2,
            // burn multiplies by `1 − lr·wd` computed in f64, then rounded to the tensor's f32.
            keep: (1.0 - self.lr * self.weight_decay as f64) as f32,
            lr: self.lr as f32,
            eps: self.epsilon,
        };
        param
            .par_chunks_mut(MIN_TASK_ELEMENTS)
            .zip(grad.par_chunks(MIN_TASK_ELEMENTS))
            .zip(moment_1.par_chunks_mut(MIN_TASK_ELEMENTS))
            .zip(moment_2.par_chunks_mut(MIN_TASK_ELEMENTS))
            .for_each(|(((p, g), m), v)| step_chunk(p, g, m, v, constants));
    }

    /// The same step in burn's tensor ops (any back-end): `(param, moment_1, moment_2)` updated.
    pub fn tensors<const D: usize>(
        &self,
        param: Tensor<D>,
        grad: Tensor<D>,
        moment_1: Tensor<D>,
        moment_2: Tensor<D>,
    ) -> (Tensor<D>, Tensor<D>, Tensor<D>) {
        let (b1, b2) = (self.beta_1, self.beta_2);
        let moment_1 = moment_1.mul_scalar(b1) + grad.clone().mul_scalar(1.0 - b1);
        let moment_2 = moment_2.mul_scalar(b2) + grad.square().mul_scalar(1.0 - b2);
        let delta = moment_1.clone().div_scalar(1.0 - b1.powi(self.time))
            / (moment_2.clone().div_scalar(1.0 - b2.powi(self.time)).sqrt())
                .add_scalar(self.epsilon);
        let keep = 1.0 - self.lr * self.weight_decay as f64;
        let param = param.mul_scalar(keep) - delta.mul_scalar(self.lr);
        (param, moment_1, moment_2)
    }
}

/// One AdamW step: `(param, moment_1, moment_2)` after it. On flex, one parallel pass in place
/// ([`AdamWStep::apply`]); elsewhere burn's ops ([`AdamWStep::tensors`]).
pub fn adamw_step<const D: usize>(
    param: Tensor<D>,
    grad: Tensor<D>,
    moment_1: Tensor<D>,
    moment_2: Tensor<D>,
    step: AdamWStep,
) -> (Tensor<D>, Tensor<D>, Tensor<D>) {
    if !fused(&param) {
        return step.tensors(param, grad, moment_1, moment_2);
    }
    let (p, m, v) = <burn::backend::Dispatch as FusedOps>::adamw_step(
        param.into_dispatch(),
        grad.into_dispatch(),
        moment_1.into_dispatch(),
        moment_2.into_dispatch(),
        step,
    );
    (
        Tensor::from_dispatch(p),
        Tensor::from_dispatch(m),
        Tensor::from_dispatch(v),
    )
}

/// The step's per-value constants: the betas, `1 − β`, the bias corrections `1 − βᵗ`, the
/// weight-decay factor, the rate and ε.
#[derive(Clone, Copy)]
struct StepConstants {
    b1: f32,
    b2: f32,
    f1: f32,
    f2: f32,
    c1: f32,
    c2: f32,
    keep: f32,
    lr: f32,
    eps: f32,
}

/// The step on one chunk of a parameter, its gradient and its moments.
#[multiversion(targets = "simd")]
fn step_chunk(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], k: StepConstants) {
    for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m).zip(v) {
        *m = *m * k.b1 + g * k.f1;
        *v = *v * k.b2 + (g * g) * k.f2;
        let delta = (*m / k.c1) / ((*v / k.c2).sqrt() + k.eps);
        *p = *p * k.keep - delta * k.lr;
    }
}

#[cfg(test)]
mod tests {
    use burn::optim::{AdamWConfig, AdamWState, Optimizer};
    use burn::tensor::{Device, Distribution};

    use super::*;
    use crate::host::values;

    /// Three steps of burn's `AdamW`, of the fused pass and of its tensor-op version, with weight
    /// decay, from the same start: the same bits (70 000 elements: several rayon tasks).
    #[test]
    fn three_steps_give_burns_adamw_bit_for_bit() {
        let device = Device::flex();
        let shape = [70, 1000];
        let mut ours = Tensor::<2>::random(shape, Distribution::Normal(0.0, 1.0), &device);
        let (mut theirs, mut ops) = (ours.clone(), ours.clone());
        let (mut m, mut v) = (Tensor::zeros(shape, &device), Tensor::zeros(shape, &device));
        let (mut ops_m, mut ops_v) = (m.clone(), v.clone());
        let burn_adamw = AdamWConfig::new()
            .with_beta_1(0.85)
            .with_weight_decay(0.01)
            .build();
        let mut state: Option<AdamWState<2>> = None;
        for time in 1..=3 {
            let grad = Tensor::<2>::random(shape, Distribution::Normal(0.0, 2.0), &device);
            let step = AdamWStep {
                lr: 3e-3,
                beta_1: 0.85,
                beta_2: 0.999,
                epsilon: 1e-5,
                weight_decay: 0.01,
                time,
            };
            (ours, m, v) = adamw_step(ours, grad.clone(), m, v, step);
            (ops, ops_m, ops_v) = step.tensors(ops, grad.clone(), ops_m, ops_v);
            (theirs, state) = burn_adamw.step(3e-3, theirs, grad, state);
            let s = state.clone().unwrap().momentum;
            for (what, a, b) in [
                ("parameter", &ours, &theirs),
                ("first moment", &m, &s.moment_1),
                ("second moment", &v, &s.moment_2),
                ("parameter (tensor ops)", &ops, &theirs),
                ("first moment (tensor ops)", &ops_m, &s.moment_1),
                ("second moment (tensor ops)", &ops_v, &s.moment_2),
            ] {
                let (a, b) = (values(a.clone()), values(b.clone()));
                let differ = a.iter().zip(&b).filter(|(x, y)| x != y).count();
                assert_eq!(
                    differ, 0,
                    "step {time}: {what}: {differ} values differ from burn's"
                );
            }
            assert_eq!(s.time, time as usize);
        }
    }
}
