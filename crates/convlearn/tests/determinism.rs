//! Training repeats itself: the same seed and thread count give bit-identical weights, so a
//! result can be reproduced and a resumed run compared with an uninterrupted one.

use convlearn::data::generate_shapes;
use convlearn::learner::FitConfig;
use convlearn::models::ModelPreset;
use convlearn::recipes::train_classifier;
use convlearn::tensor_file::TensorFile;

/// Trains the small CNN for 2 epochs of 63 steps (1000 generated shapes, batch 16) and returns
/// every weight as it was saved.
fn train_once(dir: &std::path::Path, name: &str) -> TensorFile {
    let train = generate_shapes(1000, 28, 5);
    let valid = generate_shapes(200, 28, 6);
    let fit = FitConfig {
        epochs: 2,
        batch_size: 16,
        seed: 11,
        verbose: false,
        ..FitConfig::default()
    };
    let (model, _) = train_classifier(ModelPreset::SimpleCnn, &train, &valid, &fit).unwrap();
    let path = dir.join(name);
    model.save(&path).unwrap();
    TensorFile::read(&path).unwrap()
}

#[test]
fn two_runs_with_one_seed_give_bit_identical_weights() {
    let dir = tempfile::tempdir().unwrap();
    let a = train_once(dir.path(), "a.safetensors");
    let b = train_once(dir.path(), "b.safetensors");
    assert_eq!(a.metadata, b.metadata);
    assert_eq!(
        a.tensors.keys().collect::<Vec<_>>(),
        b.tensors.keys().collect::<Vec<_>>()
    );
    for (name, t) in &a.tensors {
        let u = &b.tensors[name];
        let differing = t
            .values
            .iter()
            .zip(&u.values)
            .filter(|(x, y)| x.to_bits() != y.to_bits())
            .count();
        assert_eq!(
            differing,
            0,
            "{name}: {differing} of {} values differ",
            t.values.len()
        );
    }
}
