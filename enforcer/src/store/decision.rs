//! What a decision is, and how several decisions on one prefix combine.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use enforcer_common::blocklist::Origin;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// Block or allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Block,
    Allow,
}

impl Kind {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Block => "block",
            Self::Allow => "allow",
        }
    }
}

/// One origin's decision on one prefix, as held in memory (compact: a million
/// of these must fit comfortably).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub origin: Origin,
    /// Which instance of the origin (a feed, a detector rule); 0 for manual.
    pub source: u32,
    /// Interned reason text.
    pub reason: u32,
    /// Unix time in ms.
    pub created_ms: u64,
    /// Unix time in ms after which the entry no longer applies; 0 = never.
    pub expires_ms: u64,
}

impl Entry {
    pub const fn is_expired(&self, now_ms: u64) -> bool {
        self.expires_ms != 0 && now_ms >= self.expires_ms
    }

    /// True when `self` outlives `other` (never beats any time).
    const fn outlives(&self, other: &Self) -> bool {
        match (self.expires_ms, other.expires_ms) {
            (0, 0) => false,
            (0, _) => true,
            (_, 0) => false,
            (a, b) => a > b,
        }
    }
}

/// The entry that represents a prefix in the kernel: the one that lasts longest
/// (its origin and reason are reported); `None` when all have expired.
pub fn effective(entries: &[Entry], now_ms: u64) -> Option<Entry> {
    let mut best: Option<Entry> = None;
    for e in entries.iter().filter(|e| !e.is_expired(now_ms)) {
        match best {
            Some(b) if !e.outlives(&b) => {}
            _ => best = Some(*e),
        }
    }
    best
}

/// A decision as shown to operators and scripts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DecisionView {
    pub kind: Kind,
    pub prefix: IpNet,
    pub origin: String,
    pub source: u32,
    pub reason: String,
    /// RFC 3339, UTC.
    pub created: String,
    /// RFC 3339, UTC; absent for decisions that never expire.
    pub expires: Option<String>,
    /// Seconds left; absent for decisions that never expire.
    pub ttl_secs: Option<u64>,
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

pub fn ms_to_system(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

pub fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_seconds(ms_to_system(ms)).to_string()
}

pub fn origin_from_name(s: &str) -> Option<Origin> {
    Origin::ALL.into_iter().find(|o| o.name() == s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(origin: Origin, expires_ms: u64) -> Entry {
        Entry {
            origin,
            source: 0,
            reason: 0,
            created_ms: 1,
            expires_ms,
        }
    }

    #[test]
    fn longest_lasting_entry_represents_the_prefix() {
        let now = 1_000;
        assert_eq!(effective(&[], now), None);
        assert_eq!(effective(&[e(Origin::Feed, 500)], now), None);
        let got = effective(&[e(Origin::Feed, 5_000), e(Origin::Manual, 9_000)], now).unwrap();
        assert_eq!(got.origin, Origin::Manual);
        let got = effective(&[e(Origin::Feed, 0), e(Origin::Manual, 9_000)], now).unwrap();
        assert_eq!(got.origin, Origin::Feed);
        let got = effective(&[e(Origin::Crowdsec, 900), e(Origin::Manual, 2_000)], now).unwrap();
        assert_eq!(got.origin, Origin::Manual);
    }
}
