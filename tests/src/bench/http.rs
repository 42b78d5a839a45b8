//! HTTP benchmarks: the per-packet cost of route matching, a real HTTP
//! server's throughput and latency on a veth with enforcer attached, and the
//! legitimate throughput left under a flood from limited clients. Every
//! figure is set against a baseline measured in the same run.

use std::{
    path::{Path, PathBuf},
    process::{Child, Stdio},
    time::Duration,
};

use aya::programs::{TestRun as _, TestRunOptions, Xdp};
use enforcer::{
    config::{HttpConfig, RouteSpec, RuleSpec},
    kernel::{Datapath, LoadOptions, XdpModeChoice, object},
};

use super::report::{Report, median, min_max, pin_to_cpu, wait_idle};
use crate::{
    netns::{Netns, Topology, enter},
    packet::{Ipv4, L4, TCP_ACK, TCP_PSH, v4_frame},
};

/// Requests per second nothing in these benchmarks should reach.
const HUGE: u64 = 1_000_000_000;

/// `n` routes over methods and nested paths, none of them limiting; with
/// `hosts`, one in five is for one of seven hosts (so every trie is in use
/// and the Host header is looked for).
pub fn routes(n: usize, hosts: bool) -> Vec<RouteSpec> {
    const METHODS: [&str; 4] = ["GET", "POST", "PUT", "*"];
    (0..n)
        .map(|i| RouteSpec {
            name: format!("r{i}"),
            method: METHODS[i % METHODS.len()].into(),
            path: format!("/api/v{}/resource{i}/", i % 3 + 1),
            host: (hosts && i % 5 == 0).then(|| format!("h{}.example.test", i % 7)),
            rate: HUGE,
            burst: HUGE,
            action: "drop".into(),
            ipv4_prefix: 32,
            ipv6_prefix: 64,
        })
        .collect()
}

fn http_config(routes: Vec<RouteSpec>, ports: Vec<u16>) -> HttpConfig {
    HttpConfig {
        ports,
        routes,
        ..HttpConfig::default()
    }
}

fn load(http: &HttpConfig) -> Datapath {
    let mut dp = Datapath::load(&LoadOptions::default()).expect("loading enforcer");
    dp.http.install(http, 0).expect("installing routes");
    dp
}

fn pass_object() -> aya::Ebpf {
    let mut e = aya::Ebpf::load(object::PASS).expect("loading XDP_PASS");
    let p: &mut Xdp = e.program_mut("pass").unwrap().try_into().unwrap();
    p.load().unwrap();
    e
}

fn request_frame(payload: &[u8]) -> Vec<u8> {
    v4_frame(&Ipv4::new(
        "198.18.0.1".parse().unwrap(),
        "198.18.250.2".parse().unwrap(),
        L4::Tcp {
            sport: 40000,
            dport: 80,
            seq: 1,
            ack: 1,
            flags: TCP_ACK | TCP_PSH,
            payload: payload.to_vec(),
        },
    ))
}

fn ns_per_run(prog: &Xdp, f: &[u8], repeat: u32) -> f64 {
    let mut o = TestRunOptions::new();
    o.data_in = Some(f);
    o.repeat = repeat;
    prog.test_run(o).unwrap().duration.as_nanos() as f64
}

/// ns/packet of request packets through route matching (1,000 routes), as
/// a ratio to a bare XDP_PASS, BPF_PROG_TEST_RUN on one CPU.
pub fn cost(report: &mut Report, rounds: usize, repeat: u32) {
    let one: Vec<RouteSpec> = routes(1_000, false)
        .into_iter()
        .filter(|r| r.name == "r501")
        .collect();
    let setups: [(&str, Datapath); 4] = [
        ("no HTTP ports", load(&http_config(Vec::new(), Vec::new()))),
        ("1 route", load(&http_config(one, vec![80, 8080]))),
        (
            "1,000 routes (methods, any)",
            load(&http_config(routes(1_000, false), vec![80, 8080])),
        ),
        (
            "1,000 routes (methods, any, 7 hosts)",
            load(&http_config(routes(1_000, true), vec![80, 8080])),
        ),
    ];
    let pass = pass_object();
    let pass: &Xdp = pass.program("pass").unwrap().try_into().unwrap();
    let frames: [(&str, Vec<u8>); 4] = [
        (
            "`POST /api/v2/resource501/login`, matched (Host + 3 headers)",
            request_frame(
                b"POST /api/v2/resource501/login HTTP/1.1\r\nHost: api.example.test\r\nUser-Agent: bench\r\nAccept: */*\r\nContent-Length: 20\r\n\r\nuser=a&password=bad1",
            ),
        ),
        (
            "`GET /static/app.js`, no route matches",
            request_frame(
                b"GET /static/app.js HTTP/1.1\r\nHost: api.example.test\r\nAccept: */*\r\n\r\n",
            ),
        ),
        (
            "a body segment on port 80 (no request start)",
            request_frame(&[b'x'; 200]),
        ),
        (
            "UDP (not HTTP)",
            v4_frame(&Ipv4::new(
                "198.18.0.1".parse().unwrap(),
                "198.18.250.2".parse().unwrap(),
                L4::udp(40000, 9, &[0u8; 18]),
            )),
        ),
    ];
    pin_to_cpu(0);
    let mut rows = Vec::new();
    for (label, f) in &frames {
        let mut base = Vec::new();
        let mut per: Vec<Vec<f64>> = vec![Vec::new(); setups.len()];
        for _ in 0..rounds {
            wait_idle(Duration::from_secs(2));
            base.push(ns_per_run(pass, f, repeat));
            for (i, (_, dp)) in setups.iter().enumerate() {
                per[i].push(ns_per_run(dp.program(), f, repeat));
            }
        }
        let b = median(&mut base);
        let mut row = vec![(*label).to_owned(), format!("{b:.0}")];
        for v in &mut per {
            let m = median(v);
            row.push(format!("{m:.0} ({:.1}×)", m / b));
        }
        rows.push(row);
    }
    report.line(format!(
        "enforcer's program with: no HTTP ports; one route; 1,000 routes over methods and nested paths; the same with one route in five for one of seven hosts (every trie in use, Host looked for). Nothing limiting. {repeat} runs per sample, {rounds} rounds interleaved, medians, ns/packet (× XDP_PASS):\n"
    ));
    let mut header = vec!["packet", "XDP_PASS"];
    header.extend(setups.iter().map(|(l, _)| *l));
    report.table(&header, &rows);

    // The TC egress observer, on responses, against a TC program that does
    // nothing (the same bare program's verdict is irrelevant to the cost).
    let tc = &setups[3].1;
    let response = |status: &[u8]| {
        v4_frame(&Ipv4::new(
            "198.18.250.2".parse().unwrap(),
            "198.18.0.1".parse().unwrap(),
            L4::Tcp {
                sport: 80,
                dport: 40000,
                seq: 1,
                ack: 1,
                flags: TCP_ACK | TCP_PSH,
                payload: [
                    status,
                    &b"Content-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n"[..],
                ]
                .concat(),
            },
        ))
    };
    let mut rows = Vec::new();
    for (label, f) in [
        (
            "`HTTP/1.1 200 OK` (not counted)",
            response(b"HTTP/1.1 200 OK\r\n"),
        ),
        (
            "`HTTP/1.1 401 Unauthorized` (counted, one client)",
            response(b"HTTP/1.1 401 Unauthorized\r\n"),
        ),
    ] {
        let mut v = Vec::new();
        for _ in 0..rounds {
            wait_idle(Duration::from_secs(2));
            let mut o = TestRunOptions::new();
            o.data_in = Some(&f);
            o.repeat = repeat;
            v.push(
                tc.responses_program()
                    .test_run(o)
                    .unwrap()
                    .duration
                    .as_nanos() as f64,
            );
        }
        rows.push(vec![label.to_owned(), format!("{:.0}", median(&mut v))]);
    }
    report.line("The TC egress program per response packet (BPF_PROG_TEST_RUN, ns):\n");
    report.table(&["response", "ns/packet"], &rows);
}

/// A process killed (and reaped) on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// nginx in `ns` on CPU `cpu`: `/login` answers 401, everything else 200.
fn nginx(ns: &Netns, dir: &Path, cpu: usize) -> Proc {
    std::fs::create_dir_all(dir).unwrap();
    let d = dir.display();
    let conf = dir.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "worker_processes 1;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
             events {{ worker_connections 8192; }}\n\
             http {{\n  access_log off;\n  keepalive_requests 10000000;\n\
               client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fcgi;\n\
               uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
               server {{\n    listen 80 backlog=8192;\n\
                 location = /login {{ return 401 \"bad credentials\\n\"; }}\n\
                 location / {{ return 200 \"ok\\n\"; }}\n  }}\n}}\n"
        ),
    )
    .unwrap();
    let child = ns
        .cmd("taskset")
        .args(["-c", &cpu.to_string(), "nginx", "-p"])
        .arg(dir)
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting nginx");
    std::thread::sleep(Duration::from_millis(300));
    let mut proc = Proc(child);
    if let Ok(Some(status)) = proc.0.try_wait() {
        panic!(
            "nginx exited at start ({status}): is it installed? `cargo xtask bench` installs it; \
             its log is {d}/error.log"
        );
    }
    proc
}

/// What one wrk run measured.
#[derive(Debug, Clone, Copy, Default)]
struct Wrk {
    rps: f64,
    p99_ms: f64,
    errors: u64,
}

fn parse_ms(s: &str) -> f64 {
    let (num, unit) = s.split_at(s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len()));
    let v: f64 = num.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => v / 1000.0,
        "ms" => v,
        "s" => v * 1000.0,
        "m" => v * 60_000.0,
        _ => f64::NAN,
    }
}

/// Runs wrk (bounded by `secs`) from `ns` on CPU `cpu`.
fn wrk(ns: &Netns, cpu: usize, conns: u32, secs: u32, url: &str, extra: &[&str]) -> Wrk {
    let out = ns
        .cmd("taskset")
        .args(["-c", &cpu.to_string(), "wrk", "-t1", "--latency"])
        .arg(format!("-c{conns}"))
        .arg(format!("-d{secs}s"))
        .args(["--timeout", "2s"])
        .args(extra)
        .arg(url)
        .output()
        .expect("running wrk");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Requests/sec:"),
        "wrk {url} gave no result ({}): {}{}",
        out.status,
        text,
        String::from_utf8_lossy(&out.stderr)
    );
    let mut w = Wrk::default();
    for line in text.lines() {
        let l = line.trim();
        if let Some(v) = l.strip_prefix("Requests/sec:") {
            w.rps = v.trim().parse().unwrap_or(0.0);
        } else if let Some(v) = l.strip_prefix("99%") {
            w.p99_ms = parse_ms(v.trim());
        } else if let Some(v) = l.strip_prefix("Socket errors:") {
            w.errors += v
                .split(',')
                .filter_map(|p| p.split_whitespace().last()?.parse::<u64>().ok())
                .sum::<u64>();
        } else if let Some(v) = l.strip_prefix("Non-2xx or 3xx responses:") {
            w.errors += v.trim().parse::<u64>().unwrap_or(0);
        }
    }
    w
}

/// What is attached to the server side of the veths.
enum Attached {
    Nothing,
    Pass { _links: Vec<aya::Ebpf> },
    Enforcer { _dp: Box<Datapath> },
}

fn attach(topo: &Topology, what: &str, http: &HttpConfig) -> Attached {
    attach_with(topo, what, http, &[])
}

/// As `attach`, with per-source rate limits installed beside the routes.
fn attach_with(topo: &Topology, what: &str, http: &HttpConfig, limits: &[RuleSpec]) -> Attached {
    let ns = topo.server.path();
    let ifs = topo.server_ifs();
    match what {
        "none" => Attached::Nothing,
        "pass" => Attached::Pass {
            _links: ifs
                .iter()
                .map(|i| crate::netns::attach_pass(&ns, i))
                .collect(),
        },
        _ => {
            let http = http.clone();
            let limits: Vec<_> = limits.iter().map(RuleSpec::compile).collect();
            std::thread::spawn(move || {
                enter(&ns);
                let mut dp = load(&http);
                dp.rate
                    .install(&limits, 1_000_000_000)
                    .expect("installing limits");
                for i in &ifs {
                    dp.attach(i, XdpModeChoice::Native, None)
                        .expect("attaching enforcer");
                }
                Attached::Enforcer { _dp: Box::new(dp) }
            })
            .join()
            .unwrap()
        }
    }
}

/// Client-side sysctls for connection-per-request runs (PERF.md).
fn tune(topo: &Topology) {
    for c in &topo.clients {
        let _ =
            c.ns.cmd("sysctl")
                .args([
                    "-qw",
                    "net.ipv4.ip_local_port_range=1024 65000",
                    "net.ipv4.tcp_tw_reuse=1",
                ])
                .status();
    }
    let _ = topo
        .server
        .cmd("sysctl")
        .args([
            "-qw",
            "net.ipv4.tcp_max_tw_buckets=0",
            "net.core.somaxconn=8192",
        ])
        .status();
}

fn scratch(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("enforcer-bench-http-{}-{tag}", std::process::id()))
}

/// Requests per second and p99 through nginx on a veth: enforcer (1,000
/// routes, nothing limited) against a bare XDP_PASS and against nothing.
pub fn throughput(report: &mut Report, rounds: usize, secs: u32) {
    let topo = Topology::new(1);
    tune(&topo);
    let dir = scratch("tp");
    let _server = nginx(&topo.server, &dir, 1);
    let c = &topo.clients[0];
    let url = format!("http://{}/api/v2/resource501/items", c.server4);
    let http = http_config(routes(1_000, false), vec![80, 8080]);
    let http_hosts = http_config(routes(1_000, true), vec![80, 8080]);
    let setups = ["none", "pass", "enforcer", "enforcer-hosts"];
    let modes: [(&str, u32, &[&str]); 2] = [
        ("keep-alive, 16 connections", 16, &[]),
        (
            "connection per request, 16 at once",
            16,
            &["-H", "Connection: close"],
        ),
    ];
    // results[mode][setup] = samples
    let mut rps = vec![vec![Vec::new(); setups.len()]; modes.len()];
    let mut p99 = vec![vec![Vec::new(); setups.len()]; modes.len()];
    let mut errors = 0u64;
    for _ in 0..rounds {
        for (s, what) in setups.iter().enumerate() {
            let attached = attach(
                &topo,
                what,
                if *what == "enforcer-hosts" {
                    &http_hosts
                } else {
                    &http
                },
            );
            for (m, (_, conns, extra)) in modes.iter().enumerate() {
                wait_idle(Duration::from_secs(2));
                let w = wrk(&c.ns, 0, *conns, secs, &url, extra);
                if std::env::var_os("ENFORCER_BENCH_DEBUG").is_some() {
                    eprintln!("{what} mode {m}: {w:?}");
                }
                rps[m][s].push(w.rps);
                p99[m][s].push(w.p99_ms);
                errors += w.errors;
            }
            drop(attached);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let mut rows = Vec::new();
    for (m, (label, ..)) in modes.iter().enumerate() {
        let pass_rps = median(&mut rps[m][1].clone());
        for (s, what) in setups.iter().enumerate() {
            let r = median(&mut rps[m][s].clone());
            let (lo, hi) = min_max(&rps[m][s]);
            let p = median(&mut p99[m][s].clone());
            rows.push(vec![
                (*label).into(),
                match *what {
                    "none" => "no XDP program".into(),
                    "pass" => "bare XDP_PASS".into(),
                    "enforcer" => "enforcer, 1,000 routes, TC observer".to_owned(),
                    _ => "enforcer, 1,000 routes incl. host routes, TC observer".to_owned(),
                },
                format!("{r:.0} ({lo:.0}–{hi:.0})"),
                format!("{p:.2}"),
                format!("{:.1}%", 100.0 * r / pass_rps),
            ]);
        }
    }
    report.line(format!(
        "nginx (1 worker, CPU 1) answering `GET /api/v2/resource501/items` (a route matches it, never limiting), wrk on CPU 0, {secs} s per run, {rounds} rounds with setups interleaved, medians; {errors} socket errors or non-2xx in all runs:\n"
    ));
    report.table(
        &[
            "load",
            "on the server's veth",
            "requests/s (range)",
            "p99 ms",
            "vs bare XDP_PASS",
        ],
        &rows,
    );
}

/// Legitimate requests per second while a limited client floods `POST
/// /login`: enforcer (route at 5/s, `drop` or `reject`) against no program.
pub fn flood(report: &mut Report, rounds: usize, secs: u32) {
    let topo = Topology::new(2);
    tune(&topo);
    let dir = scratch("flood");
    let _server = nginx(&topo.server, &dir, 1);
    let (legit, flooder) = (&topo.clients[0], &topo.clients[1]);
    let script = dir.join("post.lua");
    std::fs::write(
        &script,
        "wrk.method = \"POST\"\nwrk.body = \"user=a&password=bad\"\nwrk.headers[\"Content-Type\"] = \"application/x-www-form-urlencoded\"\n",
    )
    .unwrap();
    let login = |action: &str| RouteSpec {
        name: "login".into(),
        method: "POST".into(),
        path: "/login".into(),
        host: None,
        rate: 5,
        burst: 5,
        action: action.into(),
        ipv4_prefix: 32,
        ipv6_prefix: 64,
    };
    // What docs/configuration.md advises beside `reject`: a SYN limit, so
    // a client that reconnects after each reset cannot flood handshakes.
    let syn_limit = RuleSpec {
        name: "new-connections".into(),
        kind: "syn".into(),
        rate: 20,
        burst: 40,
        ipv4_prefix: 32,
        ipv6_prefix: 64,
        monitor: false,
    };
    let setups: [(&str, &str); 5] = [
        ("no flood, no program", "none"),
        ("flood, no program", "none"),
        ("flood, enforcer (login 5/s, drop)", "drop"),
        ("flood, enforcer (login 5/s, reject)", "reject"),
        (
            "flood, enforcer (login 5/s, reject; SYN limit 20/s)",
            "reject+syn",
        ),
    ];
    let mut legit_rps = vec![Vec::new(); setups.len()];
    let mut flood_rps = vec![Vec::new(); setups.len()];
    for _ in 0..rounds {
        for (s, (label, action)) in setups.iter().enumerate() {
            let attached = match *action {
                "none" => Attached::Nothing,
                "reject+syn" => attach_with(
                    &topo,
                    "enforcer",
                    &http_config(vec![login("reject")], vec![80]),
                    std::slice::from_ref(&syn_limit),
                ),
                a => attach(&topo, "enforcer", &http_config(vec![login(a)], vec![80])),
            };
            wait_idle(Duration::from_secs(2));
            let url = format!("http://{}/login", flooder.server4);
            let script = script.to_str().unwrap();
            std::thread::scope(|sc| {
                let flood_thread = (!label.starts_with("no flood"))
                    .then(|| sc.spawn(|| wrk(&flooder.ns, 0, 64, secs + 1, &url, &["-s", script])));
                std::thread::sleep(Duration::from_millis(300));
                let w = wrk(
                    &legit.ns,
                    0,
                    8,
                    secs,
                    &format!("http://{}/", legit.server4),
                    &[],
                );
                legit_rps[s].push(w.rps);
                if let Some(t) = flood_thread {
                    flood_rps[s].push(t.join().unwrap().rps);
                }
            });
            drop(attached);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let calm = median(&mut legit_rps[0].clone());
    let flooded = median(&mut legit_rps[1].clone());
    let rows: Vec<Vec<String>> = setups
        .iter()
        .enumerate()
        .map(|(s, (label, _))| {
            let r = median(&mut legit_rps[s].clone());
            let (lo, hi) = min_max(&legit_rps[s]);
            vec![
                (*label).into(),
                format!("{r:.0} ({lo:.0}–{hi:.0})"),
                format!("{:.0}%", 100.0 * r / calm),
                format!("{:.2}×", r / flooded),
                if flood_rps[s].is_empty() {
                    "—".into()
                } else {
                    format!("{:.0}", median(&mut flood_rps[s].clone()))
                },
            ]
        })
        .collect();
    report.line(format!(
        "nginx (1 worker, CPU 1); a legitimate client (wrk, 8 keep-alive connections, `GET /`) and a flooder (wrk, 64 keep-alive connections, `POST /login` with bad credentials) on CPU 0; {secs} s per run, {rounds} rounds interleaved, medians:\n"
    ));
    report.table(
        &[
            "setup",
            "legitimate requests/s (range)",
            "vs no flood",
            "vs flood without enforcer",
            "flooder's answered requests/s",
        ],
        &rows,
    );
}
