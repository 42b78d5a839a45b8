//! `enforcer status`.

use std::path::Path;

use clap::Args;

use super::{EXIT_OK, OutputFormat, call, fail, output};
use crate::control::protocol::Reply;

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[arg(long, short, value_enum, default_value_t)]
    output: OutputFormat,
}

pub fn status(socket: &Path, a: &StatusArgs) -> u8 {
    let s = match call(socket, &crate::control::protocol::Request::Status) {
        Ok(Reply::Status(s)) => s,
        Ok(other) => return fail(format!("unexpected reply: {other:?}")),
        Err(code) => return code,
    };
    if a.output == OutputFormat::Json {
        output::print_json(&s);
        return EXIT_OK;
    }
    println!(
        "enforcer {} — agent pid {}, up {}",
        s.version,
        s.pid,
        output::human_secs(s.uptime_secs)
    );
    println!(
        "config: {}   socket: {}   state: {}   pins: {}{}",
        s.config.as_deref().unwrap_or("(none)"),
        s.socket,
        s.state_dir,
        s.bpffs,
        if s.reused_pins {
            " (taken over from an earlier agent)"
        } else {
            ""
        }
    );
    for d in &s.degraded {
        println!("DEGRADED: {d}");
    }
    if !s.files.is_empty() {
        println!("policy files: {}", s.files.join(", "));
    }
    if let Some(e) = &s.last_reload_error {
        println!("RELOAD FAILED (the previous policy stays in force):\n{e}");
    }
    println!();
    let mut t = output::table(&["INTERFACE", "XDP MODE", "PINNED"]);
    for i in &s.interfaces {
        t.add_row(vec![
            i.iface.clone(),
            i.mode.name().to_owned(),
            if i.pinned { "yes" } else { "no" }.to_owned(),
        ]);
    }
    println!("{t}\n");
    let mut t = output::table(&["MAP", "ENTRIES", "CAPACITY", "USED"]);
    for m in &s.maps {
        let pct = 100.0 * m.occupancy.entries as f64 / m.occupancy.capacity.max(1) as f64;
        t.add_row(vec![
            m.name.clone(),
            m.occupancy.entries.to_string(),
            m.occupancy.capacity.to_string(),
            format!("{pct:.1}%"),
        ]);
    }
    println!("{t}\n");
    println!(
        "decisions: {} block, {} allow; expired so far: {}",
        s.decisions_block, s.decisions_allow, s.store.expired
    );
    println!(
        "rate limits: {} rule(s); {}",
        s.limits,
        s.stats
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if !s.feeds.is_empty() {
        println!();
        let mut t = output::table(&["FEED", "PREFIXES", "LISTED", "BAD LINES", "LOADED", "ERROR"]);
        for f in &s.feeds {
            t.add_row(vec![
                f.name.clone(),
                f.prefixes.to_string(),
                f.listed.to_string(),
                f.bad_lines.to_string(),
                f.loaded.clone().unwrap_or_default(),
                f.error.clone().unwrap_or_default(),
            ]);
        }
        println!("{t}");
    }
    if let Some(c) = &s.crowdsec {
        println!(
            "\nCrowdSec {}: {} poll(s), {} error(s), {} prefix(es) banned, last poll {}{}",
            c.url,
            c.polls,
            c.errors,
            c.active,
            c.last_poll.as_deref().unwrap_or("never"),
            c.last_error
                .as_deref()
                .map(|e| format!(", last error: {e}"))
                .unwrap_or_default()
        );
    }
    println!(
        "map writes: {} keys written, {} deleted",
        s.map_writes, s.map_deletes
    );
    println!();
    let mut t = output::table(&["VERDICT", "REASON", "PACKETS", "BYTES"]);
    for c in &s.counters {
        t.add_row(vec![
            c.verdict.clone(),
            c.reason.clone(),
            c.packets.to_string(),
            c.bytes.to_string(),
        ]);
    }
    println!("{t}");
    EXIT_OK
}
