//! The blocklist end to end: a real agent attached to veths in network
//! namespaces, a real HTTP server, real clients (curl), the real CLI.

use std::time::Duration;

use enforcer_tests::{
    agent::{Agent, Paths, curl_ok, eventually},
    httpd,
    netns::Topology,
};

fn url4(host: &str) -> String {
    format!("http://{host}:8080/")
}

fn url6(host: &str) -> String {
    format!("http://[{host}]:8080/")
}

/// A topology with two clients, a server on port 8080 and an agent on both links.
fn setup(extra: &[&str]) -> (Topology, httpd::Httpd, Agent) {
    let topo = Topology::new(2);
    let srv = httpd::start(Some(&topo.server.path()), "[::]:8080".parse().unwrap());
    let agent = Agent::start(
        &topo.server.name,
        &topo.server_ifs(),
        Paths::new(&topo.tag),
        extra,
    );
    (topo, srv, agent)
}

#[test]
fn configured_blocklist_stops_one_client_and_not_the_other() {
    let topo = Topology::new(2);
    let (a, b) = (&topo.clients[0], &topo.clients[1]);
    let paths = Paths::new(&topo.tag);
    let cfg = paths.socket.parent().unwrap().join("enforcer.toml");
    std::fs::write(
        &cfg,
        format!(
            "[blocklist]\nprefixes = [\"{}\", {{ prefix = \"{}\", reason = \"test\" }}]\n",
            a.addr4, a.addr6
        ),
    )
    .unwrap();
    let _srv = httpd::start(Some(&topo.server.path()), "[::]:8080".parse().unwrap());
    let agent = Agent::start(
        &topo.server.name,
        &topo.server_ifs(),
        paths,
        &["--config", cfg.to_str().unwrap()],
    );
    assert!(
        !curl_ok(&a.ns, &url4(&a.server4)),
        "blocked client A connected over IPv4"
    );
    assert!(
        !curl_ok(&a.ns, &url6(&a.server6)),
        "blocked client A connected over IPv6"
    );
    assert!(
        curl_ok(&b.ns, &url4(&b.server4)),
        "client B could not connect"
    );
    assert!(
        curl_ok(&b.ns, &url6(&b.server6)),
        "client B could not connect over IPv6"
    );
    assert!(agent.counter("drop", "blocklist_config") > 0);
    let list = agent.ok(&["list", "-o", "json"]);
    assert!(list.contains("\"origin\": \"config\""), "{list}");
}

#[test]
fn cli_block_takes_effect_and_unblock_restores() {
    let (topo, _srv, agent) = setup(&[]);
    let (a, b) = (&topo.clients[0], &topo.clients[1]);
    assert!(curl_ok(&a.ns, &url4(&a.server4)));
    // Block A's whole /30 (so the address is covered by a shorter prefix) and its IPv6 /64.
    let net4 = format!("{}/30", a.addr4);
    let net6 = format!("{}/64", a.addr6);
    let out = agent.ok(&["block", &net4, &net6, "--reason", "credential stuffing"]);
    assert!(out.contains("2 new"), "{out}");
    assert!(!curl_ok(&a.ns, &url4(&a.server4)));
    assert!(!curl_ok(&a.ns, &url6(&a.server6)));
    assert!(curl_ok(&b.ns, &url4(&b.server4)));
    let list = agent.ok(&["list"]);
    assert!(
        list.contains("credential stuffing") && list.contains("manual"),
        "{list}"
    );
    agent.ok(&["unblock", &net4, &net6]);
    assert!(
        curl_ok(&a.ns, &url4(&a.server4)),
        "unblock did not restore IPv4"
    );
    assert!(
        curl_ok(&a.ns, &url6(&a.server6)),
        "unblock did not restore IPv6"
    );
    // Unblocking again reports the missing entry and exits 1.
    let again = agent.cli(&["unblock", &net4]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("had no such entry"));
}

#[test]
fn a_block_with_a_ttl_expires_by_itself() {
    let (topo, _srv, agent) = setup(&[]);
    let a = &topo.clients[0];
    agent.ok(&["block", &a.addr4, "--ttl", "2s"]);
    assert!(!curl_ok(&a.ns, &url4(&a.server4)));
    assert!(
        eventually(Duration::from_secs(6), || curl_ok(&a.ns, &url4(&a.server4))),
        "the 2s block did not expire"
    );
    // The sweeper removed it from the list too.
    assert!(eventually(Duration::from_secs(2), || !agent
        .ok(&["list"])
        .contains(&a.addr4)));
}

#[test]
fn allowlist_beats_a_covering_block() {
    let (topo, _srv, agent) = setup(&[]);
    let (a, b) = (&topo.clients[0], &topo.clients[1]);
    // One /24 covers both clients' links; allow B.
    let net = format!("{}/24", a.addr4);
    agent.ok(&["block", &net]);
    agent.ok(&["allow", &b.addr4]);
    assert!(!curl_ok(&a.ns, &url4(&a.server4)));
    assert!(curl_ok(&b.ns, &url4(&b.server4)));
    agent.ok(&["unallow", &b.addr4]);
    assert!(!curl_ok(&b.ns, &url4(&b.server4)));
}

#[test]
fn enforcement_survives_an_agent_restart_without_a_gap() {
    let (topo, _srv, mut agent) = setup(&[]);
    let (a, b) = (&topo.clients[0], &topo.clients[1]);
    agent.ok(&["block", &a.addr4, "--reason", "kept across restarts"]);
    agent.stop();
    // No agent: the pinned link and maps keep enforcing.
    assert!(
        !curl_ok(&a.ns, &url4(&a.server4)),
        "block lost while the agent was down"
    );
    assert!(curl_ok(&b.ns, &url4(&b.server4)));
    agent.restart();
    assert!(!curl_ok(&a.ns, &url4(&a.server4)));
    let list = agent.ok(&["list"]);
    assert!(list.contains("kept across restarts"), "{list}");
    let status = agent.ok(&["status"]);
    assert!(
        status.contains("taken over from an earlier agent"),
        "{status}"
    );
}

#[test]
fn bad_input_is_refused_with_nothing_applied() {
    let (topo, _srv, agent) = setup(&[]);
    let a = &topo.clients[0];
    let out = agent.cli(&["block", &a.addr4, "198.18.0.0/33"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`198.18.0.0/33`") && err.contains("nothing was applied"),
        "{err}"
    );
    let out = agent.cli(&["block", &a.addr4, "--ttl", "soon"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`soon`"));
    assert!(
        curl_ok(&a.ns, &url4(&a.server4)),
        "a refused command blocked something"
    );
    assert!(agent.ok(&["list", "-o", "json"]).trim() == "[]");
}

#[test]
fn import_loads_a_list_or_names_its_bad_lines() {
    let (topo, _srv, agent) = setup(&[]);
    let (a, b) = (&topo.clients[0], &topo.clients[1]);
    let dir = agent.socket.parent().unwrap().to_owned();
    let bad = dir.join("bad.txt");
    std::fs::write(&bad, format!("{}\n# comment\n198.18.0.0/64\n", a.addr4)).unwrap();
    let out = agent.cli(&["import", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:3: `198.18.0.0/64`", bad.display())),
        "{err}"
    );
    assert!(
        curl_ok(&a.ns, &url4(&a.server4)),
        "a refused import blocked something"
    );
    let good = dir.join("good.txt");
    std::fs::write(
        &good,
        format!("# FireHOL-style list\n{} ; SBL1\n{}/64\n", a.addr4, b.addr6),
    )
    .unwrap();
    let out = agent.ok(&["import", good.to_str().unwrap(), "--ttl", "1h"]);
    assert!(out.contains("2 new"), "{out}");
    assert!(!curl_ok(&a.ns, &url4(&a.server4)));
    assert!(!curl_ok(&b.ns, &url6(&b.server6)));
    assert!(curl_ok(&b.ns, &url4(&b.server4)));
    let list = agent.ok(&["list"]);
    assert!(
        list.contains(&format!("imported from {}", good.display())),
        "{list}"
    );
}
