//! `enforcer top`: a live view of what is being dropped, refreshed every
//! interval, over the control socket. `q`, `Esc` or Ctrl-C quits and restores
//! the terminal.

use std::{
    collections::HashMap,
    io::{Write as _, stdout},
    path::Path,
    time::{Duration, Instant},
};

use clap::Args;
use crossterm::{
    cursor,
    event::{self, Event, KeyCode, KeyModifiers},
    execute, queue,
    style::Print,
    terminal::{self, ClearType},
};

use super::{EXIT_OK, call, fail};
use crate::control::protocol::{Reply, Request};

#[derive(Debug, Args)]
pub struct TopArgs {
    /// Refresh interval.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    interval: Duration,
    /// Rows per table.
    #[arg(long, default_value_t = 10)]
    rows: usize,
    /// Show HTTP routes: requests and over-limit per route, the busiest
    /// routes and clients (from request samples), responses by status.
    #[arg(long)]
    routes: bool,
    /// Print one frame to standard output and exit (no terminal needed).
    #[arg(long)]
    once: bool,
}

/// Restores the terminal however `top` ends.
struct Screen;

impl Screen {
    fn enter() -> std::io::Result<Self> {
        terminal::enable_raw_mode()?;
        execute!(stdout(), terminal::EnterAlternateScreen, cursor::Hide)?;
        Ok(Self)
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        let _ = execute!(stdout(), cursor::Show, terminal::LeaveAlternateScreen);
        let _ = terminal::disable_raw_mode();
    }
}

fn frame(
    socket: &Path,
    rows: usize,
    prev: &mut HashMap<(String, String), u64>,
    dt: f64,
) -> Result<Vec<String>, String> {
    let status = match call(socket, &Request::Status) {
        Ok(Reply::Status(s)) => s,
        Ok(_) => return Err("unexpected reply".into()),
        Err(_) => return Err(format!("the agent on {} does not answer", socket.display())),
    };
    let limits = match call(socket, &Request::Limits { top: rows }) {
        Ok(Reply::Limits(l)) => Some(l),
        _ => None,
    };
    let list = match call(socket, &Request::List { kind: None }) {
        Ok(Reply::Decisions { decisions }) => decisions,
        _ => Vec::new(),
    };
    let mut out = vec![
        format!(
            "enforcer top — agent pid {}, up {}, {} block / {} allow decisions   (q to quit)",
            status.pid,
            humantime::format_duration(Duration::from_secs(status.uptime_secs)),
            status.decisions_block,
            status.decisions_allow
        ),
        String::new(),
        format!(
            "{:<8} {:<22} {:>14} {:>12}",
            "VERDICT", "REASON", "PACKETS", "PKT/S"
        ),
    ];
    let mut counters = status.counters.clone();
    counters.sort_by_key(|c| std::cmp::Reverse(c.packets));
    for c in counters.iter().take(rows) {
        let key = (c.verdict.clone(), c.reason.clone());
        let rate = prev.get(&key).map_or(0.0, |p| (c.packets - p) as f64 / dt);
        prev.insert(key, c.packets);
        out.push(format!(
            "{:<8} {:<22} {:>14} {:>12.0}",
            c.verdict, c.reason, c.packets, rate
        ));
    }
    out.push(String::new());
    out.push(format!(
        "{:<24} {:<20} {:>12} {:>8} {:>5}",
        "TOP DROPPED CLIENTS", "LIMIT", "DROPS", "REPORTS", "BANS"
    ));
    for k in limits.iter().flat_map(|l| l.top.iter()) {
        out.push(format!(
            "{:<24} {:<20} {:>12} {:>8} {:>5}",
            k.prefix.to_string(),
            k.limit,
            k.totals.drops,
            k.totals.reports,
            k.totals.bans
        ));
    }
    out.push(String::new());
    out.push(format!(
        "{:<24} {:<9} {:>10}  {}",
        "RECENT BANS", "ORIGIN", "EXPIRES IN", "REASON"
    ));
    let mut bans: Vec<_> = list
        .iter()
        .filter(|d| d.kind == crate::store::Kind::Block)
        .collect();
    bans.sort_by(|a, b| b.created.cmp(&a.created));
    for d in bans.iter().take(rows) {
        out.push(format!(
            "{:<24} {:<9} {:>10}  {}",
            d.prefix.to_string(),
            d.origin,
            d.ttl_secs.map_or_else(
                || "never".to_owned(),
                |s| humantime::format_duration(Duration::from_secs(s)).to_string()
            ),
            d.reason
        ));
    }
    Ok(out)
}

/// The `--routes` frame. Per-route rates come from the exact kernel
/// counters between two frames; the busiest lists from the samples.
fn routes_frame(
    socket: &Path,
    rows: usize,
    prev: &mut HashMap<(String, String), u64>,
    dt: f64,
) -> Result<Vec<String>, String> {
    let v = match call(socket, &Request::Routes { top: rows }) {
        Ok(Reply::Routes(v)) => v,
        Ok(_) => return Err("unexpected reply".into()),
        Err(_) => return Err(format!("the agent on {} does not answer", socket.display())),
    };
    let mut out = vec![
        format!(
            "enforcer top --routes — {} routes, 1 request in {} sampled   (q to quit)",
            v.routes.len(),
            v.sample_every
        ),
        String::new(),
        format!(
            "{:<20} {:<7} {:<24} {:<8} {:>12} {:>9} {:>10} {:>9}",
            "ROUTE", "METHOD", "PATH", "ACTION", "REQUESTS", "REQ/S", "OVER", "OVER/S"
        ),
    ];
    let mut routes = v.routes.clone();
    routes.sort_by_key(|r| std::cmp::Reverse(r.requests));
    for r in routes.iter().take(rows) {
        let mut rate = |what: &str, n: u64| {
            let key = (r.spec.name.clone(), what.to_owned());
            let rate = prev
                .get(&key)
                .map_or(0.0, |p| n.saturating_sub(*p) as f64 / dt);
            prev.insert(key, n);
            rate
        };
        let (rq, ov) = (rate("req", r.requests), rate("over", r.over));
        out.push(format!(
            "{:<20} {:<7} {:<24} {:<8} {:>12} {:>9.0} {:>10} {:>9.0}",
            r.spec.name, r.spec.method, r.spec.path, r.spec.action, r.requests, rq, r.over, ov
        ));
    }
    out.push(String::new());
    out.push(format!(
        "BUSIEST ROUTES (sampled, last {} s)   {:<7} {:>10}",
        v.window_secs, "METHOD", "REQ/S"
    ));
    for b in &v.busiest_routes {
        out.push(format!("  {:<34} {:<7} {:>10.1}", b.route, b.method, b.rps));
    }
    out.push(String::new());
    out.push(format!(
        "{:<40} {:<20} {:<7} {:>10}",
        "BUSIEST CLIENTS", "ROUTE", "METHOD", "REQ/S"
    ));
    for b in &v.busiest_clients {
        out.push(format!(
            "{:<40} {:<20} {:<7} {:>10.1}",
            b.client, b.route, b.method, b.rps
        ));
    }
    out.push(String::new());
    out.push(
        std::iter::once("RESPONSES".to_owned())
            .chain(v.responses.iter().map(|(s, n)| format!("{s}: {n}")))
            .collect::<Vec<_>>()
            .join("   "),
    );
    Ok(out)
}

pub fn top(socket: &Path, a: &TopArgs) -> u8 {
    // Fail before touching the terminal if there is no agent.
    if let Err(code) = call(socket, &Request::Status) {
        return code;
    }
    let draw = |prev: &mut HashMap<(String, String), u64>, dt: f64| {
        if a.routes {
            routes_frame(socket, a.rows, prev, dt)
        } else {
            frame(socket, a.rows, prev, dt)
        }
    };
    if a.once {
        return match draw(&mut HashMap::new(), 1.0) {
            Ok(lines) => {
                for l in lines {
                    println!("{l}");
                }
                EXIT_OK
            }
            Err(e) => fail(e),
        };
    }
    let screen = match Screen::enter() {
        Ok(s) => s,
        Err(e) => return fail(format!("`top` needs a terminal: {e}")),
    };
    let mut prev = HashMap::new();
    let mut last = Instant::now();
    loop {
        let dt = last.elapsed().as_secs_f64().max(1e-3);
        last = Instant::now();
        let lines = match draw(&mut prev, dt) {
            Ok(l) => l,
            Err(e) => {
                drop(screen);
                return fail(e);
            }
        };
        let mut o = stdout();
        let _ = queue!(o, terminal::Clear(ClearType::All), cursor::MoveTo(0, 0));
        for (i, l) in lines.iter().enumerate() {
            let _ = queue!(o, cursor::MoveTo(0, i as u16), Print(l));
        }
        let _ = o.flush();
        let deadline = Instant::now() + a.interval;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            if !event::poll(left).unwrap_or(false) {
                break;
            }
            if let Ok(Event::Key(k)) = event::read() {
                let quit = matches!(k.code, KeyCode::Char('q' | 'Q') | KeyCode::Esc)
                    || (k.code == KeyCode::Char('c')
                        && k.modifiers.contains(KeyModifiers::CONTROL));
                if quit {
                    drop(screen);
                    return EXIT_OK;
                }
            }
        }
    }
}
