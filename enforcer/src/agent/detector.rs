//! Turning rate-limit reports into bans.
//!
//! The XDP program reports a key that went over its limit at most once per
//! report interval. A key reported `after` times within `within` is banned
//! for `ban_time`, and each further ban of the same key lasts `factor` times
//! longer, up to `max_ban_time` — fail2ban's `bantime.increment`. Memory is
//! bounded: keys with no report inside the window are forgotten, and the
//! per-key totals kept for `enforcer limits` are capped.

use std::{
    collections::{HashMap, VecDeque},
    net::{Ipv4Addr, Ipv6Addr},
    time::{Duration, Instant},
};

use enforcer_common::{ratelimit::LimitEvent, route::ROUTE_RULE_BASE};
use ipnet::IpNet;

use crate::config::{BanPolicy, RuleSpec};

/// Most keys whose totals are kept for `enforcer limits`.
const TOP_CAP: usize = 50_000;

/// A ban the detector decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Ban {
    pub prefix: IpNet,
    pub ttl: Duration,
    pub reason: String,
    /// How many times this key has now been banned.
    pub nth: u32,
}

/// Totals of one (limit, key).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct KeyTotals {
    pub drops: u64,
    pub reports: u64,
    pub bans: u32,
}

/// A key with its totals, for `enforcer limits`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct TopKey {
    pub limit: String,
    pub prefix: IpNet,
    #[serde(flatten)]
    pub totals: KeyTotals,
}

pub struct Detector {
    policy: BanPolicy,
    rules: Vec<RuleSpec>,
    /// Route names, for route-limit reports (rule `ROUTE_RULE_BASE + id`).
    routes: Vec<String>,
    reports: HashMap<IpNet, VecDeque<Instant>>,
    bans: HashMap<IpNet, u32>,
    totals: HashMap<(usize, IpNet), KeyTotals>,
    last_prune: Instant,
}

/// The prefix an event's key stands for.
pub fn event_prefix(ev: &LimitEvent) -> Option<IpNet> {
    key_prefix(ev.family, ev.prefix_len, &ev.addr)
}

/// The prefix of a kernel key: family, prefix length, masked address.
pub fn key_prefix(family: u32, prefix_len: u32, addr: &[u8; 16]) -> Option<IpNet> {
    let len = u8::try_from(prefix_len).ok()?;
    match family {
        4 => {
            let a = Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]);
            IpNet::new(a.into(), len).ok()
        }
        6 => IpNet::new(Ipv6Addr::from(*addr).into(), len).ok(),
        _ => None,
    }
}

impl Detector {
    pub fn new(policy: BanPolicy, rules: Vec<RuleSpec>) -> Self {
        Self {
            policy,
            rules,
            routes: Vec::new(),
            reports: HashMap::new(),
            bans: HashMap::new(),
            totals: HashMap::new(),
            last_prune: Instant::now(),
        }
    }

    /// New policy and rules (on reload); history is kept.
    pub fn reconfigure(&mut self, policy: BanPolicy, rules: Vec<RuleSpec>) {
        self.policy = policy;
        self.rules = rules;
    }

    /// Route names, in route order (at start and on reload).
    pub fn set_routes(&mut self, routes: Vec<String>) {
        self.routes = routes;
    }

    fn limit_name(&self, rule: usize) -> String {
        if rule >= ROUTE_RULE_BASE as usize {
            let id = rule - ROUTE_RULE_BASE as usize;
            return self
                .routes
                .get(id)
                .map_or_else(|| format!("route {id}"), |n| format!("route {n}"));
        }
        self.rules
            .get(rule)
            .map_or_else(|| format!("rule {rule}"), |r| r.name.clone())
    }

    pub fn rules(&self) -> &[RuleSpec] {
        &self.rules
    }

    pub const fn policy(&self) -> &BanPolicy {
        &self.policy
    }

    /// Takes one report; returns a ban when the key crossed the threshold.
    pub fn on_event(&mut self, ev: &LimitEvent, now: Instant) -> Option<Ban> {
        let prefix = event_prefix(ev)?;
        let rule = ev.rule as usize;
        let t = self.totals.entry((rule, prefix)).or_default();
        t.drops += ev.drops;
        t.reports += 1;
        self.prune(now);
        // A route limit holds one endpoint; banning the client would take
        // every other endpoint from it too. Its reports are totals only.
        if !self.policy.enabled || ev.rule >= ROUTE_RULE_BASE {
            return None;
        }
        let window = self.policy.within;
        let q = self.reports.entry(prefix).or_default();
        q.push_back(now);
        while q.front().is_some_and(|t| now.duration_since(*t) > window) {
            q.pop_front();
        }
        if q.len() < self.policy.after as usize {
            return None;
        }
        q.clear();
        let nth = self.bans.entry(prefix).or_insert(0);
        *nth += 1;
        let nth = *nth;
        if let Some(t) = self.totals.get_mut(&(rule, prefix)) {
            t.bans += 1;
        }
        let name = self.rules.get(rule).map_or_else(
            || format!("rule {rule}"),
            |r| format!("{} ({} {}/s, burst {})", r.name, r.kind, r.rate, r.burst),
        );
        Some(Ban {
            prefix,
            ttl: self.policy.ban_length(nth),
            reason: format!(
                "rate limit {name} exceeded {} times within {}{}",
                self.policy.after,
                humantime::format_duration(window),
                if nth > 1 {
                    format!("; ban #{nth}")
                } else {
                    String::new()
                }
            ),
            nth,
        })
    }

    fn prune(&mut self, now: Instant) {
        if now.duration_since(self.last_prune) < Duration::from_secs(10) {
            return;
        }
        self.last_prune = now;
        let window = self.policy.within;
        self.reports
            .retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) <= window));
        if self.totals.len() > TOP_CAP {
            let mut v: Vec<u64> = self.totals.values().map(|t| t.drops).collect();
            v.sort_unstable();
            let cut = v[v.len() - TOP_CAP / 2];
            self.totals.retain(|_, t| t.drops >= cut);
        }
    }

    /// The keys with the most drops, most first.
    pub fn top(&self, n: usize) -> Vec<TopKey> {
        let mut v: Vec<TopKey> = self
            .totals
            .iter()
            .map(|((rule, prefix), t)| TopKey {
                limit: self.limit_name(*rule),
                prefix: *prefix,
                totals: t.clone(),
            })
            .collect();
        v.sort_by(|a, b| {
            b.totals
                .drops
                .cmp(&a.totals.drops)
                .then(a.prefix.cmp(&b.prefix))
        });
        v.truncate(n);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(addr: [u8; 4], len: u32) -> LimitEvent {
        let mut a = [0u8; 16];
        a[..4].copy_from_slice(&addr);
        LimitEvent {
            kind: 1,
            rule: 0,
            family: 4,
            prefix_len: len,
            addr: a,
            drops: 10,
            ts_ns: 0,
        }
    }

    fn rule() -> RuleSpec {
        RuleSpec {
            name: "pps".into(),
            kind: "packets".into(),
            rate: 100,
            burst: 100,
            ipv4_prefix: 32,
            ipv6_prefix: 64,
            monitor: false,
        }
    }

    #[test]
    fn bans_after_n_reports_within_the_window_and_escalates() {
        let policy = BanPolicy {
            after: 3,
            within: Duration::from_secs(10),
            ban_time: Duration::from_secs(60),
            factor: 2.0,
            max_ban_time: Duration::from_secs(200),
            enabled: true,
        };
        let mut d = Detector::new(policy, vec![rule()]);
        let t0 = Instant::now();
        let e = ev([198, 18, 0, 9], 32);
        assert!(d.on_event(&e, t0).is_none());
        assert!(d.on_event(&e, t0 + Duration::from_secs(1)).is_none());
        let b = d.on_event(&e, t0 + Duration::from_secs(2)).unwrap();
        assert_eq!(b.prefix.to_string(), "198.18.0.9/32");
        assert_eq!(b.ttl, Duration::from_secs(60));
        assert!(
            b.reason.contains("pps") && b.reason.contains("3 times"),
            "{}",
            b.reason
        );
        // Reports spread wider than the window do not add up.
        for i in 0..5 {
            assert!(
                d.on_event(&e, t0 + Duration::from_secs(20 + 11 * i))
                    .is_none()
            );
        }
        // The next bans last 120 s, then the 200 s cap.
        let t1 = t0 + Duration::from_secs(100);
        d.on_event(&e, t1);
        d.on_event(&e, t1);
        assert_eq!(d.on_event(&e, t1).unwrap().ttl, Duration::from_secs(120));
        d.on_event(&e, t1);
        d.on_event(&e, t1);
        let b = d.on_event(&e, t1).unwrap();
        assert_eq!((b.ttl, b.nth), (Duration::from_secs(200), 3));
        let top = d.top(5);
        assert_eq!(top[0].totals.bans, 3);
        assert_eq!(top[0].totals.drops, 10 * 14);
    }

    #[test]
    fn disabled_bans_still_keep_totals() {
        let policy = BanPolicy {
            enabled: false,
            after: 1,
            ..BanPolicy::default()
        };
        let mut d = Detector::new(policy, vec![rule()]);
        assert!(
            d.on_event(&ev([198, 18, 1, 0], 24), Instant::now())
                .is_none()
        );
        assert_eq!(d.top(1)[0].prefix.to_string(), "198.18.1.0/24");
    }
}
