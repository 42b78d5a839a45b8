//! Per-source rate limits: rule layout, state layout, and the bucket
//! arithmetic, shared by the XDP program and the agent.
//!
//! A bucket is kept as GCRA's single "theoretical arrival time" (TAT): the
//! virtual-scheduling form of a token bucket, exactly equivalent to a bucket
//! of `burst` tokens refilled at `rate` per second, but one `u64` of state:
//! a reader can never see a half-updated bucket, and CPUs sharing a key need
//! no lock. All arithmetic is integer nanoseconds and saturating.

/// Most limit rules (limit × tier) the program evaluates per packet.
pub const MAX_RATE_RULES: u32 = 8;

/// Rule applies to every IP packet.
pub const KIND_PACKETS: u32 = 1;
/// Rule applies to new TCP connections (SYN without ACK).
pub const KIND_SYN: u32 = 2;

/// Rule flag: count and report, never drop.
pub const FLAG_MONITOR: u32 = 1;

/// One compiled rule: a limit at one prefix tier.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateRule {
    /// `KIND_PACKETS`, `KIND_SYN`, or 0 for an unused slot.
    pub kind: u32,
    pub flags: u32,
    /// Prefix length the key is masked to, per family.
    pub v4_len: u32,
    pub v6_len: u32,
    /// ns between tokens (1e9 / rate).
    pub interval_ns: u64,
    /// How far ahead of now the TAT may run: (burst - 1) × interval.
    pub tolerance_ns: u64,
}

/// Global rate-limit settings (slot 0 of the config array).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateConfig {
    /// Which half of the double-buffered rule array is live and how many
    /// rules it holds: `(half << 16) | count`, one word so a reader can never
    /// see the half of one generation with the count of another.
    pub active: u32,
    pub _pad: u32,
    /// A key reports to the agent at most once per this many ns.
    pub event_interval_ns: u64,
}

/// The `RateConfig::active` word for `count` rules in `half` (0 or 1).
pub const fn active_word(half: u32, count: u32) -> u32 {
    ((half & 1) << 16) | (count & 0xFFFF)
}

/// Key of the rate-limit state map: which rule, which prefix.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RateKey {
    pub rule: u32,
    /// 4 or 6.
    pub family: u32,
    /// Masked to the rule's prefix length (IPv4 in the first 4 bytes).
    pub addr: [u8; 16],
}

/// State of one key.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateState {
    /// GCRA theoretical arrival time, CLOCK_MONOTONIC ns.
    pub tat: u64,
    /// When this key last reported to the agent.
    pub last_event_ns: u64,
    /// Packets over the limit since the key last reported.
    pub drops: u64,
}

/// An event for the agent (ring buffer record).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LimitEvent {
    /// `EVENT_RATE_LIMIT`, ...
    pub kind: u32,
    pub rule: u32,
    pub family: u32,
    pub prefix_len: u32,
    pub addr: [u8; 16],
    /// Packets over the limit since the previous event for this key.
    pub drops: u64,
    pub ts_ns: u64,
}

/// A key went over a rate limit.
pub const EVENT_RATE_LIMIT: u32 = 1;

/// Bytes of ring buffer for events (a power of two, a multiple of the page size).
pub const EVENT_RING_BYTES: u32 = 1 << 20;

/// Converts a rate (per second) and burst to (interval_ns, tolerance_ns).
/// `rate` and `burst` of 0 are treated as 1.
pub const fn gcra_params(rate_per_sec: u64, burst: u64) -> (u64, u64) {
    let rate = if rate_per_sec == 0 { 1 } else { rate_per_sec };
    let burst = if burst == 0 { 1 } else { burst };
    let interval = 1_000_000_000 / rate;
    let interval = if interval == 0 { 1 } else { interval };
    (interval, interval.saturating_mul(burst - 1))
}

/// GCRA: whether a packet arriving at `now` conforms, and the new TAT if so.
/// A fresh key has `tat == 0`. A clock that went backwards (a CPU's coarse
/// clock behind another's) is treated as "no time passed", never as credit.
#[inline(always)]
pub const fn gcra(tat: u64, now: u64, interval: u64, tolerance: u64) -> Option<u64> {
    let base = if tat > now { tat } else { now };
    if base - now > tolerance {
        None
    } else {
        Some(base.saturating_add(interval))
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use proptest::prelude::*;
    use std::{vec, vec::Vec};

    use super::*;

    const SEC: u64 = 1_000_000_000;

    /// Sends packets at the given times; returns how many conformed.
    fn run(times: &[u64], rate: u64, burst: u64) -> usize {
        let (i, t) = gcra_params(rate, burst);
        let mut tat = 0;
        let mut ok = 0;
        for &now in times {
            if let Some(n) = gcra(tat, now, i, t) {
                tat = n;
                ok += 1;
            }
        }
        ok
    }

    #[test]
    fn burst_passes_then_the_next_packet_drops() {
        let now = 5 * SEC;
        assert_eq!(run(&[now; 10], 1, 3), 3);
        assert_eq!(run(&[now; 10], 100, 1), 1);
    }

    #[test]
    fn refills_at_the_rate() {
        // 10/s, burst 1: one packet every 100 ms passes, one every 50 ms half of them.
        let every_100ms: Vec<u64> = (1..=50).map(|i| SEC + i * 100_000_000).collect();
        assert_eq!(run(&every_100ms, 10, 1), 50);
        let every_50ms: Vec<u64> = (1..=100).map(|i| SEC + i * 50_000_000).collect();
        assert_eq!(run(&every_50ms, 10, 1), 50);
    }

    #[test]
    fn a_long_idle_period_refills_to_the_burst_only() {
        let mut times = vec![SEC; 5];
        times.extend([1000 * SEC; 10]);
        assert_eq!(run(&times, 1, 5), 10);
    }

    #[test]
    fn a_clock_going_backwards_gives_no_credit() {
        let (i, t) = gcra_params(1, 1);
        let tat = gcra(0, 10 * SEC, i, t).unwrap();
        assert_eq!(gcra(tat, 9 * SEC, i, t), None);
        assert_eq!(gcra(tat, 10 * SEC, i, t), None);
        assert!(gcra(tat, 11 * SEC, i, t).is_some());
    }

    #[test]
    fn extremes_do_not_overflow() {
        let (i, t) = gcra_params(u64::MAX, u64::MAX);
        assert_eq!(i, 1);
        assert!(gcra(0, u64::MAX, i, t).is_some());
        let (i, t) = gcra_params(0, 0);
        assert_eq!((i, t), (SEC, 0));
        assert_eq!(gcra(u64::MAX, 0, 1, u64::MAX), Some(u64::MAX));
        assert_eq!(gcra(u64::MAX - 1, u64::MAX, SEC, 0), Some(u64::MAX));
    }

    #[test]
    fn layouts_have_no_padding() {
        assert_eq!(core::mem::size_of::<RateRule>(), 32);
        assert_eq!(core::mem::size_of::<RateConfig>(), 16);
        assert_eq!(core::mem::size_of::<RateKey>(), 24);
        assert_eq!(core::mem::size_of::<RateState>(), 24);
        assert_eq!(core::mem::size_of::<LimitEvent>(), 48);
    }

    proptest! {
        /// Over any window, conforming packets never exceed burst + rate × time.
        #[test]
        fn never_more_than_burst_plus_rate_times_time(
            rate in 1u64..100_000,
            burst in 1u64..1000,
            gaps in proptest::collection::vec(0u64..20_000_000, 1..400),
        ) {
            let start = SEC;
            let mut now = start;
            let mut times = Vec::new();
            for g in gaps { now += g; times.push(now); }
            let elapsed = now - start;
            let ok = run(&times, rate, burst) as u128;
            let allowed = u128::from(burst) + u128::from(rate) * u128::from(elapsed) / u128::from(SEC) + 1;
            prop_assert!(ok <= allowed, "{ok} > {allowed}");
        }

        /// A sender that keeps to the rate is never limited.
        #[test]
        fn a_sender_at_the_rate_is_never_limited(rate in 1u64..10_000, burst in 1u64..100, n in 1usize..300) {
            let (i, _) = gcra_params(rate, burst);
            let times: Vec<u64> = (0..n as u64).map(|k| SEC + k * i).collect();
            prop_assert_eq!(run(&times, rate, burst), n);
        }

        /// The state never moves backwards.
        #[test]
        fn tat_is_monotone(tat in 0u64..u64::MAX / 2, now in 0u64..u64::MAX / 2, i in 1u64..SEC, t in 0u64..SEC) {
            if let Some(n) = gcra(tat, now, i, t) {
                prop_assert!(n >= tat && n > now.min(u64::MAX - 1) || n == u64::MAX);
            }
        }
    }
}
