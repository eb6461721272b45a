//! BatchNorm with PyTorch's semantics.
//!
//! burn 0.22's `BatchNorm` updates `running_var` with the *biased* batch variance; PyTorch uses the
//! unbiased one (`n / (n − 1)` times larger, `n` = values per channel in the batch). Over many steps
//! that difference shifts every running variance, so weights trained here would not behave like
//! PyTorch's. This module keeps burn's field names (so torchvision weights load through the same
//! adapter) and fixes the update; `tests/pytorch_fixtures.rs` checks it against PyTorch.

use burn::module::{Flag, Module, Param, RunningState};
use burn::tensor::{Device, Tensor};

use crate::engine::{self, Activation};

/// Batch normalisation over dimension 1 (channels), PyTorch's `BatchNorm1d/2d`.
#[derive(Module, Debug)]
pub struct BatchNorm {
    /// Scale (PyTorch `weight`).
    pub gamma: Param<Tensor<1>>,
    /// Shift (PyTorch `bias`).
    pub beta: Param<Tensor<1>>,
    /// Whether this layer uses batch statistics when it is on an autodiff device.
    pub training: Param<Flag>,
    /// Running mean.
    pub running_mean: RunningState<Tensor<1>>,
    /// Running (unbiased) variance.
    pub running_var: RunningState<Tensor<1>>,
    /// Weight of the new batch statistics in the running ones (PyTorch default 0.1).
    pub momentum: f64,
    /// Added to the variance before the square root.
    pub epsilon: f64,
}

impl BatchNorm {
    /// A fresh layer over `channels`: scale 1, shift 0, running mean 0, running variance 1.
    pub fn new(channels: usize, device: &Device) -> Self {
        Self {
            gamma: Param::from_tensor(Tensor::ones([channels], device)),
            beta: Param::from_tensor(Tensor::zeros([channels], device)),
            training: Param::from_bool(true),
            running_mean: RunningState::new(Tensor::zeros([channels], device)),
            running_var: RunningState::new(Tensor::ones([channels], device)),
            momentum: 0.1,
            epsilon: 1e-5,
        }
    }

    /// Whether [`BatchNorm::forward`] on `device` normalises with the batch's statistics (training
    /// on an autodiff device) rather than the running ones.
    pub fn uses_batch_statistics(&self, device: &Device) -> bool {
        device.is_autodiff() && self.training.is_enabled()
    }

    /// The running-statistics normalisation as one affine map per channel: `scale = γ / √(var + ε)`,
    /// `shift = β − mean · scale` (on `device`; differentiable in γ and β).
    pub fn scale_shift(&self, device: &Device) -> (Tensor<1>, Tensor<1>) {
        let mean = self.running_mean.value().to_device(device);
        let var = self.running_var.value().to_device(device);
        let scale = self.gamma.val() / var.add_scalar(self.epsilon).sqrt();
        let shift = self.beta.val() - mean * scale.clone();
        (scale, shift)
    }

    /// Normalises `input` `[batch, channels, …]`: with batch statistics (and a running-stat update)
    /// when training on an autodiff device, else with the running statistics.
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        self.forward_activated(input, Activation::Identity)
    }

    /// [`BatchNorm::forward`] then `activation`; with batch statistics the two are one fused
    /// kernel on flex ([`engine::batch_norm_train`]).
    pub fn forward_activated<const D: usize>(
        &self,
        input: Tensor<D>,
        activation: Activation,
    ) -> Tensor<D> {
        let device = input.device();
        if !self.uses_batch_statistics(&device) {
            // `x · scale + shift` with both folded per channel: two passes over the activations
            // where burn's `batch_norm` takes four (subtract, divide, multiply, add).
            let (scale, shift) = self.scale_shift(&device);
            let mut shape = [1; D];
            shape[1] = scale.dims()[0];
            return activation.apply(input * scale.reshape(shape) + shift.reshape(shape));
        }
        let dims = input.dims();
        let n = (dims.iter().product::<usize>() / dims[1]) as f64;
        let (output, batch_mean, batch_var) = engine::batch_norm_train(
            input,
            self.gamma.val(),
            self.beta.val(),
            self.epsilon,
            activation,
        );
        let unbiased = n / (n - 1.0).max(1.0);
        let m = self.momentum;
        let mean = self
            .running_mean
            .value_sync()
            .to_device(&device)
            .mul_scalar(1.0 - m)
            + batch_mean.detach().mul_scalar(m);
        let var = self
            .running_var
            .value_sync()
            .to_device(&device)
            .mul_scalar(1.0 - m)
            + batch_var.detach().mul_scalar(m * unbiased);
        self.running_mean.update(mean.detach());
        self.running_var.update(var.detach());
        output
    }
}
