//! enforcer's XDP program: allowlist, then blocklist, on every IPv4 and IPv6
//! packet, whatever its tags, options, extension headers or fragmentation.
//!
//! Flow: parse L2 → read the source address → allowlist (LPM trie) → blocklist
//! (summary-filtered exact-match probes per prefix length) → walk the remaining
//! headers → verdict. Every path returns an [`Outcome`] to the single exit in
//! [`enforcer`], which records it in the per-CPU counters.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::{BPF_F_NO_PREALLOC, xdp_action},
    cty::c_void,
    helpers::{bpf_ktime_get_coarse_ns, generated::bpf_loop},
    macros::{map, xdp},
    maps::{Array, HashMap, LpmTrie, LruHashMap, PerCpuArray, RingBuf, lpm_trie::Key},
    programs::XdpContext,
};
use enforcer_common::{
    blocklist::{AllowEntry, BlockEntry, PrefixKeyV4, PrefixKeyV6},
    counters::{COUNTER_ENTRIES, Counter, Reason, Verdict, block_reason, counter_index},
    maps::{
        DEFAULT_ALLOW_ENTRIES, DEFAULT_BLOCK_V4_ENTRIES, DEFAULT_BLOCK_V6_ENTRIES,
        DEFAULT_RATE_STATE_ENTRIES,
    },
    prefix::{
        SUMMARY_BUCKETS, V4_FILTER_BITS_LOG2, V4_FILTER_WORDS, V4LengthMask, V6_FILTER_BITS_LOG2,
        V6_FILTER_WORDS, V6LengthMask, filter_slot, mask_v6, v4_bucket, v4_filter_hash, v6_bucket,
        v6_filter_hash,
    },
    ratelimit::{
        EVENT_RATE_LIMIT, EVENT_RING_BYTES, FLAG_MONITOR, KIND_PACKETS, KIND_SYN, LimitEvent,
        MAX_RATE_RULES, RateConfig, RateKey, RateRule, RateState, gcra,
    },
    stats::{STAT_EVENTS_LOST, STAT_EVENTS_SENT, STAT_RATE_KEYS_CREATED, STAT_SLOTS},
    time::is_expired,
};
use enforcer_ebpf::{
    headers::{ETH_P_IP, ETH_P_IPV6, IPPROTO_TCP, TCP_FLAGS_OFF},
    packet::Packet,
    parse::{L4, ParseError, parse_l2, v4_source, v4_transport, v6_source, v6_transport},
};

#[map]
static COUNTERS: PerCpuArray<Counter> = PerCpuArray::with_max_entries(COUNTER_ENTRIES, 0);

#[map]
static ALLOW_V4: LpmTrie<[u8; 4], AllowEntry> =
    LpmTrie::with_max_entries(DEFAULT_ALLOW_ENTRIES, BPF_F_NO_PREALLOC);

#[map]
static ALLOW_V6: LpmTrie<[u8; 16], AllowEntry> =
    LpmTrie::with_max_entries(DEFAULT_ALLOW_ENTRIES, BPF_F_NO_PREALLOC);

#[map]
static BLOCK_V4: HashMap<PrefixKeyV4, BlockEntry> =
    HashMap::with_max_entries(DEFAULT_BLOCK_V4_ENTRIES, BPF_F_NO_PREALLOC);

#[map]
static BLOCK_V6: HashMap<PrefixKeyV6, BlockEntry> =
    HashMap::with_max_entries(DEFAULT_BLOCK_V6_ENTRIES, BPF_F_NO_PREALLOC);

#[map]
static BLOCK_V4_SUMMARY: Array<V4LengthMask> = Array::with_max_entries(SUMMARY_BUCKETS, 0);

#[map]
static BLOCK_V6_SUMMARY: Array<V6LengthMask> = Array::with_max_entries(SUMMARY_BUCKETS, 0);

#[map]
static BLOCK_V4_FILTER: Array<u64> = Array::with_max_entries(V4_FILTER_WORDS, 0);

#[map]
static BLOCK_V6_FILTER: Array<u64> = Array::with_max_entries(V6_FILTER_WORDS, 0);

/// Rate-limit rules, double-buffered: the agent writes the half not in use,
/// then flips `RATE_CONFIG.active` in one store, so a packet sees either the
/// old rule set or the new one, never a mix.
#[map]
static RATE_RULES: Array<RateRule> = Array::with_max_entries(2 * MAX_RATE_RULES, 0);

#[map]
static RATE_CONFIG: Array<RateConfig> = Array::with_max_entries(1, 0);

/// Per (rule, source prefix) bucket state. LRU: a flood of new sources
/// evicts the least recently seen state instead of failing to insert.
#[map]
static RATE_STATE: LruHashMap<RateKey, RateState> =
    LruHashMap::with_max_entries(DEFAULT_RATE_STATE_ENTRIES, 0);

/// Events for the agent (offenders), at most one per key per interval.
#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(EVENT_RING_BYTES, 0);

/// Packets over each rule's limit (per slot of `RATE_RULES`), per CPU.
#[map]
static RATE_HITS: PerCpuArray<u64> = PerCpuArray::with_max_entries(2 * MAX_RATE_RULES, 0);

/// Per-CPU housekeeping counters (events lost, state keys created, ...).
#[map]
static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(STAT_SLOTS, 0);

/// A verdict and the reason for it, as recorded at the exit.
#[derive(Clone, Copy)]
struct Outcome {
    verdict: Verdict,
    reason: u32,
}

impl Outcome {
    #[inline(always)]
    const fn pass(reason: Reason) -> Self {
        Self {
            verdict: Verdict::Pass,
            reason: reason as u32,
        }
    }

    #[inline(always)]
    const fn from_parse_error(e: ParseError) -> Self {
        match e {
            ParseError::Malformed => Self::pass(Reason::Malformed),
            ParseError::Unsupported => Self::pass(Reason::Unsupported),
        }
    }
}

/// Result of a blocklist lookup.
#[derive(Clone, Copy)]
enum Block {
    /// No entry covers the source.
    None,
    /// Entries cover the source, but all have expired.
    Expired,
    /// A live entry covers the source; the longest one is reported.
    Hit(BlockEntry),
}

#[xdp]
pub fn enforcer(ctx: XdpContext) -> u32 {
    let pkt = Packet::new(ctx.data(), ctx.data_end());
    let outcome = decide(&pkt);
    // The single exit: every packet is counted here, by verdict and reason.
    let idx = counter_index(outcome.verdict as u32, outcome.reason);
    if let Some(c) = COUNTERS.get_ptr_mut(idx) {
        // SAFETY: a per-CPU slot, written only by this CPU with preemption off.
        unsafe {
            (*c).packets += 1;
            (*c).bytes += pkt.len() as u64;
        }
    }
    match outcome.verdict {
        Verdict::Pass | Verdict::Monitor => xdp_action::XDP_PASS,
        Verdict::Drop => xdp_action::XDP_DROP,
        Verdict::Reject => xdp_action::XDP_TX,
    }
}

#[inline(always)]
fn decide(pkt: &Packet) -> Outcome {
    let l2 = match parse_l2(pkt) {
        Ok(l2) => l2,
        Err(e) => return Outcome::from_parse_error(e),
    };
    let flow = match l2.ethertype {
        ETH_P_IP => decide_v4(pkt, l2.l3_off),
        ETH_P_IPV6 => decide_v6(pkt, l2.l3_off),
        _ => return Outcome::pass(Reason::NonIp),
    };
    // One call site for both families keeps the verifier's work in check.
    match flow {
        Flow::Done(o) => o,
        Flow::Limit(next) => rate_limit(&next).unwrap_or_else(|| unlisted(next.block)),
    }
}

/// Where a packet goes after the family-specific stages.
enum Flow {
    /// Decided.
    Done(Outcome),
    /// Neither allowed nor blocked: on to the rate limits.
    Limit(Unlisted),
}

/// A packet the lists did not decide.
#[derive(Clone, Copy)]
struct Unlisted {
    /// 4 or 6.
    family: u32,
    /// Source address (IPv4 in the first 4 bytes, the rest zero).
    src: [u8; 16],
    /// A TCP SYN without ACK.
    syn: bool,
    block: Block,
}

#[inline(always)]
fn decide_v4(pkt: &Packet, l3: usize) -> Flow {
    let src = match v4_source(pkt, l3) {
        Ok(s) => s,
        Err(e) => return Flow::Done(Outcome::from_parse_error(e)),
    };
    if ALLOW_V4.get(Key::new(32, src)).is_some() {
        return Flow::Done(Outcome::pass(Reason::Allowlisted));
    }
    let block = block_v4(src);
    if let Block::Hit(e) = block {
        return Flow::Done(Outcome {
            verdict: Verdict::Drop,
            reason: block_reason(e.origin),
        });
    }
    let l4 = match v4_transport(pkt, l3) {
        Ok(l4) => l4,
        Err(e) => return Flow::Done(Outcome::from_parse_error(e)),
    };
    let mut src16 = [0u8; 16];
    src16[0] = src[0];
    src16[1] = src[1];
    src16[2] = src[2];
    src16[3] = src[3];
    Flow::Limit(Unlisted {
        family: 4,
        src: src16,
        syn: is_syn(pkt, &l4),
        block,
    })
}

#[inline(always)]
fn decide_v6(pkt: &Packet, l3: usize) -> Flow {
    let src = match v6_source(pkt, l3) {
        Ok(s) => s,
        Err(e) => return Flow::Done(Outcome::from_parse_error(e)),
    };
    if ALLOW_V6.get(Key::new(128, src)).is_some() {
        return Flow::Done(Outcome::pass(Reason::Allowlisted));
    }
    let block = block_v6(&src);
    if let Block::Hit(e) = block {
        return Flow::Done(Outcome {
            verdict: Verdict::Drop,
            reason: block_reason(e.origin),
        });
    }
    let l4 = match v6_transport(pkt, l3) {
        Ok(l4) => l4,
        Err(e) => return Flow::Done(Outcome::from_parse_error(e)),
    };
    Flow::Limit(Unlisted {
        family: 6,
        src,
        syn: is_syn(pkt, &l4),
        block,
    })
}

/// A TCP segment opening a connection: SYN set, ACK clear.
#[inline(always)]
fn is_syn(pkt: &Packet, l4: &L4) -> bool {
    const SYN: u8 = 0x02;
    const ACK: u8 = 0x10;
    if !l4.has_header || l4.proto != IPPROTO_TCP {
        return false;
    }
    // Verifier workaround: a 1-byte read compiles to `ptr >= end`, from which
    // the verifier learns no range for a variable offset; read the data-offset
    // and flags bytes together (the header was checked to be complete).
    pkt.load::<[u8; 2]>(l4.off + TCP_FLAGS_OFF - 1)
        .is_some_and(|b| b[1] & (SYN | ACK) == SYN)
}

#[inline(always)]
fn stat_add(slot: u32, n: u64) {
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
#[inline(always)]
fn rate_limit(u: &Unlisted) -> Option<Outcome> {
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
        (reason, 1) => Some(Outcome {
            verdict: Verdict::Drop,
            reason,
        }),
        (reason, _) => Some(Outcome {
            verdict: Verdict::Monitor,
            reason,
        }),
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
    if conforms(&key, rule, w.now) {
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
fn conforms(key: &RateKey, rule: &RateRule, now: u64) -> bool {
    let Some(state) = RATE_STATE.get_ptr_mut(key) else {
        // First packet of this key: it conforms (a full bucket), and state
        // starts with its token taken.
        let fresh = RateState {
            tat: gcra(0, now, rule.interval_ns, rule.tolerance_ns).unwrap_or(now),
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
    match gcra(tat, now, rule.interval_ns, rule.tolerance_ns) {
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
fn report(key: &RateKey, prefix_len: u32, now: u64, interval: u64) {
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

#[inline(always)]
const fn unlisted(block: Block) -> Outcome {
    match block {
        Block::Expired => Outcome::pass(Reason::ExpiredBlock),
        _ => Outcome::pass(Reason::NotListed),
    }
}

/// The clock expiries are compared with (see `enforcer_common::time`).
#[inline(always)]
fn now_ns() -> u64 {
    // SAFETY: a helper without arguments or side effects.
    unsafe { bpf_ktime_get_coarse_ns() }
}

/// False when the block filter proves no entry hashes to `hash` (so the block
/// map need not be probed); true when one might.
#[inline(always)]
fn may_hold(filter: &Array<u64>, hash: u32, bits_log2: u32) -> bool {
    let (word, bit) = filter_slot(hash, bits_log2);
    filter.get(word).is_none_or(|w| w & (1u64 << bit) != 0)
}

/// Probes the IPv4 block map once per prefix length present in the source's
/// summary bucket, longest first.
#[inline(always)]
fn block_v4(src: [u8; 4]) -> Block {
    let Some(mask) = BLOCK_V4_SUMMARY.get(v4_bucket(src)) else {
        return Block::None;
    };
    let mut mask = *mask;
    let mut result = Block::None;
    // Bounded: at most one probe per length 0..=32.
    for _ in 0..33 {
        if mask == 0 {
            break;
        }
        let len = 63 - mask.leading_zeros();
        mask &= !(1u64 << len);
        let key = PrefixKeyV4::new(src, len);
        if !may_hold(
            &BLOCK_V4_FILTER,
            v4_filter_hash(key.addr, len),
            V4_FILTER_BITS_LOG2,
        ) {
            continue;
        }
        if let Some(e) = BLOCK_V4.get_ptr(&key) {
            // SAFETY: the map is not preallocated (BPF_F_NO_PREALLOC), so an
            // element stays valid under RCU for the duration of this program.
            let e = unsafe { *e };
            if is_expired(e.expires_ns, now_ns()) {
                result = Block::Expired;
            } else {
                return Block::Hit(e);
            }
        }
    }
    result
}

/// State of an IPv6 blocklist walk, shared with the `bpf_loop` callback.
#[repr(C)]
struct V6Walk {
    src: [u8; 16],
    // Verifier workaround: the words are shifted through `word2` rather than
    // indexed by `word`. Indexing compiles to a variable stack offset whose
    // bound the verifier loses across a 32/64-bit register copy
    // ("invalid unbounded variable-offset read from stack").
    word0: u64,
    word1: u64,
    word2: u64,
    /// Bits of the word being walked not yet probed (bit b = length 64*word + b).
    bits: u64,
    /// Index of the word in `bits` once loaded; starts at 3 (none loaded) and counts down.
    word: u32,
    /// 0 = no match yet, 1 = only expired matches, 2 = live match in `entry`.
    found: u32,
    entry: BlockEntry,
}

const V6_NONE: u32 = 0;
const V6_EXPIRED: u32 = 1;
const V6_HIT: u32 = 2;
/// Steps of the IPv6 walk: one probe per length 0..=128 plus one per word.
const V6_WALK_STEPS: u32 = 129 + 3;
/// Steps run inline before handing the rest of the walk to `bpf_loop`: enough
/// for buckets holding up to four prefix lengths spread over the three words.
/// Verifier workaround: many more inline steps (each a branchy probe) exceed
/// the verifier's instruction budget.
const V6_INLINE_STEPS: u32 = 7;

/// Probes the IPv6 block map once per prefix length present in the source's
/// summary bucket, longest first.
///
/// Verifier workaround: up to 129 probes unrolled with their branches exceed
/// the verifier's 1M-instruction budget, so the walk runs under `bpf_loop`,
/// whose callback is verified once (and which the kernel inlines into a plain
/// loop since 6.0).
#[inline(always)]
fn block_v6(src: &[u8; 16]) -> Block {
    let Some(mask) = BLOCK_V6_SUMMARY.get(v6_bucket(src)) else {
        return Block::None;
    };
    if mask.is_empty() {
        return Block::None;
    }
    let mut walk = V6Walk {
        src: *src,
        word0: mask.words[0],
        word1: mask.words[1],
        word2: mask.words[2],
        bits: 0,
        word: 3,
        found: V6_NONE,
        entry: BlockEntry::default(),
    };
    // The common case (a few lengths in the bucket) runs inline; only a bucket
    // with many lengths pays for the `bpf_loop` calls.
    let mut done = false;
    for _ in 0..V6_INLINE_STEPS {
        if v6_step(&mut walk) != 0 {
            done = true;
            break;
        }
    }
    if !done {
        // SAFETY: the callback only dereferences `ctx` as the `V6Walk` passed
        // here, which lives on this stack frame for the whole call.
        unsafe {
            bpf_loop(
                V6_WALK_STEPS,
                v6_walk_step as *mut c_void,
                (&raw mut walk).cast(),
                0,
            );
        }
    }
    match walk.found {
        V6_HIT => Block::Hit(walk.entry),
        V6_EXPIRED => Block::Expired,
        _ => Block::None,
    }
}

/// `bpf_loop` callback: one [`v6_step`].
#[inline(never)]
extern "C" fn v6_walk_step(_index: u64, ctx: *mut c_void) -> i64 {
    // SAFETY: `ctx` is the `V6Walk` that `block_v6` passed to `bpf_loop`.
    v6_step(unsafe { &mut *ctx.cast::<V6Walk>() })
}

/// One step of [`block_v6`]: load the next word, or probe the longest length
/// left in the current one. Returns 1 when the walk is over.
#[inline(always)]
fn v6_step(walk: &mut V6Walk) -> i64 {
    if walk.bits == 0 {
        if walk.word == 0 {
            return 1;
        }
        // Shift the next word in (2, then 1, then 0): no indexing, see `V6Walk`.
        walk.bits = walk.word2;
        walk.word2 = walk.word1;
        walk.word1 = walk.word0;
        walk.word0 = 0;
        walk.word -= 1;
        return 0;
    }
    let bit = 63 - walk.bits.leading_zeros();
    walk.bits &= !(1u64 << (bit & 63));
    let len = (walk.word & 3) * 64 + bit;
    let key = PrefixKeyV6::new(&walk.src, len);
    if !may_hold(
        &BLOCK_V6_FILTER,
        v6_filter_hash(&key.addr, len),
        V6_FILTER_BITS_LOG2,
    ) {
        return 0;
    }
    if let Some(e) = BLOCK_V6.get_ptr(&key) {
        // SAFETY: as in `block_v4`.
        let e = unsafe { *e };
        if is_expired(e.expires_ns, now_ns()) {
            walk.found = V6_EXPIRED;
        } else {
            walk.found = V6_HIT;
            walk.entry = e;
            return 1;
        }
    }
    0
}

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
