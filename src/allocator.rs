//! How the process's memory allocator is set up. The engine allocates and frees buffers of several
//! megabytes for every operation; glibc's malloc hands each one above its mmap threshold (128 KiB at
//! first, adapting up to 32 MiB) straight to `mmap` and returns it with `munmap` — page faults on
//! every use and a TLB shootdown across cores on every free. In `perf`, MobileNetV2 inference spent
//! a quarter of its time there (`native_write_msr`, `smp_call_function_many_cond`, page faults).
//! Serving those sizes from the heap and keeping freed memory for reuse removes it.
//!
//! Measured on this project's 2-core machine, `convlearn bench`, one workload per process, glibc
//! defaults against these settings (2–4 rounds): mobilenet_v2_infer 20.7 → 27.0 images/s, small CNN
//! training 682 → 789, small CNN inference 1970 → 2170; ResNet-18 unchanged within noise (inference
//! 13.7 → 13.1, training 10.1 → 10.3); peak memory within 2 MiB. mimalloc, tried the same way, was
//! close on MobileNetV2 (25.8) but doubled peak memory and slowed ResNet-18 training.
//!
//! 32 MiB is the most glibc's threshold may be, and activations grow past it (MobileNetV2 at 320 px,
//! batch 16: 157 MB for one tensor): the default fine-tune on hymenoptera still spent 43 % of its
//! time in the kernel's TLB shootdowns. So mmap is switched off altogether (`M_MMAP_MAX` 0) and every
//! block comes from the heap: that fine-tune 35.9 → 20.7 s (peak memory 826 → 894 MB); the model
//! workloads unchanged or faster (ResNet-18 training 20.0 → 22.5 images/s).

/// Largest allocation glibc serves from the heap (its maximum; with mmap off it only steers how
/// freed blocks are kept).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 32 << 20;

/// Free memory glibc keeps at the top of the heap before returning it to the system.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD: libc::c_int = 1 << 30;

/// Applies the settings; call once, first thing in `main`.
pub fn configure() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes glibc's allocator parameters; it is called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
        libc::mallopt(libc::M_MMAP_MAX, 0);
    }
}
