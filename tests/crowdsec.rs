//! CrowdSec bouncer mode against a real CrowdSec LAPI.

use std::{net::IpAddr, time::Duration};

use enforcer_tests::{
    agent::{Agent, eventually},
    crowdsec::Lapi,
    netns::Topology,
    traffic::{self, Send, UdpCounter},
};

#[test]
fn cscli_decisions_become_drops_are_lifted_and_survive_a_lapi_outage() {
    let topo = Topology::new(1);
    let a = &topo.clients[0];
    let port = 18_000 + (std::process::id() % 1000) as u16;
    let mut lapi = Lapi::start(&topo.server.name, &topo.tag, port);
    let agent = Agent::with_config(
        &topo,
        &topo.tag,
        &format!(
            "[crowdsec]\nurl = \"{}\"\napi_key = \"{}\"\npoll_interval = \"1s\"\n",
            lapi.url(),
            lapi.bouncer_key
        ),
    );
    let rx = UdpCounter::start(&topo.server.path(), "[::]:9000".parse().unwrap());
    let src: IpAddr = a.addr4.parse().unwrap();
    let probe = || {
        rx.reset();
        traffic::send(
            &a.ns.path(),
            Send {
                sources: vec![src],
                dst: format!("{}:9000", a.server4).parse().unwrap(),
                rate: Some(200),
                duration: Duration::from_millis(150),
                max_packets: 30,
            },
        );
        std::thread::sleep(Duration::from_millis(100));
        rx.count_from(src)
    };
    assert!(probe() > 0, "traffic flows before any decision");

    let add = lapi.cscli(
        &[
            "decisions",
            "add",
            "--ip",
            &a.addr4,
            "--duration",
            "1m",
            "--reason",
            "enforcer test",
        ],
        &[],
    );
    assert!(
        add.status.success(),
        "{}",
        String::from_utf8_lossy(&add.stderr)
    );
    // One poll interval (1 s) plus the round trip.
    assert!(
        eventually(Duration::from_secs(3), || probe() == 0),
        "the CrowdSec ban did not reach the NIC"
    );
    let list: serde_json::Value = serde_json::from_str(&agent.ok(&["list", "-o", "json"])).unwrap();
    let d = list
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["origin"] == "crowdsec")
        .expect("a crowdsec decision");
    assert_eq!(d["prefix"], format!("{}/32", a.addr4));
    let ttl = d["ttl_secs"].as_u64().unwrap();
    assert!(
        (50..=60).contains(&ttl),
        "the LAPI's duration is kept ({ttl} s left)"
    );

    let del = lapi.cscli(&["decisions", "delete", "--ip", &a.addr4], &[]);
    assert!(
        del.status.success(),
        "{}",
        String::from_utf8_lossy(&del.stderr)
    );
    assert!(
        eventually(Duration::from_secs(3), || probe() > 0),
        "the deleted decision was not lifted"
    );
    assert!(!agent.ok(&["list"]).contains("crowdsec"));

    // Ban again, then take the LAPI away: the ban stays.
    let add = lapi.cscli(
        &["decisions", "add", "--ip", &a.addr4, "--duration", "10m"],
        &[],
    );
    assert!(add.status.success());
    assert!(eventually(Duration::from_secs(3), || probe() == 0));
    lapi.stop();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(probe(), 0, "a LAPI outage lifted the ban");
    let st: serde_json::Value = serde_json::from_str(&agent.ok(&["status", "-o", "json"])).unwrap();
    assert!(
        st["crowdsec"]["errors"].as_u64().unwrap() >= 1,
        "{}",
        st["crowdsec"]
    );
    assert!(agent.ok(&["list"]).contains("crowdsec"));
}
