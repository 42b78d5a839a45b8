//! `enforcer log [--follow]`: the decision log, from the agent.

use std::{
    io::{BufRead as _, BufReader, Write as _},
    os::unix::net::UnixStream,
    path::Path,
};

use clap::Args;

use super::{EXIT_OK, OutputFormat, fail};
use crate::control::protocol::{Reply, Request};

#[derive(Debug, Args)]
pub struct LogArgs {
    /// Keep streaming new decisions until interrupted.
    #[arg(long, short)]
    follow: bool,
    /// How many past lines to show first.
    #[arg(long, short = 'n', default_value_t = 50)]
    lines: usize,
    #[arg(long, short, value_enum, default_value_t)]
    output: OutputFormat,
}

fn human(line: &str) -> String {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
        return line.to_owned();
    };
    let s = |k: &str| v[k].as_str().unwrap_or("").to_owned();
    if let Some(n) = v["count"].as_u64() {
        return format!(
            "{} {:<7} {:<5} {n} prefixes  origin={} reason={:?}",
            s("ts"),
            s("action"),
            s("kind"),
            s("origin"),
            s("reason")
        );
    }
    if s("action") == "lagged" {
        return format!("... {} lines missed (the client was too slow)", v["missed"]);
    }
    format!(
        "{} {:<7} {:<5} {:<24} origin={} reason={:?} expires={}",
        s("ts"),
        s("action"),
        s("kind"),
        s("prefix"),
        s("origin"),
        s("reason"),
        s("expires")
    )
}

pub fn log(socket: &Path, a: &LogArgs) -> u8 {
    let stream = match UnixStream::connect(socket) {
        Ok(s) => s,
        Err(_) => {
            return fail(format!(
                "no agent is running (nothing listening on {}); start one with `enforcer run --iface IF`",
                socket.display()
            ));
        }
    };
    let mut w = match stream.try_clone() {
        Ok(w) => w,
        Err(e) => return fail(e),
    };
    let req = Request::Log {
        lines: a.lines,
        follow: a.follow,
    };
    let mut line = serde_json::to_vec(&req).unwrap_or_default();
    line.push(b'\n');
    if let Err(e) = w.write_all(&line) {
        return fail(e);
    }
    let out = std::io::stdout();
    for l in BufReader::new(stream).lines() {
        let Ok(l) = l else { break };
        match serde_json::from_str::<Reply>(&l) {
            Ok(Reply::LogLines { lines }) => {
                let mut o = out.lock();
                for x in lines {
                    let text = if a.output == OutputFormat::Json {
                        x
                    } else {
                        human(&x)
                    };
                    if writeln!(o, "{text}").is_err() {
                        return EXIT_OK;
                    }
                }
                let _ = o.flush();
            }
            Ok(Reply::Error { message, .. }) => return fail(message),
            Ok(other) => return fail(format!("unexpected reply: {other:?}")),
            Err(e) => return fail(format!("unreadable reply: {e}")),
        }
        if !a.follow {
            break;
        }
    }
    EXIT_OK
}
