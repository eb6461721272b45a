//! Flag values checked by clap before any work starts: each parser names the allowed range, so a
//! bad value is refused with the flag's name (clap adds it) and what would be accepted.

use convlearn::learner::LayerRates;

/// The largest input size accepted (`--size`): a 2048-px batch of 32 colour images is already
/// 1.5 GB of input alone.
pub const SIZE_MAX: usize = 2048;

fn whole(s: &str, lo: usize, hi: usize, what: &str) -> Result<usize, String> {
    let v: usize = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a whole number ({what}: {lo} to {hi})"))?;
    if v < lo || v > hi {
        return Err(format!("{v} is out of range ({what}: {lo} to {hi})"));
    }
    Ok(v)
}

/// Epochs when there is no other phase: 1 to 10 000.
pub fn epochs(s: &str) -> Result<usize, String> {
    whole(s, 1, 10_000, "epochs")
}

/// Epochs of one phase of several, where 0 skips it: 0 to 10 000.
pub fn phase_epochs(s: &str) -> Result<usize, String> {
    whole(s, 0, 10_000, "epochs of this phase")
}

/// Images per step: 1 to 4096.
pub fn batch_size(s: &str) -> Result<usize, String> {
    whole(s, 1, 4096, "images per step")
}

/// A count of images or classes that must be positive.
pub fn positive(s: &str) -> Result<usize, String> {
    whole(s, 1, usize::MAX >> 1, "at least 1")
}

/// Test-time augmentation copies: 0 to 32.
pub fn tta(s: &str) -> Result<usize, String> {
    whole(s, 0, 32, "augmented copies")
}

/// A fraction strictly between 0 and 1 (`--valid-pct`).
pub fn open_fraction(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a number (a fraction between 0 and 1, e.g. 0.2)"))?;
    if !(v > 0.0 && v < 1.0) {
        return Err(format!(
            "{s} is not strictly between 0 and 1 (e.g. 0.2 holds out a fifth)"
        ));
    }
    Ok(v)
}

/// A probability threshold from 0 to 1.
pub fn probability(s: &str) -> Result<f32, String> {
    let v: f32 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a number (a probability from 0 to 1)"))?;
    if !(0.0..=1.0).contains(&v) {
        return Err(format!("{s} is not a probability from 0 to 1"));
    }
    Ok(v)
}

/// A learning rate: `auto`, or what [`LayerRates::parse`] accepts (positive, finite, at most 10).
pub fn learning_rate(s: &str) -> Result<String, String> {
    if s != "auto" {
        LayerRates::parse(s).map_err(|e| e.to_string())?;
    }
    Ok(s.to_string())
}

/// `224` or `128,224`, each from 16 to [`SIZE_MAX`] pixels.
pub fn sizes(s: &str) -> Result<(usize, Option<usize>), String> {
    let num = |t: &str| whole(t, 16, SIZE_MAX, "pixels");
    match s.split_once(',') {
        Some((a, b)) => Ok((num(a)?, Some(num(b)?))),
        None => Ok((num(s)?, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_enforced_and_named() {
        assert_eq!(epochs("3"), Ok(3));
        assert!(epochs("0").unwrap_err().contains("1 to 10000"));
        assert_eq!(phase_epochs("0"), Ok(0));
        assert!(batch_size("0").unwrap_err().contains("1 to 4096"));
        assert!(batch_size("-1").unwrap_err().contains("not a whole number"));
        assert!(tta("1000").unwrap_err().contains("0 to 32"));
        assert!(open_fraction("1").is_err() && open_fraction("0").is_err());
        assert!(open_fraction("NaN").is_err());
        assert_eq!(open_fraction("0.2"), Ok(0.2));
        assert!(probability("1.5").is_err() && probability("NaN").is_err());
        assert!(sizes("100000").unwrap_err().contains("16 to 2048"));
        assert_eq!(sizes("128,224"), Ok((128, Some(224))));
        assert!(sizes("0").is_err());
        assert!(learning_rate("-1e-3").is_err());
        assert!(learning_rate("NaN").is_err());
        assert!(learning_rate("fast").is_err());
        assert!(learning_rate("0").is_err());
        assert!(learning_rate("1e-3..1e-5").is_err());
        assert_eq!(learning_rate("auto").as_deref(), Ok("auto"));
        assert_eq!(learning_rate("1e-5..1e-3").as_deref(), Ok("1e-5..1e-3"));
    }
}
