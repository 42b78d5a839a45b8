//! `cargo xtask demo`: enforcer protecting a small HTTP API from abusive
//! clients, in network namespaces created (and removed) by the demo.
//!
//! Hosts: an API host (a real HTTP server: `/`, `POST /login` answering 401
//! to bad credentials, `/api/items/N`) and five clients, each in its own
//! namespace and /24: a normal user, a credential stuffer, a scraper, a SYN
//! flooder, and a source listed in a blocklist feed. The agent runs the
//! policy in `examples/demo.toml` on the API host's interfaces (packet and
//! SYN limits, HTTP routes for `/login` and `/api/items`, a 401 rule read
//! from the server's answers); the feed is `examples/demo-feed.netset`. Everything is bounded in time and removed at
//! the end, on Ctrl-C, or when something fails.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use serde::Serialize;

use crate::{
    agent::{Agent, Paths},
    httpc, httpd,
    netns::{End, Netns, attach_pass, enter, veth},
};

/// Per-client outcome.
#[derive(Default, Debug)]
pub struct Tally {
    pub ok: AtomicU64,
    pub failed: AtomicU64,
    pub unauthorized: AtomicU64,
}

/// What the demo reports (and `--json` prints) at the end.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub duration_secs: f64,
    pub clients: BTreeMap<String, ClientSummary>,
    /// The agent's counters: (verdict, reason) → packets.
    pub agent_counters: BTreeMap<String, u64>,
    /// The agent's decisions at the end: prefix → (origin, reason).
    pub bans: Vec<(String, String, String)>,
    /// Names the demo created, for a leftover check.
    pub netns: Vec<String>,
    pub bpffs: String,
}

#[derive(Debug, Serialize)]
pub struct ClientSummary {
    pub address: String,
    pub ok: u64,
    pub failed: u64,
    pub unauthorized: u64,
}

struct Client {
    name: &'static str,
    ns: Netns,
    addr: String,
    server: SocketAddr,
    tally: Arc<Tally>,
}

/// The clients and the /24 each lives in (the feed lists 198.18.66.0/24).
const CLIENTS: [(&str, u8); 5] = [
    ("user", 11),
    ("stuffer", 12),
    ("scraper", 13),
    ("flooder", 14),
    ("feed-listed", 66),
];

pub struct Options {
    pub duration: Duration,
    pub quiet: bool,
    pub stop: Arc<AtomicBool>,
}

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

pub fn run(opts: &Options) -> Summary {
    let tag = format!("{}", std::process::id() % 100_000);
    let api = Netns::new(format!("enfdemo{tag}-api"));
    let mut clients = Vec::new();
    let mut ifaces = Vec::new();
    let mut peer_xdp = Vec::new();
    for (i, (name, net)) in CLIENTS.iter().enumerate() {
        let ns = Netns::new(format!("enfdemo{tag}-{name}"));
        let (sif, cif) = (format!("ds{tag}{i}"), format!("dc{tag}{i}"));
        let (s4, c4) = (format!("198.18.{net}.1"), format!("198.18.{net}.2"));
        veth(
            &End {
                ns: &api,
                name: &sif,
                addrs: &[&format!("{s4}/30")],
            },
            &End {
                ns: &ns,
                name: &cif,
                addrs: &[&format!("{c4}/30")],
            },
        );
        // A veth wakes its peer for frames sent back with XDP_TX (the login
        // route's resets) only when the peer runs an XDP program.
        peer_xdp.push(attach_pass(&ns.path(), &cif));
        ifaces.push(sif);
        clients.push(Client {
            name,
            ns,
            addr: c4,
            server: format!("{s4}:80").parse().unwrap(),
            tally: Arc::default(),
        });
    }
    let _server = httpd::start(Some(&api.path()), "0.0.0.0:80".parse().unwrap());
    let paths = Paths::new(&format!("demo{tag}"));
    let bpffs = paths.bpffs.display().to_string();
    let agent = Agent::start(
        &api.name,
        &ifaces,
        paths,
        &["--config", examples().join("demo.toml").to_str().unwrap()],
    );
    agent.ok(&[
        "import",
        examples().join("demo-feed.netset").to_str().unwrap(),
        "--reason",
        "demo blocklist feed",
    ]);
    say(
        opts,
        &format!(
            "enforcer demo: an API host and {} clients in network namespaces; agent on {} interfaces; {} s\n\
         policy examples/demo.toml, feed examples/demo-feed.netset; each second: answered/failed requests per client\n",
            clients.len(),
            ifaces.len(),
            opts.duration.as_secs()
        ),
    );

    let deadline = Instant::now() + opts.duration;
    let running = Arc::new(AtomicBool::new(true));
    let mut workers = Vec::new();
    for c in &clients {
        let (ns, server, tally, running) = (
            c.ns.path(),
            c.server,
            Arc::clone(&c.tally),
            Arc::clone(&running),
        );
        let kind = c.name;
        workers.push(thread::spawn(move || {
            enter(&ns);
            behave(kind, server, &tally, &running, deadline);
        }));
    }
    let started = Instant::now();
    let mut last: Vec<(u64, u64)> = vec![(0, 0); clients.len()];
    let mut banned_seen: Vec<String> = Vec::new();
    let mut last_counters: BTreeMap<String, u64> = BTreeMap::new();
    while Instant::now() < deadline && !opts.stop.load(Ordering::Relaxed) {
        thread::sleep(Duration::from_secs(1));
        let mut line = format!("t={:>3}s ", started.elapsed().as_secs());
        for (i, c) in clients.iter().enumerate() {
            let (ok, failed) = (
                c.tally.ok.load(Ordering::Relaxed),
                c.tally.failed.load(Ordering::Relaxed),
            );
            if c.name == "flooder" {
                line.push_str(&format!(" | flooder {:>5} SYNs", ok - last[i].0));
            } else {
                line.push_str(&format!(
                    " | {} {:>4}/{:<4}",
                    c.name,
                    ok - last[i].0,
                    failed - last[i].1
                ));
            }
            last[i] = (ok, failed);
        }
        say(opts, &line);
        // Packets per verdict and reason in the last second, from the agent.
        if let Ok(status) =
            serde_json::from_str::<serde_json::Value>(&agent.ok(&["status", "-o", "json"]))
        {
            let mut parts = Vec::new();
            for c in status["counters"].as_array().into_iter().flatten() {
                let k = format!(
                    "{} {}",
                    c["verdict"].as_str().unwrap_or(""),
                    c["reason"].as_str().unwrap_or("")
                );
                let v = c["packets"].as_u64().unwrap_or(0);
                let d = v - last_counters.get(&k).copied().unwrap_or(0);
                if d > 0 {
                    parts.push(format!("{k} +{d}"));
                }
                last_counters.insert(k, v);
            }
            say(opts, &format!("        packets: {}", parts.join(", ")));
        }
        if let Ok(list) =
            serde_json::from_str::<serde_json::Value>(&agent.ok(&["list", "-o", "json"]))
        {
            for d in list.as_array().into_iter().flatten() {
                let p = d["prefix"].as_str().unwrap_or("").to_owned();
                if d["origin"] == "detector" && !banned_seen.contains(&p) {
                    say(
                        opts,
                        &format!("        BANNED {p}: {}", d["reason"].as_str().unwrap_or("")),
                    );
                    banned_seen.push(p);
                }
            }
        }
    }
    running.store(false, Ordering::Relaxed);
    for w in workers {
        let _ = w.join();
    }
    let status: serde_json::Value =
        serde_json::from_str(&agent.ok(&["status", "-o", "json"])).unwrap_or_default();
    let mut agent_counters = BTreeMap::new();
    for c in status["counters"].as_array().into_iter().flatten() {
        agent_counters.insert(
            format!(
                "{}/{}",
                c["verdict"].as_str().unwrap_or(""),
                c["reason"].as_str().unwrap_or("")
            ),
            c["packets"].as_u64().unwrap_or(0),
        );
    }
    let list: serde_json::Value =
        serde_json::from_str(&agent.ok(&["list", "-o", "json"])).unwrap_or_default();
    let bans = list
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            (
                d["prefix"].as_str().unwrap_or("").to_owned(),
                d["origin"].as_str().unwrap_or("").to_owned(),
                d["reason"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let summary = Summary {
        duration_secs: started.elapsed().as_secs_f64(),
        clients: clients
            .iter()
            .map(|c| {
                (
                    c.name.to_owned(),
                    ClientSummary {
                        address: c.addr.clone(),
                        ok: c.tally.ok.load(Ordering::Relaxed),
                        failed: c.tally.failed.load(Ordering::Relaxed),
                        unauthorized: c.tally.unauthorized.load(Ordering::Relaxed),
                    },
                )
            })
            .collect(),
        agent_counters,
        bans,
        netns: std::iter::once(api.name.clone())
            .chain(clients.iter().map(|c| c.ns.name.clone()))
            .collect(),
        bpffs,
    };
    print_summary(opts, &summary);
    // Guards remove the agent (and its pins), the server, the client ends'
    // programs and the namespaces.
    drop(agent);
    drop(peer_xdp);
    summary
}

fn say(opts: &Options, s: &str) {
    if !opts.quiet {
        println!("{s}");
    }
}

fn print_summary(opts: &Options, s: &Summary) {
    say(opts, "\nsummary");
    say(
        opts,
        &format!(
            "{:<12} {:<14} {:>9} {:>8} {:>8}",
            "client", "address", "answered", "failed", "401"
        ),
    );
    for (name, c) in &s.clients {
        if name == "flooder" {
            say(
                opts,
                &format!(
                    "{name:<12} {:<14} {:>9} SYNs sent (no answer expected)",
                    c.address, c.ok
                ),
            );
        } else {
            say(
                opts,
                &format!(
                    "{name:<12} {:<14} {:>9} {:>8} {:>8}",
                    c.address, c.ok, c.failed, c.unauthorized
                ),
            );
        }
    }
    say(opts, "\npackets by verdict/reason (the agent's counters)");
    for (k, v) in &s.agent_counters {
        say(opts, &format!("  {k:<32} {v:>10}"));
    }
    say(opts, "\ndecisions at the end");
    for (p, o, r) in &s.bans {
        say(opts, &format!("  {p:<20} {o:<9} {r}"));
    }
}

/// What each client does until the deadline (bounded loops).
fn behave(kind: &str, server: SocketAddr, tally: &Tally, running: &AtomicBool, deadline: Instant) {
    let live = || running.load(Ordering::Relaxed) && Instant::now() < deadline;
    let t = Duration::from_millis(500);
    let count = |r: std::io::Result<u16>| match r {
        Ok(401) => {
            tally.ok.fetch_add(1, Ordering::Relaxed);
            tally.unauthorized.fetch_add(1, Ordering::Relaxed);
        }
        Ok(_) => {
            tally.ok.fetch_add(1, Ordering::Relaxed);
        }
        Err(_) => {
            tally.failed.fetch_add(1, Ordering::Relaxed);
        }
    };
    match kind {
        // A person: a page and a login every 200 ms on one kept-alive connection.
        "user" => {
            let mut conn = None;
            while live() {
                if conn.is_none() {
                    conn = httpc::Conn::connect(server, t).ok();
                }
                if let Some(c) = conn.as_mut() {
                    for (m, p, b) in [
                        ("GET", "/", ""),
                        ("POST", "/login", "user=alice&password=good"),
                    ] {
                        let r = c.request(m, p, "api.demo", b);
                        if r.is_err() {
                            conn = None;
                            count(r);
                            break;
                        }
                        count(r);
                    }
                } else {
                    tally.failed.fetch_add(1, Ordering::Relaxed);
                }
                thread::sleep(Duration::from_millis(200));
            }
        }
        // Credential stuffing: a new connection per guess, as fast as it can.
        "stuffer" => {
            let mut n = 0u64;
            while live() && n < 1_000_000 {
                n += 1;
                count(httpc::once(
                    server,
                    "POST",
                    "/login",
                    &format!("user=admin&password=guess{n}"),
                    Duration::from_millis(200),
                ));
            }
        }
        // Scraping: walk the catalogue as fast as the server answers.
        "scraper" => {
            let mut n = 0u64;
            let mut conn = None;
            while live() && n < 10_000_000 {
                if conn.is_none() {
                    conn = httpc::Conn::connect(server, Duration::from_millis(200)).ok();
                    if conn.is_none() {
                        tally.failed.fetch_add(1, Ordering::Relaxed);
                        thread::sleep(Duration::from_millis(50));
                        continue;
                    }
                }
                n += 1;
                let r = conn
                    .as_mut()
                    .map(|c| c.request("GET", &format!("/api/items/{n}"), "api.demo", ""));
                if let Some(r) = r {
                    if r.is_err() {
                        conn = None;
                    }
                    count(r);
                }
            }
        }
        // A SYN flood: connections opened and abandoned, ~5,000 per second.
        "flooder" => {
            let start = Instant::now();
            let mut n = 0u64;
            while live() && n < 10_000_000 {
                let due = start + Duration::from_micros(200 * n);
                if let Some(w) = due.checked_duration_since(Instant::now()) {
                    thread::sleep(w);
                }
                n += 1;
                syn(server);
                tally.ok.fetch_add(1, Ordering::Relaxed);
            }
        }
        // A listed source trying politely: every attempt should fail.
        _ => {
            while live() {
                count(httpc::once(
                    server,
                    "GET",
                    "/",
                    "",
                    Duration::from_millis(300),
                ));
                thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

/// Sends one SYN (a non-blocking connect, abandoned at once).
fn syn(server: SocketAddr) {
    use std::os::fd::FromRawFd as _;
    // SAFETY: plain socket calls on a descriptor this function owns.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_NONBLOCK, 0);
        if fd < 0 {
            return;
        }
        let SocketAddr::V4(v4) = server else {
            libc::close(fd);
            return;
        };
        let sa = libc::sockaddr_in {
            sin_family: libc::AF_INET as u16,
            sin_port: v4.port().to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(*v4.ip()).to_be(),
            },
            sin_zero: [0; 8],
        };
        libc::connect(
            fd,
            (&raw const sa).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as u32,
        );
        drop(std::net::TcpStream::from_raw_fd(fd));
    }
}
