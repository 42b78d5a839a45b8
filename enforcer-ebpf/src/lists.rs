//! Allow and block lookups: the block hash probed once per prefix length the
//! summary bucket announces, each probe guarded by the block filter.

use aya_ebpf::{
    cty::c_void,
    helpers::{bpf_ktime_get_coarse_ns, generated::bpf_loop},
    maps::Array,
};
use enforcer_common::{
    blocklist::{BlockEntry, PrefixKeyV4, PrefixKeyV6},
    prefix::{
        V4_FILTER_BITS_LOG2, V6_FILTER_BITS_LOG2, filter_slot, v4_bucket, v4_filter_hash,
        v6_bucket, v6_filter_hash,
    },
    time::is_expired,
};

use crate::maps::{
    BLOCK_V4, BLOCK_V4_FILTER, BLOCK_V4_SUMMARY, BLOCK_V6, BLOCK_V6_FILTER, BLOCK_V6_SUMMARY,
};

/// Result of a blocklist lookup.
#[derive(Clone, Copy)]
pub(crate) enum Block {
    /// No entry covers the source.
    None,
    /// Entries cover the source, but all have expired.
    Expired,
    /// A live entry covers the source; the longest one is reported.
    Hit(BlockEntry),
}

/// The clock expiries are compared with (see `enforcer_common::time`).
#[inline(always)]
pub(crate) fn now_ns() -> u64 {
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
pub(crate) fn block_v4(src: [u8; 4]) -> Block {
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
pub(crate) fn block_v6(src: &[u8; 16]) -> Block {
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
