//! `enforcer run`: the agent.

use std::path::PathBuf;

use clap::Args;

use super::{EXIT_FAILURE, EXIT_OK};
use crate::{agent::RunOptions, kernel::XdpModeChoice};

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Interface to protect (repeatable); overrides agent.interfaces.
    #[arg(long = "iface", value_name = "IF")]
    interfaces: Vec<String>,
    /// Policy file (default /etc/enforcer/enforcer.toml when it exists).
    #[arg(long)]
    config: Option<PathBuf>,
    /// native (default), generic, or auto (native, else generic with a warning).
    #[arg(long, value_enum)]
    xdp_mode: Option<XdpModeChoice>,
    /// State directory for durable decisions.
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// bpffs directory for pinned maps and links.
    #[arg(long)]
    bpffs: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t)]
    log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, Default, clap::ValueEnum)]
enum LogFormat {
    #[default]
    Text,
    Json,
}

/// journald when systemd connected our output to the journal
/// (`JOURNAL_STREAM`), else JSON or human text on stderr.
fn init_logging(format: LogFormat) {
    use tracing_subscriber::{layer::SubscriberExt as _, util::SubscriberInitExt as _};
    let filter = || {
        tracing_subscriber::EnvFilter::try_from_env("ENFORCER_LOG")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
    };
    if std::env::var_os("JOURNAL_STREAM").is_some()
        && let Ok(journald) = tracing_journald::layer()
    {
        tracing_subscriber::registry()
            .with(filter())
            .with(journald.with_syslog_identifier("enforcer".into()))
            .init();
        return;
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

pub fn run(a: RunArgs, socket: Option<PathBuf>) -> u8 {
    init_logging(a.log_format);
    let opts = RunOptions {
        config: a.config,
        interfaces: a.interfaces,
        xdp_mode: a.xdp_mode,
        socket,
        state_dir: a.state_dir,
        bpffs: a.bpffs,
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("enforcer: cannot start the runtime: {e}");
            return EXIT_FAILURE;
        }
    };
    match rt.block_on(crate::agent::run(opts)) {
        Ok(()) => EXIT_OK,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("enforcer: {e:#}");
            EXIT_FAILURE
        }
    }
}
