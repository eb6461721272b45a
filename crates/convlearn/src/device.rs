//! Which burn device convlearn computes on, and from which thread.
//!
//! The CPU path is burn's pure-Rust `flex` backend. A binary built with the `cuda` or `wgpu` cargo
//! feature moves the work to a GPU when [`select_device`] (the command line's `--device`) or the
//! `CONVLEARN_DEVICE` environment variable asks for it.

use std::sync::atomic::{AtomicU8, Ordering};

pub use burn::tensor::Device;

use crate::Error;

/// A kind of device convlearn can compute on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeviceKind {
    /// The CPU, through burn's `flex` backend and convlearn's own kernels (the default).
    #[default]
    Cpu,
    /// A GPU through WebGPU (Vulkan, Metal or DirectX 12): the `wgpu` cargo feature.
    Wgpu,
    /// An NVIDIA GPU through CUDA: the `cuda` cargo feature.
    Cuda,
}

impl DeviceKind {
    /// Every kind, in the order of [`DeviceKind::name`]'s list.
    pub const ALL: [DeviceKind; 3] = [DeviceKind::Cpu, DeviceKind::Wgpu, DeviceKind::Cuda];

    /// `"cpu"`, `"wgpu"` or `"cuda"`.
    pub fn name(self) -> &'static str {
        match self {
            DeviceKind::Cpu => "cpu",
            DeviceKind::Wgpu => "wgpu",
            DeviceKind::Cuda => "cuda",
        }
    }

    /// The kind a name stands for: an error listing the names otherwise.
    pub fn parse(name: &str) -> crate::Result<DeviceKind> {
        DeviceKind::ALL
            .into_iter()
            .find(|kind| kind.name() == name)
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "unknown device '{name}' (known: {}; this binary computes on: {})",
                    names(&DeviceKind::ALL),
                    names(&compiled_devices())
                ))
            })
    }

    /// Whether this binary was built with this kind's cargo feature.
    pub fn compiled(self) -> bool {
        match self {
            DeviceKind::Cpu => true,
            DeviceKind::Wgpu => cfg!(feature = "wgpu"),
            DeviceKind::Cuda => cfg!(feature = "cuda"),
        }
    }
}

fn names(kinds: &[DeviceKind]) -> String {
    let names: Vec<&str> = kinds.iter().map(|kind| kind.name()).collect();
    names.join(", ")
}

/// The kinds this binary can compute on.
pub fn compiled_devices() -> Vec<DeviceKind> {
    DeviceKind::ALL
        .into_iter()
        .filter(|kind| kind.compiled())
        .collect()
}

/// No selection yet: [`inference_device`] reads `CONVLEARN_DEVICE`.
const UNSELECTED: u8 = u8::MAX;
static SELECTED: AtomicU8 = AtomicU8::new(UNSELECTED);

/// Makes `kind` the device of every later [`inference_device`] and [`training_device`] in this
/// process; an error, naming the cargo feature to build with, when this binary lacks it. For
/// `wgpu` it also brings the GPU up, so that a machine without one is told so here, with what
/// wgpu reported, rather than by a panic inside burn at the first tensor.
pub fn select_device(kind: DeviceKind) -> crate::Result<()> {
    require_compiled(kind)?;
    #[cfg(feature = "wgpu")]
    if kind == DeviceKind::Wgpu {
        wgpu_gpu()?;
    }
    SELECTED.store(kind as u8, Ordering::Relaxed);
    Ok(())
}

/// The GPU the selected device computes on, as `name (graphics API, kind)`: `None` on the CPU,
/// and for `cuda`, whose adapter burn does not report.
pub fn gpu_name() -> Option<String> {
    match current_device() {
        #[cfg(feature = "wgpu")]
        DeviceKind::Wgpu => wgpu_gpu().ok().map(|(_, name)| name.clone()),
        _ => None,
    }
}

/// wgpu's default device, brought up once per process, with its adapter's name; or, when wgpu
/// finds no adapter, an error with wgpu's report and what to install.
#[cfg(feature = "wgpu")]
fn wgpu_gpu() -> crate::Result<&'static (Device, String)> {
    static GPU: std::sync::OnceLock<Result<(Device, String), String>> = std::sync::OnceLock::new();
    GPU.get_or_init(|| {
        let (device, setup) = Device::wgpu_options().init_with_setup().map_err(|e| {
            format!(
                "device 'wgpu': no GPU to compute on ({e}). wgpu looks for Vulkan, Metal, DirectX 12 \
                 or OpenGL; on Linux install the GPU's Vulkan driver (Debian's mesa-vulkan-drivers \
                 also gives lavapipe, a Vulkan device that runs on the CPU); `vulkaninfo --summary` \
                 lists what Vulkan finds"
            )
        })?;
        let info = setup.adapter.get_info();
        let name = format!("{} ({:?}, {:?})", info.name, info.backend, info.device_type);
        // Without a Vulkan driver wgpu falls back to OpenGL, where burn's kernels do not compile
        // (its matrix product's WGSL failed validation on Mesa's llvmpipe, deep inside training).
        if info.backend == burn::tensor::wgpu::wgpu::Backend::Gl {
            return Err(format!(
                "device 'wgpu': wgpu found only OpenGL ({name}), where burn's kernels do not \
                 compile; it needs Vulkan, Metal or DirectX 12. On Linux install the GPU's Vulkan \
                 driver (Debian's mesa-vulkan-drivers also gives lavapipe, a Vulkan device that \
                 runs on the CPU); `vulkaninfo --summary` lists what Vulkan finds"
            ));
        }
        Ok((device, name))
    })
    .as_ref()
    .map_err(|e| Error::Invalid(e.clone()))
}

/// An error, naming the cargo feature to build with, when this binary cannot compute on `kind`.
fn require_compiled(kind: DeviceKind) -> crate::Result<()> {
    if kind.compiled() {
        return Ok(());
    }
    Err(Error::Invalid(format!(
        "device '{}': this binary was built without the `{}` cargo feature (it computes on: \
         {}); build with `cargo build --release --features {}`",
        kind.name(),
        kind.name(),
        names(&compiled_devices()),
        kind.name()
    )))
}

/// The device kind `CONVLEARN_DEVICE` names (the CPU when it is unset or empty), checked as
/// [`select_device`] checks it; errors start with the variable's name.
pub fn device_from_environment() -> crate::Result<DeviceKind> {
    let name = match std::env::var("CONVLEARN_DEVICE") {
        Err(std::env::VarError::NotPresent) => return Ok(DeviceKind::Cpu),
        Ok(name) if name.is_empty() => return Ok(DeviceKind::Cpu),
        Ok(name) => name,
        Err(e) => return Err(Error::Invalid(format!("CONVLEARN_DEVICE: {e}"))),
    };
    DeviceKind::parse(&name)
        .and_then(|kind| require_compiled(kind).map(|()| kind))
        .map_err(|e| Error::Invalid(format!("CONVLEARN_DEVICE={name}: {e}")))
}

/// The kind [`inference_device`] uses: the [`select_device`] choice, else `CONVLEARN_DEVICE`'s
/// when it names a device this binary has, else the CPU.
pub fn current_device() -> DeviceKind {
    match SELECTED.load(Ordering::Relaxed) {
        UNSELECTED => device_from_environment().unwrap_or_default(),
        selected => DeviceKind::ALL[selected as usize],
    }
}

/// The device for inference (no gradients): [`current_device`]'s.
pub fn inference_device() -> Device {
    match current_device() {
        #[cfg(feature = "cuda")]
        DeviceKind::Cuda => Device::cuda(0usize),
        #[cfg(feature = "wgpu")]
        DeviceKind::Wgpu => match wgpu_gpu() {
            Ok((device, _)) => device.clone(),
            // burn's own error, at the first tensor: `select_device` reports it better.
            Err(_) => Device::wgpu(Default::default()),
        },
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
