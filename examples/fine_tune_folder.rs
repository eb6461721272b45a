//! fastai's `fine_tune` on a folder of photos: ImageNet-pretrained MobileNetV2, a new head, the
//! body frozen, the learning rate from the LR finder.
//!
//! `cargo run --release --example fine_tune_folder [FOLDER]` (default: the shared hymenoptera
//! ants and bees; the weights come from the shared data too). Writes `fine_tuned.safetensors`.

use convlearn::FineTune;

fn main() -> convlearn::Result<()> {
    let shared = std::env::var("CONVLEARN_DATA").unwrap_or_else(|_| "../shared".into());
    let folder = std::env::args()
        .nth(1)
        .unwrap_or_else(|| format!("{shared}/data/hymenoptera"));
    let weights = format!("{shared}/weights/mobilenet_v2_imagenet_from_tflite.safetensors");
    let (model, report) = FineTune::new(weights)
        .freeze_epochs(3)
        .quiet()
        .on_folder(&folder)?;
    println!(
        "{folder}: {} classes, {:.1}% validation accuracy after {} epochs ({:.0} s)",
        model.meta.classes.len(),
        100.0 * report.valid_accuracy,
        report.epochs,
        report.seconds
    );
    model.save("fine_tuned.safetensors".as_ref())?;
    println!("wrote fine_tuned.safetensors");
    Ok(())
}
