//! The policy file: what the agent enforces and how it runs.
//!
//! Parsing is strict (unknown keys are errors, so a typo cannot silently turn
//! a rule off) and every error carries file, line, column and key. Values are
//! checked after parsing with their spans kept, so a bad prefix deep in a list
//! is reported where it stands, and all problems are reported at once.

mod error;
pub mod http;
pub mod ratelimit;
pub mod routes;
pub mod sources;
mod values;

use std::{
    ops::Range,
    path::{Path, PathBuf},
};

use enforcer_common::maps as m;
use ipnet::IpNet;
use serde::Deserialize;
use toml::Spanned;

pub use error::{ConfigError, ConfigErrors, Source};
pub use http::{HttpConfig, ResponseRule, RouteSpec};
pub use ratelimit::{BanPolicy, RateLimitConfig, RuleSpec};
pub use sources::{CrowdsecSpec, FeedFormat, FeedSpec};

use crate::kernel::XdpModeChoice;

pub const DEFAULT_SOCKET: &str = "/run/enforcer/enforcer.sock";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/enforcer";
pub const DEFAULT_BPFFS: &str = "/sys/fs/bpf/enforcer";
pub const DEFAULT_CONFIG: &str = "/etc/enforcer/enforcer.toml";

/// The validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub interfaces: Vec<String>,
    pub xdp_mode: XdpModeChoice,
    pub socket: PathBuf,
    /// Group whose members may use the control socket (besides root).
    pub admin_group: Option<String>,
    pub state_dir: PathBuf,
    pub bpffs: PathBuf,
    pub capacity_block_v4: u32,
    pub capacity_block_v6: u32,
    pub capacity_allow: u32,
    /// Static allowlist: prefix and reason.
    pub allow: Vec<(IpNet, String)>,
    /// Static blocklist: prefix and reason.
    pub block: Vec<(IpNet, String)>,
    pub ratelimit: RateLimitConfig,
    /// Prometheus endpoint address; `None` when disabled.
    pub metrics: Option<std::net::SocketAddr>,
    /// HTTP ports, routes and response detection.
    pub http: HttpConfig,
    /// Blocklist feeds to follow.
    pub feeds: Vec<FeedSpec>,
    /// CrowdSec bouncer mode.
    pub crowdsec: Option<CrowdsecSpec>,
    /// The files this policy was read from, in merge order.
    pub files: Vec<PathBuf>,
}

/// Default address of the metrics endpoint.
pub const DEFAULT_METRICS: &str = "127.0.0.1:9910";

impl Default for Config {
    fn default() -> Self {
        Self {
            interfaces: Vec::new(),
            xdp_mode: XdpModeChoice::Native,
            socket: DEFAULT_SOCKET.into(),
            admin_group: None,
            state_dir: DEFAULT_STATE_DIR.into(),
            bpffs: DEFAULT_BPFFS.into(),
            capacity_block_v4: m::DEFAULT_BLOCK_V4_ENTRIES,
            capacity_block_v6: m::DEFAULT_BLOCK_V6_ENTRIES,
            capacity_allow: m::DEFAULT_ALLOW_ENTRIES,
            allow: Vec::new(),
            block: Vec::new(),
            ratelimit: RateLimitConfig::default(),
            metrics: DEFAULT_METRICS.parse().ok(),
            http: HttpConfig::default(),
            feeds: Vec::new(),
            crowdsec: None,
            files: Vec::new(),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    agent: RawAgent,
    #[serde(default)]
    maps: RawMaps,
    #[serde(default)]
    allowlist: RawList,
    #[serde(default)]
    blocklist: RawList,
    #[serde(default)]
    ratelimit: ratelimit::RawRateLimit,
    #[serde(default)]
    metrics: RawMetrics,
    #[serde(default)]
    http: http::RawHttp,
    #[serde(default)]
    routes: Vec<http::RawRoute>,
    #[serde(default)]
    detect: http::RawDetect,
    #[serde(default)]
    feeds: Vec<sources::RawFeed>,
    crowdsec: Option<sources::RawCrowdsec>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    enabled: Option<bool>,
    listen: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAgent {
    interfaces: Option<Spanned<Vec<Spanned<String>>>>,
    xdp_mode: Option<Spanned<String>>,
    socket: Option<Spanned<String>>,
    admin_group: Option<Spanned<String>>,
    state_dir: Option<Spanned<String>>,
    bpffs: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawMaps {
    blocklist_v4: Option<Spanned<i64>>,
    blocklist_v6: Option<Spanned<i64>>,
    allowlist: Option<Spanned<i64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawList {
    #[serde(default)]
    prefixes: Vec<Spanned<RawPrefix>>,
    reason: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawPrefix {
    Plain(String),
    Detailed(RawPrefixEntry),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrefixEntry {
    prefix: String,
    reason: Option<String>,
}

const PREFIX_EXPECTED: &str = "an IPv4 or IPv6 address or CIDR prefix (e.g. \"198.18.0.0/15\", \
                               \"2001:2::/48\"), or { prefix = \"...\", reason = \"...\" }";

impl Config {
    /// Reads and validates the policy: `path`, then the drop-in files
    /// `conf.d/*.toml` next to it, in name order.
    pub fn load(path: &Path) -> Result<Self, ConfigErrors> {
        let mut files = vec![path.to_owned()];
        files.extend(drop_ins(path));
        Self::load_files(&files)
    }

    /// Reads and validates `files`, merged in order, reporting every problem
    /// of every file at once.
    pub fn load_files(files: &[PathBuf]) -> Result<Self, ConfigErrors> {
        let mut cfg = Self::default();
        let mut errors = Vec::new();
        let mut names = Names::default();
        for f in files {
            match std::fs::read_to_string(f) {
                Ok(text) => cfg.apply(f, &text, &mut errors, &mut names),
                Err(e) => errors.push(ConfigError {
                    file: f.display().to_string(),
                    line: 0,
                    column: 0,
                    key: String::new(),
                    message: format!("cannot read the file: {e}"),
                    expected: "a readable TOML file".into(),
                }),
            }
        }
        cfg.files = files.to_vec();
        if errors.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigErrors(errors))
        }
    }

    /// Validates `text` as the contents of `path` (one file, no drop-ins).
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigErrors> {
        let mut cfg = Self::default();
        let mut errors = Vec::new();
        cfg.apply(path, text, &mut errors, &mut Names::default());
        cfg.files = vec![path.to_owned()];
        if errors.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigErrors(errors))
        }
    }

    /// Applies one file on top of `self`: scalars it sets replace earlier
    /// values, lists it gives are appended, and a limit or feed name that an
    /// earlier file already used is a conflict.
    fn apply(&mut self, path: &Path, text: &str, errors: &mut Vec<ConfigError>, names: &mut Names) {
        let src = Source::new(path, text);
        let raw: RawConfig = match toml::from_str(text) {
            Ok(r) => r,
            Err(e) => {
                errors.push(src.from_toml(&e));
                return;
            }
        };
        let cfg = self;

        if let Some(ifs) = &raw.agent.interfaces {
            cfg.interfaces.clear();
            for (i, name) in ifs.get_ref().iter().enumerate() {
                let n = name.get_ref();
                if n.is_empty() || n.len() > 15 || n.contains(['/', ' ']) {
                    errors.push(src.error(
                        name.span(),
                        format!("agent.interfaces[{i}]"),
                        format!("found {n:?}"),
                        "an interface name of 1 to 15 characters without '/' or spaces",
                    ));
                } else {
                    cfg.interfaces.push(n.clone());
                }
            }
        }
        if let Some(mode) = &raw.agent.xdp_mode {
            match mode.get_ref().as_str() {
                "native" => cfg.xdp_mode = XdpModeChoice::Native,
                "generic" => cfg.xdp_mode = XdpModeChoice::Generic,
                "auto" => cfg.xdp_mode = XdpModeChoice::Auto,
                other => errors.push(src.error(
                    mode.span(),
                    "agent.xdp_mode",
                    format!("found {other:?}"),
                    "\"native\", \"generic\" or \"auto\"",
                )),
            }
        }
        let mut path_key = |v: &Option<Spanned<String>>, key: &str, out: &mut PathBuf| {
            if let Some(v) = v {
                if v.get_ref().starts_with('/') {
                    *out = v.get_ref().into();
                } else {
                    errors.push(src.error(
                        v.span(),
                        key,
                        format!("found {:?}", v.get_ref()),
                        "an absolute path",
                    ));
                }
            }
        };
        path_key(&raw.agent.socket, "agent.socket", &mut cfg.socket);
        path_key(&raw.agent.state_dir, "agent.state_dir", &mut cfg.state_dir);
        path_key(&raw.agent.bpffs, "agent.bpffs", &mut cfg.bpffs);
        if let Some(g) = &raw.agent.admin_group {
            cfg.admin_group = Some(g.get_ref().clone());
        }

        let mut capacity = |v: &Option<Spanned<i64>>, key: &str, out: &mut u32| {
            if let Some(v) = v {
                let n = *v.get_ref();
                if (1..=100_000_000).contains(&n) {
                    *out = n as u32;
                } else {
                    errors.push(src.error(
                        v.span(),
                        key,
                        format!("found {n}"),
                        "a number of entries from 1 to 100000000",
                    ));
                }
            }
        };
        capacity(
            &raw.maps.blocklist_v4,
            "maps.blocklist_v4",
            &mut cfg.capacity_block_v4,
        );
        capacity(
            &raw.maps.blocklist_v6,
            "maps.blocklist_v6",
            &mut cfg.capacity_block_v6,
        );
        capacity(
            &raw.maps.allowlist,
            "maps.allowlist",
            &mut cfg.capacity_allow,
        );

        let allow = prefix_list(
            &src,
            &raw.allowlist,
            "allowlist",
            "static allowlist",
            errors,
        );
        cfg.allow.extend(allow);
        let block = prefix_list(
            &src,
            &raw.blocklist,
            "blocklist",
            "static blocklist",
            errors,
        );
        cfg.block.extend(block);
        ratelimit::validate(
            &src,
            &raw.ratelimit,
            errors,
            &mut cfg.ratelimit,
            &mut names.limits,
        );
        http::validate(
            &src,
            &raw.http,
            &raw.routes,
            &raw.detect,
            errors,
            &mut cfg.http,
            &mut names.routes,
        );
        sources::validate(
            &src,
            &raw.feeds,
            raw.crowdsec.as_ref(),
            errors,
            cfg,
            &mut names.feeds,
        );
        if let Some(l) = &raw.metrics.listen {
            match l.get_ref().parse::<std::net::SocketAddr>() {
                Ok(a) => cfg.metrics = Some(a),
                Err(_) => errors.push(src.error(
                    l.span(),
                    "metrics.listen",
                    format!("found {:?}", l.get_ref()),
                    "an address and port such as \"127.0.0.1:9910\" or \"[::1]:9910\"",
                )),
            }
        }
        if raw.metrics.enabled == Some(false) {
            cfg.metrics = None;
        }
    }
}

impl Config {
    /// Keeps the settings that only take effect when the agent starts
    /// (interfaces, socket, state directory, pins, map sizes, metrics
    /// address) at their running values, and warns about changes to them.
    pub fn overrides_from(&mut self, running: &Self) {
        let mut restart = Vec::new();
        macro_rules! keep {
            ($($f:ident),*) => {$(
                if self.$f != running.$f {
                    restart.push(stringify!($f));
                    self.$f = running.$f.clone();
                }
            )*};
        }
        keep!(
            interfaces,
            xdp_mode,
            socket,
            admin_group,
            state_dir,
            bpffs,
            capacity_block_v4,
            capacity_block_v6,
            capacity_allow,
            metrics
        );
        if self.ratelimit.state_entries != running.ratelimit.state_entries {
            restart.push("ratelimit.state_entries");
            self.ratelimit.state_entries = running.ratelimit.state_entries;
        }
        if !restart.is_empty() {
            tracing::warn!(settings = ?restart, "these settings changed in the policy and take effect at the next agent start");
        }
    }
}

/// The drop-in files of a policy: `conf.d/*.toml` beside it, in name order.
pub fn drop_ins(main: &Path) -> Vec<PathBuf> {
    let Some(dir) = main.parent().map(|d| d.join("conf.d")) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Where each limit and feed name was first defined (for conflicts).
#[derive(Default)]
pub(crate) struct Names {
    pub(crate) limits: std::collections::HashMap<String, String>,
    pub(crate) feeds: std::collections::HashMap<String, String>,
    pub(crate) routes: std::collections::HashMap<String, String>,
}

fn prefix_list(
    src: &Source<'_>,
    list: &RawList,
    section: &str,
    default_reason: &str,
    errors: &mut Vec<ConfigError>,
) -> Vec<(IpNet, String)> {
    let reason = list
        .reason
        .as_ref()
        .map_or_else(|| default_reason.to_owned(), |r| r.get_ref().clone());
    let mut out = Vec::new();
    for (i, item) in list.prefixes.iter().enumerate() {
        let span: Range<usize> = item.span();
        let (token, r) = match item.get_ref() {
            RawPrefix::Plain(s) => (s.as_str(), reason.clone()),
            RawPrefix::Detailed(d) => (
                d.prefix.as_str(),
                d.reason.clone().unwrap_or_else(|| reason.clone()),
            ),
        };
        match crate::net::parse_prefix(token) {
            Ok(p) => out.push((p, r)),
            Err(_) => errors.push(src.error(
                span,
                format!("{section}.prefixes[{i}]"),
                format!("found {token:?}"),
                PREFIX_EXPECTED,
            )),
        }
    }
    out
}

#[cfg(test)]
mod tests;
