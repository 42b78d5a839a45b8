//! Metrics, stats, top and the decision log against a running agent with
//! real traffic between namespaces.

use std::{
    io::{BufRead as _, BufReader, Write as _},
    net::IpAddr,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use enforcer_tests::{
    agent::{Agent, binary, eventually},
    netns::Topology,
    traffic::{self, Send, UdpCounter},
};

fn setup(config: &str) -> (Topology, UdpCounter, Agent) {
    let topo = Topology::new(1);
    let rx = UdpCounter::start(&topo.server.path(), "[::]:9000".parse().unwrap());
    let agent = Agent::with_config(&topo, &topo.tag, config);
    (topo, rx, agent)
}

/// The value of one sample (exact name and labels as printed), 0 when absent.
fn sample(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|v| v.trim().parse::<f64>().ok())
        })
        .map_or(0, |v| v as u64)
}

#[test]
fn metrics_move_by_what_the_traffic_implies_and_pass_promtool() {
    let (topo, _rx, agent) = setup("");
    let a = &topo.clients[0];
    agent.ok(&["block", &a.addr4, "--reason", "metrics test"]);
    let drops = "enforcer_packets_total{verdict=\"drop\",reason=\"blocklist_manual\"}";
    let (code, before) = agent.http_get("/metrics");
    assert_eq!(code, 200);
    let n0 = sample(&before, drops);
    let sent = traffic::send(
        &a.ns.path(),
        Send {
            sources: vec![a.addr4.parse::<IpAddr>().unwrap()],
            dst: format!("{}:9000", a.server4).parse().unwrap(),
            rate: Some(1000),
            duration: Duration::from_secs(2),
            max_packets: 100,
        },
    );
    assert_eq!(sent, 100);
    std::thread::sleep(Duration::from_millis(200));
    let (_, after) = agent.http_get("/metrics");
    assert_eq!(
        sample(&after, drops) - n0,
        100,
        "100 packets from a blocked source"
    );
    assert_eq!(
        sample(
            &after,
            "enforcer_decisions_added_total{kind=\"block\",origin=\"manual\"}"
        ),
        1
    );
    assert_eq!(sample(&after, "enforcer_decisions{kind=\"block\"}"), 1);
    assert_eq!(
        sample(&after, "enforcer_map_entries{map=\"blocklist_v4\"}"),
        1
    );
    assert_eq!(
        sample(
            &after,
            &format!(
                "enforcer_xdp_attached{{interface=\"{}\",mode=\"native\"}}",
                a.server_if
            )
        ),
        1
    );
    assert!(after.contains("enforcer_build_info{version="));
    assert!(!after.contains(&a.addr4), "an address leaked into a label");
    // promtool lints the real scrape.
    let mut p = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus)");
    p.stdin.take().unwrap().write_all(after.as_bytes()).unwrap();
    let out = p.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, body) = agent.http_get("/healthz");
    assert_eq!((code, body.trim()), (200, "ok"));

    // `enforcer stats --output json` agrees with /metrics (retried: a stray
    // router solicitation may land between the two reads).
    let agreed = eventually(Duration::from_secs(5), || {
        let stats: serde_json::Value =
            serde_json::from_str(&agent.ok(&["stats", "-o", "json", "--interval", "100ms"]))
                .unwrap();
        let (_, m) = agent.http_get("/metrics");
        stats.as_array().unwrap().iter().all(|r| {
            let series = format!(
                "enforcer_packets_total{{verdict=\"{}\",reason=\"{}\"}}",
                r["verdict"].as_str().unwrap(),
                r["reason"].as_str().unwrap()
            );
            sample(&m, &series) == r["packets"].as_u64().unwrap()
        })
    });
    assert!(agreed, "enforcer stats and /metrics disagree");
}

#[test]
fn the_alert_rules_are_valid() {
    let rules =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../contrib/prometheus/alerts.yml");
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&rules)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dash =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../contrib/grafana/enforcer.json");
    let d: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dash).unwrap()).unwrap();
    assert!(d["panels"].as_array().unwrap().len() >= 8);
}

#[test]
fn top_shows_an_offender_and_quits_on_q() {
    let (topo, _rx, agent) = setup(
        "[ratelimit]\nreport_interval = \"200ms\"\n[[ratelimit.limits]]\nname = \"pps\"\nrate = 100\nburst = 10\n[ratelimit.ban]\nafter = 2\nwithin = \"10s\"\nban_time = \"1m\"\n",
    );
    let a = &topo.clients[0];
    traffic::send(
        &a.ns.path(),
        Send {
            sources: vec![a.addr4.parse().unwrap()],
            dst: format!("{}:9000", a.server4).parse().unwrap(),
            rate: Some(1000),
            duration: Duration::from_secs(1),
            max_packets: 1000,
        },
    );
    assert!(eventually(Duration::from_secs(3), || agent
        .ok(&["list"])
        .contains("detector")));
    let session = format!("enftop{}", topo.tag);
    let cmd = format!(
        "{} --socket {} top --interval 300ms",
        binary().display(),
        agent.socket.display()
    );
    let ok = Command::new("tmux")
        .args([
            "new-session",
            "-d",
            "-s",
            &session,
            "-x",
            "160",
            "-y",
            "50",
            &cmd,
        ])
        .status()
        .unwrap();
    assert!(ok.success());
    let kill = |s: &str| {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", s])
            .stderr(Stdio::null())
            .status();
    };
    let shown = eventually(Duration::from_secs(5), || {
        let out = Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &session])
            .output()
            .unwrap();
        let screen = String::from_utf8_lossy(&out.stdout);
        screen.contains(&format!("{}/32", a.addr4)) && screen.contains("RECENT BANS")
    });
    if !shown {
        let out = Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &session])
            .output()
            .unwrap();
        kill(&session);
        panic!(
            "top did not show the offender:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    Command::new("tmux")
        .args(["send-keys", "-t", &session, "q"])
        .status()
        .unwrap();
    let gone = eventually(Duration::from_secs(3), || {
        !Command::new("tmux")
            .args(["has-session", "-t", &session])
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success()
    });
    kill(&session);
    assert!(gone, "top did not exit on q");
}

#[test]
fn log_follow_streams_decisions_as_they_happen() {
    let (_topo, _rx, agent) = setup("");
    agent.ok(&["block", "198.18.77.1", "--reason", "before the follower"]);
    let mut child = Command::new(binary())
        .args([
            "--socket",
            agent.socket.to_str().unwrap(),
            "log",
            "--follow",
            "-o",
            "json",
            "-n",
            "10",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    let wait_for = |needle: &str, seen: &mut Vec<String>| -> bool {
        while Instant::now() < deadline {
            if let Ok(l) = rx.recv_timeout(Duration::from_millis(100)) {
                let hit = l.contains(needle);
                seen.push(l);
                if hit {
                    return true;
                }
            }
        }
        false
    };
    assert!(
        wait_for("before the follower", &mut seen),
        "history missing: {seen:?}"
    );
    agent.ok(&[
        "block",
        "198.18.77.2",
        "--ttl",
        "1s",
        "--reason",
        "while following",
    ]);
    assert!(wait_for("while following", &mut seen), "{seen:?}");
    // The expiry is logged too.
    assert!(wait_for("\"action\":\"expire\"", &mut seen), "{seen:?}");
    let _ = child.kill();
    let _ = child.wait();
    let v: serde_json::Value =
        serde_json::from_str(seen.iter().find(|l| l.contains("while following")).unwrap()).unwrap();
    assert_eq!(v["action"], "add");
    assert_eq!(v["prefix"], "198.18.77.2/32");
    assert_eq!(v["origin"], "manual");
}
