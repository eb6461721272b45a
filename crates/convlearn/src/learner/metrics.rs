//! Metrics computed on the host from logits.

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
