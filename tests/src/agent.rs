//! Running the real agent binary inside a test's namespace, and its CLI.
//!
//! The agent enters only the network namespace (`nsenter --net`), not a mount
//! namespace, so it sees the host's bpffs; each agent gets its own pin
//! directory, state directory and socket, all removed by the guard.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

/// The enforcer binary built for these tests: cargo builds the package's
/// binaries next to the test executables' `deps/` directory.
pub fn binary() -> PathBuf {
    if let Ok(p) = std::env::var("ENFORCER_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current_exe");
    let mut dir = exe.parent().expect("an executable has a directory");
    if dir.ends_with("deps") {
        dir = dir.parent().expect("deps/ has a parent");
    }
    let bin = dir.join("enforcer-under-test");
    assert!(
        bin.exists(),
        "{} is missing: run the tests through cargo",
        bin.display()
    );
    bin
}

/// A running agent, stopped and cleaned up (pins included) on drop.
pub struct Agent {
    pub child: Option<Child>,
    pub socket: PathBuf,
    pub bpffs: PathBuf,
    pub state_dir: PathBuf,
    pub log: PathBuf,
    netns: String,
    ifaces: Vec<String>,
    extra: Vec<String>,
}

/// Unique per-test scratch paths.
pub struct Paths {
    pub socket: PathBuf,
    pub bpffs: PathBuf,
    pub state_dir: PathBuf,
    pub log: PathBuf,
}

impl Paths {
    pub fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("enforcer-test-{tag}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self {
            socket: dir.join("enforcer.sock"),
            bpffs: PathBuf::from(format!("/sys/fs/bpf/enforcer-test-{tag}")),
            state_dir: dir.join("state"),
            log: dir.join("agent.log"),
        }
    }
}

impl Agent {
    /// Starts the agent on the server side of `topo` with the policy
    /// `config`, written to the scratch directory of `tag`.
    pub fn with_config(topo: &crate::netns::Topology, tag: &str, config: &str) -> Self {
        let paths = Paths::new(tag);
        let cfg = paths.socket.parent().unwrap().join("enforcer.toml");
        std::fs::write(&cfg, config).unwrap();
        Self::start(
            &topo.server.name,
            &topo.server_ifs(),
            paths,
            &["--config", cfg.to_str().unwrap()],
        )
    }

    /// Starts the agent in `netns` on `ifaces`, with extra arguments, and waits
    /// until its socket answers.
    pub fn start(netns: &str, ifaces: &[String], paths: Paths, extra: &[&str]) -> Self {
        let mut a = Self {
            child: None,
            socket: paths.socket,
            bpffs: paths.bpffs,
            state_dir: paths.state_dir,
            log: paths.log,
            netns: netns.to_owned(),
            ifaces: ifaces.to_vec(),
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
        };
        a.spawn();
        a
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/run/netns/{}", self.netns))
            .arg(binary())
            .arg("--socket")
            .arg(&self.socket)
            .arg("run")
            .arg("--bpffs")
            .arg(&self.bpffs)
            .arg("--state-dir")
            .arg(&self.state_dir);
        for i in &self.ifaces {
            c.arg("--iface").arg(i);
        }
        c.args(&self.extra);
        c.env("NO_COLOR", "1")
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log));
        self.child = Some(c.spawn().expect("spawning the agent"));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if self.cli(&["status", "-o", "json"]).status.success() {
                return;
            }
            if let Some(Ok(Some(st))) = self.child.as_mut().map(Child::try_wait) {
                panic!("the agent exited ({st}) at start:\n{}", self.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "the agent did not come up:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs a CLI command against this agent.
    pub fn cli(&self, args: &[&str]) -> Output {
        cli(&self.socket, args)
    }

    /// Runs a CLI command that must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "enforcer {args:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Stops the agent with SIGTERM (pins stay).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the agent again with the same paths and arguments.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Packets counted by the agent for (verdict, reason).
    pub fn counter(&self, verdict: &str, reason: &str) -> u64 {
        let s: serde_json::Value =
            serde_json::from_str(&self.ok(&["status", "-o", "json"])).unwrap();
        s["counters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["verdict"] == verdict && c["reason"] == reason)
            .map_or(0, |c| c["packets"].as_u64().unwrap())
    }

    /// GET `path` from the agent's metrics endpoint (the default address,
    /// 127.0.0.1:9910 in its namespace): (status, body).
    pub fn http_get(&self, path: &str) -> (u16, String) {
        use std::io::{Read as _, Write as _};
        let ns = format!("/run/netns/{}", self.netns);
        let path = path.to_owned();
        std::thread::spawn(move || {
            crate::netns::enter(&ns);
            let mut s = std::net::TcpStream::connect("127.0.0.1:9910")
                .expect("connect to the metrics endpoint");
            write!(
                s,
                "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
            )
            .unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            let status = out
                .split_whitespace()
                .nth(1)
                .and_then(|x| x.parse().ok())
                .unwrap_or(0);
            let body = out
                .split_once("\r\n\r\n")
                .map(|(_, b)| b.to_owned())
                .unwrap_or_default();
            (status, body)
        })
        .join()
        .unwrap()
    }

    /// The agent's `/metrics`.
    pub fn metrics(&self) -> String {
        self.http_get("/metrics").1
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.stop();
        let _ = enforcer::kernel::remove_pins(&self.bpffs);
        if let Some(dir) = self.socket.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Runs the CLI against `socket`.
pub fn cli(socket: &Path, args: &[&str]) -> Output {
    Command::new(binary())
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()
        .expect("running the CLI")
}

/// Whether an HTTP GET from inside `ns` to `url` succeeds within a short timeout.
pub fn curl_ok(ns: &crate::netns::Netns, url: &str) -> bool {
    ns.cmd("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "--connect-timeout",
            "1",
            "-m",
            "3",
            url,
        ])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Polls `f` until it is true or `timeout` passes.
pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
