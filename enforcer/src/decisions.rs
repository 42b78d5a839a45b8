//! Decisions from detectors written in any language: one JSON object per
//! line, e.g.
//!
//! ```json
//! {"action": "ban", "value": "198.18.7.1", "duration": "4h", "reason": "ssh brute force"}
//! {"action": "ban", "value": "2001:2:0:7::/64", "scope": "range"}
//! {"action": "unban", "value": "198.18.7.1"}
//! ```
//!
//! `type` is accepted for `action` (CrowdSec's spelling); `duration` takes
//! `90s`, `15m`, `4h`, `7d` or Go's `3h59m58.5s`; no duration means forever.

use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::net::parse_prefix;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    #[serde(alias = "type")]
    action: String,
    value: String,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    duration: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    /// Informative fields other tools put in their records.
    #[serde(default)]
    #[allow(dead_code, reason = "accepted and ignored")]
    origin: Option<String>,
    #[serde(default)]
    #[allow(dead_code, reason = "accepted and ignored")]
    scenario: Option<String>,
}

/// A validated decision as sent to the agent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Decision {
    /// True to ban, false to lift.
    pub ban: bool,
    pub prefix: String,
    pub ttl_secs: Option<u64>,
    pub reason: Option<String>,
}

fn duration(s: &str) -> Option<Duration> {
    humantime::parse_duration(s)
        .ok()
        .or_else(|| go_duration(s))
        .filter(|d| *d >= Duration::from_secs(1))
}

/// Go's duration syntax (`59.3s`, `3h59m58.5s`), positive only.
fn go_duration(s: &str) -> Option<Duration> {
    let mut rest = s;
    let mut total = 0f64;
    while !rest.is_empty() {
        let end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let n: f64 = rest[..end].parse().ok()?;
        rest = &rest[end..];
        let uend = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        total += n * match &rest[..uend] {
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[uend..];
    }
    (total > 0.0).then(|| Duration::from_secs_f64(total))
}

/// Parses one line; the error says what is wrong with it.
pub fn parse_line(line: &str) -> Result<Decision, String> {
    let l: Line = serde_json::from_str(line).map_err(|e| format!("not a decision: {e}"))?;
    let ban = match l.action.to_ascii_lowercase().as_str() {
        "ban" | "block" | "add" => true,
        "unban" | "unblock" | "delete" | "del" => false,
        other => return Err(format!("action {other:?}: expected \"ban\" or \"unban\"")),
    };
    let prefix: IpNet = parse_prefix(&l.value).map_err(|e| e.to_string())?;
    if let Some(scope) = &l.scope {
        let s = scope.to_ascii_lowercase();
        let host = prefix.prefix_len() == prefix.max_prefix_len();
        if !(s == "range" || (s == "ip" && host)) {
            return Err(format!(
                "scope {scope:?} does not fit {prefix}: expected \"ip\" for an address or \"range\""
            ));
        }
    }
    let ttl_secs = match &l.duration {
        Some(d) if ban => Some(
            duration(d)
                .ok_or_else(|| {
                    format!("duration {d:?}: expected e.g. \"90s\", \"4h\", \"7d\" (at least 1s)")
                })?
                .as_secs(),
        ),
        _ => None,
    };
    Ok(Decision {
        ban,
        prefix: prefix.to_string(),
        ttl_secs,
        reason: l.reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        let d = parse_line(r#"{"action":"ban","value":"198.18.7.1","duration":"4h","reason":"x"}"#)
            .unwrap();
        assert_eq!(
            (d.ban, d.prefix.as_str(), d.ttl_secs),
            (true, "198.18.7.1/32", Some(14_400))
        );
        let d = parse_line(
            r#"{"type":"ban","value":"2001:2::/48","scope":"range","duration":"59.3s"}"#,
        )
        .unwrap();
        assert_eq!(d.ttl_secs, Some(59));
        assert!(
            !parse_line(r#"{"action":"unban","value":"198.18.7.1"}"#)
                .unwrap()
                .ban
        );
        for bad in [
            r#"{"action":"ban"}"#,
            r#"{"action":"nuke","value":"198.18.7.1"}"#,
            r#"{"action":"ban","value":"198.18.7.1/33"}"#,
            r#"{"action":"ban","value":"198.18.7.0/24","scope":"ip"}"#,
            r#"{"action":"ban","value":"198.18.7.1","duration":"soon"}"#,
            r#"{"action":"ban","value":"198.18.7.1","colour":"red"}"#,
            "not json",
        ] {
            assert!(parse_line(bad).is_err(), "{bad}");
        }
    }
}
