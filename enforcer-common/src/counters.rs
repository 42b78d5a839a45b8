//! Verdicts, reasons and the per-CPU counter table indexed by both.
//!
//! Every packet leaves the XDP program through one exit that adds its length to
//! `COUNTERS[verdict * REASON_SLOTS + reason]` on the current CPU. Per-CPU slots
//! mean no shared cache line is written on the hot path; the agent sums the CPUs
//! at scrape time. One enumerated list of reasons shared by both sides replaces
//! the hand-kept duplicate lists that drift apart in C/Go projects.

use crate::blocklist::{ORIGIN_COUNT, Origin};

/// What the program did with a packet.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Verdict {
    /// Handed to the network stack.
    Pass = 0,
    /// Dropped at the NIC.
    Drop = 1,
    /// Answered with a TCP reset (XDP_TX) and not delivered.
    Reject = 2,
    /// Passed, but a rule in monitor mode would have dropped or rejected it.
    Monitor = 3,
}

pub const VERDICT_COUNT: u32 = 4;

impl Verdict {
    pub const ALL: [Self; VERDICT_COUNT as usize] =
        [Self::Pass, Self::Drop, Self::Reject, Self::Monitor];

    pub const fn name(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Drop => "drop",
            Self::Reject => "reject",
            Self::Monitor => "monitor",
        }
    }
}

/// Why the program reached its verdict.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// IP packet that no rule matched.
    NotListed = 0,
    /// Source in the allowlist.
    Allowlisted = 1,
    /// Not IPv4 or IPv6 (ARP, LLDP, ...).
    NonIp = 2,
    /// Headers truncated or inconsistent; passed so the stack can decide.
    Malformed = 3,
    /// Valid but beyond what the parser follows (a third VLAN tag, a longer
    /// IPv6 extension-header chain than `MAX_IPV6_EXT_HEADERS`).
    Unsupported = 4,
    /// A block entry matched but had expired (and nothing else matched).
    ExpiredBlock = 5,
    /// Blocklist match; `BlockBase + origin` for each [`Origin`].
    BlockBase = 6,
    /// Per-source packet-rate limit exceeded.
    RateLimitPackets = 6 + ORIGIN_COUNT,
    /// Per-source new-connection (SYN) rate limit exceeded.
    RateLimitSyn = 7 + ORIGIN_COUNT,
    /// Per-client route (HTTP endpoint) limit exceeded.
    RouteLimit = 8 + ORIGIN_COUNT,
}

/// Slots reserved per verdict in the counter table (room for later reasons
/// without changing the pinned map's size).
pub const REASON_SLOTS: u32 = 32;
/// Entries of the counter table.
pub const COUNTER_ENTRIES: u32 = VERDICT_COUNT * REASON_SLOTS;

/// The reason code for a blocklist match of the given origin.
#[inline(always)]
pub const fn block_reason(origin: u32) -> u32 {
    let o = if origin < ORIGIN_COUNT {
        origin
    } else {
        Origin::Manual as u32
    };
    Reason::BlockBase as u32 + o
}

/// Index of the (verdict, reason) counter; always in bounds.
#[inline(always)]
pub const fn counter_index(verdict: u32, reason: u32) -> u32 {
    let v = if verdict < VERDICT_COUNT { verdict } else { 0 };
    let r = if reason < REASON_SLOTS { reason } else { 0 };
    v * REASON_SLOTS + r
}

/// Stable name of a reason code for metrics and tables (`None` for unused slots).
pub const fn reason_name(reason: u32) -> Option<&'static str> {
    if reason >= Reason::BlockBase as u32 && reason < Reason::BlockBase as u32 + ORIGIN_COUNT {
        return match Origin::from_u32(reason - Reason::BlockBase as u32) {
            Some(Origin::Manual) => Some("blocklist_manual"),
            Some(Origin::Config) => Some("blocklist_config"),
            Some(Origin::Feed) => Some("blocklist_feed"),
            Some(Origin::Detector) => Some("blocklist_detector"),
            Some(Origin::Crowdsec) => Some("blocklist_crowdsec"),
            Some(Origin::Fleet) => Some("blocklist_fleet"),
            Some(Origin::External) => Some("blocklist_external"),
            None => None,
        };
    }
    match reason {
        0 => Some("not_listed"),
        1 => Some("allowlisted"),
        2 => Some("non_ip"),
        3 => Some("malformed"),
        4 => Some("unsupported"),
        5 => Some("expired_block"),
        r if r == Reason::RateLimitPackets as u32 => Some("ratelimit_packets"),
        r if r == Reason::RateLimitSyn as u32 => Some("ratelimit_syn"),
        r if r == Reason::RouteLimit as u32 => Some("route_limit"),
        _ => None,
    }
}

/// One counter slot: packets and bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counter {
    pub packets: u64,
    pub bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_stay_in_bounds() {
        for v in 0..10 {
            for r in 0..100 {
                assert!(counter_index(v, r) < COUNTER_ENTRIES);
            }
        }
        assert_eq!(counter_index(1, 6), REASON_SLOTS + 6);
    }

    #[test]
    fn every_origin_has_a_named_reason() {
        for o in Origin::ALL {
            let r = block_reason(o as u32);
            assert!(reason_name(r).unwrap().ends_with(o.name()));
        }
        assert_eq!(block_reason(99), Reason::BlockBase as u32);
        assert!((Reason::RouteLimit as u32) < REASON_SLOTS);
        assert_eq!(
            reason_name(Reason::RateLimitSyn as u32),
            Some("ratelimit_syn")
        );
        assert_eq!(reason_name(31), None);
    }
}
