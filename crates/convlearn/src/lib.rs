//! # convlearn
//!
//! Understand, train, fine-tune, inspect and ship convolutional image classifiers — fast.ai's
//! lesson "Understanding convolutions" as a Rust library, on the CPU in pure Rust.
//!
//! **A kernel on a picture** — the lesson's first step, runnable as it is:
//!
//! ```
//! use convlearn::kernels::{FeatureMaps, Kernel};
//!
//! // a 6×6 picture, dark above and bright below
//! let picture = FeatureMaps::new(1, 6, 6, (0..36).map(|i| if i < 18 { 0.0 } else { 1.0 }).collect());
//! let bottom_edge = Kernel::parse("-1 -1 -1; 0 0 0; 1 1 1")?;
//! let response = bottom_edge.apply(&picture)?.relu().max_pool(2);
//! assert_eq!(response.get(0, 0, 0), 3.0); // it lights up where the edge is
//! # Ok::<(), convlearn::Error>(())
//! ```
//!
//! **Train a CNN from scratch** (MNIST, [`recipes::train_classifier`]):
//!
//! ```no_run
//! # fn main() -> convlearn::Result<()> {
//! use convlearn::{data::Mnist, learner::FitConfig, models::ModelPreset, recipes::train_classifier};
//!
//! let mnist = Mnist::load("../shared/data/mnist".as_ref())?;
//! let fit = FitConfig { epochs: 1, ..FitConfig::default() };
//! let (model, report) = train_classifier(ModelPreset::SimpleCnn, &mnist.train, &mnist.test, &fit)?;
//! println!("{:.2}% on the test set", 100.0 * report.valid_accuracy);
//! model.save("mnist.safetensors".as_ref())?;
//! # Ok(()) }
//! ```
//!
//! **Fine-tune a pretrained network on a folder of photos** ([`FineTune`]):
//!
//! ```no_run
//! # fn main() -> convlearn::Result<()> {
//! let (model, report) = convlearn::FineTune::new("mobilenet_v2.safetensors")
//!     .freeze_epochs(3)
//!     .on_folder("hymenoptera")?;
//! model.save("bees.safetensors".as_ref())?;
//! # Ok(()) }
//! ```
//!
//! **Classify images in a service** ([`Classifier`]: load once, predict per request):
//!
//! ```no_run
//! # fn main() -> convlearn::Result<()> {
//! let classifier = convlearn::Classifier::load("bees.safetensors")?;
//! let best = classifier.predict_file("photo.jpg")?.best();
//! println!("{} ({:.1}%)", best.class, 100.0 * best.probability);
//! # Ok(()) }
//! ```
//!
//! **Export to ONNX** ([`export`]), for onnxruntime, tract, a phone or a browser:
//!
//! ```no_run
//! # fn main() -> convlearn::Result<()> {
//! let classifier = convlearn::Classifier::load("bees.safetensors")?;
//! classifier.export_onnx("bees.onnx", &convlearn::export::OnnxOptions::default())?;
//! # Ok(()) }
//! ```
//!
//! **bf16 on a CPU that has AVX512-BF16** ([`set_precision`], the command line's `--precision bf16`):
//! the convolutions' products take bf16 operands and sum in fp32, as PyTorch's `autocast` does;
//! everything else stays fp32. It is the whole process's setting:
//!
//! ```
//! use convlearn::{Precision, set_precision};
//!
//! let in_effect = set_precision(Precision::Bf16); // fp32 where the CPU cannot
//! # set_precision(Precision::Fp32);
//! # let _ = in_effect;
//! ```
//!
//! `examples/` holds each of these as a program (`cargo run --release --example NAME`).
//!
//! ## How it fits together
//!
//! [`data`] reads IDX files, image files, CSV labels and generated shapes into batches;
//! [`models`] builds the networks (plain CNNs from a spec, ResNet and MobileNetV2 with torchvision's
//! names, the heads); [`learner`] trains them (losses, one-cycle, layer groups, checkpoints);
//! [`recipes`] are whole workflows over those ([`recipes::train_classifier`], [`FineTune`]);
//! [`model_file`] is the one file with weights and metadata; [`interpret`] predicts and explains,
//! [`export`] writes ONNX, and [`Classifier`] is the small front door over both. [`kernels`]
//! computes what a single kernel does to a picture in plain Rust, and is what
//! [`interpret::explain()`] uses, so the teaching view and the network agree (tests check both
//! against burn's convolution). The engine's own CPU routines (convolution, max-pooling, the passes
//! after a convolution, forward and backward) live in the hidden module `engine`, a burn backend
//! extension for its `flex` backend that the models call; `bench` and `host` are hidden too.
//! Throughout, a *kernel* means a convolution's weights, as in the lesson, never the code.

#![warn(missing_docs)]

#[doc(hidden)]
pub mod bench;
mod classifier;
pub mod data;
pub mod device;
#[doc(hidden)]
pub mod engine;
pub mod error;
pub mod export;
pub mod feature_maps;
#[doc(hidden)]
pub mod host;
pub mod interpret;
pub mod kernels;
pub mod learner;
pub mod model_check;
pub mod model_file;
pub mod models;
pub mod output_file;
pub mod plot;
pub mod progress;
pub mod recipes;
pub mod tensor_file;

pub use classifier::Classifier;
pub use engine::{Precision, set_precision};
pub use error::{Error, Result};
pub use feature_maps::FeatureMaps;
pub use interpret::Scores;
pub use recipes::FineTune;
