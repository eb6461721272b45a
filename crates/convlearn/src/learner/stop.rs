//! Stopping a run cleanly: a flag that an interrupt (Ctrl-C) sets and the training loop reads after
//! every step, writing a checkpoint before it stops ([`crate::error::Error::Interrupted`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// The flag that asks training to stop after its current step. A command line registers it for
/// SIGINT and SIGTERM (e.g. `signal_hook::flag::register`); a library user may set it from any
/// thread.
pub fn stop_flag() -> Arc<AtomicBool> {
    FLAG.get_or_init(|| Arc::new(AtomicBool::new(false)))
        .clone()
}

/// Whether a stop was asked for.
pub fn stop_requested() -> bool {
    FLAG.get().is_some_and(|f| f.load(Ordering::Relaxed))
}
