//! Learning rates per layer group: one rate for all, a list, or a range spread geometrically
//! (fastai's `slice(lo, hi)`: early layers learn slower).

use crate::error::{Error, Result};

/// How the user gave the learning rate(s).
#[derive(Clone, Debug, PartialEq)]
pub enum LayerRates {
    /// The same rate for every group.
    Single(f64),
    /// `lo..hi`: geometric steps from the first group (lo) to the last (hi).
    Range(f64, f64),
    /// One rate per group.
    List(Vec<f64>),
}

impl LayerRates {
    /// Parses `1e-3`, `1e-5..1e-3` or `1e-5,1e-4,1e-3`.
    pub fn parse(text: &str) -> Result<Self> {
        let num = |s: &str| {
            s.trim().parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0 && *v <= 10.0).ok_or_else(|| {
                Error::Invalid(format!("'{s}' in learning rate '{text}' is not a non-negative number up to 10 (expected e.g. 1e-3, 1e-5..1e-3 or 1e-5,1e-4,1e-3)"))
            })
        };
        // A group may have a rate of 0 (it does not move), but something must train, and a
        // range spreads geometrically from its low end.
        let positive = |v: f64| {
            if v > 0.0 {
                Ok(v)
            } else {
                Err(Error::Invalid(format!(
                    "learning rate '{text}' must be positive (a list may hold 0 for a group that should not move)"
                )))
            }
        };
        if let Some((lo, hi)) = text.split_once("..") {
            let (lo, hi) = (positive(num(lo)?)?, num(hi)?);
            if lo > hi {
                return Err(Error::Invalid(format!(
                    "learning rate range '{text}' goes down: give the early layers' rate first (LO..HI)"
                )));
            }
            return Ok(LayerRates::Range(lo, hi));
        }
        if text.contains(',') {
            let rates: Vec<f64> = text.split(',').map(num).collect::<Result<_>>()?;
            positive(rates.iter().copied().fold(0.0, f64::max))?;
            return Ok(LayerRates::List(rates));
        }
        Ok(LayerRates::Single(positive(num(text)?)?))
    }

    /// The rate of each of `groups` groups.
    pub fn per_group(&self, groups: usize) -> Result<Vec<f64>> {
        Ok(match self {
            LayerRates::Single(lr) => vec![*lr; groups],
            LayerRates::Range(lo, hi) => {
                if groups == 1 {
                    vec![*hi]
                } else {
                    let ratio = (hi / lo).powf(1.0 / (groups - 1) as f64);
                    (0..groups).map(|g| lo * ratio.powi(g as i32)).collect()
                }
            }
            LayerRates::List(v) if v.len() == groups => v.clone(),
            LayerRates::List(v) => {
                return Err(Error::Invalid(format!(
                    "{} learning rates given for {groups} layer groups",
                    v.len()
                )));
            }
        })
    }

    /// The largest rate (what a schedule peaks at for the last group).
    pub fn max(&self) -> f64 {
        match self {
            LayerRates::Single(lr) => *lr,
            LayerRates::Range(_, hi) => *hi,
            LayerRates::List(v) => v.iter().copied().fold(0.0, f64::max),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_spreads_geometrically() {
        assert_eq!(
            LayerRates::parse("1e-3").unwrap().per_group(3).unwrap(),
            vec![1e-3; 3]
        );
        let r = LayerRates::parse("1e-5..1e-3")
            .unwrap()
            .per_group(3)
            .unwrap();
        assert!(
            (r[0] - 1e-5).abs() < 1e-12
                && (r[1] - 1e-4).abs() < 1e-12
                && (r[2] - 1e-3).abs() < 1e-12
        );
        assert_eq!(
            LayerRates::parse("0,0.1,1").unwrap().per_group(3).unwrap(),
            vec![0.0, 0.1, 1.0]
        );
        assert!(LayerRates::parse("0,1").unwrap().per_group(3).is_err());
        assert!(
            LayerRates::parse("fast")
                .unwrap_err()
                .to_string()
                .contains("1e-5..1e-3")
        );
    }
}
