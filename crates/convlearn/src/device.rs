//! Which burn device convlearn computes on.
//!
//! The CPU path is burn's pure-Rust `flex` backend. Building with the `cuda` or `wgpu` cargo feature and
//! setting `CONVLEARN_DEVICE=cuda|wgpu` moves the work to a GPU.

use burn::tensor::Device;

/// The device for inference (no gradients).
pub fn inference_device() -> Device {
    match std::env::var("CONVLEARN_DEVICE").as_deref() {
        #[cfg(feature = "cuda")]
        Ok("cuda") => Device::cuda(0usize),
        #[cfg(feature = "wgpu")]
        Ok("wgpu") => Device::wgpu(Default::default()),
        _ => Device::flex(),
    }
}

/// The device for training: the inference device with autodiff switched on.
pub fn training_device() -> Device {
    inference_device().autodiff()
}
