//! `enforcer policy check [FILE]` and `enforcer reload`.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use super::{EXIT_FAILURE, EXIT_OK, call, fail};
use crate::{
    config::{Config, DEFAULT_CONFIG, drop_ins},
    control::protocol::{Reply, Request},
};

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate a policy (and its conf.d drop-ins) without touching the agent.
    Check(CheckArgs),
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The main policy file [default: /etc/enforcer/enforcer.toml].
    file: Option<PathBuf>,
    /// Check only FILE, not the conf.d drop-ins beside it.
    #[arg(long)]
    no_drop_ins: bool,
}

pub fn policy(cmd: &PolicyCommand) -> u8 {
    match cmd {
        PolicyCommand::Check(a) => check(a),
    }
}

fn check(a: &CheckArgs) -> u8 {
    let main = a
        .file
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
    let mut files = vec![main.clone()];
    if !a.no_drop_ins {
        files.extend(drop_ins(&main));
    }
    match Config::load_files(&files) {
        Ok(c) => {
            println!(
                "{}: valid ({} file(s): {}; {} interface(s), {} allow and {} block prefix(es), {} rate-limit tier(s), {} HTTP route(s) on port(s) {:?}, {} response rule(s), {} feed(s){})",
                main.display(),
                files.len(),
                files
                    .iter()
                    .map(|f| f.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                c.interfaces.len(),
                c.allow.len(),
                c.block.len(),
                c.ratelimit.rules.len(),
                c.http.routes.len(),
                c.http.ports,
                c.http.responses.len(),
                c.feeds.len(),
                if c.crowdsec.is_some() {
                    ", CrowdSec bouncer"
                } else {
                    ""
                }
            );
            EXIT_OK
        }
        Err(errs) => {
            for e in &errs.0 {
                eprintln!("{e}");
            }
            eprintln!("{} error(s); the policy is not valid", errs.0.len());
            EXIT_FAILURE
        }
    }
}

pub fn reload(socket: &Path) -> u8 {
    match call(socket, &Request::Reload) {
        Ok(Reply::Reloaded { files }) => {
            println!("policy reloaded from {}", files.join(", "));
            EXIT_OK
        }
        Ok(other) => fail(format!("unexpected reply: {other:?}")),
        Err(code) => code,
    }
}
