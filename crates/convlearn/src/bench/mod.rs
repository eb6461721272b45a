//! Benchmarks: the workloads `convlearn bench` times, each the same work as
//! `bench/pytorch_reference.py` does in PyTorch (shapes, batch sizes, thread count, data), so that
//! `bench/compare` can run both in one session and report the ratios.

mod memory;
mod workloads;

pub use memory::peak_rss_mib;
pub use workloads::{BenchResult, WORKLOADS, run_workload};
