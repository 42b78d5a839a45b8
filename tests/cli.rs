//! CLI behaviour that needs no network: exit codes and error messages.

use std::process::Command;

use enforcer_tests::agent::{binary, cli};

#[test]
fn no_agent_is_a_one_line_error_with_exit_1() {
    let out = cli(
        std::path::Path::new("/tmp/enforcer-no-such.sock"),
        &["list"],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("no agent is running"), "{err}");
}

#[test]
fn bad_prefixes_and_durations_exit_2_naming_the_token() {
    let sock = std::path::Path::new("/tmp/enforcer-no-such.sock");
    let out = cli(sock, &["block", "198.18.0.1", "10.0.0.300"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`10.0.0.300`"));
    let out = cli(sock, &["block", "198.18.0.1", "--ttl", "1fortnight"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`1fortnight`"));
    let out = cli(sock, &["unallow", "2001:2::/129"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn an_invalid_config_stops_the_agent_at_start_with_file_and_line() {
    let dir = std::env::temp_dir().join(format!("enforcer-cfgtest-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("bad.toml");
    std::fs::write(
        &cfg,
        "[agent]\ninterfaces = [\"lo\"]\n\n[blocklist]\nprefixes = [\"198.18.0.0/99\"]\n",
    )
    .unwrap();
    let out = Command::new(binary())
        .args([
            "--socket",
            dir.join("s.sock").to_str().unwrap(),
            "run",
            "--config",
        ])
        .arg(&cfg)
        .args(["--bpffs", "/sys/fs/bpf/enforcer-cfgtest", "--state-dir"])
        .arg(dir.join("state"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "{}:5:13: `blocklist.prefixes[0]`: found \"198.18.0.0/99\"",
            cfg.display()
        )),
        "{err}"
    );
    assert!(
        !std::path::Path::new("/sys/fs/bpf/enforcer-cfgtest").exists(),
        "pins created for a bad config"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_socket_refuses_non_root_peers() {
    // A socket made by a real agent would need a namespace; the file-mode part
    // is the first line of defence, the peer-credential check the second: run
    // a client as `nobody` against a root-owned 0600 socket.
    let dir = std::env::temp_dir().join(format!("enforcer-permtest-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("s.sock");
    let rt = tokio_rt();
    let listener = rt
        .block_on(enforcer::control::server::bind(
            &sock,
            enforcer::control::server::Access { admin_gid: None },
        ))
        .unwrap();
    let mode = std::fs::metadata(&sock).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(mode.permissions().mode() & 0o777, 0o600);
    // Let `nobody` reach the directory, then try.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(binary())
        .args(["--socket", sock.to_str().unwrap(), "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("permission denied"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Second line of defence: even on a world-writable socket, the peer's
    // credentials are checked and a non-root, non-admin peer is refused.
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o666)).unwrap();
    let handler = std::sync::Arc::new(|_req| enforcer::control::protocol::Reply::Decisions {
        decisions: Vec::new(),
    });
    let server = rt.spawn(enforcer::control::server::serve(
        listener,
        enforcer::control::server::Access { admin_gid: None },
        handler,
        sock.clone(),
        None,
    ));
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(binary())
        .args(["--socket", sock.to_str().unwrap(), "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the control API is for root or the configured admin group"),
        "{err}"
    );
    // Root is admitted.
    assert!(cli(&sock, &["list"]).status.success());
    server.abort();
    std::fs::remove_dir_all(&dir).unwrap();
}

fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}
