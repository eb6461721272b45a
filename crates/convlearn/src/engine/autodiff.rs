//! Gradients for convlearn's routines on flex, so training uses them too.
//!
//! - Convolution: the backward pass computes the weight gradient `dy · colᵀ` and the input
//!   gradient `Wᵀ · dy` (folded back by col2im) with the same batched im2col layout as the forward
//!   pass (`conv.rs`) — for a 3×3 'same' convolution, the input gradient as Winograd's
//!   convolution of `dy` (`winograd/`); only the gradients a parent needs are computed (a
//!   frozen layer skips its weight gradient, the first layer its input gradient). A depthwise
//!   convolution's gradients are `depthwise.rs`'s, map by map.
//! - Max-pooling: the forward pass records where each maximum came from (a `u32` per output), and
//!   the backward pass adds each output gradient to that cell, one feature map per rayon task.
//!   burn's default records `i64` indices, converts them, and adds the gradients back on one
//!   thread.
//! - A convolution's bias and activation, and a residual sum's: the backward pass masks the output
//!   gradient (and sums it per channel for the bias) in one parallel pass (`clamp.rs`); burn's
//!   takes the ReLU's mask and a broadcast sum, each on one thread.
//! - BatchNorm with batch statistics and its activation: the backward pass of `batch_norm.rs`
//!   (burn's takes a dozen single-threaded tensor ops, and the activation's mask two more).

use std::sync::Arc;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, NodeGuard, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, AutodiffBackend, Flex, TensorMetadata};
use burn::tensor::ops::ConvOptions;
use burn_flex::FlexTensor;

use super::batch_norm::{BatchNormSaved, ChannelLayout, batch_norm_backward};
use super::clamp::{bias_clamp_backward, clamp_backward};
use super::conv::{Grouping, conv_backward};
use super::conv_shape::{ConvShape, Pads};
use super::depthwise;
use super::flex::{
    batch_norm_planes, conv_operands, convolve, convolve_depthwise, depthwise_operands, f32_tensor,
    max_pool_planes, max_unpool_planes, owned_f32,
};
use super::max_pool::PoolWindow;
use super::winograd;
use super::{AdamWStep, FusedOps};

/// The backward step of [`FusedOps::max_pool`].
#[derive(Debug)]
struct MaxPoolBackward;

/// What the backward step keeps: where each maximum came from, and the input's shape.
#[derive(Clone)]
struct MaxPoolState {
    argmax: Arc<Vec<u32>>,
    input: [usize; 4],
}

impl std::fmt::Debug for MaxPoolState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "MaxPoolState {{ input: {:?}, {} maxima }}",
            self.input,
            self.argmax.len()
        )
    }
}

impl Backward<Flex, 1> for MaxPoolBackward {
    type State = MaxPoolState;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [parent] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        if let Some(parent) = parent {
            let grad_in = max_unpool_planes(grad, &ops.state.argmax, ops.state.input);
            grads.register::<Flex>(parent.id, grad_in);
        }
    }
}

/// The backward step of [`FusedOps::conv2d_batched`].
#[derive(Debug)]
struct ConvBackward;

/// What the convolution's backward step keeps: its (contiguous) input and weights.
#[derive(Clone, Debug)]
struct ConvState {
    x: FlexTensor,
    weight: FlexTensor,
    shape: ConvShape,
}

impl Backward<Flex, 2> for ConvBackward {
    type State = ConvState;

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [x_parent, weight_parent] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node).to_contiguous();
        let ConvState { x, weight, shape } = ops.state;
        // A 3×3 'same' convolution's input gradient is one too: Winograd's, where it applies.
        let winograd_dx = x_parent.is_some() && winograd::applies(&shape);
        let (dx, dw) = conv_backward(
            &shape,
            x.storage(),
            weight.storage(),
            dy.storage(),
            [x_parent.is_some() && !winograd_dx, weight_parent.is_some()],
            Grouping::backward(&shape),
        );
        let dx = if winograd_dx {
            Some(winograd::input_gradient(
                &shape,
                weight.storage(),
                dy.storage(),
            ))
        } else {
            dx
        };
        if let (Some(parent), Some(dx)) = (x_parent, dx) {
            grads.register::<Flex>(parent.id, f32_tensor(dx, x.layout().shape().to_vec()));
        }
        if let (Some(parent), Some(dw)) = (weight_parent, dw) {
            grads.register::<Flex>(parent.id, f32_tensor(dw, weight.layout().shape().to_vec()));
        }
    }
}

/// The backward step of [`FusedOps::depthwise_conv2d`].
#[derive(Debug)]
struct DepthwiseBackward;

impl Backward<Flex, 2> for DepthwiseBackward {
    type State = ConvState;

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [x_parent, weight_parent] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node).to_contiguous();
        let ConvState { x, weight, shape } = ops.state;
        if let Some(parent) = x_parent {
            let dx = depthwise::input_gradient(&shape, weight.storage(), dy.storage());
            grads.register::<Flex>(parent.id, f32_tensor(dx, x.layout().shape().to_vec()));
        }
        if let Some(parent) = weight_parent {
            let dw = depthwise::weight_gradient(&shape, x.storage(), dy.storage());
            grads.register::<Flex>(parent.id, f32_tensor(dw, weight.layout().shape().to_vec()));
        }
    }
}

/// The backward step of [`FusedOps::bias_clamp`].
#[derive(Debug)]
struct BiasClampBackward;

/// What a clamp's backward step keeps: the output (the activation's mask) and the activation's
/// bounds.
#[derive(Clone, Debug)]
struct ClampState {
    y: FlexTensor,
    bounds: [f32; 2],
}

impl Backward<Flex, 2> for BiasClampBackward {
    type State = ClampState;

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [x_parent, bias_parent] = ops.parents;
        let mut dz = owned_f32(grads.consume::<Flex>(&ops.node), "bias_clamp backward: dy");
        let ClampState { y, bounds } = ops.state;
        let shape = y.layout().shape().to_vec();
        let layout = ChannelLayout::of(&shape);
        let d_bias = bias_clamp_backward(dz.storage_mut(), y.storage(), layout, bounds);
        if let Some(parent) = x_parent {
            grads.register::<Flex>(parent.id, dz);
        }
        if let Some(parent) = bias_parent {
            grads.register::<Flex>(parent.id, f32_tensor(d_bias, vec![layout.channels]));
        }
    }
}

/// The backward step of [`FusedOps::add_clamp`].
#[derive(Debug)]
struct AddClampBackward;

impl Backward<Flex, 2> for AddClampBackward {
    type State = ClampState;

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let mut dz = owned_f32(grads.consume::<Flex>(&ops.node), "add_clamp backward: dy");
        let ClampState { y, bounds } = ops.state;
        clamp_backward(dz.storage_mut(), y.storage(), bounds);
        // Both terms get the same gradient (shared storage: nothing writes into it in place).
        match ops.parents {
            [Some(x), Some(residual)] => {
                grads.register::<Flex>(x.id, dz.clone());
                grads.register::<Flex>(residual.id, dz);
            }
            [Some(only), None] | [None, Some(only)] => grads.register::<Flex>(only.id, dz),
            [None, None] => {}
        }
    }
}

/// The backward step of [`FusedOps::batch_norm_clamp`].
#[derive(Debug)]
struct BatchNormBackward;

/// What BatchNorm's backward step keeps: its input and output, γ, the batch statistics and the
/// activation's bounds.
#[derive(Clone, Debug)]
struct BatchNormState {
    x: FlexTensor,
    y: FlexTensor,
    gamma: Vec<f32>,
    mean: Vec<f32>,
    inv_std: Vec<f32>,
    bounds: [f32; 2],
}

impl Backward<Flex, 3> for BatchNormBackward {
    type State = BatchNormState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [x_parent, gamma_parent, beta_parent] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node).to_contiguous();
        let state = ops.state;
        let shape = state.x.layout().shape().to_vec();
        let saved = BatchNormSaved {
            x: state.x.storage(),
            y: state.y.storage(),
            layout: ChannelLayout::of(&shape),
            gamma: &state.gamma,
            mean: &state.mean,
            inv_std: &state.inv_std,
            bounds: state.bounds,
        };
        let (dx, d_gamma, d_beta) = batch_norm_backward(&saved, dy.storage(), x_parent.is_some());
        let channels = vec![state.gamma.len()];
        if let (Some(parent), Some(dx)) = (x_parent, dx) {
            grads.register::<Flex>(parent.id, f32_tensor(dx, shape));
        }
        if let Some(parent) = gamma_parent {
            grads.register::<Flex>(parent.id, f32_tensor(d_gamma, channels.clone()));
        }
        if let Some(parent) = beta_parent {
            grads.register::<Flex>(parent.id, f32_tensor(d_beta, channels));
        }
    }
}

/// `y`, a clamp flex computed from two inputs, recorded with `step` as its backward step, which
/// keeps `y` (its mask) and the bounds. `y` is kept as it is: a later op that writes in place copies
/// shared storage.
fn record_clamp<C: CheckpointStrategy, S: Backward<Flex, 2, State = ClampState>>(
    step: S,
    nodes: [NodeGuard; 2],
    y: FlexTensor,
    bounds: [f32; 2],
) -> FloatTensor<Autodiff<Flex, C>> {
    match step.prepare::<C>(nodes).compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish(
            ClampState {
                y: y.clone(),
                bounds,
            },
            y,
        ),
        OpsKind::UnTracked(prep) => prep.finish(y),
    }
}

impl<C: CheckpointStrategy> FusedOps for Autodiff<Flex, C> {
    fn adamw_step(
        param: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        moment_1: FloatTensor<Self>,
        moment_2: FloatTensor<Self>,
        step: AdamWStep,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        // An optimiser step records no gradient: flex's pass on the values.
        let [p, g, m, v] = [param, grad, moment_1, moment_2].map(|t| t.into_primitive());
        let (p, m, v) = Flex::adamw_step(p, g, m, v, step);
        (
            Self::from_inner(p),
            Self::from_inner(m),
            Self::from_inner(v),
        )
    }

    fn bias_clamp(
        x: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        lower: f32,
        upper: f32,
    ) -> FloatTensor<Self> {
        let (x, x_node) = x.into_parts();
        let (bias, bias_node) = bias.into_parts();
        let y = Flex::bias_clamp(x, bias, lower, upper);
        record_clamp::<C, _>(BiasClampBackward, [x_node, bias_node], y, [lower, upper])
    }

    fn add_clamp(
        x: FloatTensor<Self>,
        residual: FloatTensor<Self>,
        lower: f32,
        upper: f32,
    ) -> FloatTensor<Self> {
        let (x, x_node) = x.into_parts();
        let (residual, residual_node) = residual.into_parts();
        let y = Flex::add_clamp(x, residual, lower, upper);
        record_clamp::<C, _>(AddClampBackward, [x_node, residual_node], y, [lower, upper])
    }

    fn batch_norm_clamp(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
        lower: f32,
        upper: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let (x, x_node) = x.into_parts();
        let (gamma, gamma_node) = gamma.into_parts();
        let (beta, beta_node) = beta.into_parts();
        let x = owned_f32(x, "batch_norm: x");
        let out = batch_norm_planes(&x, &gamma, &beta, epsilon, [lower, upper]);
        let channels = vec![out.mean.len()];
        let mean = Self::from_inner(f32_tensor(out.mean.clone(), channels.clone()));
        let variance = Self::from_inner(f32_tensor(out.variance, channels));
        let y = match BatchNormBackward
            .prepare::<C>([x_node, gamma_node, beta_node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let state = BatchNormState {
                    x,
                    y: out.y.clone(),
                    gamma: out.gamma,
                    mean: out.mean,
                    inv_std: out.inv_std,
                    bounds: [lower, upper],
                };
                prep.finish(state, out.y)
            }
            OpsKind::UnTracked(prep) => prep.finish(out.y),
        };
        (y, mean, variance)
    }

    fn conv2d_batched(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        let (x, x_node) = x.into_parts();
        let (weight, weight_node) = weight.into_parts();
        match ConvBackward
            .prepare::<C>([x_node, weight_node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (x, weight, shape) = conv_operands(x, weight, &options);
                let y = convolve(&x, &weight, &shape, None);
                prep.finish(ConvState { x, weight, shape }, y)
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::conv2d_batched(x, weight, options)),
        }
    }

    fn depthwise_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        let (x, x_node) = x.into_parts();
        let (weight, weight_node) = weight.into_parts();
        match DepthwiseBackward
            .prepare::<C>([x_node, weight_node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (x, weight, shape) = depthwise_operands(x, weight, &options);
                let y = convolve_depthwise(&x, &weight, &shape, None);
                prep.finish(ConvState { x, weight, shape }, y)
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::depthwise_conv2d(x, weight, options)),
        }
    }

    fn max_pool(
        x: FloatTensor<Self>,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: Pads,
    ) -> FloatTensor<Self> {
        let window = PoolWindow {
            kernel,
            stride,
            padding,
        };
        let shape = x.shape();
        let (x, node) = x.into_parts();
        match MaxPoolBackward
            .prepare::<C>([node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (out, argmax) = max_pool_planes(x, window, true);
                let state = MaxPoolState {
                    argmax: Arc::new(argmax.expect("argmax requested")),
                    input: [shape[0], shape[1], shape[2], shape[3]],
                };
                prep.finish(state, out)
            }
            OpsKind::UnTracked(prep) => prep.finish(max_pool_planes(x, window, false).0),
        }
    }
}
