//! One optimisation step — forward, loss, a finiteness check, backward, AdamW at per-group rates —
//! shared by the training loop ([`super::Learner::fit`]) and the learning-rate finder.

use burn::module::{Module, ParamGroup};
use burn::optim::lr_scheduler::module_lr_scheduler::ModuleLrScheduler;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::Tensor;

use super::evaluate::forward;
use super::groups::group_params;
use super::{Learner, Momentum, adamw_with_momentum, loss_for};
use crate::data::{Batch, Batcher, Normalization};
use crate::models::{Body, Network};

/// A loss that is NaN or infinite: the step was not taken.
#[derive(Clone, Copy, Debug)]
pub(crate) struct NotFinite(pub f64);

/// The optimiser and what every step of a phase shares: the layer groups the rates apply to and,
/// with the whole body frozen, the body on the plain device.
pub(crate) struct Stepper {
    /// AdamW with its moment estimates.
    pub optim: ModuleOptimizer,
    /// β₁ of the next step.
    pub momentum: Momentum,
    groups: Vec<ParamGroup>,
    /// With the whole body frozen, it runs without autodiff bookkeeping and only its pooled
    /// output enters the graph: the same result, much faster.
    frozen_body: Option<Body>,
    /// The inputs are precomputed body activations ([`super::Learner::precompute`]).
    features: bool,
}

impl Stepper {
    /// A fresh AdamW (decoupled weight decay `weight_decay`) for `learner`'s current freezing.
    pub fn new(learner: &Learner, weight_decay: f64, features: bool) -> Self {
        let frozen_body = match (&learner.model, features) {
            (Network::Pretrained(_), false)
                if learner.frozen_before + 1 == learner.num_groups() =>
            {
                match learner.model.valid() {
                    Network::Pretrained(p) => Some(p.body),
                    Network::Plain(_) => None,
                }
            }
            _ => None,
        };
        let (optim, momentum) = adamw_with_momentum(weight_decay);
        Self {
            optim,
            momentum,
            groups: group_params(&learner.model),
            frozen_body,
            features,
        }
    }

    /// Number of layer groups the rates of [`Stepper::step`] are for.
    pub fn num_groups(&self) -> usize {
        self.groups.len()
    }

    /// The batcher of the phase: images on the autodiff device unless only the head sees them.
    pub fn batcher(&self, learner: &Learner, batch_size: usize, norm: Normalization) -> Batcher {
        learner.batcher(batch_size, norm, self.frozen_body.is_none())
    }

    /// Trains `learner.model` one step on `batch`, group `g` at `rates[g]`, and returns the loss
    /// before the step; a loss that is not finite leaves the weights as they were.
    pub fn step(
        &mut self,
        learner: &mut Learner,
        batch: Batch,
        rates: &[f64],
    ) -> Result<f64, NotFinite> {
        let model = learner.model.clone();
        let (logits, targets) = match (&self.frozen_body, &model) {
            (Some(body), Network::Pretrained(p)) => {
                let pooled = p.head.pool(body.forward(batch.images));
                let pooled = Tensor::<2>::from_data(pooled.into_data(), &learner.device);
                (
                    p.head.forward_pooled(pooled),
                    batch.targets.to_device(&learner.device),
                )
            }
            _ => (forward(&model, batch.images, self.features), batch.targets),
        };
        let loss = loss_for(logits, targets);
        let value = loss.clone().into_scalar::<f32>() as f64;
        if !value.is_finite() {
            return Err(NotFinite(value));
        }
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let mut lrs = ModuleLrScheduler::new(rates[0]);
        for (group, &rate) in self.groups.iter().zip(rates).skip(1) {
            lrs = lrs.with_group(group.clone(), rate);
        }
        learner.model = self.optim.step(lrs.step(), model, grads);
        Ok(value)
    }
}
