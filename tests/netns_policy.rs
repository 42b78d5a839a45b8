//! Policy reloads under traffic, feeds applied as diffs, decisions from
//! other tools, with the real agent in network namespaces.

use std::{
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use enforcer_tests::{
    agent::{Agent, Paths, eventually},
    httpc, httpd,
    netns::{Topology, enter},
    traffic::{self, Send, UdpCounter},
};

/// Writes a file the way editors do: to a temporary name, then renamed.
fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

struct Setup {
    topo: Topology,
    agent: Agent,
    cfg: PathBuf,
}

fn setup(clients: usize, policy: &str) -> Setup {
    let topo = Topology::new(clients);
    let paths = Paths::new(&topo.tag);
    let dir = paths.socket.parent().unwrap().join("etc");
    std::fs::create_dir_all(dir.join("conf.d")).unwrap();
    let cfg = dir.join("enforcer.toml");
    std::fs::write(&cfg, policy).unwrap();
    let agent = Agent::start(
        &topo.server.name,
        &topo.server_ifs(),
        paths,
        &["--config", cfg.to_str().unwrap()],
    );
    Setup { topo, agent, cfg }
}

fn status(agent: &Agent) -> serde_json::Value {
    serde_json::from_str(&agent.ok(&["status", "-o", "json"])).unwrap()
}

#[test]
fn a_hundred_reloads_under_traffic_let_nothing_through_and_lose_nothing() {
    let blocked_policy = |s: &Setup, v: u8| {
        let a = &s.topo.clients[0];
        match v {
            // Two valid policies blocking the flooder in different ways and
            // with different limits; one that fails validation.
            0 => format!(
                "[blocklist]\nprefixes = [\"{}\"]\n[[ratelimit.limits]]\nname = \"a\"\nrate = 100000\n",
                a.addr4
            ),
            1 => format!(
                "[blocklist]\nprefixes = [\"{}/30\"]\n[[ratelimit.limits]]\nname = \"b\"\nrate = 200000\n",
                a.addr4
            ),
            _ => "[blocklist]\nprefixes = [\"not-a-prefix\"]\n".to_owned(),
        }
    };
    let s = setup(2, "");
    write_atomically(&s.cfg, &blocked_policy(&s, 0));
    s.agent.ok(&["reload"]);
    let (a, b) = (&s.topo.clients[0], &s.topo.clients[1]);
    let rx = UdpCounter::start(&s.topo.server.path(), "[::]:9000".parse().unwrap());
    let _http = httpd::start(Some(&s.topo.server.path()), "0.0.0.0:8080".parse().unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    // The blocked source floods for the whole test.
    let flood = {
        let (ns, src, dst) = (
            a.ns.path(),
            a.addr4.parse::<IpAddr>().unwrap(),
            format!("{}:9000", a.server4).parse().unwrap(),
        );
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            traffic::send_until(
                &ns,
                Send {
                    sources: vec![src],
                    dst,
                    rate: Some(5000),
                    duration: Duration::from_secs(60),
                    max_packets: 300_000,
                },
                stop,
            )
        })
    };
    // The allowed client makes real HTTP requests on a kept-alive connection.
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let client = {
        let (ns, stop, ok, failed) = (
            b.ns.path(),
            Arc::clone(&stop),
            Arc::clone(&ok),
            Arc::clone(&failed),
        );
        let server: SocketAddr = format!("{}:8080", b.server4).parse().unwrap();
        std::thread::spawn(move || {
            enter(&ns);
            let mut conn = httpc::Conn::connect(server, Duration::from_secs(2)).unwrap();
            let deadline = Instant::now() + Duration::from_secs(120);
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                match conn.request("GET", "/", "api", "") {
                    Ok(200) => ok.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let mut refused = 0;
    for i in 0..100u8 {
        write_atomically(&s.cfg, &blocked_policy(&s, i % 3));
        let out = s.agent.cli(&["reload"]);
        if i % 3 == 2 {
            assert_eq!(
                out.status.code(),
                Some(1),
                "reload {i}: an invalid policy must be refused"
            );
            refused += 1;
        } else {
            assert!(
                out.status.success(),
                "reload {i}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    // Both streams keep running a little past the last reload.
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    client.join().unwrap();
    let sent = flood.join().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(sent > 1000, "the flood sent {sent}");
    assert_eq!(
        rx.count_from(a.addr4.parse().unwrap()),
        0,
        "packets from the blocked source reached the server"
    );
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "allowed requests failed (of {})",
        ok.load(Ordering::Relaxed)
    );
    assert!(
        ok.load(Ordering::Relaxed) > 50,
        "only {} requests made",
        ok.load(Ordering::Relaxed)
    );
    let st = status(&s.agent);
    assert!(st["reloads"][1].as_u64().unwrap() >= refused);
    // The last reload (i = 99 → policy 0) succeeded; the error is cleared.
    assert!(st["last_reload_error"].is_null());
}

#[test]
fn a_changed_policy_file_is_picked_up_and_a_bad_one_is_shown() {
    let s = setup(1, "");
    let a = &s.topo.clients[0];
    write_atomically(
        &s.cfg,
        &format!("[blocklist]\nprefixes = [\"{}\"]\n", a.addr4),
    );
    assert!(
        eventually(Duration::from_secs(5), || s
            .agent
            .ok(&["list"])
            .contains(&format!("{}/32", a.addr4))),
        "the file change was not applied"
    );
    // A drop-in counts too.
    std::fs::write(
        s.cfg.parent().unwrap().join("conf.d/10-extra.toml"),
        "[blocklist]\nprefixes = [\"198.18.99.0/24\"]\n",
    )
    .unwrap();
    assert!(eventually(Duration::from_secs(5), || s
        .agent
        .ok(&["list"])
        .contains("198.18.99.0/24")));
    // A bad edit changes nothing, and status says why, with file and line.
    write_atomically(&s.cfg, "[blocklist]\nprefixes = [\"198.18.0.0/99\"]\n");
    assert!(eventually(Duration::from_secs(5), || {
        !status(&s.agent)["last_reload_error"].is_null()
    }));
    let err = status(&s.agent)["last_reload_error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        err.contains(&format!(
            "{}:2:13: `blocklist.prefixes[0]`",
            s.cfg.display()
        )),
        "{err}"
    );
    assert!(
        s.agent.ok(&["list"]).contains(&format!("{}/32", a.addr4)),
        "the running policy was dropped"
    );
    assert!(s.agent.ok(&["status"]).contains("RELOAD FAILED"));
}

/// 500,000+ lines with duplicates and nested prefixes; then 1% of it changes.
#[test]
fn a_large_feed_loads_and_a_change_applies_only_the_diff() {
    // Map data only (the feed is never traffic): 480,000 non-adjacent /32s,
    // 10,000 of them listed twice, 1,000 non-adjacent /24s each with 10 /32s
    // inside.
    let base = u32::from_be_bytes([10, 0, 0, 0]);
    let singles: Vec<u32> = (0..480_000u32).map(|i| base + 2 * i).collect();
    let mut text = String::from("# generated feed\n");
    for a in &singles {
        text.push_str(&format!("{}\n", std::net::Ipv4Addr::from(*a)));
    }
    for a in singles.iter().take(10_000) {
        text.push_str(&format!(
            "{} ; listed twice\n",
            std::net::Ipv4Addr::from(*a)
        ));
    }
    let nets = u32::from_be_bytes([20, 0, 0, 0]);
    for n in 0..1000u32 {
        let net = nets + (n << 9);
        text.push_str(&format!("{}/24\n", std::net::Ipv4Addr::from(net)));
        for h in 0..10u32 {
            text.push_str(&format!("{}\n", std::net::Ipv4Addr::from(net + 1 + h)));
        }
    }
    let s = setup(1, "");
    let feed = s.cfg.parent().unwrap().join("big.netset");
    std::fs::write(&feed, &text).unwrap();
    write_atomically(
        &s.cfg,
        &format!("[[feeds]]\nname = \"big\"\npath = \"{}\"\n", feed.display()),
    );
    s.agent.ok(&["reload"]);
    let feed_status = |s: &Setup| status(&s.agent)["feeds"][0].clone();
    let f = feed_status(&s);
    assert_eq!(f["listed"], 501_000);
    assert_eq!(
        f["prefixes"], 481_000,
        "duplicates and nested /32s aggregated away"
    );
    assert_eq!(f["bad_lines"], 0);
    // 1% changes: 4,810 /32s leave, 4,810 others arrive.
    let changed = 4_810;
    let mut text2 = String::from("# generated feed, next day\n");
    for a in singles.iter().skip(changed) {
        text2.push_str(&format!("{}\n", std::net::Ipv4Addr::from(*a)));
    }
    let fresh = u32::from_be_bytes([30, 0, 0, 0]);
    for i in 0..changed as u32 {
        text2.push_str(&format!("{}\n", std::net::Ipv4Addr::from(fresh + 2 * i)));
    }
    for n in 0..1000u32 {
        text2.push_str(&format!(
            "{}/24\n",
            std::net::Ipv4Addr::from(nets + (n << 9))
        ));
    }
    let loaded_before = f["loaded"].clone();
    let writes_before = status(&s.agent)["map_writes"].as_u64().unwrap();
    write_atomically(&feed, &text2);
    assert!(
        eventually(Duration::from_secs(15), || feed_status(&s)["last_writes"]
            == changed as u64
            && feed_status(&s)["loaded"] != serde_json::Value::Null),
        "the feed change was not applied: {}",
        feed_status(&s)
    );
    let f = feed_status(&s);
    let _ = loaded_before;
    assert_eq!(f["last_writes"], changed as u64, "map writes for the diff");
    assert_eq!(
        f["last_deletes"], changed as u64,
        "map deletes for the diff"
    );
    assert_eq!(f["prefixes"], 481_000);
    assert_eq!(
        status(&s.agent)["map_writes"].as_u64().unwrap() - writes_before,
        changed as u64
    );
    let list = s.agent.ok(&["list", "-o", "json"]);
    assert!(list.contains("\"30.0.0.0/32\""));
    assert!(!list.contains("\"10.0.0.0/32\""));
}

#[test]
fn decisions_apply_takes_the_valid_lines_and_names_the_bad_ones() {
    let s = setup(1, "");
    let dir = s.cfg.parent().unwrap();
    let input = [
        r#"{"action":"ban","value":"198.18.50.1","duration":"1h","reason":"ssh brute force"}"#,
        r#"{"action":"ban","value":"198.18.50.0/33"}"#,
        r#"not json at all"#,
        r#"{"type":"ban","value":"2001:2:50::/48","scope":"range","duration":"59.3s"}"#,
        r#"{"action":"ban","value":"198.18.51.0/24","scope":"ip"}"#,
        "",
        r#"{"action":"unban","value":"198.18.52.1"}"#,
    ]
    .join("\n");
    let f = dir.join("decisions.jsonl");
    std::fs::write(&f, input).unwrap();
    let out = s.agent.cli(&["decisions", "apply", f.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "some lines failed: exit 1");
    let err = String::from_utf8_lossy(&out.stderr);
    let name = f.display().to_string();
    for line in [2, 3, 5] {
        assert!(
            err.contains(&format!("{name}:{line}: ")),
            "line {line} not reported:\n{err}"
        );
    }
    assert!(!err.contains(&format!("{name}:1:")) && !err.contains(&format!("{name}:4:")));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("2 decision(s) applied") && stdout.contains("3 line(s) rejected"),
        "{stdout}"
    );
    let list: serde_json::Value =
        serde_json::from_str(&s.agent.ok(&["list", "-o", "json"])).unwrap();
    let ext: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["origin"] == "external")
        .map(|d| d["prefix"].as_str().unwrap())
        .collect();
    assert_eq!(ext, ["198.18.50.1/32", "2001:2:50::/48"]);
    // From stdin, all valid: exit 0.
    let mut p = std::process::Command::new(enforcer_tests::agent::binary())
        .args([
            "--socket",
            s.agent.socket.to_str().unwrap(),
            "decisions",
            "apply",
            "-",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    p.stdin
        .take()
        .unwrap()
        .write_all(br#"{"action":"unban","value":"198.18.50.1"}"#)
        .unwrap();
    let o = p.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).contains("1 lifted"));
}

#[test]
fn the_fail2ban_action_bans_and_unbans_through_the_agent() {
    let s = setup(1, "");
    let conf = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../contrib/fail2ban/action.d/enforcer.conf"),
    )
    .unwrap();
    let action = |key: &str| -> String {
        conf.lines()
            .find_map(|l| {
                l.strip_prefix(key)
                    .and_then(|r| r.trim_start().strip_prefix('='))
                    .map(|v| v.trim().to_owned())
            })
            .unwrap_or_else(|| panic!("{key} missing"))
    };
    // fail2ban substitutes the tags and runs the command with a shell; the
    // `enforcer` on its PATH is this build.
    let bin_dir = std::env::temp_dir().join(format!("enforcer-f2b-{}", s.topo.tag));
    std::fs::create_dir_all(&bin_dir).unwrap();
    let _ = std::fs::remove_file(bin_dir.join("enforcer"));
    std::os::unix::fs::symlink(enforcer_tests::agent::binary(), bin_dir.join("enforcer")).unwrap();
    let run = |cmd: &str| {
        let cmd = cmd
            .replace("<ip>", "198.18.60.7")
            .replace("<bantime>", "600")
            .replace("<name>", "sshd");
        let out = std::process::Command::new("sh")
            .args(["-c", &cmd])
            .env("PATH", format!("{}:/usr/bin:/bin", bin_dir.display()))
            .env("ENFORCER_SOCKET", &s.agent.socket)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{cmd}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&action("actioncheck"));
    run(&action("actionban"));
    let list = s.agent.ok(&["list", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&list).unwrap();
    let d = &v.as_array().unwrap()[0];
    assert_eq!(
        (d["prefix"].as_str(), d["reason"].as_str()),
        (Some("198.18.60.7/32"), Some("fail2ban sshd"))
    );
    assert!(d["ttl_secs"].as_u64().unwrap() > 590);
    run(&action("actionunban"));
    assert_eq!(s.agent.ok(&["list", "-o", "json"]).trim(), "[]");
    let _ = std::fs::remove_dir_all(&bin_dir);
}
