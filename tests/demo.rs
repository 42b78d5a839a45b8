//! The demo, run short, judged by the agent's own counters and decisions.

use std::{
    process::Command,
    sync::{Arc, atomic::AtomicBool},
    time::Duration,
};

use enforcer_tests::demo::{Options, run};

#[test]
fn the_demo_stops_the_abusers_spares_the_user_and_leaves_nothing_behind() {
    let s = run(&Options {
        duration: Duration::from_secs(12),
        quiet: true,
        stop: Arc::new(AtomicBool::new(false)),
    });
    let c = |n: &str| &s.clients[n];
    let counter = |k: &str| s.agent_counters.get(k).copied().unwrap_or(0);
    // The normal user lost nothing.
    assert!(c("user").ok > 50, "{:?}", c("user"));
    assert_eq!(
        c("user").failed,
        0,
        "the normal user lost requests: {:?}",
        c("user")
    );
    // The flooder was held by the SYN limit; both abusers were banned.
    assert!(counter("drop/ratelimit_syn") > 0, "{:?}", s.agent_counters);
    let ban_of = |addr: &str| {
        s.bans
            .iter()
            .find(|(p, o, _)| p == &format!("{addr}/32") && o == "detector")
            .map(|(_, _, r)| r.clone())
    };
    let banned = |addr: &str| ban_of(addr).is_some();
    // The stuffer's logins over the route's rate were reset by XDP, and the
    // 401s the server gave it (seen by the TC observer) got it banned.
    assert!(counter("reject/route_limit") > 0, "{:?}", s.agent_counters);
    assert!(c("stuffer").unauthorized > 0, "{:?}", c("stuffer"));
    let stuffer_ban = ban_of(&c("stuffer").address);
    assert!(
        stuffer_ban
            .as_deref()
            .is_some_and(|r| r.contains("login-failures") && r.contains("401")),
        "stuffer not banned by the 401 rule: {:?}",
        s.bans
    );
    assert!(
        banned(&c("flooder").address),
        "flooder not banned: {:?}",
        s.bans
    );
    assert!(
        counter("drop/blocklist_detector") > 0,
        "{:?}",
        s.agent_counters
    );
    // The scraper was held by the catalogue route.
    assert!(counter("drop/route_limit") > 0, "{:?}", s.agent_counters);
    // The feed-listed source never got an answer, and drops were counted.
    assert_eq!(c("feed-listed").ok, 0);
    assert!(c("feed-listed").failed > 0);
    assert!(
        counter("drop/blocklist_manual") > 0,
        "{:?}",
        s.agent_counters
    );
    // Nothing left behind: namespaces, pins.
    let netns = String::from_utf8(
        Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    for n in &s.netns {
        assert!(!netns.contains(n.as_str()), "namespace {n} left behind");
    }
    assert!(
        !std::path::Path::new(&s.bpffs).exists(),
        "pins left behind at {}",
        s.bpffs
    );
}
