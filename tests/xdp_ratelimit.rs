//! BPF_PROG_TEST_RUN tests of per-source rate limits through the real program.

use std::{net::Ipv4Addr, time::Duration};

use enforcer::config::RuleSpec;
use enforcer_tests::{
    packet::*,
    testrun::{Program, XDP_DROP, XDP_PASS},
};

fn rule(kind: &str, rate: u64, burst: u64, v4: u8, v6: u8) -> RuleSpec {
    RuleSpec {
        name: format!("{kind}-{v4}"),
        kind: kind.into(),
        rate,
        burst,
        ipv4_prefix: v4,
        ipv6_prefix: v6,
        monitor: false,
    }
}

fn udp4(src: &str) -> Vec<u8> {
    v4_frame(&Ipv4::new(
        src.parse().unwrap(),
        Ipv4Addr::new(198, 19, 0, 1),
        L4::udp(40000, 9, b"x"),
    ))
}

fn tcp4(src: &str, flags: u8) -> Vec<u8> {
    v4_frame(&Ipv4::new(
        src.parse().unwrap(),
        Ipv4Addr::new(198, 19, 0, 1),
        L4::tcp(40000, 80, flags),
    ))
}

fn udp6(src: &str) -> Vec<u8> {
    v6_frame(&Ipv6::new(
        src.parse().unwrap(),
        "2001:2::1".parse().unwrap(),
        L4::udp(1, 9, b"x"),
    ))
}

const REPORT: Duration = Duration::from_secs(3600);

#[test]
fn the_burst_passes_and_the_next_packet_drops() {
    let mut p = Program::new();
    // 1/s: no token comes back during the test.
    p.set_limits(&[rule("packets", 1, 5, 32, 64)], REPORT);
    for i in 0..5 {
        assert_eq!(
            p.run(&udp4("198.18.0.7")),
            XDP_PASS,
            "packet {i} of the burst"
        );
    }
    assert_eq!(p.run(&udp4("198.18.0.7")), XDP_DROP);
    assert_eq!(p.run(&udp4("198.18.0.7")), XDP_DROP);
    // Another source has its own bucket.
    assert_eq!(p.run(&udp4("198.18.0.8")), XDP_PASS);
    assert_eq!(p.count("drop", "ratelimit_packets"), 2);
    // The agent is told once per key per report interval, with the count.
    let ev = p.events();
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(&ev[0].addr[..4], &[198, 18, 0, 7]);
    assert_eq!((ev[0].family, ev[0].prefix_len, ev[0].drops), (4, 32, 1));
}

#[test]
fn a_syn_limit_ignores_established_traffic() {
    let mut p = Program::new();
    p.set_limits(&[rule("syn", 1, 2, 32, 64)], REPORT);
    for _ in 0..20 {
        assert_eq!(p.run(&tcp4("198.18.0.7", TCP_ACK | TCP_PSH)), XDP_PASS);
    }
    assert_eq!(p.run(&tcp4("198.18.0.7", TCP_SYN)), XDP_PASS);
    assert_eq!(p.run(&tcp4("198.18.0.7", TCP_SYN)), XDP_PASS);
    assert_eq!(p.run(&tcp4("198.18.0.7", TCP_SYN)), XDP_DROP);
    // SYN-ACKs (the server's side of a handshake) are not new connections.
    assert_eq!(p.run(&tcp4("198.18.0.7", TCP_SYN | TCP_ACK)), XDP_PASS);
    assert_eq!(p.run(&tcp4("198.18.0.7", TCP_ACK)), XDP_PASS);
    assert_eq!(p.run(&udp4("198.18.0.7")), XDP_PASS);
    assert_eq!(p.count("drop", "ratelimit_syn"), 1);
}

#[test]
fn ipv6_sources_in_one_slash_64_share_a_bucket() {
    let mut p = Program::new();
    p.set_limits(&[rule("packets", 1, 3, 32, 64)], REPORT);
    assert_eq!(p.run(&udp6("2001:2:0:7::1")), XDP_PASS);
    assert_eq!(p.run(&udp6("2001:2:0:7::2")), XDP_PASS);
    assert_eq!(p.run(&udp6("2001:2:0:7:ffff::3")), XDP_PASS);
    assert_eq!(
        p.run(&udp6("2001:2:0:7::4")),
        XDP_DROP,
        "a fourth address in the /64"
    );
    assert_eq!(p.run(&udp6("2001:2:0:8::1")), XDP_PASS, "another /64");
    let ev = p.events();
    assert_eq!(ev[0].prefix_len, 64);
    assert_eq!(&ev[0].addr[..8], &[0x20, 0x01, 0, 2, 0, 0, 0, 7]);
    assert!(
        ev[0].addr[8..].iter().all(|b| *b == 0),
        "the key is the /64"
    );
}

#[test]
fn a_slash_24_tier_catches_many_slash_32s_under_their_own_limit() {
    let mut p = Program::new();
    p.set_limits(
        &[
            rule("packets", 1, 2, 32, 64),
            rule("packets", 1, 10, 24, 48),
        ],
        REPORT,
    );
    // Ten hosts of one /24, one packet each: each under its /32 limit.
    for h in 1..=10 {
        assert_eq!(p.run(&udp4(&format!("198.18.5.{h}"))), XDP_PASS, "host {h}");
    }
    // The eleventh host is under its own limit but the /24 is spent.
    assert_eq!(p.run(&udp4("198.18.5.11")), XDP_DROP);
    assert_eq!(p.run(&udp4("198.18.6.1")), XDP_PASS, "another /24");
    let ev = p.events();
    assert_eq!(ev.last().unwrap().prefix_len, 24);
}

#[test]
fn monitor_mode_passes_and_counts() {
    let mut p = Program::new();
    let mut r = rule("packets", 1, 1, 32, 64);
    r.monitor = true;
    p.set_limits(&[r], REPORT);
    for _ in 0..5 {
        assert_eq!(p.run(&udp4("198.18.0.9")), XDP_PASS);
    }
    assert_eq!(p.count("monitor", "ratelimit_packets"), 4);
    assert_eq!(p.count("drop", "ratelimit_packets"), 0);
    assert_eq!(p.events().len(), 1, "monitor mode still reports");
}

#[test]
fn allowlisted_sources_are_never_limited() {
    let mut p = Program::new();
    p.set_limits(&[rule("packets", 1, 1, 32, 64)], REPORT);
    p.allow("198.18.0.0/24");
    for _ in 0..10 {
        assert_eq!(p.run(&udp4("198.18.0.9")), XDP_PASS);
    }
    assert!(p.events().is_empty());
}

#[test]
fn reports_are_rate_limited_per_key() {
    let mut p = Program::new();
    p.set_limits(&[rule("packets", 1, 1, 32, 64)], Duration::from_millis(300));
    for _ in 0..50 {
        p.run(&udp4("198.18.0.9"));
    }
    let first = p.events();
    assert_eq!(first.len(), 1);
    std::thread::sleep(Duration::from_millis(350));
    for _ in 0..50 {
        p.run(&udp4("198.18.0.9"));
    }
    let second = p.events();
    assert_eq!(second.len(), 1);
    // The second report carries the drops since the first.
    assert!(second[0].drops >= 49, "{}", second[0].drops);
}

#[test]
fn new_rules_replace_old_ones_at_once() {
    let mut p = Program::new();
    p.set_limits(&[rule("packets", 1, 1, 32, 64)], REPORT);
    assert_eq!(p.run(&udp4("198.18.0.9")), XDP_PASS);
    assert_eq!(p.run(&udp4("198.18.0.9")), XDP_DROP);
    p.set_limits(&[], REPORT);
    assert_eq!(
        p.run(&udp4("198.18.0.9")),
        XDP_PASS,
        "no rules: nothing limited"
    );
    p.set_limits(&[rule("syn", 1, 1, 32, 64)], REPORT);
    assert_eq!(
        p.run(&udp4("198.18.0.9")),
        XDP_PASS,
        "a SYN rule ignores UDP"
    );
}
