//! Per-source rate limits: GCRA buckets per (rule, masked source), rules
//! walked under `bpf_loop`, offenders reported through the ring buffer.

use aya_ebpf::{cty::c_void, helpers::generated::bpf_loop};
use enforcer_common::{
    counters::{Reason, Verdict},
    prefix::mask_v6,
    ratelimit::{
        EVENT_RATE_LIMIT, FLAG_MONITOR, KIND_PACKETS, KIND_SYN, LimitEvent, MAX_RATE_RULES,
        RateKey, RateState, gcra,
    },
    stats::{STAT_EVENTS_LOST, STAT_EVENTS_SENT, STAT_RATE_KEYS_CREATED},
};

use crate::{
    Outcome, Unlisted,
    lists::now_ns,
    maps::{EVENTS, RATE_CONFIG, RATE_HITS, RATE_RULES, RATE_STATE, STATS},
};

#[inline(always)]
pub(crate) fn stat_add(slot: u32, n: u64) {
    if let Some(c) = STATS.get_ptr_mut(slot) {
        // SAFETY: a per-CPU slot, this CPU only.
        unsafe { *c += n };
    }
}

/// State of a rate-limit pass, shared with the `bpf_loop` callback.
#[repr(C)]
struct LimitWalk {
    src: [u8; 16],
    family: u32,
    syn: u32,
    /// Rules in the live half, and where that half starts.
    count: u32,
    base: u32,
    now: u64,
    event_interval: u64,
    /// 0 = none over; else the reason of the first enforcing rule over its
    /// limit (`dropped` = 1) or of a monitoring rule over (`dropped` = 0).
    reason: u32,
    dropped: u32,
}

/// Evaluates every rate-limit rule that applies. `None` when all passed (or
/// there are no rules); a drop at the first enforcing rule over its limit;
/// `Monitor` when only rules in monitor mode were over.
///
/// Verifier workaround: the rule loop runs under `bpf_loop`, whose callback
/// is verified once; unrolled, eight branchy rule evaluations on top of the
/// parsers and list lookups approach the verifier's instruction budget.
/// Not inlined either, for a stack frame of its own.
#[inline(never)]
pub(crate) fn rate_limit(u: &Unlisted) -> Option<Outcome> {
    let cfg = RATE_CONFIG.get(0)?;
    let active = cfg.active;
    let count = active & 0xFFFF;
    if count == 0 {
        return None;
    }
    let mut walk = LimitWalk {
        src: u.src,
        family: u.family,
        syn: u32::from(u.syn),
        count,
        base: if active >> 16 == 0 { 0 } else { MAX_RATE_RULES },
        now: now_ns(),
        event_interval: cfg.event_interval_ns,
        reason: 0,
        dropped: 0,
    };
    // SAFETY: the callback only dereferences `ctx` as the `LimitWalk` passed
    // here, which lives on this stack frame for the whole call.
    unsafe {
        bpf_loop(
            MAX_RATE_RULES,
            limit_step as *mut c_void,
            (&raw mut walk).cast(),
            0,
        );
    }
    match (walk.reason, walk.dropped) {
        (0, _) => None,
        (reason, 1) => Some(Outcome::new(Verdict::Drop, reason)),
        (reason, _) => Some(Outcome::new(Verdict::Monitor, reason)),
    }
}

/// One rule of [`rate_limit`]. Returns 1 to stop (rules exhausted or a drop).
#[inline(never)]
extern "C" fn limit_step(index: u64, ctx: *mut c_void) -> i64 {
    // SAFETY: `ctx` is the `LimitWalk` that `rate_limit` passed to `bpf_loop`.
    let w = unsafe { &mut *ctx.cast::<LimitWalk>() };
    let i = index as u32;
    if i >= w.count || i >= MAX_RATE_RULES {
        return 1;
    }
    let Some(rule) = RATE_RULES.get(w.base + i) else {
        return 1;
    };
    let applies = rule.kind == KIND_PACKETS || (rule.kind == KIND_SYN && w.syn != 0);
    if !applies {
        return 0;
    }
    let len = if w.family == 4 {
        rule.v4_len
    } else {
        rule.v6_len
    };
    // An IPv4 source sits in the first 4 bytes with zeros after, so masking
    // it as 128 bits to a length of at most 32 is the IPv4 mask.
    let key = RateKey {
        rule: i,
        family: w.family,
        addr: mask_v6(&w.src, len),
    };
    if conforms(&key, rule.interval_ns, rule.tolerance_ns, w.now) {
        return 0;
    }
    let reason = if rule.kind == KIND_SYN {
        Reason::RateLimitSyn as u32
    } else {
        Reason::RateLimitPackets as u32
    };
    if let Some(h) = RATE_HITS.get_ptr_mut(w.base + i) {
        // SAFETY: a per-CPU slot, this CPU only.
        unsafe { *h += 1 };
    }
    report(&key, len, w.now, w.event_interval);
    if rule.flags & FLAG_MONITOR != 0 {
        if w.reason == 0 {
            w.reason = reason;
        }
        return 0;
    }
    w.reason = reason;
    w.dropped = 1;
    1
}

/// Takes a token from `key`'s bucket if it has one.
#[inline(always)]
pub(crate) fn conforms(key: &RateKey, interval_ns: u64, tolerance_ns: u64, now: u64) -> bool {
    let Some(state) = RATE_STATE.get_ptr_mut(key) else {
        // First packet of this key: it conforms (a full bucket), and state
        // starts with its token taken.
        let fresh = RateState {
            tat: gcra(0, now, interval_ns, tolerance_ns).unwrap_or(now),
            last_event_ns: 0,
            drops: 0,
        };
        let _ = RATE_STATE.insert(key, &fresh, 0);
        stat_add(STAT_RATE_KEYS_CREATED, 1);
        return true;
    };
    // The bucket is one word, read and written without a lock: the BPF
    // target has no compare-and-swap in Rust (atomic-cas is off), and a lock
    // would cost more than the race. Two CPUs updating one key within the
    // same few nanoseconds may both take the same token (a slight
    // over-admission, measured in BENCHMARKS.md); a torn value is impossible
    // (aligned 8-byte accesses).
    // SAFETY: `state` points into a live map value for this program run.
    let tat = unsafe { core::ptr::read_volatile(&raw const (*state).tat) };
    match gcra(tat, now, interval_ns, tolerance_ns) {
        Some(new) => {
            // SAFETY: as above.
            unsafe { core::ptr::write_volatile(&raw mut (*state).tat, new) };
            true
        }
        None => false,
    }
}

/// Counts a packet over the limit, and tells the agent about the key at most
/// once per `interval` (so a flood cannot flood the agent).
#[inline(always)]
pub(crate) fn report(key: &RateKey, prefix_len: u32, now: u64, interval: u64) {
    let Some(state) = RATE_STATE.get_ptr_mut(key) else {
        return;
    };
    // SAFETY: as in `conforms`; `drops` and `last_event_ns` are best-effort
    // counters (a rare lost update only delays or merges a report).
    let (drops, last) = unsafe {
        (*state).drops += 1;
        ((*state).drops, (*state).last_event_ns)
    };
    if now.saturating_sub(last) < interval && last != 0 {
        return;
    }
    // SAFETY: as above.
    unsafe {
        (*state).last_event_ns = now;
        (*state).drops = 0;
    }
    if let Some(mut e) = EVENTS.reserve::<LimitEvent>(0) {
        e.write(LimitEvent {
            kind: EVENT_RATE_LIMIT,
            rule: key.rule,
            family: key.family,
            prefix_len,
            addr: key.addr,
            drops,
            ts_ns: now,
        });
        e.submit(0);
        stat_add(STAT_EVENTS_SENT, 1);
    } else {
        stat_add(STAT_EVENTS_LOST, 1);
    }
}
