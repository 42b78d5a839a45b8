//! Loading a million prefixes through the agent against `ipset restore`, the
//! latency of one `enforcer block` with the set loaded, and kernel memory.

use std::{
    fmt::Write as _,
    process::Command,
    time::{Duration, Instant},
};

use enforcer::net::IpNet;

use super::{
    dataset::Dataset,
    report::{Report, median, percentile, wait_idle},
};
use crate::{
    agent::{Agent, Paths},
    netns::{Netns, Topology},
};

fn timed(c: &mut Command) -> (Duration, std::process::Output) {
    let t = Instant::now();
    let o = c.output().unwrap();
    (t.elapsed(), o)
}

fn memlock(pin: &std::path::Path) -> u64 {
    let o = Command::new("bpftool")
        .args(["map", "show", "pinned"])
        .arg(pin)
        .arg("-j")
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
    v["bytes_memlock"].as_u64().unwrap_or(0)
}

fn ipset_memory(ns: &Netns, set: &str) -> u64 {
    let o = ns.cmd("ipset").args(["list", set, "-t"]).output().unwrap();
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .find_map(|l| {
            l.strip_prefix("Size in memory: ")
                .and_then(|x| x.trim().parse().ok())
        })
        .unwrap_or(0)
}

pub fn run(report: &mut Report, d: &Dataset, rounds: usize) {
    let v4: Vec<&IpNet> = d.v4.iter().filter(|n| matches!(n, IpNet::V4(_))).collect();
    let topo = Topology::new(1);
    let dir = std::env::temp_dir().join(format!("enforcer-bench-load-{}", topo.tag));
    std::fs::create_dir_all(&dir).unwrap();
    let list = dir.join("prefixes.txt");
    let mut text = String::with_capacity(v4.len() * 18);
    for n in &v4 {
        let _ = writeln!(text, "{n}");
    }
    std::fs::write(&list, &text).unwrap();
    let restore = dir.join("ipset.restore");
    let mut r = String::with_capacity(v4.len() * 30);
    let _ = writeln!(
        r,
        "create benchset hash:net family inet hashsize 1048576 maxelem 4000000"
    );
    for n in &v4 {
        let _ = writeln!(r, "add benchset {n}");
    }
    std::fs::write(&restore, &r).unwrap();

    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    let mut single_ours = Vec::new();
    let mut single_theirs = Vec::new();
    let mut mem = (0u64, 0u64, 0u64);
    for round in 0..rounds {
        // enforcer: a fresh agent, then `enforcer import` of the whole list.
        let paths = Paths::new(&format!("{}-{round}", topo.tag));
        let agent = Agent::start(&topo.server.name, &topo.server_ifs(), paths, &[]);
        wait_idle(Duration::from_secs(3));
        let (t, o) = timed(
            Command::new(crate::agent::binary())
                .arg("--socket")
                .arg(&agent.socket)
                .args(["import", list.to_str().unwrap(), "--reason", "bench"]),
        );
        assert!(
            o.status.success(),
            "import failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        ours.push(t.as_secs_f64());
        for i in 0..20u32 {
            let a = format!("2001:2:0:f000::{:x}", 0x100 + i);
            let (t, o) = timed(
                Command::new(crate::agent::binary())
                    .arg("--socket")
                    .arg(&agent.socket)
                    .args(["block", &a]),
            );
            assert!(o.status.success());
            single_ours.push(t.as_secs_f64() * 1e3);
        }
        if round == 0 {
            let m = agent.bpffs.join("maps");
            mem.0 = memlock(&m.join("BLOCK_V4")) + memlock(&m.join("BLOCK_V4_SUMMARY"));
            let pid = agent
                .child
                .as_ref()
                .map(std::process::Child::id)
                .unwrap_or(0);
            let rss = super::report::rss_kib(pid);
            mem.2 = rss * 1024;
        }
        drop(agent);

        // ipset: restore of the same prefixes, in the client namespace.
        let ns = &topo.clients[0].ns;
        let _ = ns.cmd("ipset").args(["destroy", "benchset"]).output();
        wait_idle(Duration::from_secs(3));
        let f = std::fs::File::open(&restore).unwrap();
        let t = Instant::now();
        let o = ns.cmd("ipset").arg("restore").stdin(f).output().unwrap();
        let el = t.elapsed();
        assert!(
            o.status.success(),
            "ipset restore: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        theirs.push(el.as_secs_f64());
        for i in 0..20u32 {
            let a = format!("198.19.{}.{}", 200 + (i / 100), 2 * (i % 100));
            let (t, o) = timed(ns.cmd("ipset").args(["add", "benchset", &a]));
            assert!(o.status.success());
            single_theirs.push(t.as_secs_f64() * 1e3);
        }
        if round == 0 {
            mem.1 = ipset_memory(ns, "benchset");
        }
        let _ = ns.cmd("ipset").args(["destroy", "benchset"]).output();
    }
    let (mo, mt) = (median(&mut ours), median(&mut theirs));
    report.table(
        &["load 1M IPv4 prefixes", "seconds (median)", "ratio to ipset"],
        &[
            vec!["`enforcer import` through the agent (parse, store, journal + fsync, batched map writes)".into(), format!("{mo:.2}"), format!("{:.2}×", mo / mt)],
            vec!["`ipset restore` (hash:net)".into(), format!("{mt:.2}"), "1.00×".into()],
        ],
    );
    let (so50, so90) = (
        median(&mut single_ours.clone()),
        percentile(&mut single_ours, 90.0),
    );
    let (st50, st90) = (
        median(&mut single_theirs.clone()),
        percentile(&mut single_theirs, 90.0),
    );
    report.table(
        &[
            "one more prefix, 1M loaded (whole command, process start included)",
            "p50 ms",
            "p90 ms",
        ],
        &[
            vec![
                "`enforcer block ADDR`".into(),
                format!("{so50:.1}"),
                format!("{so90:.1}"),
            ],
            vec![
                "`ipset add`".into(),
                format!("{st50:.1}"),
                format!("{st90:.1}"),
            ],
        ],
    );
    report.table(
        &["kernel memory for the 1M IPv4 set", "MiB"],
        &[
            vec![
                "enforcer: BLOCK_V4 + BLOCK_V4_SUMMARY (`bpftool map show`, bytes_memlock)".into(),
                format!("{:.1}", mem.0 as f64 / 1048576.0),
            ],
            vec![
                "ipset hash:net (`ipset list -t`, Size in memory)".into(),
                format!("{:.1}", mem.1 as f64 / 1048576.0),
            ],
            vec![
                "(agent resident memory with the set loaded, for reference)".into(),
                format!("{:.1}", mem.2 as f64 / 1048576.0),
            ],
        ],
    );
    let _ = std::fs::remove_dir_all(&dir);
}
