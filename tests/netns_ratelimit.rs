//! Rate limits with real traffic between network namespaces: UDP senders
//! (flooding and well-behaved), a UDP receiver counting what got through,
//! the real agent and CLI. Every run is bounded in time and packets.

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use enforcer_tests::{
    agent::{Agent, Paths, eventually},
    netns::{Topology, sh},
    traffic::{self, Send, UdpCounter},
};

/// Two clients, a UDP counter on the server, an agent with `config`.
fn setup(config: &str) -> (Topology, UdpCounter, Agent) {
    let topo = Topology::new(2);
    let rx = UdpCounter::start(&topo.server.path(), "[::]:9000".parse().unwrap());
    let agent = Agent::with_config(&topo, &topo.tag, config);
    (topo, rx, agent)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn a_flood_is_held_to_the_rate_while_a_polite_client_loses_nothing() {
    let (topo, rx, agent) = setup(
        "[[ratelimit.limits]]\nname = \"pps\"\nrate = 1000\nburst = 100\n\n[ratelimit.ban]\nenabled = false\n",
    );
    let (a, b) = (&topo.clients[0], &topo.clients[1]);
    let secs = 3;
    let flood = {
        let ns = a.ns.path();
        let dst: SocketAddr = format!("{}:9000", a.server4).parse().unwrap();
        let src = ip(&a.addr4);
        std::thread::spawn(move || {
            traffic::send(
                &ns,
                Send {
                    sources: vec![src],
                    dst,
                    rate: None,
                    duration: Duration::from_secs(secs),
                    max_packets: 3_000_000,
                },
            )
        })
    };
    let polite = traffic::send(
        &b.ns.path(),
        Send {
            sources: vec![ip(&b.addr4)],
            dst: format!("{}:9000", b.server4).parse().unwrap(),
            rate: Some(200),
            duration: Duration::from_secs(secs),
            max_packets: 200 * secs,
        },
    );
    let flooded = flood.join().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let got_a = rx.count_from(ip(&a.addr4));
    let got_b = rx.count_from(ip(&b.addr4));
    assert_eq!(got_b, polite, "the polite client lost packets");
    // Configured: 1000/s plus the burst of 100.
    let expected = 1000.0 * secs as f64 + 100.0;
    let ratio = got_a as f64 / expected;
    assert!(
        flooded > 3 * got_a,
        "the flood was not a flood: sent {flooded}, got {got_a}"
    );
    assert!(
        (0.8..=1.2).contains(&ratio),
        "flood held to {got_a} of {expected} ({ratio:.2})"
    );
    assert!(agent.counter("drop", "ratelimit_packets") > 0);
    let limits = agent.ok(&["limits"]);
    assert!(limits.contains(&format!("{}/32", a.addr4)), "{limits}");
}

#[test]
fn addresses_rotating_through_one_slash_64_are_limited_together() {
    let (topo, rx, _agent) = setup(
        "[[ratelimit.limits]]\nname = \"pps\"\nrate = 500\nburst = 50\n\n[ratelimit.ban]\nenabled = false\n",
    );
    let a = &topo.clients[0];
    // Twenty more addresses of the client's /64.
    let base = a.addr6.trim_end_matches("::2");
    let mut sources = Vec::new();
    for i in 0..20 {
        let addr = format!("{base}::{:x}", 0x100 + i);
        sh(&[
            "ip",
            "-n",
            &a.ns.name,
            "addr",
            "add",
            &format!("{addr}/64"),
            "dev",
            &format!("ec{}0", topo.tag),
            "nodad",
        ]);
        sources.push(ip(&addr));
    }
    let secs = 2;
    traffic::send(
        &a.ns.path(),
        Send {
            sources,
            dst: format!("[{}]:9000", a.server6).parse().unwrap(),
            rate: Some(5000),
            duration: Duration::from_secs(secs),
            max_packets: 5000 * secs,
        },
    );
    std::thread::sleep(Duration::from_millis(300));
    let prefix: ipnet::IpNet = format!("{}/64", a.addr6)
        .parse::<ipnet::IpNet>()
        .unwrap()
        .trunc();
    let got = rx.count_where(|s| prefix.contains(s));
    let expected = 500.0 * secs as f64 + 50.0;
    let ratio = got as f64 / expected;
    assert!(
        (0.8..=1.2).contains(&ratio),
        "the /64 got {got} of {expected} ({ratio:.2})"
    );
}

#[test]
fn a_repeat_offender_is_banned_listed_and_released_on_time() {
    let (topo, rx, agent) = setup(
        "[ratelimit]\nreport_interval = \"200ms\"\n\n[[ratelimit.limits]]\nname = \"pps\"\nrate = 200\nburst = 20\n\n[ratelimit.ban]\nafter = 3\nwithin = \"10s\"\nban_time = \"3s\"\n",
    );
    let a = &topo.clients[0];
    let dst: SocketAddr = format!("{}:9000", a.server4).parse().unwrap();
    let flood = |secs: u64| {
        traffic::send(
            &a.ns.path(),
            Send {
                sources: vec![ip(&a.addr4)],
                dst,
                rate: Some(2000),
                duration: Duration::from_secs(secs),
                max_packets: 2000 * secs,
            },
        )
    };
    flood(2);
    assert!(
        eventually(Duration::from_secs(3), || agent
            .ok(&["list"])
            .contains("rate limit pps")),
        "no ban appeared:\n{}",
        agent.ok(&["list"])
    );
    let list = agent.ok(&["list", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&list).unwrap();
    let ban = v
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["origin"] == "detector")
        .expect("a detector ban");
    assert_eq!(ban["prefix"], format!("{}/32", a.addr4));
    assert!(ban["reason"].as_str().unwrap().contains("exceeded 3 times"));
    assert!(ban["ttl_secs"].as_u64().unwrap() <= 3);
    // While banned, nothing gets through (not even the rate's share).
    rx.reset();
    let sent = traffic::send(
        &a.ns.path(),
        Send {
            sources: vec![ip(&a.addr4)],
            dst,
            rate: Some(100),
            duration: Duration::from_millis(500),
            max_packets: 50,
        },
    );
    assert!(sent > 0);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        rx.count_from(ip(&a.addr4)),
        0,
        "banned traffic reached the server"
    );
    // After the ban, polite traffic flows again.
    assert!(
        eventually(Duration::from_secs(6), || !agent
            .ok(&["list"])
            .contains("detector")),
        "the ban did not expire"
    );
    rx.reset();
    traffic::send(
        &a.ns.path(),
        Send {
            sources: vec![ip(&a.addr4)],
            dst,
            rate: Some(50),
            duration: Duration::from_millis(400),
            max_packets: 20,
        },
    );
    std::thread::sleep(Duration::from_millis(200));
    assert!(rx.count_from(ip(&a.addr4)) >= 15);
}

#[test]
fn monitor_mode_drops_nothing_and_counts() {
    let (topo, rx, agent) = setup(
        "[[ratelimit.limits]]\nname = \"watch\"\nrate = 100\nburst = 10\nmode = \"monitor\"\n\n[ratelimit.ban]\nenabled = false\n",
    );
    let a = &topo.clients[0];
    let sent = traffic::send(
        &a.ns.path(),
        Send {
            sources: vec![ip(&a.addr4)],
            dst: format!("{}:9000", a.server4).parse().unwrap(),
            rate: Some(1000),
            duration: Duration::from_secs(1),
            max_packets: 1000,
        },
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        rx.count_from(ip(&a.addr4)),
        sent,
        "monitor mode dropped packets"
    );
    let would = agent.counter("monitor", "ratelimit_packets");
    assert!(
        would >= sent * 7 / 10,
        "counted {would} of {sent} as over the limit"
    );
    assert_eq!(agent.counter("drop", "ratelimit_packets"), 0);
}

#[test]
fn bad_limits_are_refused_at_start() {
    let topo = Topology::new(1);
    let paths = Paths::new(&topo.tag);
    let cfg = paths.socket.parent().unwrap().join("enforcer.toml");
    std::fs::write(
        &cfg,
        "[[ratelimit.limits]]\nname = \"x\"\nrate = 10\nburst = 0\n",
    )
    .unwrap();
    let out = std::process::Command::new(enforcer_tests::agent::binary())
        .args([
            "--socket",
            paths.socket.to_str().unwrap(),
            "run",
            "--iface",
            "lo",
            "--config",
        ])
        .arg(&cfg)
        .args(["--bpffs", paths.bpffs.to_str().unwrap(), "--state-dir"])
        .arg(&paths.state_dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "{}:4:9: `ratelimit.limits[0].burst`: found 0; expected a burst of at least 1",
            cfg.display()
        )),
        "{err}"
    );
}
