//! `convlearn bench [WORKLOAD…] [--quick] [--json]`: images/s and peak memory of the workloads that
//! `bench/compare` sets against PyTorch (run one workload per process for a clean peak memory).

use anyhow::Result;
use convlearn::bench::{WORKLOADS, run_workload};
use convlearn::data::shared_data_dir;
use convlearn::device::{DeviceKind, current_device, gpu_name};
use convlearn::engine::{bf16_hardware, current_precision};
use serde_json::json;

/// Arguments of `bench`.
#[derive(clap::Args)]
pub struct Args {
    /// Workloads to run (default: all but the two end-to-end ones). `--list` names them.
    workloads: Vec<String>,
    /// List the workloads and stop.
    #[arg(long)]
    list: bool,
    /// A few steps only (a smoke test, not a measurement).
    #[arg(long)]
    quick: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs `bench`.
pub fn run(args: Args) -> Result<()> {
    if args.list {
        for (name, what) in WORKLOADS {
            println!("{name:24} {what}");
        }
        return Ok(());
    }
    let names: Vec<String> = if args.workloads.is_empty() {
        WORKLOADS
            .iter()
            .filter(|w| !matches!(w.0, "mnist_3_epochs" | "fine_tune_hymenoptera"))
            .map(|w| w.0.to_string())
            .collect()
    } else {
        args.workloads.clone()
    };
    let data = shared_data_dir();
    let precision = current_precision();
    let device = current_device();
    // Off the CPU the precision does not apply: it selects convlearn's CPU products.
    let (mode, engine) = match device {
        DeviceKind::Cpu => (precision.name(), "flex"),
        gpu => (gpu.name(), gpu.name()),
    };
    let mut results = Vec::new();
    for name in &names {
        let r = run_workload(name, &data, args.quick)?;
        if !args.json {
            println!(
                "{:24} {:>9.1} images/s ({} images in {:.2} s){}, peak memory {} ({} threads, {})",
                r.workload,
                r.images_per_second,
                r.images,
                r.seconds,
                r.accuracy
                    .map(|a| format!(", accuracy {:.2}%", 100.0 * a))
                    .unwrap_or_default(),
                r.peak_rss_mib
                    .map_or("unknown".into(), |m| format!("{m:.0} MiB")),
                r.threads,
                mode
            );
        }
        results.push(r);
    }
    if args.json {
        super::print_json(&json!({
            "engine": format!("convlearn (burn 0.22.1 {engine})"),
            "device": device.name(),
            "gpu": gpu_name(),
            "precision": precision.name(),
            "bf16_hardware": bf16_hardware(),
            "results": results,
        }));
    }
    Ok(())
}
