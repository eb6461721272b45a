//! # convlearn
//!
//! Understand, train, fine-tune and inspect convolutional image classifiers — fast.ai's lesson
//! "Understanding convolutions" as a Rust library.
//!
//! The data flows one way:
//! [`data`] (IDX files, image files, generated shapes → batches) → [`models`] (a plain CNN built from a
//! spec) → [`learner`] (losses, one-cycle training, history) → [`model_file`] (one file with weights and
//! metadata) → [`interpret`] (predictions, activations, the arithmetic of one activation).
//! [`kernels`] computes what a single kernel does to a picture in plain Rust, and is what
//! [`interpret::explain()`] uses, so the teaching view and the network agree (tests check both against
//! burn's convolution). [`fused`] holds convlearn's own CPU kernels — convolution, max-pooling and
//! the passes after a convolution, forward and backward — registered with burn as a backend
//! extension for its `flex` backend; the models call them.

pub mod bench;
pub mod data;
pub mod device;
pub mod error;
pub mod export;
pub mod fused;
pub mod host;
pub mod interpret;
pub mod kernels;
pub mod learner;
pub mod model_check;
pub mod model_file;
pub mod models;
pub mod output_file;
pub mod plot;
pub mod recipes;
pub mod tensor_file;

pub use error::{Error, Result};
