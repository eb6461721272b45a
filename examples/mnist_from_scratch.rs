//! A small CNN trained from scratch on MNIST for one epoch, then saved.
//!
//! `cargo run --release --example mnist_from_scratch` (needs the shared MNIST: `../shared/data/mnist`
//! or `$CONVLEARN_DATA/data/mnist`). Writes `mnist.safetensors`.

use convlearn::data::Mnist;
use convlearn::learner::FitConfig;
use convlearn::models::ModelPreset;
use convlearn::recipes::train_classifier;

fn main() -> convlearn::Result<()> {
    let shared = std::env::var("CONVLEARN_DATA").unwrap_or_else(|_| "../shared".into());
    let mnist = Mnist::load(format!("{shared}/data/mnist").as_ref())?;
    let fit = FitConfig {
        epochs: 1,
        ..FitConfig::default()
    };
    let (model, report) =
        train_classifier(ModelPreset::SimpleCnn, &mnist.train, &mnist.test, &fit)?;
    println!(
        "simple_cnn, 1 epoch: {:.2}% on MNIST's 10 000 test digits",
        100.0 * report.valid_accuracy
    );
    model.save("mnist.safetensors".as_ref())?;
    println!("wrote mnist.safetensors (try: convlearn predict mnist.safetensors digit.png)");
    Ok(())
}
