//! Loss functions: cross-entropy for one label per image, binary cross-entropy for several.

use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::{Int, Tensor};

use crate::data::BatchTargets;

/// Mean cross-entropy of `logits` `[batch, classes]` against class indices (softmax inside).
pub fn cross_entropy(logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
    CrossEntropyLossConfig::new()
        .init(&logits.device())
        .forward(logits, targets)
}

/// Mean binary cross-entropy with logits against 0/1 (or soft) targets of the same shape,
/// computed stably as `max(x, 0) − x·t + log(1 + e^(−|x|))`.
pub fn bce_with_logits(logits: Tensor<2>, targets: Tensor<2>) -> Tensor<1> {
    let positive = logits.clone().clamp_min(0.0);
    let log_term = logits.clone().abs().neg().exp().add_scalar(1.0).log();
    (positive - logits * targets + log_term).mean()
}

/// The loss the labels call for: cross-entropy for classes, binary cross-entropy for tags.
pub fn loss_for(logits: Tensor<2>, targets: BatchTargets) -> Tensor<1> {
    match targets {
        BatchTargets::Classes(t) => cross_entropy(logits, t),
        BatchTargets::Tags(t) => bce_with_logits(logits, t),
    }
}

/// The output activation that goes with the loss: softmax over classes, or a sigmoid per tag.
pub fn probabilities(logits: Tensor<2>, multi_label: bool) -> Tensor<2> {
    if multi_label {
        burn::tensor::activation::sigmoid(logits)
    } else {
        burn::tensor::activation::softmax(logits, 1)
    }
}
