//! A real CrowdSec Local API (1.4, from Debian's package, unpacked by `cargo
//! xtask setup` without running its post-install), started inside a test
//! namespace on its loopback, with a bouncer key made by `cscli`.

use std::{
    path::PathBuf,
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

/// Where `cargo xtask setup` unpacks the crowdsec package.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/peers/crowdsec/root")
}

/// A running LAPI; stopped and its files removed on drop.
pub struct Lapi {
    pub dir: PathBuf,
    pub port: u16,
    netns: String,
    child: Option<Child>,
    pub bouncer_key: String,
}

impl Lapi {
    /// Starts the LAPI in `netns` on 127.0.0.1:`port`.
    pub fn start(netns: &str, tag: &str, port: u16) -> Self {
        let bin = root().join("usr/bin/crowdsec");
        assert!(
            bin.exists(),
            "{} is missing: run `cargo xtask setup`",
            bin.display()
        );
        let dir = std::env::temp_dir().join(format!("enforcer-crowdsec-{tag}"));
        let _ = std::fs::remove_dir_all(&dir);
        for d in ["cfg", "data", "hub"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        let w = dir.display();
        std::fs::write(
            dir.join("cfg/config.yaml"),
            format!(
                "common: {{daemonize: false, log_media: stdout, log_level: info, working_dir: {w}}}\n\
                 config_paths:\n  config_dir: {w}/cfg/\n  data_dir: {w}/data/\n  simulation_path: {w}/cfg/simulation.yaml\n  hub_dir: {w}/hub/\n  index_path: {w}/hub/.index.json\n\
                 db_config: {{type: sqlite, db_path: {w}/data/crowdsec.db}}\n\
                 api:\n  client: {{credentials_path: {w}/cfg/local_api_credentials.yaml}}\n  server:\n    listen_uri: 127.0.0.1:{port}\n    profiles_path: {w}/cfg/profiles.yaml\n    console_path: {w}/cfg/console.yaml\n    trusted_ips: [127.0.0.1, \"::1\"]\n\
                 prometheus: {{enabled: false}}\n"
            ),
        )
        .unwrap();
        std::fs::copy(
            root().join("etc/crowdsec/profiles.yaml"),
            dir.join("cfg/profiles.yaml"),
        )
        .unwrap();
        std::fs::write(dir.join("cfg/simulation.yaml"), "simulation: off\n").unwrap();
        std::fs::write(dir.join("cfg/console.yaml"), "").unwrap();
        std::fs::write(dir.join("hub/.index.json"), "{}").unwrap();
        let mut me = Self {
            dir,
            port,
            netns: netns.to_owned(),
            child: None,
            bouncer_key: String::new(),
        };
        me.launch();
        let m = me.cscli(
            &["machines", "add", "enforcer-test", "--auto", "-f"],
            &[me.dir
                .join("cfg/local_api_credentials.yaml")
                .to_str()
                .unwrap()],
        );
        assert!(
            m.status.success(),
            "cscli machines add: {}",
            String::from_utf8_lossy(&m.stderr)
        );
        let b = me.cscli(&["bouncers", "add", "enforcer", "-o", "raw"], &[]);
        assert!(
            b.status.success(),
            "cscli bouncers add: {}",
            String::from_utf8_lossy(&b.stderr)
        );
        me.bouncer_key = String::from_utf8_lossy(&b.stdout).trim().to_owned();
        assert!(!me.bouncer_key.is_empty());
        me
    }

    fn launch(&mut self) {
        let log = std::fs::File::create(self.dir.join("lapi.log")).unwrap();
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.netns))
            .arg(root().join("usr/bin/crowdsec"))
            .args([
                "-c",
                self.dir.join("cfg/config.yaml").to_str().unwrap(),
                "-no-cs",
            ])
            .current_dir(&self.dir)
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("starting crowdsec");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let probe = Command::new("nsenter")
                .arg(format!("--net=/run/netns/{}", self.netns))
                .args([
                    "curl",
                    "-s",
                    "-o",
                    "/dev/null",
                    &format!("http://127.0.0.1:{}/health", self.port),
                ])
                .status();
            if probe.is_ok_and(|s| s.success()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "the LAPI did not come up:\n{}",
            std::fs::read_to_string(self.dir.join("lapi.log")).unwrap_or_default()
        );
    }

    /// Runs `cscli -c CONFIG ARGS... EXTRA...` inside the namespace.
    pub fn cscli(&self, args: &[&str], extra: &[&str]) -> Output {
        Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.netns))
            .arg(root().join("usr/bin/cscli"))
            .args(["-c", self.dir.join("cfg/config.yaml").to_str().unwrap()])
            .args(args)
            .args(extra)
            .current_dir(&self.dir)
            .output()
            .expect("running cscli")
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops the LAPI process (its data stays until drop).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Lapi {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
