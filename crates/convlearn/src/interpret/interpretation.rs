//! What a model got wrong on a labelled set: per-item probabilities and losses, from which come the
//! confusion matrix, the most confused pairs, the top losses, the most uncertain predictions and,
//! for multi-label models, per-tag precision/recall/F2 and the F2-versus-threshold curve.

use burn::tensor::Device;
use serde::Serialize;

use crate::data::{ImageSource, Labels};
use crate::learner::{
    Scores, TagReport, argmax_rows, predict_set, score, tag_reports, threshold_sweep,
};
use crate::model_file::SavedModel;

/// Probabilities are clamped this far from 0 and 1 before taking logarithms.
const P_MIN: f64 = 1e-7;

/// A model's predictions on every item of a labelled set.
pub struct Interpretation {
    /// Class (or tag) names.
    pub classes: Vec<String>,
    /// Several tags per image.
    pub multi_label: bool,
    /// The tag threshold (multi-label).
    pub threshold: f32,
    /// `[len, classes]` probabilities.
    pub probabilities: Vec<f32>,
    /// Loss of each item (cross-entropy, or binary cross-entropy averaged over tags).
    pub losses: Vec<f64>,
    /// Each item's labels as names (tags space-separated).
    pub actual: Vec<String>,
    /// Each item's prediction as names (multi-label: the tags above the threshold).
    pub predicted: Vec<String>,
    /// Accuracy (and F2) over the set.
    pub scores: Scores,
    /// The same with test-time augmentation, when asked for.
    pub scores_tta: Option<Scores>,
    confusions: Vec<(usize, usize)>,
}

/// How often items of one class (or with one tag) were predicted as another.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Confusion {
    /// The true class (multi-label: a tag the image has but that was not predicted).
    pub actual: String,
    /// The predicted class (multi-label: a tag predicted that the image does not have).
    pub predicted: String,
    /// How many times.
    pub count: usize,
}

impl Interpretation {
    /// Runs `model` over `set` (on `device`); with `tta > 0`, also scores the average of each image
    /// and `tta` augmented copies.
    pub fn compute(model: &SavedModel, set: &dyn ImageSource, tta: usize, device: &Device) -> Self {
        let meta = &model.meta;
        let n = meta.classes.len();
        let labels = set.labels();
        // The plain probabilities are the first of the passes test-time augmentation makes.
        let preds = predict_set(&model.network, meta, set, tta, 32, 42, device);
        let scores = score(&preds.plain, labels, n, meta.threshold);
        let scores_tta = (tta > 0).then(|| score(&preds.averaged, labels, n, meta.threshold));
        let probabilities = preds.plain;
        let rows = || probabilities.chunks(n.max(1));
        let losses = rows()
            .enumerate()
            .map(|(i, row)| item_loss(row, labels, i))
            .collect();
        let predicted_sets: Vec<Vec<usize>> = match labels {
            Labels::Classes(_) => argmax_rows(&probabilities, n)
                .into_iter()
                .map(|c| vec![c])
                .collect(),
            Labels::Tags(_) => rows()
                .map(|row| (0..n).filter(|&k| row[k] > meta.threshold).collect())
                .collect(),
        };
        let names = |set: &[usize]| -> String {
            set.iter()
                .map(|&k| meta.classes[k].as_str())
                .collect::<Vec<_>>()
                .join(" ")
        };
        // A confusion pairs every label the item has but was not predicted with every prediction it
        // does not have (single-label: the one true class with the one predicted class).
        let mut confusions = Vec::new();
        for (i, predicted) in predicted_sets.iter().enumerate() {
            let truth: Vec<usize> = match labels {
                Labels::Classes(c) => vec![c[i]],
                Labels::Tags(t) => t[i].clone(),
            };
            for &a in truth.iter().filter(|a| !predicted.contains(a)) {
                for &p in predicted.iter().filter(|p| !truth.contains(p)) {
                    confusions.push((a, p));
                }
            }
        }
        Self {
            classes: meta.classes.clone(),
            multi_label: meta.multi_label,
            threshold: meta.threshold,
            actual: (0..set.len())
                .map(|i| labels.describe(i, &meta.classes))
                .collect(),
            predicted: predicted_sets.iter().map(|p| names(p)).collect(),
            probabilities,
            losses,
            scores,
            scores_tta,
            confusions,
        }
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.losses.len()
    }

    /// True when the set was empty.
    pub fn is_empty(&self) -> bool {
        self.losses.is_empty()
    }

    /// Single-label: counts `[actual][predicted]`.
    pub fn confusion_matrix(&self, labels: Labels<'_>) -> Option<Vec<Vec<usize>>> {
        let actual = labels.classes()?;
        let n = self.classes.len();
        let mut m = vec![vec![0; n]; n];
        for (&a, p) in actual.iter().zip(argmax_rows(&self.probabilities, n)) {
            m[a][p] += 1;
        }
        Some(m)
    }

    /// Pairs (actual, predicted) by how often they occur, most frequent first, at least `min` times.
    pub fn most_confused(&self, min: usize) -> Vec<Confusion> {
        let n = self.classes.len();
        let mut counts = vec![0usize; n * n];
        for &(a, p) in &self.confusions {
            counts[a * n + p] += 1;
        }
        let mut pairs: Vec<Confusion> = (0..n * n)
            .filter(|&i| counts[i] >= min.max(1))
            .map(|i| Confusion {
                actual: self.classes[i / n].clone(),
                predicted: self.classes[i % n].clone(),
                count: counts[i],
            })
            .collect();
        pairs.sort_by(|a, b| b.count.cmp(&a.count).then(a.actual.cmp(&b.actual)));
        pairs
    }

    /// Indices of the `k` items with the highest loss, highest first.
    pub fn top_losses(&self, k: usize) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..self.len()).collect();
        idx.sort_by(|&a, &b| self.losses[b].total_cmp(&self.losses[a]));
        idx.truncate(k);
        idx
    }

    /// How unsure the model is about item `i`, 0 (sure) … 1: single-label, one minus the gap between
    /// the two most probable classes; multi-label, the mean over tags of the binary entropy (in bits)
    /// of the tag's probability rescaled so that the threshold sits at ½ — tags near the threshold
    /// count most.
    pub fn uncertainty(&self, i: usize) -> f64 {
        let n = self.classes.len();
        let row = &self.probabilities[i * n..(i + 1) * n];
        if self.multi_label {
            let t = (self.threshold as f64).clamp(1e-6, 1.0 - 1e-6);
            let entropy = |q: f64| {
                let q = q.clamp(P_MIN, 1.0 - P_MIN);
                -(q * q.log2() + (1.0 - q) * (1.0 - q).log2())
            };
            row.iter()
                .map(|&p| {
                    let p = p as f64;
                    let q = if p < t {
                        p / (2.0 * t)
                    } else {
                        0.5 + (p - t) / (2.0 * (1.0 - t))
                    };
                    entropy(q)
                })
                .sum::<f64>()
                / n as f64
        } else {
            let mut sorted: Vec<f32> = row.to_vec();
            sorted.sort_by(|a, b| b.total_cmp(a));
            1.0 - (sorted[0] - sorted.get(1).copied().unwrap_or(0.0)) as f64
        }
    }

    /// Indices of the `k` most uncertain items, most uncertain first.
    pub fn most_uncertain(&self, k: usize) -> Vec<usize> {
        let u: Vec<f64> = (0..self.len()).map(|i| self.uncertainty(i)).collect();
        let mut idx: Vec<usize> = (0..self.len()).collect();
        idx.sort_by(|&a, &b| u[b].total_cmp(&u[a]));
        idx.truncate(k);
        idx
    }

    /// Single-label: the probability the model gave item `i`'s true class.
    pub fn probability_of_truth(&self, i: usize, labels: Labels<'_>) -> Option<f64> {
        let n = self.classes.len();
        labels
            .classes()
            .map(|c| self.probabilities[i * n + c[i]] as f64)
    }

    /// Multi-label: precision, recall and F2 per tag at the threshold.
    pub fn tag_reports(&self, labels: Labels<'_>) -> Vec<TagReport> {
        tag_reports(&self.probabilities, labels, &self.classes, self.threshold)
    }

    /// Multi-label: F2 at each threshold from 0.05 to 0.5.
    pub fn f2_curve(&self, labels: Labels<'_>) -> Vec<(f32, f64)> {
        threshold_sweep(&self.probabilities, labels, self.classes.len())
    }
}

/// Cross-entropy of one row of softmax probabilities, or binary cross-entropy averaged over tags.
fn item_loss(row: &[f32], labels: Labels<'_>, i: usize) -> f64 {
    let clamp = |p: f32| (p as f64).clamp(P_MIN, 1.0 - P_MIN);
    match labels {
        Labels::Classes(c) => -clamp(row[c[i]]).ln(),
        Labels::Tags(_) => {
            let truth = labels.multi_hot(i, row.len());
            row.iter()
                .zip(truth)
                .map(|(&p, t)| {
                    let p = clamp(p);
                    -(t as f64 * p.ln() + (1.0 - t as f64) * (1.0 - p).ln())
                })
                .sum::<f64>()
                / row.len() as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn losses_by_hand() {
        let c = [1usize];
        assert!(
            (item_loss(&[0.25, 0.75], Labels::Classes(&c), 0) - (-(0.75f64).ln())).abs() < 1e-6
        );
        let t = vec![vec![0usize]];
        let expected = -((0.8f64).ln() + (1.0 - 0.4f64).ln()) / 2.0;
        assert!((item_loss(&[0.8, 0.4], Labels::Tags(&t), 0) - expected).abs() < 1e-6);
    }
}
