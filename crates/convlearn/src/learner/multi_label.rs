//! Multi-label metrics from per-tag probabilities: accuracy at a threshold, F-beta averaged over
//! samples (Planet's metric is F2), per-tag precision and recall, and the threshold sweep that picks
//! the threshold a model is saved with.

use serde::{Deserialize, Serialize};

use crate::data::Labels;

/// fastai's guard against dividing by zero in F-beta.
const EPS: f64 = 1e-9;

/// The thresholds tried by [`threshold_sweep`]: 0.05, 0.06, … 0.50.
pub fn sweep_thresholds() -> Vec<f32> {
    (5..=50).map(|t| t as f32 / 100.0).collect()
}

/// Row `i` of `labels` as booleans over `n` tags.
fn truth(labels: Labels<'_>, i: usize, n: usize) -> Vec<bool> {
    labels
        .multi_hot(i, n)
        .into_iter()
        .map(|v| v > 0.5)
        .collect()
}

/// Fraction of (image, tag) decisions `p > threshold` that match the labels (fastai's
/// `accuracy_thresh`).
pub fn accuracy_at(probs: &[f32], labels: Labels<'_>, n: usize, threshold: f32) -> f64 {
    if labels.is_empty() {
        return 0.0;
    }
    let right: usize = (0..labels.len())
        .map(|i| {
            let t = truth(labels, i, n);
            probs[i * n..(i + 1) * n]
                .iter()
                .zip(t)
                .filter(|&(&p, t)| (p > threshold) == t)
                .count()
        })
        .sum();
    right as f64 / (labels.len() * n) as f64
}

/// F-beta per image (predicted tags `p > threshold` against the true tags), averaged over images,
/// as fastai computes it (`(1+β²)·P·R / (β²·P + R)` with a tiny epsilon) — except that an image with
/// no tags, rightly predicted to have none, scores 1 rather than fastai's 0. (Every Planet chip has
/// tags, so Planet scores are fastai's.)
pub fn fbeta(probs: &[f32], labels: Labels<'_>, n: usize, threshold: f32, beta: f64) -> f64 {
    if labels.is_empty() {
        return 0.0;
    }
    let b2 = beta * beta;
    let total: f64 = (0..labels.len())
        .map(|i| {
            let t = truth(labels, i, n);
            let row = &probs[i * n..(i + 1) * n];
            let predicted = row.iter().filter(|&&p| p > threshold).count() as f64;
            let actual = t.iter().filter(|&&x| x).count() as f64;
            if predicted == 0.0 && actual == 0.0 {
                return 1.0;
            }
            let tp = row
                .iter()
                .zip(&t)
                .filter(|&(&p, &x)| x && p > threshold)
                .count() as f64;
            let (precision, recall) = (tp / (predicted + EPS), tp / (actual + EPS));
            (1.0 + b2) * precision * recall / (b2 * precision + recall + EPS)
        })
        .sum();
    total / labels.len() as f64
}

/// F2 for every threshold of [`sweep_thresholds`].
pub fn threshold_sweep(probs: &[f32], labels: Labels<'_>, n: usize) -> Vec<(f32, f64)> {
    sweep_thresholds()
        .into_iter()
        .map(|t| (t, fbeta(probs, labels, n, t, 2.0)))
        .collect()
}

/// The threshold with the highest F2 (the lowest such threshold on ties) and that F2.
pub fn best_threshold(sweep: &[(f32, f64)]) -> (f32, f64) {
    sweep
        .iter()
        .copied()
        .fold((0.5, f64::NEG_INFINITY), |best, (t, f)| {
            if f > best.1 { (t, f) } else { best }
        })
}

/// How one tag fares at a threshold.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TagReport {
    /// Tag name.
    pub tag: String,
    /// Images that carry it.
    pub support: usize,
    /// Images predicted to carry it.
    pub predicted: usize,
    /// Of those, correct.
    pub true_positives: usize,
    /// true positives / predicted (1 when nothing was predicted).
    pub precision: f64,
    /// true positives / support (1 when no image carries it).
    pub recall: f64,
    /// F2 of that precision and recall.
    pub f2: f64,
}

/// Precision, recall and F2 of every tag at `threshold`.
pub fn tag_reports(
    probs: &[f32],
    labels: Labels<'_>,
    names: &[String],
    threshold: f32,
) -> Vec<TagReport> {
    let n = names.len();
    let mut counts = vec![(0usize, 0usize, 0usize); n];
    for i in 0..labels.len() {
        let t = truth(labels, i, n);
        for k in 0..n {
            let p = probs[i * n + k] > threshold;
            counts[k].0 += t[k] as usize;
            counts[k].1 += p as usize;
            counts[k].2 += (p && t[k]) as usize;
        }
    }
    names
        .iter()
        .zip(counts)
        .map(|(tag, (support, predicted, tp))| {
            let ratio = |a: usize, b: usize| if b == 0 { 1.0 } else { a as f64 / b as f64 };
            let (precision, recall) = (ratio(tp, predicted), ratio(tp, support));
            let f2 = if precision + recall == 0.0 {
                0.0
            } else {
                5.0 * precision * recall / (4.0 * precision + recall)
            };
            TagReport {
                tag: tag.clone(),
                support,
                predicted,
                true_positives: tp,
                precision,
                recall,
                f2,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fbeta_by_hand() {
        // Image 0: true {0, 2}, predicted {0, 1} → P = R = 1/2 → F2 = 1/2.
        // Image 1: true {1}, predicted {1} → F2 = 1.
        let tags = vec![vec![0, 2], vec![1]];
        let probs = [0.9, 0.6, 0.1, 0.2, 0.7, 0.3];
        let f = fbeta(&probs, Labels::Tags(&tags), 3, 0.5, 2.0);
        assert!((f - 0.75).abs() < 1e-6, "{f}");
        // At 0.05 every tag is predicted. Image 0: P = 2/3, R = 1 → F2 = (10/3)/(11/3) = 10/11.
        // Image 1: P = 1/3, R = 1 → F2 = (5/3)/(7/3) = 5/7.
        let f = fbeta(&probs, Labels::Tags(&tags), 3, 0.05, 2.0);
        assert!((f - (10.0 / 11.0 + 5.0 / 7.0) / 2.0).abs() < 1e-6, "{f}");
        assert!((accuracy_at(&probs, Labels::Tags(&tags), 3, 0.5) - 4.0 / 6.0).abs() < 1e-9);
        // No tags, none predicted: perfect; no tags, one predicted: 0.
        let none = vec![vec![]];
        assert_eq!(fbeta(&[0.1, 0.2], Labels::Tags(&none), 2, 0.5, 2.0), 1.0);
        assert!(fbeta(&[0.1, 0.7], Labels::Tags(&none), 2, 0.5, 2.0) < 1e-6);
    }

    #[test]
    fn sweep_and_tags() {
        let tags = vec![vec![0], vec![0, 1]];
        let probs = [0.8, 0.3, 0.9, 0.35];
        let sweep = threshold_sweep(&probs, Labels::Tags(&tags), 2);
        assert_eq!(sweep.len(), 46);
        let (t, f) = best_threshold(&sweep);
        assert!(
            (0.3..0.35).contains(&t) && (f - 1.0).abs() < 1e-6,
            "{t} {f}"
        );
        let names = vec!["a".to_string(), "b".to_string()];
        let r = tag_reports(&probs, Labels::Tags(&tags), &names, 0.5);
        assert_eq!((r[0].support, r[0].predicted, r[0].recall), (2, 2, 1.0));
        assert_eq!(
            (r[1].support, r[1].predicted, r[1].recall, r[1].f2),
            (1, 0, 0.0, 0.0)
        );
    }
}
