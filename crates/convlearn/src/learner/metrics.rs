//! Metrics computed on the host from logits or probabilities.

use serde::{Deserialize, Serialize};

use super::multi_label::{accuracy_at, fbeta};
use crate::data::Labels;

/// How well a model does on a labelled set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    /// Single-label: fraction of arg-max predictions right. Multi-label: fraction of
    /// (image, tag) decisions right at the threshold.
    pub accuracy: f64,
    /// Multi-label: F2 averaged over images at the threshold.
    pub f2: Option<f64>,
}

/// Scores of probabilities `[len, n]` (softmax or sigmoid) against `labels`.
pub fn score(probs: &[f32], labels: Labels<'_>, n: usize, threshold: f32) -> Scores {
    match labels {
        Labels::Classes(c) => Scores {
            accuracy: accuracy(&argmax_rows(probs, n), c),
            f2: None,
        },
        Labels::Tags(_) => Scores {
            accuracy: accuracy_at(probs, labels, n, threshold),
            f2: Some(fbeta(probs, labels, n, threshold, 2.0)),
        },
    }
}

/// Index of the largest value in each row of a row-major `[rows, cols]` matrix.
pub fn argmax_rows(values: &[f32], cols: usize) -> Vec<usize> {
    values
        .chunks(cols.max(1))
        .map(|row| {
            row.iter()
                .enumerate()
                .fold((0, f32::NEG_INFINITY), |best, (i, &v)| {
                    if v > best.1 { (i, v) } else { best }
                })
                .0
        })
        .collect()
}

/// Fraction of predictions equal to the labels (0 when empty).
pub fn accuracy(predictions: &[usize], labels: &[usize]) -> f64 {
    if labels.is_empty() {
        return 0.0;
    }
    let right = predictions
        .iter()
        .zip(labels)
        .filter(|(p, l)| p == l)
        .count();
    right as f64 / labels.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_and_accuracy() {
        let p = argmax_rows(&[0.1, 0.9, 0.0, 3.0, -1.0, 2.0], 3);
        assert_eq!(p, vec![1, 0]);
        assert_eq!(accuracy(&p, &[1, 2]), 0.5);
    }
}
