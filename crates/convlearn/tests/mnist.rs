//! Real MNIST: the IDX reader against the decompressed files, known labels, and the accuracy claim.

mod common;

use std::io::Read;

use common::require_shared;
use convlearn::data::Mnist;
use convlearn::learner::FitConfig;
use convlearn::models::ModelPreset;
use convlearn::recipes::train_classifier;

#[test]
#[ignore = "needs ../shared (or $CONVLEARN_DATA): cargo test -- --ignored runs it"]
fn reads_mnist_idx_files_exactly() {
    let dir = require_shared();
    let mnist = Mnist::load(&dir.join("data/mnist")).unwrap();
    assert_eq!((mnist.train.len(), mnist.test.len()), (60_000, 10_000));
    assert_eq!(
        (mnist.train.height, mnist.train.width, mnist.train.channels),
        (28, 28, 1)
    );
    // The well-known first labels of each split.
    assert_eq!(
        &mnist.train.targets.view().classes().unwrap()[..10],
        &[5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    );
    assert_eq!(
        &mnist.test.targets.view().classes().unwrap()[..10],
        &[7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    );
    // Pixels are the file's bytes after the 16-byte header, decompressed independently here.
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(
        std::fs::File::open(dir.join("data/mnist/t10k-images-idx3-ubyte.gz")).unwrap(),
    )
    .read_to_end(&mut raw)
    .unwrap();
    assert_eq!(mnist.test.pixels, raw[16..]);
    // Loading from the shared folder itself finds data/mnist's parent layout too.
    assert!(Mnist::load(&dir.join("data")).is_ok());
}

#[test]
#[ignore = "long (about 4 minutes on 2 cores): run by .ci/run with --ignored"]
fn simple_cnn_reaches_99_percent_on_mnist_in_3_epochs() {
    let dir = require_shared();
    let mnist = Mnist::load(&dir.join("data/mnist")).unwrap();
    let fit = FitConfig {
        epochs: 3,
        verbose: false,
        ..FitConfig::default()
    };
    let (_, report) =
        train_classifier(ModelPreset::SimpleCnn, &mnist.train, &mnist.test, &fit).unwrap();
    eprintln!(
        "MNIST: {:.2}% test accuracy, {:.1} s, {:.0} images/s",
        100.0 * report.valid_accuracy,
        report.seconds,
        report.images_per_second
    );
    assert!(
        report.valid_accuracy >= 0.99,
        "test accuracy {}",
        report.valid_accuracy
    );
}
