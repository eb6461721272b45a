//! `convlearn serve [--port P] [--host H] [--model MODEL] [--samples DIR]`: the kernel playground
//! and network explorer in a browser.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::{Result, anyhow};
use convlearn::data::shared_data_dir;
use convlearn_web::{ServeConfig, serve_blocking};

/// Arguments of `serve`.
#[derive(clap::Args)]
pub struct Args {
    /// Port to listen on (0 picks a free one; the address is printed).
    #[arg(long, default_value_t = 7878)]
    port: u16,
    /// Address to listen on; only this machine can connect unless another is given (e.g. 0.0.0.0).
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// A model saved by convlearn for the network explorer (default: the lesson's small network,
    /// trained on generated shapes when the server starts).
    #[arg(long)]
    model: Option<PathBuf>,
    /// A folder of sample pictures to offer (default: $CONVLEARN_DATA/data/images when present).
    #[arg(long)]
    samples: Option<PathBuf>,
}

/// Runs `serve`.
pub fn run(args: Args) -> Result<()> {
    let samples = args.samples.or_else(|| {
        let d = shared_data_dir().join("data/images");
        d.is_dir().then_some(d)
    });
    serve_blocking(ServeConfig {
        addr: Some(SocketAddr::new(args.host, args.port)),
        model: args.model,
        samples,
    })
    .map_err(|e| anyhow!("{e}"))
}
