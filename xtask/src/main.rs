//! Project automation: `cargo xtask setup | test | bench | demo`.
//!
//! Holds no product logic: it installs the toolchain pieces a fresh machine
//! lacks, and runs the workspace's own tests, benchmarks and demo.

mod bench;
mod setup;
mod util;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask", about = "enforcer's project tasks")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install what this machine lacks (apt packages, bpf-linker, the debian-bpf toolchain, bpffs).
    Setup,
    /// Set up, then run every check: fmt, clippy, unit, BPF_PROG_TEST_RUN and namespace tests.
    Test {
        /// Skip fmt and clippy.
        #[arg(long)]
        no_lint: bool,
        /// Extra arguments for `cargo test` (after `--`).
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Set up, then run the benchmarks and write BENCHMARKS.md figures.
    Bench(bench::BenchArgs),
    /// Set up, then run the self-contained demo.
    Demo {
        /// How long the clients run.
        #[arg(long, default_value = "30s")]
        duration: String,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    util::fix_path();
    match cli.cmd {
        Cmd::Setup => setup::run(),
        Cmd::Test { no_lint, args } => {
            setup::run()?;
            if !no_lint {
                util::cargo(&["fmt", "--all", "--check"])?;
                // The eBPF binaries are no_std/no_main for bpfel-unknown-none and
                // cannot be checked for the host; their shared library can.
                util::cargo(&[
                    "clippy",
                    "--workspace",
                    "--exclude",
                    "enforcer-ebpf",
                    "--all-targets",
                    "--",
                    "-D",
                    "warnings",
                ])?;
                util::cargo(&[
                    "clippy",
                    "-p",
                    "enforcer-ebpf",
                    "--lib",
                    "--",
                    "-D",
                    "warnings",
                ])?;
            }
            let mut a = vec!["test", "--workspace"];
            if !args.is_empty() {
                a.push("--");
                a.extend(args.iter().map(String::as_str));
            }
            util::cargo(&a)
        }
        Cmd::Bench(args) => {
            setup::run()?;
            bench::run(&args)
        }
        Cmd::Demo { duration } => {
            setup::run()?;
            // The demo drives the real agent binary: build every binary first.
            util::cargo(&[
                "build",
                "--release",
                "--package",
                "enforcer-tests",
                "--bins",
            ])?;
            util::cargo(&[
                "run",
                "--release",
                "--package",
                "enforcer-tests",
                "--bin",
                "enforcer-demo",
                "--",
                "--duration",
                &duration,
            ])
        }
    }
}
