//! The agent's own costs: CPU time per Prometheus scrape with a million
//! blocklist entries and 100K rate-limit keys (a scrape must not walk the big
//! maps), and resident memory at idle and loaded.

use std::{
    fmt::Write as _,
    io::{Read as _, Write as _},
    net::TcpStream,
    time::Duration,
};

use enforcer::net::IpNet;

use super::{
    dataset::{Dataset, Rng},
    lookup::BenchObject,
    report::{Report, median, wait_idle},
};
use crate::{
    agent::Agent,
    netns::{Topology, enter},
    packet::{Ipv4, L4, v4_frame},
};

/// CPU time of every thread of a process, in ms, from the scheduler's
/// nanosecond accounting (`/proc/PID/task/*/schedstat`; `stat`'s utime and
/// stime tick at 10 ms, too coarse for a scrape).
fn cpu_ms(pid: u32) -> f64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0.0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| {
            s.split_whitespace()
                .next()
                .and_then(|x| x.parse::<u64>().ok())
        })
        .sum::<u64>() as f64
        / 1e6
}

fn rss_mib(pid: u32) -> f64 {
    super::report::rss_kib(pid) as f64 / 1024.0
}

fn scrape(ns: &str, n: usize) -> usize {
    let ns = ns.to_owned();
    std::thread::spawn(move || {
        enter(&ns);
        let mut bytes = 0;
        for _ in 0..n {
            let mut s = TcpStream::connect("127.0.0.1:9910").unwrap();
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .unwrap();
            let mut out = Vec::new();
            s.read_to_end(&mut out).unwrap();
            bytes = out.len();
        }
        bytes
    })
    .join()
    .unwrap()
}

/// CPU ms per scrape, median of rounds of `n` scrapes.
fn per_scrape(ns: &str, pid: u32, n: usize, rounds: usize) -> f64 {
    let mut v = Vec::new();
    for _ in 0..rounds {
        wait_idle(Duration::from_secs(2));
        let c0 = cpu_ms(pid);
        scrape(ns, n);
        v.push((cpu_ms(pid) - c0) / n as f64);
    }
    median(&mut v)
}

pub fn run(report: &mut Report, d: &Dataset, rounds: usize) {
    let topo = Topology::new(1);
    let c = &topo.clients[0];
    // A limit nothing exceeds: every source gets state, nothing is dropped.
    let agent = Agent::with_config(
        &topo,
        &format!("{}-obs", topo.tag),
        "[[ratelimit.limits]]\nname = \"all\"\nrate = 1000000000\nburst = 1000000000\n",
    );
    let pid = agent.child.as_ref().map_or(0, std::process::Child::id);
    std::thread::sleep(Duration::from_millis(500));
    let rss_idle = rss_mib(pid);
    let ns = topo.server.path();
    scrape(&ns, 5);
    let empty = per_scrape(&ns, pid, 50, rounds);

    // A million prefixes none of which covers the test range the traffic uses.
    let in_range = |n: &IpNet| {
        let r: IpNet = "198.18.0.0/15".parse().unwrap();
        r.contains(n) || n.contains(&r.network())
    };
    let mut set: Vec<IpNet> = d.v4.iter().copied().filter(|n| !in_range(n)).collect();
    let mut rng = Rng(0xB10C);
    let mut seen: std::collections::HashSet<IpNet> = set.iter().copied().collect();
    while set.len() < d.v4.len() {
        let n = IpNet::new(std::net::Ipv4Addr::from(rng.next() as u32).into(), 32).unwrap();
        if !in_range(&n) && seen.insert(n) {
            set.push(n);
        }
    }
    let mut text = String::with_capacity(set.len() * 18);
    for n in &set {
        let _ = writeln!(text, "{n}");
    }
    let file = agent.socket.parent().unwrap().join("million.txt");
    std::fs::write(&file, text).unwrap();
    agent.ok(&["import", file.to_str().unwrap()]);

    // 131,072 sources (all of 198.18.0.0/15), one packet each, from the
    // client side of the link: one rate-limit key per source.
    let mut b = BenchObject::load(None);
    b.set_samples(&super::report::every_v4_source());
    let frame = v4_frame(&Ipv4::new(
        "198.18.0.1".parse().unwrap(),
        c.server4.parse().unwrap(),
        L4::udp(40000, 9, &[0u8; 18]),
    ));
    super::drop::send_live(&b, &c.ns, &format!("ec{}0", topo.tag), &frame, 131_072);
    std::thread::sleep(Duration::from_millis(500));
    let status: serde_json::Value =
        serde_json::from_str(&agent.ok(&["status", "-o", "json"])).unwrap();
    let keys = status["stats"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s[0] == "rate_keys_created")
        .and_then(|s| s[1].as_u64())
        .unwrap_or(0);
    let blocks = status["decisions_block"].as_u64().unwrap_or(0);
    let rss_loaded = rss_mib(pid);
    let bytes = scrape(&ns, 5);
    let loaded = per_scrape(&ns, pid, 50, rounds);
    report.table(
        &[
            "agent state",
            "CPU ms per scrape (median of rounds of 50)",
            "resident memory MiB",
        ],
        &[
            vec![
                "idle: no decisions, no rate-limit keys".into(),
                format!("{empty:.2}"),
                format!("{rss_idle:.1}"),
            ],
            vec![
                format!("{blocks} blocklist entries, {keys} rate-limit keys"),
                format!("{loaded:.2}"),
                format!("{rss_loaded:.1}"),
            ],
        ],
    );
    report.line(format!(
        "A scrape ({bytes} bytes) reads the per-CPU counters and the agent's own bookkeeping; it never iterates a map, so its cost does not grow with the maps ({:.2}×).\n",
        loaded / empty.max(1e-3)
    ));
}
