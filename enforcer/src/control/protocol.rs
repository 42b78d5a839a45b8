//! The control API's messages: one JSON object per line each way.
//!
//! JSON lines keep the protocol scriptable (`socat` works), versionable (unknown
//! fields are ignored) and language-neutral for external detectors.

use serde::{Deserialize, Serialize};

use crate::{
    agent::detector::TopKey,
    config::{BanPolicy, RuleSpec},
    kernel::{Attachment, counters::CounterTotal, prefix_maps::Occupancy},
    store::{ApplyReport, DecisionView, Kind, StoreStats},
};

/// A request to the agent: `{"cmd": "...", "args": {...}}`. Adjacent tagging
/// (rather than internal) lets serde parse a million-prefix request in one
/// pass instead of buffering it first.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "cmd", content = "args", rename_all = "snake_case")]
pub enum Request {
    /// Block prefixes (manual origin), optionally for a time.
    Block {
        prefixes: Vec<String>,
        ttl_secs: Option<u64>,
        reason: Option<String>,
    },
    /// Block every prefix listed in `text` (one per line, `#`/`;` comments):
    /// a whole file in one string, parsed by the agent line by line.
    Import {
        text: String,
        /// Where the text came from, for messages (`file:line`).
        name: String,
        ttl_secs: Option<u64>,
        reason: Option<String>,
    },
    /// Remove every origin's block on exactly these prefixes.
    Unblock { prefixes: Vec<String> },
    /// Allowlist prefixes (manual origin).
    Allow {
        prefixes: Vec<String>,
        reason: Option<String>,
    },
    /// Remove allowlist entries.
    Unallow { prefixes: Vec<String> },
    /// Current decisions.
    List { kind: Option<Kind> },
    /// Agent, maps, attachments and counters.
    Status,
    /// Configured rate limits and the keys with the most drops.
    Limits { top: usize },
    /// Re-read and apply the policy files now.
    Reload,
    /// Decisions from an external detector (origin `external`), validated.
    Decisions {
        items: Vec<crate::decisions::Decision>,
    },
    /// The decision log: the last `lines`, then (with `follow`) every new
    /// line as it happens, one reply per line, until the client disconnects.
    Log { lines: usize, follow: bool },
    /// HTTP routes with their counters, and the busiest routes and clients
    /// from the request samples.
    Routes { top: usize },
}

/// Why a request failed; decides the CLI's exit code.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The request itself is wrong (bad prefix, bad TTL): exit 2.
    BadRequest,
    /// The peer is not root or in the admin group.
    Forbidden,
    /// Valid, but refused (a map is full): nothing applied.
    Refused,
    /// The agent failed.
    Internal,
}

/// The agent's answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Reply {
    Applied(ApplyReport),
    Decisions {
        decisions: Vec<DecisionView>,
    },
    Status(Box<StatusView>),
    Limits(Box<LimitsView>),
    Routes(Box<RoutesView>),
    /// The policy was reloaded.
    Reloaded {
        files: Vec<String>,
    },
    /// Decision-log lines, each one JSON object.
    LogLines {
        lines: Vec<String>,
    },
    Error {
        kind: ErrorKind,
        message: String,
    },
}

/// What `enforcer status` shows.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StatusView {
    pub version: String,
    pub pid: u32,
    pub uptime_secs: u64,
    pub config: Option<String>,
    pub socket: String,
    pub state_dir: String,
    pub bpffs: String,
    /// True when maps were reused from an earlier agent's pins.
    pub reused_pins: bool,
    pub interfaces: Vec<Attachment>,
    pub maps: Vec<MapStatus>,
    pub decisions_block: usize,
    pub decisions_allow: usize,
    pub counters: Vec<CounterTotal>,
    /// Housekeeping counters (events sent and lost, rate-limit keys created).
    pub stats: Vec<(String, u64)>,
    /// Rate-limit rules in force.
    pub limits: usize,
    pub store: StoreStats,
    /// Any degraded mode (generic XDP fallback, unpinned link) is listed here.
    pub degraded: Vec<String>,
    /// Policy reloads: (succeeded, failed), and the last failure if the
    /// policy in force is older than the file.
    pub reloads: (u64, u64),
    pub last_reload_error: Option<String>,
    /// Policy files in force, in merge order.
    pub files: Vec<String>,
    pub feeds: Vec<crate::agent::policy::FeedStatus>,
    pub crowdsec: Option<crate::agent::crowdsec::CrowdsecStatus>,
    /// Block-map keys written and deleted since the agent started.
    pub map_writes: u64,
    pub map_deletes: u64,
}

/// What `enforcer limits` shows.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LimitsView {
    pub rules: Vec<RuleSpec>,
    pub ban: BanPolicy,
    pub top: Vec<TopKey>,
    pub stats: Vec<(String, u64)>,
}

/// One route with its counters, for `enforcer top --routes`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RouteRow {
    #[serde(flatten)]
    pub spec: crate::config::RouteSpec,
    /// Requests matched since the route set was installed (exact).
    pub requests: u64,
    /// Requests over the route's limit (exact).
    pub over: u64,
}

/// What `enforcer top --routes` shows.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RoutesView {
    pub routes: Vec<RouteRow>,
    /// One request in this many is sampled.
    pub sample_every: u32,
    /// The window the busiest lists cover, in seconds.
    pub window_secs: u64,
    pub busiest_routes: Vec<crate::agent::http::Busy>,
    pub busiest_clients: Vec<crate::agent::http::Busy>,
    /// Responses seen per watched status: (status, count).
    pub responses: Vec<(String, u64)>,
}

/// Occupancy of one map, for status.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MapStatus {
    pub name: String,
    #[serde(flatten)]
    pub occupancy: Occupancy,
}
