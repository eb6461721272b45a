//! Which burn device convlearn computes on, and from which thread.
//!
//! The CPU path is burn's pure-Rust `flex` backend. Building with the `cuda` or `wgpu` cargo feature and
//! setting `CONVLEARN_DEVICE=cuda|wgpu` moves the work to a GPU.

pub use burn::tensor::Device;

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

/// Makes the calling thread one of the threads of rayon's global pool (the first of
/// `RAYON_NUM_THREADS`, by default one per core; the others are started). Call it once, before
/// anything uses rayon, from the thread that will run the training and inference loops — a
/// program's `main`. Fails when the pool was already built.
///
/// convlearn's engine routines split each pass across rayon's threads. Started from a thread outside the
/// pool, a pass hands its work over and sleeps until it is done — two thread switches per pass,
/// and a small CNN's training step has hundreds of passes. From a thread of the pool it runs a
/// part itself while the others take the rest, and a pass too small to split stays on it.
///
/// The pool's threads (this one included) also treat denormal floats as zero (x86's FTZ/DAZ):
/// arithmetic on them takes a slow microcode path, and the MNIST network's small values reach that
/// range as training goes on — its 3 epochs took 112.4 s with them and 92.3 s without, to the same
/// 99.30 %.
///
/// The thread joins in when it waits on rayon work; a server whose main thread runs an event loop
/// should not call this (that thread would never compute).
pub fn compute_on_this_thread() -> Result<(), rayon::ThreadPoolBuildError> {
    flush_denormals();
    rayon::ThreadPoolBuilder::new()
        .use_current_thread()
        .start_handler(|_| flush_denormals())
        .build_global()
}

/// Denormal floats as zero on this thread (x86's FTZ and DAZ bits; elsewhere nothing).
fn flush_denormals() {
    #[cfg(target_arch = "x86_64")]
    #[allow(deprecated)]
    // SAFETY: only sets the flush-to-zero and denormals-are-zero bits of this thread's MXCSR.
    unsafe {
        use std::arch::x86_64::{_mm_getcsr, _mm_setcsr};
        _mm_setcsr(_mm_getcsr() | 0x8040);
    }
}
