//! block, unblock, allow, unallow, import, list.

use std::{io::Read as _, path::Path, time::Duration};

use clap::Args;

use super::{EXIT_FAILURE, EXIT_OK, OutputFormat, call, fail, output, parse_ttl, usage};
use crate::{
    control::protocol::{Reply, Request},
    net::parse_prefixes,
    store::{ApplyReport, Kind},
};

#[derive(Debug, Args)]
pub struct BlockArgs {
    /// Addresses or CIDR prefixes.
    #[arg(required = true, value_name = "CIDR")]
    prefixes: Vec<String>,
    /// Lift the block after this long (e.g. 90s, 15m, 1h, 7d); default never.
    #[arg(long, value_parser = parse_ttl)]
    ttl: Option<Duration>,
    /// Why (shown in `list` and the decision log).
    #[arg(long)]
    reason: Option<String>,
}

#[derive(Debug, Args)]
pub struct AllowArgs {
    #[arg(required = true, value_name = "CIDR")]
    prefixes: Vec<String>,
    #[arg(long)]
    reason: Option<String>,
}

#[derive(Debug, Args)]
pub struct PrefixArgs {
    #[arg(required = true, value_name = "CIDR")]
    prefixes: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// File with one prefix per line (`#` and `;` start comments), or `-` for stdin.
    file: String,
    #[arg(long, value_parser = parse_ttl)]
    ttl: Option<Duration>,
    #[arg(long)]
    reason: Option<String>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only blocks or only allows.
    #[arg(long, value_enum)]
    kind: Option<ListKind>,
    #[arg(long, short, value_enum, default_value_t)]
    output: OutputFormat,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ListKind {
    Block,
    Allow,
}

/// Validates every token locally first: a bad one names itself and nothing is
/// sent. The tokens go as typed (the agent normalises them again).
fn checked(tokens: &[String]) -> Result<Vec<String>, u8> {
    match parse_prefixes(tokens) {
        Ok(_) => Ok(tokens.iter().map(|t| t.trim().to_owned()).collect()),
        Err(errs) => {
            for e in &errs {
                eprintln!("enforcer: {e}");
            }
            Err(usage("nothing was applied"))
        }
    }
}

fn report(verb: &str, r: &ApplyReport) -> u8 {
    let n = r.added + r.updated + r.removed;
    if r.added + r.updated > 0 {
        println!(
            "{verb} {n} prefix(es): {} new, {} updated",
            r.added, r.updated
        );
    } else if r.removed > 0 {
        println!("{verb} {} prefix(es)", r.removed);
    }
    if let Some(e) = &r.journal_error {
        eprintln!(
            "enforcer: warning: applied, but not saved to disk ({e}); it will not survive a reboot"
        );
    }
    if r.not_found.is_empty() {
        EXIT_OK
    } else {
        for p in &r.not_found {
            eprintln!("enforcer: {p} had no such entry");
        }
        EXIT_FAILURE
    }
}

fn send(socket: &Path, verb: &str, req: &Request) -> u8 {
    match call(socket, req) {
        Ok(Reply::Applied(r)) => report(verb, &r),
        Ok(other) => fail(format!("unexpected reply: {other:?}")),
        Err(code) => code,
    }
}

pub fn block(socket: &Path, a: BlockArgs) -> u8 {
    let prefixes = match checked(&a.prefixes) {
        Ok(p) => p,
        Err(c) => return c,
    };
    send(
        socket,
        "blocked",
        &Request::Block {
            prefixes,
            ttl_secs: a.ttl.map(|d| d.as_secs()),
            reason: a.reason,
        },
    )
}

pub fn unblock(socket: &Path, a: PrefixArgs) -> u8 {
    match checked(&a.prefixes) {
        Ok(prefixes) => send(socket, "unblocked", &Request::Unblock { prefixes }),
        Err(c) => c,
    }
}

pub fn allow(socket: &Path, a: AllowArgs) -> u8 {
    match checked(&a.prefixes) {
        Ok(prefixes) => send(
            socket,
            "allowed",
            &Request::Allow {
                prefixes,
                reason: a.reason,
            },
        ),
        Err(c) => c,
    }
}

pub fn unallow(socket: &Path, a: PrefixArgs) -> u8 {
    match checked(&a.prefixes) {
        Ok(prefixes) => send(
            socket,
            "removed from the allowlist",
            &Request::Unallow { prefixes },
        ),
        Err(c) => c,
    }
}

pub fn import(socket: &Path, a: ImportArgs) -> u8 {
    let mut text = String::new();
    let r = if a.file == "-" {
        std::io::stdin().read_to_string(&mut text).map(|_| ())
    } else {
        std::fs::read_to_string(&a.file).map(|t| text = t)
    };
    if let Err(e) = r {
        return fail(format!("reading {}: {e}", a.file));
    }
    // The agent parses the list (one string, not a million): bad lines come
    // back as a usage error naming file and line, with nothing applied.
    send(
        socket,
        "blocked",
        &Request::Import {
            text,
            name: if a.file == "-" {
                "stdin".into()
            } else {
                a.file.clone()
            },
            ttl_secs: a.ttl.map(|d| d.as_secs()),
            reason: a.reason,
        },
    )
}

pub fn list(socket: &Path, a: ListArgs) -> u8 {
    let kind = a.kind.map(|k| match k {
        ListKind::Block => Kind::Block,
        ListKind::Allow => Kind::Allow,
    });
    let decisions = match call(socket, &Request::List { kind }) {
        Ok(Reply::Decisions { decisions }) => decisions,
        Ok(other) => return fail(format!("unexpected reply: {other:?}")),
        Err(code) => return code,
    };
    match a.output {
        OutputFormat::Json => output::print_json(&decisions),
        OutputFormat::Table => {
            let mut t = output::table(&["KIND", "PREFIX", "ORIGIN", "EXPIRES IN", "REASON"]);
            for d in &decisions {
                t.add_row(vec![
                    d.kind.name().to_owned(),
                    d.prefix.to_string(),
                    d.origin.clone(),
                    d.ttl_secs
                        .map_or_else(|| "never".to_owned(), output::human_secs),
                    d.reason.clone(),
                ]);
            }
            println!("{t}");
            println!("{} decision(s)", decisions.len());
        }
    }
    EXIT_OK
}

#[derive(Debug, clap::Subcommand)]
pub enum DecisionsCommand {
    /// Apply decisions from JSON lines (a file, or `-` for stdin): valid lines
    /// are applied, invalid ones reported with their line numbers.
    Apply(ApplyArgs),
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// File of JSON lines, or `-` for stdin.
    file: String,
}

/// Decisions per request to the agent.
const CHUNK: usize = 50_000;

pub fn decisions(socket: &Path, cmd: &DecisionsCommand) -> u8 {
    let DecisionsCommand::Apply(a) = cmd;
    let reader: Box<dyn std::io::BufRead> = if a.file == "-" {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        match std::fs::File::open(&a.file) {
            Ok(f) => Box::new(std::io::BufReader::with_capacity(1 << 20, f)),
            Err(e) => return fail(format!("reading {}: {e}", a.file)),
        }
    };
    let name = if a.file == "-" {
        "stdin"
    } else {
        a.file.as_str()
    };
    let mut batch = Vec::with_capacity(CHUNK);
    let mut bad = 0usize;
    let (mut applied, mut lifted, mut missing) = (0usize, 0usize, 0usize);
    let mut flush = |batch: &mut Vec<crate::decisions::Decision>| -> Result<(), u8> {
        if batch.is_empty() {
            return Ok(());
        }
        match call(
            socket,
            &Request::Decisions {
                items: std::mem::take(batch),
            },
        ) {
            Ok(Reply::Applied(r)) => {
                applied += r.added + r.updated;
                lifted += r.removed;
                missing += r.not_found.len();
                Ok(())
            }
            Ok(other) => Err(fail(format!("unexpected reply: {other:?}"))),
            Err(code) => Err(code),
        }
    };
    use std::io::BufRead as _;
    for (i, line) in reader.lines().enumerate() {
        let line = match line {
            Ok(l) => l,
            Err(e) => return fail(format!("reading {name}: {e}")),
        };
        if line.trim().is_empty() {
            continue;
        }
        match crate::decisions::parse_line(&line) {
            Ok(d) => batch.push(d),
            Err(e) => {
                bad += 1;
                eprintln!("{name}:{}: {e}", i + 1);
            }
        }
        if batch.len() >= CHUNK
            && let Err(code) = flush(&mut batch)
        {
            return code;
        }
    }
    if let Err(code) = flush(&mut batch) {
        return code;
    }
    println!(
        "{applied} decision(s) applied, {lifted} lifted, {missing} to lift not found, {bad} line(s) rejected"
    );
    if bad > 0 { EXIT_FAILURE } else { EXIT_OK }
}
