//! CrowdSec bouncer mode: follows a Local API's decision stream.
//!
//! The first poll asks for the full state (`startup=true`) and makes the
//! `crowdsec` decisions exactly that; later polls apply the deltas. Only `ban`
//! decisions on an `Ip` or `Range` scope are enforced, each with its
//! remaining duration. When the LAPI cannot be reached the agent keeps every
//! decision it has (they still expire on time) and tries again at the next
//! interval: a lost connection never flushes.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::{Duration, SystemTime},
};

use enforcer_common::blocklist::Origin;
use ipnet::IpNet;
use serde::Deserialize;
use tracing::{info, warn};

use super::Agent;
use crate::{
    config::CrowdsecSpec,
    net::parse_prefix,
    store::{Change, Kind, shared},
};

/// The bouncer's state, for `enforcer status`.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct CrowdsecStatus {
    pub url: String,
    /// RFC 3339 time of the last successful poll.
    pub last_poll: Option<String>,
    pub polls: u64,
    pub errors: u64,
    pub last_error: Option<String>,
    /// Prefixes currently banned by CrowdSec decisions.
    pub active: usize,
}

#[derive(Debug, Deserialize)]
struct Stream {
    new: Option<Vec<Decision>>,
    deleted: Option<Vec<Decision>>,
}

#[derive(Debug, Deserialize)]
struct Decision {
    id: i64,
    #[serde(default)]
    duration: String,
    #[serde(default)]
    scenario: String,
    #[serde(default)]
    scope: String,
    #[serde(rename = "type", default)]
    kind: String,
    value: String,
}

/// Parses a Go duration (`59.3s`, `3h59m58.123s`, `-1s`, `250ms`).
pub fn go_duration(s: &str) -> Option<(bool, Duration)> {
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Some((false, Duration::ZERO));
    }
    let mut total = 0f64;
    let mut any = false;
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let n: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_end..];
        total += n * scale;
        any = true;
    }
    any.then(|| (neg, Duration::from_secs_f64(total)))
}

/// The prefix a decision bans, if it is one we enforce.
fn target(d: &Decision) -> Option<IpNet> {
    if !d.kind.eq_ignore_ascii_case("ban") {
        return None;
    }
    match d.scope.to_ascii_lowercase().as_str() {
        "ip" | "range" => parse_prefix(&d.value).ok(),
        _ => None,
    }
}

fn fetch(spec: &CrowdsecSpec, http: &ureq::Agent, startup: bool) -> Result<Stream, String> {
    let url = format!("{}/v1/decisions/stream?startup={startup}", spec.url);
    let mut resp = http
        .get(&url)
        .header("X-Api-Key", &spec.api_key)
        .header(
            "User-Agent",
            concat!("enforcer/", env!("CARGO_PKG_VERSION")),
        )
        .call()
        .map_err(|e| format!("GET {url}: {e}"))?;
    let body = resp
        .body_mut()
        .read_to_string()
        .map_err(|e| format!("reading {url}: {e}"))?;
    serde_json::from_str(&body)
        .map_err(|e| format!("{url} answered something that is not a decision stream: {e}"))
}

/// Active CrowdSec decision ids per prefix (several can ban one prefix).
#[derive(Default)]
struct Active {
    by_prefix: HashMap<IpNet, HashSet<i64>>,
}

fn apply(agent: &Agent, stream: Stream, startup: bool, active: &mut Active) -> Result<(), String> {
    let mut changes = Vec::new();
    let mut seen = HashSet::new();
    for d in stream.new.unwrap_or_default() {
        let Some(prefix) = target(&d) else { continue };
        let ttl = match go_duration(&d.duration) {
            Some((false, t)) if t >= Duration::from_secs(1) => t,
            _ => continue,
        };
        seen.insert(prefix);
        active.by_prefix.entry(prefix).or_default().insert(d.id);
        changes.push(Change::Put {
            kind: Kind::Block,
            prefix,
            origin: Origin::Crowdsec,
            source: 0,
            reason: shared(&format!("crowdsec: {}", d.scenario)),
            ttl: Some(ttl),
        });
    }
    if startup {
        // The full state: whatever CrowdSec decided before and no longer
        // holds is lifted.
        let current = agent
            .store
            .lock()
            .map_err(|_| "store poisoned")?
            .prefixes_of(Kind::Block, Origin::Crowdsec, 0);
        for p in current.iter().filter(|p| !seen.contains(*p)) {
            active.by_prefix.remove(p);
            changes.push(Change::Remove {
                kind: Kind::Block,
                prefix: *p,
                origin: Some(Origin::Crowdsec),
                source: Some(0),
            });
        }
    }
    for d in stream.deleted.unwrap_or_default() {
        let Some(prefix) = target(&d) else { continue };
        let ids = active.by_prefix.entry(prefix).or_default();
        ids.remove(&d.id);
        if ids.is_empty() && !seen.contains(&prefix) {
            active.by_prefix.remove(&prefix);
            changes.push(Change::Remove {
                kind: Kind::Block,
                prefix,
                origin: Some(Origin::Crowdsec),
                source: Some(0),
            });
        }
    }
    if changes.is_empty() {
        return Ok(());
    }
    let mut store = agent.store.lock().map_err(|_| "store poisoned")?;
    let r = store.apply(changes).map_err(|e| e.to_string())?;
    if r.added + r.updated + r.removed > 0 {
        info!(
            added = r.added,
            updated = r.updated,
            removed = r.removed,
            "CrowdSec decisions applied"
        );
    }
    Ok(())
}

async fn run(agent: Arc<Agent>, spec: CrowdsecSpec) {
    let http = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .new_agent();
    let mut startup = true;
    let mut active = Active::default();
    let mut failing = false;
    if let Ok(mut s) = agent.crowdsec.lock() {
        *s = CrowdsecStatus {
            url: spec.url.clone(),
            ..CrowdsecStatus::default()
        };
    }
    loop {
        let (s, h) = (spec.clone(), http.clone());
        let fetched = tokio::task::spawn_blocking(move || fetch(&s, &h, startup))
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
        let result = match fetched {
            Ok(stream) => {
                let a = Arc::clone(&agent);
                let st = startup;
                let mut act = std::mem::take(&mut active);
                let (r, act) = tokio::task::spawn_blocking(move || {
                    let r = apply(&a, stream, st, &mut act);
                    (r, act)
                })
                .await
                .unwrap_or_else(|e| (Err(e.to_string()), Active::default()));
                active = act;
                r
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => {
                if failing {
                    info!(url = %spec.url, "the CrowdSec LAPI answers again");
                }
                failing = false;
                startup = false;
                if let Ok(mut s) = agent.crowdsec.lock() {
                    s.polls += 1;
                    s.last_poll =
                        Some(humantime::format_rfc3339_seconds(SystemTime::now()).to_string());
                    s.last_error = None;
                    s.active = active.by_prefix.len();
                }
            }
            Err(e) => {
                if !failing {
                    warn!(url = %spec.url, error = %e, "CrowdSec LAPI unreachable; keeping every decision and retrying");
                }
                failing = true;
                if let Ok(mut s) = agent.crowdsec.lock() {
                    s.errors += 1;
                    s.last_error = Some(e);
                }
            }
        }
        tokio::time::sleep(spec.poll_interval).await;
    }
}

/// Starts (or restarts, after a policy change) the bouncer.
pub fn restart(agent: &Agent) {
    let spec = agent.config.lock().ok().and_then(|c| c.crowdsec.clone());
    let Ok(mut task) = agent.crowdsec_task.lock() else {
        return;
    };
    if let Some(t) = task.take() {
        t.abort();
    }
    let Some(spec) = spec else { return };
    let Some(me) = agent.me.get().and_then(std::sync::Weak::upgrade) else {
        return;
    };
    info!(url = %spec.url, every = ?spec.poll_interval, "CrowdSec bouncer mode on");
    *task = Some(agent.runtime.spawn(run(me, spec)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        let d = |s| go_duration(s).map(|(n, d)| (n, d.as_millis()));
        assert_eq!(d("59.3s"), Some((false, 59_300)));
        assert_eq!(d("3h59m58.5s"), Some((false, 14_398_500)));
        assert_eq!(d("250ms"), Some((false, 250)));
        assert_eq!(d("-1s"), Some((true, 1000)));
        assert_eq!(d("0"), Some((false, 0)));
        assert_eq!(d(""), None);
        assert_eq!(d("5d"), None);
        assert_eq!(d("1.5"), None);
    }

    #[test]
    fn only_bans_on_ip_and_range_scopes() {
        let mk = |kind: &str, scope: &str, value: &str| Decision {
            id: 1,
            duration: "1m".into(),
            scenario: String::new(),
            scope: scope.into(),
            kind: kind.into(),
            value: value.into(),
        };
        assert_eq!(
            target(&mk("ban", "Ip", "198.18.0.1")).unwrap().to_string(),
            "198.18.0.1/32"
        );
        assert_eq!(
            target(&mk("ban", "Range", "198.18.0.0/24"))
                .unwrap()
                .to_string(),
            "198.18.0.0/24"
        );
        assert!(target(&mk("captcha", "Ip", "198.18.0.1")).is_none());
        assert!(target(&mk("ban", "Country", "FR")).is_none());
    }
}
