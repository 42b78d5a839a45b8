//! The command line: `enforcer run` starts the agent; every other command is a
//! client of the running agent's control socket and never opens BPF objects.
//!
//! Exit codes scripts can rely on: 0 success; 1 the command could not be
//! carried out (no agent, refused, not found); 2 the command line itself is
//! wrong (bad prefix, bad duration, unknown flag), and nothing was applied.

mod decisions;
mod limits;
mod log;
mod output;
mod policy;
mod run;
mod stats;
mod status;
mod top;
mod uninstall;

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::{Parser, Subcommand};

use crate::{
    config::DEFAULT_SOCKET,
    control::{
        client,
        protocol::{ErrorKind, Reply, Request},
    },
};

pub use output::OutputFormat;
pub use stats::StatRow;

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: the command could not be carried out.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code: bad command line; nothing was applied.
pub const EXIT_USAGE: u8 = 2;

/// Kernel-level API traffic enforcer: XDP blocklists and limits, driven by an agent.
#[derive(Debug, Parser)]
#[command(name = "enforcer", version, about, long_about = None)]
pub struct Cli {
    /// Control socket of the running agent [default: /run/enforcer/enforcer.sock,
    /// or agent.socket of the config file for `run`].
    #[arg(long, global = true, env = "ENFORCER_SOCKET")]
    pub socket: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the agent: load and attach the XDP program and serve the control socket.
    Run(run::RunArgs),
    /// Block prefixes (addresses mean /32 or /128).
    Block(decisions::BlockArgs),
    /// Lift blocks on exactly these prefixes (every origin's).
    Unblock(decisions::PrefixArgs),
    /// Allowlist prefixes: never blocked, whatever else says.
    Allow(decisions::AllowArgs),
    /// Remove allowlist entries.
    Unallow(decisions::PrefixArgs),
    /// Block every prefix listed in a file (one per line, `#` comments), or `-` for stdin.
    Import(decisions::ImportArgs),
    /// List current decisions.
    List(decisions::ListArgs),
    /// Apply decisions from other detectors (JSON lines).
    #[command(subcommand)]
    Decisions(decisions::DecisionsCommand),
    /// Check a policy without touching the agent.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Make the agent re-read its policy files now.
    Reload,
    /// Show the agent, its interfaces, maps and counters.
    Status(status::StatusArgs),
    /// Show the rate limits in force and the keys with the most drops.
    Limits(limits::LimitsArgs),
    /// Packet and byte totals by verdict and reason, with current rates.
    Stats(stats::StatsArgs),
    /// A live view: top dropped clients, recent bans, verdict rates (q quits).
    Top(top::TopArgs),
    /// The decision log (bans, unbans, expiries); --follow streams it.
    Log(log::LogArgs),
    /// Remove every pin (stops enforcement once no agent holds the links).
    Uninstall(uninstall::UninstallArgs),
}

/// Parses the command line and runs it.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let socket = cli
        .socket
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET));
    let code = match cli.command {
        Command::Run(args) => run::run(args, cli.socket),
        Command::Block(a) => decisions::block(&socket, a),
        Command::Unblock(a) => decisions::unblock(&socket, a),
        Command::Allow(a) => decisions::allow(&socket, a),
        Command::Unallow(a) => decisions::unallow(&socket, a),
        Command::Import(a) => decisions::import(&socket, a),
        Command::List(a) => decisions::list(&socket, a),
        Command::Status(a) => status::status(&socket, &a),
        Command::Limits(a) => limits::limits(&socket, &a),
        Command::Stats(a) => stats::stats(&socket, &a),
        Command::Decisions(c) => decisions::decisions(&socket, &c),
        Command::Policy(c) => policy::policy(&c),
        Command::Reload => policy::reload(&socket),
        Command::Top(a) => top::top(&socket, &a),
        Command::Log(a) => log::log(&socket, &a),
        Command::Uninstall(a) => uninstall::uninstall(&socket, &a),
    };
    ExitCode::from(code)
}

/// Prints an error and returns the failure code.
pub(crate) fn fail(msg: impl std::fmt::Display) -> u8 {
    eprintln!("enforcer: {msg}");
    EXIT_FAILURE
}

/// Prints a usage error and returns the usage code.
pub(crate) fn usage(msg: impl std::fmt::Display) -> u8 {
    eprintln!("enforcer: {msg}");
    EXIT_USAGE
}

/// Sends a request; maps transport failures and error replies to exit codes.
pub(crate) fn call(socket: &std::path::Path, req: &Request) -> Result<Reply, u8> {
    match client::call(socket, req, Duration::from_secs(300)) {
        Ok(Reply::Error { kind, message }) => Err(match kind {
            ErrorKind::BadRequest => usage(message),
            _ => fail(message),
        }),
        Ok(r) => Ok(r),
        Err(e) => Err(fail(e)),
    }
}

/// Parses a duration such as `90s`, `15m`, `1h`, `7d`.
pub fn parse_ttl(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|_| {
        format!("`{s}` is not a duration; expected something like 90s, 15m, 1h, 7d")
    })?;
    if d < Duration::from_secs(1) {
        return Err(format!("`{s}` is shorter than the 1s minimum"));
    }
    Ok(d)
}
