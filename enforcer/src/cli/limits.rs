//! `enforcer limits`: the configured rate limits and the top keys by drops.

use std::path::Path;

use clap::Args;

use super::{EXIT_OK, OutputFormat, call, fail, output};
use crate::control::protocol::{Reply, Request};

#[derive(Debug, Args)]
pub struct LimitsArgs {
    /// How many top keys to show.
    #[arg(long, default_value_t = 20)]
    top: usize,
    #[arg(long, short, value_enum, default_value_t)]
    output: OutputFormat,
}

pub fn limits(socket: &Path, a: &LimitsArgs) -> u8 {
    let v = match call(socket, &Request::Limits { top: a.top }) {
        Ok(Reply::Limits(v)) => v,
        Ok(other) => return fail(format!("unexpected reply: {other:?}")),
        Err(code) => return code,
    };
    if a.output == OutputFormat::Json {
        output::print_json(&v);
        return EXIT_OK;
    }
    if v.rules.is_empty() {
        println!("no rate limits configured ([[ratelimit.limits]] in the config file)");
    } else {
        let mut t = output::table(&[
            "LIMIT", "KIND", "RATE/S", "BURST", "PER IPv4", "PER IPv6", "MODE",
        ]);
        for r in &v.rules {
            t.add_row(vec![
                r.name.clone(),
                r.kind.clone(),
                r.rate.to_string(),
                r.burst.to_string(),
                format!("/{}", r.ipv4_prefix),
                format!("/{}", r.ipv6_prefix),
                if r.monitor { "monitor" } else { "enforce" }.to_owned(),
            ]);
        }
        println!("{t}\n");
        let b = &v.ban;
        if b.enabled {
            println!(
                "bans: after {} reports within {}, for {} (x{} each repeat, at most {})\n",
                b.after,
                humantime::format_duration(b.within),
                humantime::format_duration(b.ban_time),
                b.factor,
                humantime::format_duration(b.max_ban_time)
            );
        } else {
            println!("bans: off\n");
        }
    }
    let mut t = output::table(&["LIMIT", "KEY", "DROPS", "REPORTS", "BANS"]);
    for k in &v.top {
        t.add_row(vec![
            k.limit.clone(),
            k.prefix.to_string(),
            k.totals.drops.to_string(),
            k.totals.reports.to_string(),
            k.totals.bans.to_string(),
        ]);
    }
    println!("top keys by drops:\n{t}");
    for (k, n) in &v.stats {
        println!("{k}: {n}");
    }
    EXIT_OK
}
