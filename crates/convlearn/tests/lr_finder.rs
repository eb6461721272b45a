//! The LR finder on a small network restores the weights and suggests a rate. Alone in its process:
//! no other test's draws from flex's process-wide generator (a `fit` reseeds it at every step, for
//! dropout) can fall inside this sweep's, so it runs the same on every run.

use convlearn::data::generate_shapes;
use convlearn::host::values;
use convlearn::learner::{FitConfig, lr_find};
use convlearn::models::{ModelPreset, Network};
use convlearn::recipes::scratch_learner;

#[test]
fn lr_find_restores_the_weights_and_suggests_a_rate() {
    let set = generate_shapes(600, 28, 3);
    // The suggestion is a tenth of the lowest smoothed loss's rate, the sweep's first tenth left
    // out: with the whole sweep, a first, easy batch could be the minimum and the suggestion 1e-8
    // (it was for some seeds).
    let mut l = scratch_learner(ModelPreset::SimpleCnn, &set, 2).unwrap();
    let dense_weight = |l: &convlearn::learner::Learner| match &l.model {
        Network::Plain(c) => values(c.dense[0].weight.val()),
        _ => unreachable!("a plain network"),
    };
    let before = dense_weight(&l);
    let cfg = FitConfig {
        batch_size: 8,
        verbose: false,
        ..FitConfig::default()
    };
    let f = lr_find(&mut l, &set, &cfg).unwrap();
    assert_eq!(before, dense_weight(&l), "weights restored");
    assert!(
        f.lrs.len() >= 10 && f.lrs.windows(2).all(|w| w[1] > w[0]),
        "exponential sweep"
    );
    assert!(
        // AdamW with batches of 8 suggests a rate around 1e-3 here; a sweep that goes wrong lands
        // decades away
        f.suggestion > 3e-4 && f.suggestion < 3e-3,
        "suggestion {}",
        f.suggestion
    );
    let tmp = tempfile::tempdir().unwrap();
    f.plot(&tmp.path().join("lr.png")).unwrap();
    assert!(image::open(tmp.path().join("lr.png")).is_ok());
}
