//! Policy reload time and external-decision throughput.

use std::{fmt::Write as _, process::Command, time::Instant};

use super::{
    dataset::Rng,
    report::{Report, median},
};
use crate::{
    agent::{Agent, Paths, binary},
    netns::Topology,
};

fn timed(agent: &Agent, args: &[&str]) -> f64 {
    let t = Instant::now();
    let out = Command::new(binary())
        .arg("--socket")
        .arg(&agent.socket)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    t.elapsed().as_secs_f64() * 1e3
}

/// A policy with `n` static prefixes (map data only) and 8 rate-limit tiers.
fn policy(n: usize, salt: u64) -> String {
    let mut s = String::from("[blocklist]\nreason = \"static policy\"\nprefixes = [\n");
    let mut rng = Rng(0xFEED);
    let mut seen = std::collections::HashSet::new();
    let mut k = 0;
    while k < n {
        let a = rng.next() as u32;
        if a >> 17 == u32::from_be_bytes([198, 18, 0, 0]) >> 17 || !seen.insert(a) {
            continue;
        }
        // `salt` swaps 1% of the entries for others.
        let a = if salt != 0 && k % 100 == 0 {
            a ^ 0x0001_0000
        } else {
            a
        };
        let _ = writeln!(s, "  \"{}\",", std::net::Ipv4Addr::from(a));
        k += 1;
    }
    s.push_str("]\n");
    for i in 0..4 {
        let _ = write!(
            s,
            "[[ratelimit.limits]]\nname = \"l{i}\"\nrate = {}\n[[ratelimit.limits.tiers]]\nipv4_prefix = 24\nipv6_prefix = 48\nrate = {}\n",
            1000 + i,
            10_000 + i
        );
    }
    // 1,000 HTTP routes (installed double-buffered like the limits).
    for i in 0..1_000 {
        let _ = write!(
            s,
            "[[routes]]\nname = \"r{i}\"\nmethod = \"{}\"\npath = \"/api/v{}/resource{i}/\"\nrate = {}\n",
            ["GET", "POST", "PUT", "any"][i % 4],
            i % 3 + 1,
            // `salt` changes 1% of the routes too.
            100 + usize::from(salt != 0 && i % 100 == 0)
        );
    }
    s
}

pub fn run(report: &mut Report, prefixes: usize, decisions: usize, rounds: usize) {
    let topo = Topology::new(1);
    let paths = Paths::new(&format!("{}-pol", topo.tag));
    let dir = paths.socket.parent().unwrap().join("etc");
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("enforcer.toml");
    std::fs::write(&cfg, "").unwrap();
    let agent = Agent::start(
        &topo.server.name,
        &topo.server_ifs(),
        paths,
        &["--config", cfg.to_str().unwrap()],
    );
    let a = policy(prefixes, 0);
    let b = policy(prefixes, 1);
    let (mut first, mut same, mut changed) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        std::fs::write(&cfg, "").unwrap();
        timed(&agent, &["reload"]);
        std::fs::write(&cfg, &a).unwrap();
        first.push(timed(&agent, &["reload"]));
        same.push(timed(&agent, &["reload"]));
        std::fs::write(&cfg, &b).unwrap();
        changed.push(timed(&agent, &["reload"]));
    }
    report.table(
        &[
            &format!(
                "reload of a policy with {prefixes} static prefixes, 8 rate-limit tiers and 1,000 HTTP routes"
            )
                as &str,
            "ms (median, whole `enforcer reload` command)",
        ],
        &[
            vec![
                "from an empty policy (all prefixes added)".into(),
                format!("{:.0}", median(&mut first)),
            ],
            vec![
                "the same policy again (nothing changes)".into(),
                format!("{:.0}", median(&mut same)),
            ],
            vec![
                "1% of the prefixes and 1% of the routes changed".into(),
                format!("{:.0}", median(&mut changed)),
            ],
        ],
    );

    // External decisions: JSON lines through `enforcer decisions apply`.
    let mut rng = Rng(0xDEC1);
    let mut text = String::with_capacity(decisions * 80);
    for _ in 0..decisions {
        let a = rng.next() as u32 | 0x0100_0000;
        let _ = writeln!(
            text,
            "{{\"action\":\"ban\",\"value\":\"{}\",\"duration\":\"4h\",\"reason\":\"detector x\"}}",
            std::net::Ipv4Addr::from(a)
        );
    }
    let file = dir.join("decisions.jsonl");
    std::fs::write(&file, &text).unwrap();
    let mut rates = Vec::new();
    for _ in 0..rounds {
        let ms = timed(&agent, &["decisions", "apply", file.to_str().unwrap()]);
        rates.push(decisions as f64 / (ms / 1e3));
    }
    let r = median(&mut rates);
    report.table(
        &["external decisions", "decisions per second (median)"],
        &[vec![
            format!("`enforcer decisions apply` of {decisions} JSON lines (parse, validate, store, journal, map writes)"),
            format!("{r:.0}"),
        ]],
    );
    report.line("Target: at least 100,000/s. (CrowdSec's nftables bouncer is reported at about 40 decisions/s.)\n");
}
