//! Learning-rate schedules, as a factor of each group's peak rate per step:
//! one-cycle (Smith 2018; fastai's `fit_one_cycle`, PyTorch's `OneCycleLR`) and SGDR (cosine
//! annealing with warm restarts, Loshchilov & Hutter 2016; fastai's `fit(cycle_len, cycle_mult)`).

/// How the learning rate moves over a run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Schedule {
    /// Cosine warm-up from `1/25` of the peak over the first 25 %, then cosine decay to `1/250 000`.
    OneCycle,
    /// Cosine decay from the peak to 0 over `cycle_len` epochs, restarting; each cycle `cycle_mult`
    /// times longer than the one before.
    Sgdr {
        /// Epochs in the first cycle.
        cycle_len: usize,
        /// Growth of each next cycle.
        cycle_mult: usize,
    },
}

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
        let (up, down) = self.phases();
        let s = step as f64;
        if s <= up {
            cos_anneal(start, self.max_lr, s / up)
        } else {
            cos_anneal(self.max_lr, end, ((s - up) / down).min(1.0))
        }
    }

    /// β₁ at step `step`: it moves against the rate, from `MAX_MOMENTUM` (0.95) down to
    /// `BASE_MOMENTUM` (0.85) while the rate warms up and back while it anneals (PyTorch's
    /// `OneCycleLR` with `cycle_momentum`, fastai's `moms=(0.95, 0.85)`).
    pub fn momentum(&self, step: usize) -> f64 {
        let (up, down) = self.phases();
        let s = step as f64;
        if s <= up {
            cos_anneal(MAX_MOMENTUM, BASE_MOMENTUM, s / up)
        } else {
            cos_anneal(BASE_MOMENTUM, MAX_MOMENTUM, ((s - up) / down).min(1.0))
        }
    }

    /// Steps of the warm-up and of the annealing (as PyTorch counts them).
    fn phases(&self) -> (f64, f64) {
        let up = ((self.pct_start * self.total_steps as f64) - 1.0).max(1.0);
        (up, (self.total_steps as f64 - 1.0 - up).max(1.0))
    }
}

/// β₁ at the start and end of a one-cycle run.
pub const MAX_MOMENTUM: f64 = 0.95;
/// β₁ at the one-cycle peak rate.
pub const BASE_MOMENTUM: f64 = 0.85;
/// β₁ under SGDR (Adam's usual value).
pub const SGDR_MOMENTUM: f64 = 0.9;

impl Schedule {
    /// Factor (0..1] of the peak rate at `step` of a run of `epochs` × `per_epoch` steps.
    pub fn factor(&self, step: usize, epochs: usize, per_epoch: usize) -> f64 {
        match *self {
            Schedule::OneCycle => OneCycle::new(1.0, epochs * per_epoch).lr(step),
            Schedule::Sgdr {
                cycle_len,
                cycle_mult,
            } => {
                let (mut start, mut len) = (0, cycle_len.max(1) * per_epoch);
                while step >= start + len {
                    start += len;
                    len *= cycle_mult.max(1);
                }
                cos_anneal(1.0, 0.0, (step - start) as f64 / len as f64)
            }
        }
    }

    /// β₁ at `step`: cycled against the rate by one-cycle, `SGDR_MOMENTUM` (0.9) under SGDR.
    pub fn momentum(&self, step: usize, epochs: usize, per_epoch: usize) -> f64 {
        match *self {
            Schedule::OneCycle => OneCycle::new(1.0, epochs * per_epoch).momentum(step),
            Schedule::Sgdr { .. } => SGDR_MOMENTUM,
        }
    }

    /// Epochs `Sgdr` needs for `cycles` cycles (`OneCycle`: `cycles` itself).
    pub fn epochs_for(&self, cycles: usize) -> usize {
        match *self {
            Schedule::OneCycle => cycles,
            Schedule::Sgdr {
                cycle_len,
                cycle_mult,
            } => (0..cycles)
                .map(|c| cycle_len * cycle_mult.max(1).pow(c as u32))
                .sum(),
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
    }

    #[test]
    fn one_cycle_momentum_moves_against_the_rate() {
        // PyTorch: OneCycleLR(max_lr=0.01, total_steps=100, base_momentum=0.85, max_momentum=0.95)
        // gives betas[0] = 0.95 at step 0, 0.85 at the peak (step 24), 0.95 at the end, and at step
        // 12 the cosine midpoint 0.9 (12/24 of the warm-up).
        let s = OneCycle::new(0.01, 100);
        assert!((s.momentum(0) - 0.95).abs() < 1e-12);
        assert!((s.momentum(12) - 0.90).abs() < 1e-12);
        assert!((s.momentum(24) - 0.85).abs() < 1e-12);
        assert!((s.momentum(99) - 0.95).abs() < 1e-12);
        // lower rate, higher momentum, all the way
        for step in 1..99 {
            assert_eq!(
                s.lr(step) > s.lr(step - 1),
                s.momentum(step) < s.momentum(step - 1),
                "step {step}"
            );
        }
        let sgdr = Schedule::Sgdr {
            cycle_len: 1,
            cycle_mult: 1,
        };
        assert_eq!(sgdr.momentum(7, 3, 10), SGDR_MOMENTUM);
    }

    #[test]
    fn sgdr_restarts_with_growing_cycles() {
        let s = Schedule::Sgdr {
            cycle_len: 1,
            cycle_mult: 2,
        };
        // cycles of 10, 20, 40 steps with 10 steps per epoch
        assert_eq!(s.factor(0, 7, 10), 1.0);
        assert!((s.factor(5, 7, 10) - 0.5).abs() < 1e-12);
        assert_eq!(s.factor(10, 7, 10), 1.0, "restart");
        assert!(
            (s.factor(20, 7, 10) - 0.5).abs() < 1e-12,
            "middle of the 20-step cycle"
        );
        assert_eq!(s.factor(30, 7, 10), 1.0, "second restart");
        assert_eq!(s.epochs_for(3), 7);
    }
}
