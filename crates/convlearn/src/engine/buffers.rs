//! The engine's buffers: per-thread scratch reused between calls, outputs zeroed in parallel,
//! and the shared output that parallel tiles write disjoint parts of.

use std::mem::MaybeUninit;

use rayon::prelude::*;

/// Buffers kept between calls on a thread: the im2col matrices and layout copies are rewritten
/// in full every time, so after the first call nothing is allocated or zeroed (on one thread that
/// zeroing was a fifth of a small CNN's training step).
#[derive(Default)]
pub(super) struct Scratch {
    pub(super) col: Vec<f32>,
    pub(super) product: Vec<f32>,
    pub(super) dy: Vec<f32>,
    pub(super) dcol: Vec<f32>,
    /// Operands packed as bf16 pairs (`--precision bf16`).
    pub(super) packed: Vec<u32>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::default();
}

/// A vector of `len` zeros for an output the caller then writes in full. The zeros are written on
/// rayon's threads, in blocks: zeroing on the main thread was a serial pass over every new
/// activation and gradient while the workers waited, and handing out uninitialised memory as
/// `&mut [f32]` (as this once did, and burn-flex does) is undefined behaviour.
pub(super) fn zeroed<T: Copy + Default + Send + Sync>(len: usize) -> Vec<T> {
    const BLOCK: usize = 1 << 15;
    if len <= BLOCK {
        return vec![T::default(); len];
    }
    let mut v = Vec::with_capacity(len);
    v.spare_capacity_mut()[..len]
        .par_chunks_mut(BLOCK)
        .for_each(|block| {
            for x in block {
                x.write(T::default());
            }
        });
    // SAFETY: the loop above initialised every one of the first `len` elements.
    unsafe { v.set_len(len) };
    v
}

/// Writes zeros into `cells` (which may be unwritten) and returns them as floats.
pub(super) fn zero_fill(cells: &mut [MaybeUninit<f32>]) -> &mut [f32] {
    cells.fill(MaybeUninit::new(0.0));
    // SAFETY: every cell was written just above.
    unsafe { assume_written(cells) }
}

/// `cells`, every one of which has been written, as floats.
///
/// # Safety
/// Every cell of `cells` must be initialised.
pub(super) unsafe fn assume_written(cells: &mut [MaybeUninit<f32>]) -> &mut [f32] {
    // SAFETY: `MaybeUninit<f32>` has `f32`'s layout, and the caller vouches for the values.
    unsafe { &mut *(cells as *mut [MaybeUninit<f32>] as *mut [f32]) }
}

/// The first `len` values of `buffer`, growing it (zeroed) when shorter. Callers overwrite them.
pub(super) fn scratch<T: Copy + Default>(buffer: &mut Vec<T>, len: usize) -> &mut [T] {
    if buffer.len() < len {
        buffer.resize(len, T::default());
    }
    &mut buffer[..len]
}

/// Runs `f` with this thread's scratch buffers (fresh ones when a caller up the stack on this
/// thread holds them: a thread waiting on rayon work may run another pass's task).
pub(super) fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut scratch) => f(&mut scratch),
        Err(_) => f(&mut Scratch::default()),
    })
}

/// An output shared by parallel tasks (the tiles of `conv::forward_tiles`), which write disjoint
/// parts of it.
pub(super) struct TileOutput<T = f32>(pub(super) *mut T);

// SAFETY: the tasks write disjoint cells (see `forward_tiles`), and the vector outlives the pass.
unsafe impl<T> Sync for TileOutput<T> {}

impl<T> TileOutput<T> {
    /// The cell `offset` values from the start.
    pub(super) fn at(&self, offset: usize) -> *mut T {
        // SAFETY: callers stay inside the output (see `forward_tiles`).
        unsafe { self.0.add(offset) }
    }
}
