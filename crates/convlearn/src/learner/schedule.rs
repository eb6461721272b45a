//! The one-cycle schedule (Smith 2018; fastai's `fit_one_cycle`, PyTorch's `OneCycleLR`):
//! a cosine warm-up from `max_lr / div` to `max_lr`, then a cosine decay to `max_lr / (div · final_div)`.

/// A one-cycle learning-rate schedule over `total_steps` optimiser steps.
#[derive(Clone, Copy, Debug)]
pub struct OneCycle {
    /// Peak learning rate.
    pub max_lr: f64,
    /// Total number of steps.
    pub total_steps: usize,
    /// Fraction of the steps spent warming up.
    pub pct_start: f64,
    /// The start rate is `max_lr / div`.
    pub div: f64,
    /// The final rate is `max_lr / (div · final_div)`.
    pub final_div: f64,
}

fn cos_anneal(from: f64, to: f64, t: f64) -> f64 {
    to + (from - to) * (1.0 + (std::f64::consts::PI * t).cos()) / 2.0
}

impl OneCycle {
    /// PyTorch's defaults: 25 % warm-up, div 25, final_div 1e4.
    pub fn new(max_lr: f64, total_steps: usize) -> Self {
        Self {
            max_lr,
            total_steps,
            pct_start: 0.25,
            div: 25.0,
            final_div: 1e4,
        }
    }

    /// The learning rate at step `step` (0-based).
    pub fn lr(&self, step: usize) -> f64 {
        let start = self.max_lr / self.div;
        let end = start / self.final_div;
        let up = ((self.pct_start * self.total_steps as f64) - 1.0).max(1.0);
        let down = (self.total_steps as f64 - 1.0 - up).max(1.0);
        let s = step as f64;
        if s <= up {
            cos_anneal(start, self.max_lr, s / up)
        } else {
            cos_anneal(self.max_lr, end, ((s - up) / down).min(1.0))
        }
    }

    /// The momentum (or Adam β₁) at `step`: 0.95 → 0.85 while warming up, back to 0.95 after.
    pub fn momentum(&self, step: usize) -> f64 {
        let up = ((self.pct_start * self.total_steps as f64) - 1.0).max(1.0);
        let down = (self.total_steps as f64 - 1.0 - up).max(1.0);
        let s = step as f64;
        if s <= up {
            cos_anneal(0.95, 0.85, s / up)
        } else {
            cos_anneal(0.85, 0.95, ((s - up) / down).min(1.0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_cycle_starts_low_peaks_and_ends_lower() {
        // PyTorch's OneCycleLR with total_steps=100: the peak is at step 0.25·100 − 1 = 24, the end at 99
        let s = OneCycle::new(0.01, 100);
        assert!((s.lr(0) - 0.0004).abs() < 1e-12);
        assert!((s.lr(24) - 0.01).abs() < 1e-12);
        assert!((s.lr(99) - 0.0004 / 1e4).abs() < 1e-12);
        assert!(s.lr(60) < s.lr(30));
        assert!((s.momentum(24) - 0.85).abs() < 1e-12);
    }
}
