//! Running the real compiled XDP program through BPF_PROG_TEST_RUN.

use std::{net::IpAddr, time::Duration};

use aya::programs::{TestRun as _, TestRunOptions};
use enforcer::{
    kernel::{Datapath, LoadOptions, counters::CounterTotal},
    net::IpNet,
};
use enforcer_common::blocklist::{AllowEntry, BlockEntry, Origin};

pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;
pub const XDP_TX: u32 = 3;

/// A freshly loaded, unpinned, unattached program with its maps.
pub struct Program {
    pub dp: Datapath,
}

impl Default for Program {
    fn default() -> Self {
        Self::new()
    }
}

impl Program {
    /// Loads the program with small maps (tests need no million-entry capacity).
    pub fn new() -> Self {
        Self::with_capacity(65_536)
    }

    /// Loads the program with room for `n` block entries per family.
    pub fn with_capacity(n: u32) -> Self {
        let dp = Datapath::load(&LoadOptions {
            pin_root: None,
            block_v4_capacity: n,
            block_v6_capacity: n,
            allow_capacity: 1024,
            rate_state_capacity: 65_536,
        })
        .unwrap_or_else(|e| panic!("loading the XDP program: {e:?}"));
        Self { dp }
    }

    /// Runs `frame` once; returns the XDP action.
    pub fn run(&self, frame: &[u8]) -> u32 {
        self.run_out(frame).0
    }

    /// Runs `frame` once; returns the action and the packet as the program left it.
    pub fn run_out(&self, frame: &[u8]) -> (u32, Vec<u8>) {
        let mut out = vec![0u8; frame.len() + 256];
        let mut opts = TestRunOptions::new();
        opts.data_in = Some(frame);
        opts.data_out = Some(&mut out);
        opts.repeat = 1;
        let r = self
            .dp
            .program()
            .test_run(opts)
            .unwrap_or_else(|e| panic!("BPF_PROG_TEST_RUN: {e:?}"));
        out.truncate(r.data_size_out as usize);
        (r.return_value, out)
    }

    /// Blocks `prefix` (never expiring unless `ttl` is given).
    pub fn block(&mut self, prefix: &str, ttl: Option<Duration>) {
        self.block_with_expiry(
            prefix,
            ttl.map_or(0, |t| {
                enforcer::kernel::clock::monotonic_ns() + t.as_nanos() as u64
            }),
        );
    }

    /// Blocks `prefix` with a raw monotonic expiry (1 = long past).
    pub fn block_with_expiry(&mut self, prefix: &str, expires_ns: u64) {
        let p: IpNet = enforcer::net::parse_prefix(prefix).unwrap();
        self.dp
            .maps
            .upsert_blocks(&[(
                p,
                BlockEntry {
                    expires_ns,
                    origin: Origin::Manual as u32,
                    reason_id: 0,
                },
            )])
            .unwrap();
    }

    /// Blocks many prefixes in one batch (never expiring).
    pub fn block_many(&mut self, prefixes: &[IpNet]) {
        let e = BlockEntry {
            expires_ns: 0,
            origin: Origin::Feed as u32,
            reason_id: 0,
        };
        let items: Vec<(IpNet, BlockEntry)> = prefixes.iter().map(|p| (*p, e)).collect();
        self.dp.maps.upsert_blocks(&items).unwrap();
    }

    pub fn unblock_many(&mut self, prefixes: &[IpNet]) {
        self.dp.maps.remove_blocks(prefixes).unwrap();
    }

    pub fn unblock(&mut self, prefix: &str) {
        let p: IpNet = enforcer::net::parse_prefix(prefix).unwrap();
        self.dp.maps.remove_blocks(&[p]).unwrap();
    }

    pub fn allow(&mut self, prefix: &str) {
        let p: IpNet = enforcer::net::parse_prefix(prefix).unwrap();
        self.dp
            .maps
            .upsert_allows(&[(
                p,
                AllowEntry {
                    origin: Origin::Manual as u32,
                },
            )])
            .unwrap();
    }

    /// Installs rate-limit rules, reporting keys at most every `report`.
    pub fn set_limits(&mut self, rules: &[enforcer::config::RuleSpec], report: Duration) {
        let compiled: Vec<_> = rules
            .iter()
            .map(enforcer::config::RuleSpec::compile)
            .collect();
        self.dp
            .rate
            .install(&compiled, report.as_nanos() as u64)
            .unwrap();
    }

    /// Events the program reported since the last call.
    pub fn events(&mut self) -> Vec<enforcer_common::ratelimit::LimitEvent> {
        self.raw_events()
            .iter()
            // SAFETY: every event is 48 bytes of plain integers; read unaligned.
            .map(|b| unsafe { std::ptr::read_unaligned(b.as_ptr().cast()) })
            .collect()
    }

    /// Events of every kind since the last call, as bytes.
    pub fn raw_events(&mut self) -> Vec<Vec<u8>> {
        let ring = self.dp.events.as_mut().expect("events ring");
        let mut out = Vec::new();
        while let Some(item) = ring.next() {
            out.push(item.to_vec());
        }
        out
    }

    /// Installs HTTP ports, routes and response settings.
    pub fn set_http(&mut self, http: &enforcer::config::HttpConfig, resp_batch: u32) {
        self.dp.http.install(http, resp_batch).unwrap();
    }

    /// Runs `frame` once through the TC egress program; returns its verdict.
    pub fn run_tc(&self, frame: &[u8]) -> i32 {
        let mut opts = TestRunOptions::new();
        opts.data_in = Some(frame);
        opts.repeat = 1;
        let r = self
            .dp
            .responses_program()
            .test_run(opts)
            .unwrap_or_else(|e| panic!("BPF_PROG_TEST_RUN (tc): {e:?}"));
        r.return_value as i32
    }

    /// Packets counted so far for (verdict, reason).
    pub fn count(&self, verdict: &str, reason: &str) -> u64 {
        self.totals()
            .iter()
            .find(|c| c.verdict == verdict && c.reason == reason)
            .map_or(0, |c| c.packets)
    }

    pub fn totals(&self) -> Vec<CounterTotal> {
        self.dp.counters.totals().unwrap()
    }
}

/// Parses an address literal (test convenience).
pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}
