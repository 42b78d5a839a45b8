//! The agent's side of HTTP: a window of sampled requests (for `enforcer
//! top --routes`) and the response detector, which turns the TC program's
//! per-client status counts into bans.
//!
//! The kernel sends a key's count of one status class at most once per
//! report interval, or as soon as a batch is reached; the detector keeps,
//! per (rule, key), the counts of the last `within` and bans a key whose sum
//! goes over `more_than`. Repeat bans of a key escalate like the rate-limit
//! bans (`ratelimit.ban.factor`, up to `ratelimit.ban.max_ban_time`).

use std::{
    collections::{HashMap, VecDeque},
    net::IpAddr,
    time::{Duration, Instant},
};

use enforcer_common::{
    http::{METHODS, STATUS_NAMES},
    route::{NO_ROUTE, RequestSample, ResponseReport},
};
use ipnet::IpNet;

use super::detector::{Ban, key_prefix};
use crate::config::{BanPolicy, ResponseRule};

/// How far back `top --routes` looks.
pub const SAMPLE_WINDOW: Duration = Duration::from_secs(10);
/// Most samples kept (a flood of samples evicts the oldest).
const SAMPLE_CAP: usize = 200_000;

/// One sampled request.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    route: u32,
    client: IpAddr,
    method: u8,
    weight: u32,
}

/// The sampled requests of the last [`SAMPLE_WINDOW`].
#[derive(Debug, Default)]
pub struct RequestWindow {
    samples: VecDeque<Sample>,
}

/// Requests per second of one route or client, estimated from samples.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Busy {
    /// Route name (`-` for requests no route matched).
    pub route: String,
    /// The client (empty in a per-route row).
    pub client: String,
    pub method: String,
    pub rps: f64,
}

impl RequestWindow {
    pub fn add(&mut self, s: &RequestSample, now: Instant) {
        let client = if s.family == 4 {
            IpAddr::from([s.addr[0], s.addr[1], s.addr[2], s.addr[3]])
        } else {
            IpAddr::from(s.addr)
        };
        if self.samples.len() >= SAMPLE_CAP {
            self.samples.pop_front();
        }
        self.samples.push_back(Sample {
            at: now,
            route: s.route,
            client,
            method: s.method as u8,
            weight: s.weight.max(1),
        });
        self.expire(now);
    }

    fn expire(&mut self, now: Instant) {
        while self
            .samples
            .front()
            .is_some_and(|s| now.duration_since(s.at) > SAMPLE_WINDOW)
        {
            self.samples.pop_front();
        }
    }

    /// The busiest (route, method) pairs and (client, route) pairs, most
    /// first, at most `n` of each, in requests per second over the window.
    pub fn busiest(&mut self, routes: &[String], n: usize, now: Instant) -> (Vec<Busy>, Vec<Busy>) {
        self.expire(now);
        let secs = SAMPLE_WINDOW.as_secs_f64();
        let name = |r: u32| {
            if r == NO_ROUTE {
                "-".to_owned()
            } else {
                routes
                    .get(r as usize)
                    .cloned()
                    .unwrap_or_else(|| format!("route {r}"))
            }
        };
        let method = |m: u8| {
            METHODS
                .get(usize::from(m))
                .copied()
                .unwrap_or("?")
                .to_owned()
        };
        let mut by_route: HashMap<(u32, u8), u64> = HashMap::new();
        let mut by_client: HashMap<(IpAddr, u32), (u64, u8)> = HashMap::new();
        for s in &self.samples {
            *by_route.entry((s.route, s.method)).or_default() += u64::from(s.weight);
            let e = by_client.entry((s.client, s.route)).or_default();
            e.0 += u64::from(s.weight);
            e.1 = s.method;
        }
        let mut r: Vec<Busy> = by_route
            .into_iter()
            .map(|((route, m), w)| Busy {
                route: name(route),
                client: String::new(),
                method: method(m),
                rps: w as f64 / secs,
            })
            .collect();
        let mut c: Vec<Busy> = by_client
            .into_iter()
            .map(|((client, route), (w, m))| Busy {
                route: name(route),
                client: client.to_string(),
                method: method(m),
                rps: w as f64 / secs,
            })
            .collect();
        let order = |a: &Busy, b: &Busy| {
            b.rps
                .total_cmp(&a.rps)
                .then_with(|| a.route.cmp(&b.route))
                .then_with(|| a.client.cmp(&b.client))
        };
        r.sort_by(order);
        c.sort_by(order);
        r.truncate(n);
        c.truncate(n);
        (r, c)
    }
}

/// Counts of one (rule, key) in the rule's window.
type Window = VecDeque<(Instant, u64)>;

/// Turns response reports into bans.
#[derive(Debug)]
pub struct ResponseDetector {
    rules: Vec<ResponseRule>,
    policy: BanPolicy,
    windows: HashMap<(usize, IpNet), Window>,
    bans: HashMap<IpNet, u32>,
    last_prune: Instant,
}

impl ResponseDetector {
    pub fn new(rules: Vec<ResponseRule>, policy: BanPolicy) -> Self {
        Self {
            rules,
            policy,
            windows: HashMap::new(),
            bans: HashMap::new(),
            last_prune: Instant::now(),
        }
    }

    /// New rules (on reload); windows of rules that stay are kept.
    pub fn reconfigure(&mut self, rules: Vec<ResponseRule>, policy: BanPolicy) {
        if rules != self.rules {
            self.windows.clear();
        }
        self.rules = rules;
        self.policy = policy;
    }

    /// The smallest count that can trigger a rule: the kernel reports a key
    /// at once when it has this many unreported responses (0: none).
    pub fn batch(&self) -> u32 {
        self.rules
            .iter()
            .map(|r| r.more_than.saturating_add(1).min(u64::from(u32::MAX)) as u32)
            .min()
            .unwrap_or(0)
    }

    /// Takes one report; returns the bans it triggers.
    pub fn on_report(&mut self, r: &ResponseReport, now: Instant) -> Vec<Ban> {
        let Some(prefix) = key_prefix(r.family, r.prefix_len, &r.addr) else {
            return Vec::new();
        };
        self.prune(now);
        let mut out = Vec::new();
        for (i, rule) in self.rules.iter().enumerate() {
            if rule.class != r.class {
                continue;
            }
            let w = self.windows.entry((i, prefix)).or_default();
            w.push_back((now, r.count));
            while w
                .front()
                .is_some_and(|(t, _)| now.duration_since(*t) > rule.within)
            {
                w.pop_front();
            }
            let sum: u64 = w.iter().map(|(_, n)| n).sum();
            if sum <= rule.more_than {
                continue;
            }
            w.clear();
            let nth = self.bans.entry(prefix).or_insert(0);
            *nth += 1;
            let nth = *nth;
            let p = BanPolicy {
                ban_time: rule.ban_time,
                max_ban_time: self.policy.max_ban_time.max(rule.ban_time),
                ..self.policy.clone()
            };
            let class = STATUS_NAMES
                .get(rule.class as usize)
                .copied()
                .unwrap_or("?");
            out.push(Ban {
                prefix,
                ttl: p.ban_length(nth),
                reason: format!(
                    "response rule {}: {sum} responses {class} within {} (more than {}){}",
                    rule.name,
                    humantime::format_duration(rule.within),
                    rule.more_than,
                    if nth > 1 {
                        format!("; ban #{nth}")
                    } else {
                        String::new()
                    }
                ),
                nth,
            });
        }
        out
    }

    fn prune(&mut self, now: Instant) {
        if now.duration_since(self.last_prune) < Duration::from_secs(10) {
            return;
        }
        self.last_prune = now;
        let longest = self
            .rules
            .iter()
            .map(|r| r.within)
            .max()
            .unwrap_or_default();
        self.windows.retain(|_, w| {
            w.back()
                .is_some_and(|(t, _)| now.duration_since(*t) <= longest)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use enforcer_common::{http::STATUS_401, route::EVENT_RESPONSE};

    fn report(count: u64) -> ResponseReport {
        let mut addr = [0u8; 16];
        addr[..4].copy_from_slice(&[198, 18, 0, 7]);
        ResponseReport {
            kind: EVENT_RESPONSE,
            class: STATUS_401,
            family: 4,
            prefix_len: 32,
            addr,
            count,
            ts_ns: 0,
        }
    }

    fn rule() -> ResponseRule {
        ResponseRule {
            name: "login-failures".into(),
            class: STATUS_401,
            more_than: 20,
            within: Duration::from_secs(60),
            ban_time: Duration::from_secs(900),
        }
    }

    #[test]
    fn bans_when_the_window_sum_goes_over_and_escalates() {
        let policy = BanPolicy {
            factor: 2.0,
            max_ban_time: Duration::from_secs(1200),
            ..BanPolicy::default()
        };
        let mut d = ResponseDetector::new(vec![rule()], policy);
        assert_eq!(d.batch(), 21);
        let t = Instant::now();
        assert!(d.on_report(&report(1), t).is_empty());
        assert!(
            d.on_report(&report(19), t + Duration::from_secs(1))
                .is_empty()
        );
        let b = d.on_report(&report(1), t + Duration::from_secs(2));
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].prefix.to_string(), "198.18.0.7/32");
        assert_eq!(b[0].ttl, Duration::from_secs(900));
        assert!(b[0].reason.contains("21 responses 401"), "{}", b[0].reason);
        // The second ban doubles, capped at max_ban_time.
        let b = d.on_report(&report(21), t + Duration::from_secs(3));
        assert_eq!(b[0].ttl, Duration::from_secs(1200));
    }

    #[test]
    fn counts_older_than_the_window_do_not_add_up() {
        let mut d = ResponseDetector::new(vec![rule()], BanPolicy::default());
        let t = Instant::now();
        assert!(d.on_report(&report(15), t).is_empty());
        assert!(
            d.on_report(&report(15), t + Duration::from_secs(61))
                .is_empty()
        );
        // Another class does not count for a 401 rule.
        let mut other = report(100);
        other.class = enforcer_common::http::STATUS_404;
        assert!(d.on_report(&other, t + Duration::from_secs(62)).is_empty());
    }

    #[test]
    fn the_window_reports_the_busiest_routes_and_clients() {
        let mut w = RequestWindow::default();
        let t = Instant::now();
        let mut s = RequestSample {
            kind: enforcer_common::route::EVENT_REQUEST,
            route: 0,
            family: 4,
            method: 3,
            addr: [0; 16],
            host: 0,
            weight: 10,
            ts_ns: 0,
        };
        s.addr[..4].copy_from_slice(&[198, 18, 0, 9]);
        for _ in 0..5 {
            w.add(&s, t);
        }
        s.route = NO_ROUTE;
        s.method = 1;
        w.add(&s, t);
        let (r, c) = w.busiest(&["login".into()], 10, t);
        assert_eq!(r[0].route, "login");
        assert_eq!(r[0].method, "POST");
        assert!((r[0].rps - 5.0).abs() < 1e-9, "{}", r[0].rps);
        assert_eq!(r[1].route, "-");
        assert_eq!(c[0].client, "198.18.0.9");
        // Samples older than the window are gone.
        let (r, _) = w.busiest(&[], 10, t + SAMPLE_WINDOW + Duration::from_secs(1));
        assert!(r.is_empty());
    }
}
