//! Every map of the XDP program, in one place (userspace finds them by the
//! names in `enforcer_common::maps`).

use aya_ebpf::{
    bindings::BPF_F_NO_PREALLOC,
    macros::map,
    maps::{Array, HashMap, LpmTrie, LruHashMap, PerCpuArray, RingBuf},
};
use enforcer_common::{
    blocklist::{AllowEntry, BlockEntry, PrefixKeyV4, PrefixKeyV6},
    counters::{COUNTER_ENTRIES, Counter},
    http::STATUS_CLASSES,
    maps::{
        DEFAULT_ALLOW_ENTRIES, DEFAULT_BLOCK_V4_ENTRIES, DEFAULT_BLOCK_V6_ENTRIES,
        DEFAULT_RATE_STATE_ENTRIES, DEFAULT_RESP_STATE_ENTRIES,
    },
    prefix::{SUMMARY_BUCKETS, V4_FILTER_WORDS, V4LengthMask, V6_FILTER_WORDS, V6LengthMask},
    ratelimit::{EVENT_RING_BYTES, MAX_RATE_RULES, RateConfig, RateKey, RateRule, RateState},
    route::{HttpConfig, MAX_ROUTES, ROUTE_KEY_DATA, RespKey, RespState, RouteValue},
    stats::STAT_SLOTS,
};

use crate::{Unlisted, http::Scratch};

#[map]
pub(crate) static COUNTERS: PerCpuArray<Counter> =
    PerCpuArray::with_max_entries(COUNTER_ENTRIES, 0);

#[map]
pub(crate) static ALLOW_V4: LpmTrie<[u8; 4], AllowEntry> =
    LpmTrie::with_max_entries(DEFAULT_ALLOW_ENTRIES, BPF_F_NO_PREALLOC);

#[map]
pub(crate) static ALLOW_V6: LpmTrie<[u8; 16], AllowEntry> =
    LpmTrie::with_max_entries(DEFAULT_ALLOW_ENTRIES, BPF_F_NO_PREALLOC);

#[map]
pub(crate) static BLOCK_V4: HashMap<PrefixKeyV4, BlockEntry> =
    HashMap::with_max_entries(DEFAULT_BLOCK_V4_ENTRIES, BPF_F_NO_PREALLOC);

#[map]
pub(crate) static BLOCK_V6: HashMap<PrefixKeyV6, BlockEntry> =
    HashMap::with_max_entries(DEFAULT_BLOCK_V6_ENTRIES, BPF_F_NO_PREALLOC);

#[map]
pub(crate) static BLOCK_V4_SUMMARY: Array<V4LengthMask> =
    Array::with_max_entries(SUMMARY_BUCKETS, 0);

#[map]
pub(crate) static BLOCK_V6_SUMMARY: Array<V6LengthMask> =
    Array::with_max_entries(SUMMARY_BUCKETS, 0);

#[map]
pub(crate) static BLOCK_V4_FILTER: Array<u64> = Array::with_max_entries(V4_FILTER_WORDS, 0);

#[map]
pub(crate) static BLOCK_V6_FILTER: Array<u64> = Array::with_max_entries(V6_FILTER_WORDS, 0);

/// Rate-limit rules, double-buffered: the agent writes the half not in use,
/// then flips `RATE_CONFIG.active` in one store, so a packet sees either the
/// old rule set or the new one, never a mix.
#[map]
pub(crate) static RATE_RULES: Array<RateRule> = Array::with_max_entries(2 * MAX_RATE_RULES, 0);

#[map]
pub(crate) static RATE_CONFIG: Array<RateConfig> = Array::with_max_entries(1, 0);

/// Per (rule, source prefix) bucket state. LRU: a flood of new sources
/// evicts the least recently seen state instead of failing to insert.
#[map]
pub(crate) static RATE_STATE: LruHashMap<RateKey, RateState> =
    LruHashMap::with_max_entries(DEFAULT_RATE_STATE_ENTRIES, 0);

/// Events for the agent (offenders), at most one per key per interval.
#[map]
pub(crate) static EVENTS: RingBuf = RingBuf::with_byte_size(EVENT_RING_BYTES, 0);

/// Packets over each rule's limit (per slot of `RATE_RULES`), per CPU.
#[map]
pub(crate) static RATE_HITS: PerCpuArray<u64> =
    PerCpuArray::with_max_entries(2 * MAX_RATE_RULES, 0);

/// Per-CPU housekeeping counters (events lost, state keys created, ...).
#[map]
pub(crate) static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(STAT_SLOTS, 0);

/// HTTP ports, one bit per port (1024 words of 64).
#[map]
pub(crate) static HTTP_PORTS: Array<u64> = Array::with_max_entries(1024, 0);

#[map]
pub(crate) static HTTP_CONFIG: Array<HttpConfig> = Array::with_max_entries(1, 0);

/// Route tries, double-buffered like the rate rules: `HTTP_CONFIG.active`
/// says which one is live.
#[map]
pub(crate) static ROUTES0: LpmTrie<[u8; ROUTE_KEY_DATA], RouteValue> =
    LpmTrie::with_max_entries(MAX_ROUTES, BPF_F_NO_PREALLOC);

#[map]
pub(crate) static ROUTES1: LpmTrie<[u8; ROUTE_KEY_DATA], RouteValue> =
    LpmTrie::with_max_entries(MAX_ROUTES, BPF_F_NO_PREALLOC);

/// Requests matched, and over the limit, per route slot (live half by
/// generation), per CPU.
#[map]
pub(crate) static ROUTE_REQS: PerCpuArray<u64> = PerCpuArray::with_max_entries(2 * MAX_ROUTES, 0);

#[map]
pub(crate) static ROUTE_OVER: PerCpuArray<u64> = PerCpuArray::with_max_entries(2 * MAX_ROUTES, 0);

/// What the parsers found about the packet, for the later stages (a map,
/// not the stack: see the entry point).
#[map]
pub(crate) static UNLISTED: PerCpuArray<Unlisted> = PerCpuArray::with_max_entries(1, 0);

/// Working memory of the HTTP stage (too big for the 512-byte stack).
#[map]
pub(crate) static SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

/// Responses seen per status class (`http::STATUS_*`), per CPU.
#[map]
pub(crate) static RESP_COUNTS: PerCpuArray<u64> = PerCpuArray::with_max_entries(STATUS_CLASSES, 0);

/// Responses per (status class, client key) since the key's last report.
#[map]
pub(crate) static RESP_STATE: LruHashMap<RespKey, RespState> =
    LruHashMap::with_max_entries(DEFAULT_RESP_STATE_ENTRIES, 0);
