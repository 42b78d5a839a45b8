//! Rate-limit benchmarks: per-packet cost, accuracy on a veth, and the time
//! from a key going over its limit to the ban that follows.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr, UdpSocket},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use aya::programs::{TestRun as _, TestRunOptions, Xdp};
use enforcer::{
    config::RuleSpec,
    kernel::{Datapath, LoadOptions, XdpModeChoice},
};

use super::{
    lookup::BenchObject,
    report::{Report, median, min_max, percentile, pin_to_cpu, wait_idle},
};
use crate::{
    agent::Agent,
    netns::{End, Netns, Topology, enter, sh, veth},
    packet::{Ipv4, L4, v4_frame},
};

fn rule(rate: u64, burst: u64, v4: u8, v6: u8) -> RuleSpec {
    RuleSpec {
        name: format!("bench-{v4}"),
        kind: "packets".into(),
        rate,
        burst,
        ipv4_prefix: v4,
        ipv6_prefix: v6,
        monitor: false,
    }
}

fn load(rules: &[RuleSpec]) -> Datapath {
    let mut dp = Datapath::load(&LoadOptions::default()).unwrap();
    let compiled: Vec<_> = rules.iter().map(RuleSpec::compile).collect();
    dp.rate.install(&compiled, 1_000_000_000).unwrap();
    dp
}

fn frame() -> Vec<u8> {
    v4_frame(&Ipv4::new(
        "198.18.0.1".parse().unwrap(),
        "198.18.250.2".parse().unwrap(),
        L4::udp(40000, 9, &[0u8; 18]),
    ))
}

/// ns per run of `prog` on this thread, `repeat` runs of one packet.
fn direct(prog: &Xdp, f: &[u8], repeat: u32) -> f64 {
    let mut o = TestRunOptions::new();
    o.data_in = Some(f);
    o.repeat = repeat;
    prog.test_run(o).unwrap().duration.as_nanos() as f64
}

/// Per-packet cost under BPF_PROG_TEST_RUN.
pub fn cost(report: &mut Report, rounds: usize, repeat: u32) {
    // Never limited: the cost of the pass path, which every packet pays.
    let huge = 1_000_000_000;
    let setups: [(&str, Vec<RuleSpec>); 3] = [
        ("enforcer, no limits (lists only)", vec![]),
        ("enforcer, 1 tier (/32)", vec![rule(huge, huge, 32, 64)]),
        (
            "enforcer, 2 tiers (/32 + /24)",
            vec![rule(huge, huge, 32, 64), rule(huge, huge, 24, 48)],
        ),
    ];
    let dps: Vec<Datapath> = setups.iter().map(|(_, r)| load(r)).collect();
    let mut b = BenchObject::load(None);
    // 131,072 distinct sources: every address of 198.18.0.0/15.
    b.set_samples(&super::report::every_v4_source());
    let f = frame();
    let mut varied: Vec<Vec<f64>> = vec![Vec::new(); setups.len() + 1];
    for _ in 0..rounds {
        b.set_target(&b.prog_fd("bench_pass"));
        wait_idle(Duration::from_secs(2));
        varied[0].push(b.ns_per_run("bench_vary_v4", &f, repeat));
        for (i, dp) in dps.iter().enumerate() {
            b.set_target(&dp.program().fd().unwrap().try_clone().unwrap());
            wait_idle(Duration::from_secs(2));
            varied[i + 1].push(b.ns_per_run("bench_vary_v4", &f, repeat));
        }
    }
    let base_ns = median(&mut varied[0].clone());
    let mut rows = vec![{
        let (lo, hi) = min_max(&varied[0]);
        vec![
            "XDP_PASS (floor)".into(),
            format!("{base_ns:.0}"),
            format!("{lo:.0}–{hi:.0}"),
            "1.00×".into(),
        ]
    }];
    for (i, (label, _)) in setups.iter().enumerate() {
        let m = median(&mut varied[i + 1].clone());
        let (lo, hi) = min_max(&varied[i + 1]);
        rows.push(vec![
            (*label).into(),
            format!("{m:.0}"),
            format!("{lo:.0}–{hi:.0}"),
            format!("{:.2}×", m / base_ns),
        ]);
    }
    report.line("Sources varied over 131,072 keys (every address of 198.18.0.0/15), every packet under its limit:\n");
    report.table(
        &["program", "ns/packet (median)", "range", "vs XDP_PASS"],
        &rows,
    );

    // One key hit from one CPU, then from both CPUs at once.
    let pass: &Xdp = b.ebpf.program("bench_pass").unwrap().try_into().unwrap();
    let limited = dps[2].program();
    let mut one = Vec::new();
    let mut two = Vec::new();
    let mut pass_one = Vec::new();
    for _ in 0..rounds {
        wait_idle(Duration::from_secs(2));
        pin_to_cpu(0);
        pass_one.push(direct(pass, &f, repeat));
        one.push(direct(limited, &f, repeat));
        let both: Vec<f64> = std::thread::scope(|s| {
            let h: Vec<_> = (0..2)
                .map(|cpu| {
                    let f = &f;
                    s.spawn(move || {
                        pin_to_cpu(cpu);
                        direct(limited, f, repeat)
                    })
                })
                .collect();
            h.into_iter().map(|h| h.join().unwrap()).collect()
        });
        two.push(both.iter().sum::<f64>() / 2.0);
    }
    let p = median(&mut pass_one);
    let (o, t) = (median(&mut one), median(&mut two));
    report.line("One key (2 tiers), one packet repeated:\n");
    report.table(
        &["case", "ns/packet (median)", "vs XDP_PASS"],
        &[
            vec![
                "XDP_PASS, one CPU".into(),
                format!("{p:.0}"),
                "1.00×".into(),
            ],
            vec![
                "enforcer, one CPU on the key".into(),
                format!("{o:.0}"),
                format!("{:.2}×", o / p),
            ],
            vec![
                "enforcer, both CPUs on the same key at once".into(),
                format!("{t:.0}"),
                format!("{:.2}×", t / p),
            ],
        ],
    );
}

/// Enforced rate ÷ configured rate for one source flooding a veth.
pub fn accuracy(report: &mut Report, rates: &[u64], count: u32) {
    pin_to_cpu(0);
    let tag = format!("{}", std::process::id() % 100_000);
    let gen_ns = Netns::new(format!("enfr-{tag}-gen"));
    let rx = Netns::new(format!("enfr-{tag}-rx"));
    let (gen_if, rx_if) = (format!("rg{tag}"), format!("rr{tag}"));
    veth(
        &End {
            ns: &gen_ns,
            name: &gen_if,
            addrs: &[],
        },
        &End {
            ns: &rx,
            name: &rx_if,
            addrs: &[],
        },
    );
    let mut b = BenchObject::load(None);
    let mut one = [0u8; 16];
    one[..4].copy_from_slice(&[198, 18, 0, 1]);
    b.set_samples(&[one]);
    let f = frame();
    let home = std::fs::File::open("/proc/self/ns/net").unwrap();
    let mut rows = Vec::new();
    for &rate in rates {
        let burst = (rate / 10).max(1);
        let mut dp = load(&[rule(rate, burst, 32, 64)]);
        enter(&rx.path());
        dp.attach(&rx_if, XdpModeChoice::Native, None).unwrap();
        back(&home);
        wait_idle(Duration::from_secs(3));
        let passed = |dp: &Datapath| -> u64 {
            dp.counters
                .totals()
                .unwrap()
                .iter()
                .filter(|c| c.verdict == "pass")
                .map(|c| c.packets)
                .sum()
        };
        let before = passed(&dp);
        let t = Instant::now();
        super::drop::send_live(&b, &gen_ns, &gen_if, &f, count);
        let secs = t.elapsed().as_secs_f64();
        let got = passed(&dp) - before;
        let enforced = (got as f64 - burst as f64) / secs;
        rows.push(vec![
            format!("{rate}"),
            format!("{burst}"),
            format!("{:.2} Mpps for {secs:.2} s", f64::from(count) / secs / 1e6),
            format!("{got}"),
            format!("{enforced:.0}"),
            format!("{:.3}", enforced / rate as f64),
        ]);
        enter(&rx.path());
        dp.detach(&rx_if).unwrap();
        back(&home);
    }
    report.table(
        &[
            "configured /s",
            "burst",
            "offered",
            "passed",
            "enforced /s",
            "enforced ÷ configured",
        ],
        &rows,
    );
}

fn back(fd: &std::fs::File) {
    use std::os::fd::AsRawFd as _;
    // SAFETY: setns on a valid namespace fd, this thread only.
    assert_eq!(
        unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) },
        0
    );
}

/// From the first packet over the limit to the first packet dropped by the
/// ban it causes. The limit is in monitor mode (over-limit packets still pass)
/// and `after = 1`, so every packet reaches the server until the ban lands:
/// the first one missing marks it. Packets are 1 ms apart.
pub fn ban_latency(report: &mut Report, trials: usize) {
    let topo = Topology::new(1);
    let c = &topo.clients[0];
    let (rate, burst) = (100u64, 10u64);
    let agent = Agent::with_config(
        &topo,
        &format!("{}-lat", topo.tag),
        &format!(
            "[ratelimit]\nreport_interval = \"1s\"\n[[ratelimit.limits]]\nname = \"lat\"\nrate = {rate}\nburst = {burst}\nmode = \"monitor\"\nipv6_prefix = 128\n[ratelimit.ban]\nafter = 1\nwithin = \"10s\"\nban_time = \"1h\"\n"
        ),
    );
    let ifname = format!("ec{}0", topo.tag);
    let base = c.addr6.trim_end_matches("::2").to_owned();
    let sources: Vec<IpAddr> = (0..trials)
        .map(|i| {
            let a = format!("{base}::{:x}", 0x1000 + i);
            sh(&[
                "ip",
                "-n",
                &c.ns.name,
                "addr",
                "add",
                &format!("{a}/64"),
                "dev",
                &ifname,
                "nodad",
            ]);
            a.parse().unwrap()
        })
        .collect();
    // Receiver: highest sequence number seen per source.
    let seen: Arc<Mutex<HashMap<IpAddr, u64>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rxc) = std::sync::mpsc::channel();
    let recv = {
        let seen = Arc::clone(&seen);
        let stop = Arc::clone(&stop);
        let ns = topo.server.path();
        std::thread::spawn(move || {
            enter(&ns);
            let s = UdpSocket::bind("[::]:9100").unwrap();
            s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
            tx.send(()).unwrap();
            let mut buf = [0u8; 64];
            while !stop.load(Ordering::Relaxed) {
                if let Ok((n, from)) = s.recv_from(&mut buf)
                    && n >= 8
                {
                    let seq = u64::from_be_bytes(buf[..8].try_into().unwrap());
                    let mut m = seen.lock().unwrap();
                    let e = m.entry(from.ip().to_canonical()).or_insert(0);
                    *e = (*e).max(seq + 1);
                }
            }
        })
    };
    rxc.recv().unwrap();
    let dst: SocketAddr = format!("[{}]:9100", c.server6).parse().unwrap();
    let mut lat_ms = Vec::new();
    let gap = Duration::from_millis(1);
    let ns = c.ns.path();
    for src in sources {
        let seen_tx = Arc::clone(&seen);
        let ns = ns.clone();
        let (times, _) = std::thread::spawn(move || {
            enter(&ns);
            let s = UdpSocket::bind(SocketAddr::new(src, 0)).unwrap();
            let start = Instant::now();
            let mut times = Vec::new();
            let mut seq = 0u64;
            // Bounded: two seconds or until the ban has clearly landed.
            while start.elapsed() < Duration::from_secs(2) {
                // The burst goes out back to back (well inside one token's
                // 10 ms), so packet `burst` is the first over the limit for
                // certain; then one packet per ms.
                let due = start + gap * (seq.saturating_sub(burst)) as u32;
                if let Some(w) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(w);
                }
                let mut p = [0u8; 16];
                p[..8].copy_from_slice(&seq.to_be_bytes());
                let _ = s.send_to(&p, dst);
                times.push(Instant::now());
                seq += 1;
                let got = seen_tx.lock().unwrap().get(&src).copied().unwrap_or(0);
                if seq > 20 && got + 20 < seq {
                    break;
                }
            }
            (times, seq)
        })
        .join()
        .unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let first_missing = seen.lock().unwrap().get(&src).copied().unwrap_or(0) as usize;
        let over = burst as usize;
        if first_missing > over && first_missing < times.len() {
            lat_ms.push(
                times[first_missing]
                    .duration_since(times[over])
                    .as_secs_f64()
                    * 1e3,
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = recv.join();
    drop(agent);
    let n = lat_ms.len();
    let p50 = median(&mut lat_ms.clone());
    let p99 = percentile(&mut lat_ms.clone(), 99.0);
    let (lo, hi) = min_max(&lat_ms);
    report.table(
        &["trials", "p50 ms", "p99 ms", "min–max ms"],
        &[vec![
            format!("{n} of {trials}"),
            format!("{p50:.1}"),
            format!("{p99:.1}"),
            format!("{lo:.1}–{hi:.1}"),
        ]],
    );
    report.line("Resolution: 1 ms (the packet spacing). The span covers the XDP report, the ring buffer, the agent's detector, the store (journal fsync included) and the map write.\n");
}
