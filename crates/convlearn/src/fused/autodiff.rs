//! Gradients for the fused kernels on flex: max-pooling with its own backward pass. Training's
//! forward records where each maximum came from (a `u32` per output), and the backward pass adds
//! each output gradient to that cell, one feature map per rayon task. burn's default records
//! `i64` indices, converts them, and adds the gradients back on one thread.

use std::sync::Arc;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Flex, TensorMetadata};

use super::FusedOps;
use super::flex::{max_pool_planes, max_unpool_planes};
use super::max_pool::PoolWindow;

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

impl<C: CheckpointStrategy> FusedOps for Autodiff<Flex, C> {
    fn max_pool(
        x: FloatTensor<Self>,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 4],
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
