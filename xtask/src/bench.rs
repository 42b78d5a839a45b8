//! `cargo xtask bench`: builds and runs the benchmark binary (release mode),
//! after installing the peers it compares against.

use clap::Args;

use crate::{setup::run_apt, util::cargo};

#[derive(Args)]
pub struct BenchArgs {
    /// Which benchmarks (default: all). See `enforcer-bench --help`.
    #[arg(trailing_var_arg = true)]
    args: Vec<String>,
}

/// Baselines measured in the same run: nftables, ipset (and iptables for its
/// backend); nginx and wrk for the HTTP benchmarks.
const PEERS: &[&str] = &[
    "nftables",
    "ipset",
    "iptables",
    "ethtool",
    "nginx-light",
    "wrk",
];

pub fn run(a: &BenchArgs) -> anyhow::Result<()> {
    run_apt(PEERS)?;
    // The load benchmark drives the real agent binary: build it too.
    cargo(&[
        "build",
        "--release",
        "--package",
        "enforcer-tests",
        "--bins",
    ])?;
    let mut args = vec![
        "run",
        "--release",
        "--package",
        "enforcer-tests",
        "--bin",
        "enforcer-bench",
        "--",
    ];
    args.extend(a.args.iter().map(String::as_str));
    cargo(&args)
}
