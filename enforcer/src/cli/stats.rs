//! `enforcer stats`: packet and byte totals by verdict and reason, and rates
//! over a short interval.

use std::{path::Path, time::Duration};

use clap::Args;

use super::{EXIT_OK, OutputFormat, call, fail, output};
use crate::control::protocol::{Reply, Request, StatusView};

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Interval over which rates are measured.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    interval: Duration,
    #[arg(long, short, value_enum, default_value_t)]
    output: OutputFormat,
}

/// One row of `enforcer stats --output json`.
#[derive(Debug, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct StatRow {
    pub verdict: String,
    pub reason: String,
    pub packets: u64,
    pub bytes: u64,
    pub packets_per_second: f64,
    pub bytes_per_second: f64,
}

fn status(socket: &Path) -> Result<Box<StatusView>, u8> {
    match call(socket, &Request::Status) {
        Ok(Reply::Status(s)) => Ok(s),
        Ok(other) => Err(fail(format!("unexpected reply: {other:?}"))),
        Err(code) => Err(code),
    }
}

pub fn stats(socket: &Path, a: &StatsArgs) -> u8 {
    let first = match status(socket) {
        Ok(s) => s,
        Err(c) => return c,
    };
    std::thread::sleep(a.interval);
    let second = match status(socket) {
        Ok(s) => s,
        Err(c) => return c,
    };
    let secs = a.interval.as_secs_f64().max(1e-3);
    let rows: Vec<StatRow> = second
        .counters
        .iter()
        .map(|c| {
            let before = first
                .counters
                .iter()
                .find(|b| b.verdict == c.verdict && b.reason == c.reason);
            let (p0, b0) = before.map_or((0, 0), |b| (b.packets, b.bytes));
            StatRow {
                verdict: c.verdict.clone(),
                reason: c.reason.clone(),
                packets: c.packets,
                bytes: c.bytes,
                packets_per_second: (c.packets - p0) as f64 / secs,
                bytes_per_second: (c.bytes - b0) as f64 / secs,
            }
        })
        .collect();
    if a.output == OutputFormat::Json {
        output::print_json(&rows);
        return EXIT_OK;
    }
    let mut t = output::table(&["VERDICT", "REASON", "PACKETS", "BYTES", "PKT/S", "BIT/S"]);
    for r in &rows {
        t.add_row(vec![
            r.verdict.clone(),
            r.reason.clone(),
            r.packets.to_string(),
            r.bytes.to_string(),
            format!("{:.0}", r.packets_per_second),
            format!("{:.0}", r.bytes_per_second * 8.0),
        ]);
    }
    println!("{t}");
    let dropped: u64 = rows
        .iter()
        .filter(|r| r.verdict == "drop")
        .map(|r| r.packets)
        .sum();
    let all: u64 = rows.iter().map(|r| r.packets).sum();
    println!(
        "dropped {dropped} of {all} packets since the counters started (rates over {})",
        humantime::format_duration(a.interval)
    );
    EXIT_OK
}
