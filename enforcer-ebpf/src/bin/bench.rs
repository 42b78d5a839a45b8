//! Reference programs for `cargo xtask bench`: the baselines enforcer's costs
//! are reported against, measured the same way in the same run, plus the
//! harness programs that vary packet sources and generate traffic.
//!
//! None of this is loaded by the agent.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::{BPF_F_NO_PREALLOC, xdp_action},
    macros::{map, xdp},
    maps::{Array, HashMap, LpmTrie, PerCpuArray, ProgramArray, lpm_trie::Key},
    programs::XdpContext,
};
use enforcer_ebpf::packet::Packet;

/// Offset of the IPv4 source in an untagged frame.
const V4_SRC: usize = 14 + 12;
/// Offset of the IPv6 source in an untagged frame.
const V6_SRC: usize = 14 + 8;

/// Source addresses to cycle through (IPv4 in the first 4 bytes).
#[map]
static SAMPLES: Array<[u8; 16]> = Array::with_max_entries(1 << 17, 0);
/// Number of samples minus one (a power of two minus one).
#[map]
static SAMPLE_MASK: Array<u32> = Array::with_max_entries(1, 0);
#[map]
static CURSOR: PerCpuArray<u32> = PerCpuArray::with_max_entries(1, 0);
/// The program under test, tail-called after the source is rewritten.
#[map]
static TARGET: ProgramArray = ProgramArray::with_max_entries(1, 0);

/// Preallocated (the kernel's default, and the faster lookup).
#[map]
static HASH_V4: HashMap<[u8; 4], u32> = HashMap::with_max_entries(1 << 20, 0);
/// Allocated per element, as enforcer's block maps are (memory follows use).
#[map]
static HASH_V4_NP: HashMap<[u8; 4], u32> = HashMap::with_max_entries(1 << 20, BPF_F_NO_PREALLOC);
#[map]
static LPM_V4: LpmTrie<[u8; 4], u32> = LpmTrie::with_max_entries(1 << 20, BPF_F_NO_PREALLOC);
#[map]
static HASH_V6: HashMap<[u8; 16], u32> = HashMap::with_max_entries(1 << 17, BPF_F_NO_PREALLOC);
#[map]
static LPM_V6: LpmTrie<[u8; 16], u32> = LpmTrie::with_max_entries(1 << 17, BPF_F_NO_PREALLOC);

/// The floor: a program that does nothing.
#[xdp]
pub fn bench_pass(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

/// The drop ceiling on a veth.
#[xdp]
pub fn bench_drop(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_DROP
}

#[inline(always)]
fn pkt(ctx: &XdpContext) -> Packet {
    Packet::new(ctx.data(), ctx.data_end())
}

/// One exact-match hash lookup of the IPv4 source.
#[xdp]
pub fn bench_hash_v4(ctx: XdpContext) -> u32 {
    let Some(src) = pkt(&ctx).load::<[u8; 4]>(V4_SRC) else {
        return xdp_action::XDP_PASS;
    };
    // SAFETY: a value copy of a never-reused (non-preallocated) element.
    if unsafe { HASH_V4.get(src) }.is_some() {
        xdp_action::XDP_DROP
    } else {
        xdp_action::XDP_PASS
    }
}

/// One exact-match lookup of the IPv4 source in a non-preallocated hash.
#[xdp]
pub fn bench_hashnp_v4(ctx: XdpContext) -> u32 {
    let Some(src) = pkt(&ctx).load::<[u8; 4]>(V4_SRC) else {
        return xdp_action::XDP_PASS;
    };
    // SAFETY: as above.
    if unsafe { HASH_V4_NP.get(src) }.is_some() {
        xdp_action::XDP_DROP
    } else {
        xdp_action::XDP_PASS
    }
}

/// One kernel LPM-trie lookup of the IPv4 source.
#[xdp]
pub fn bench_lpm_v4(ctx: XdpContext) -> u32 {
    let Some(src) = pkt(&ctx).load::<[u8; 4]>(V4_SRC) else {
        return xdp_action::XDP_PASS;
    };
    if LPM_V4.get(Key::new(32, src)).is_some() {
        xdp_action::XDP_DROP
    } else {
        xdp_action::XDP_PASS
    }
}

/// One exact-match hash lookup of the IPv6 source.
#[xdp]
pub fn bench_hash_v6(ctx: XdpContext) -> u32 {
    let Some(src) = pkt(&ctx).load::<[u8; 16]>(V6_SRC) else {
        return xdp_action::XDP_PASS;
    };
    // SAFETY: as above.
    if unsafe { HASH_V6.get(src) }.is_some() {
        xdp_action::XDP_DROP
    } else {
        xdp_action::XDP_PASS
    }
}

/// One kernel LPM-trie lookup of the IPv6 source.
#[xdp]
pub fn bench_lpm_v6(ctx: XdpContext) -> u32 {
    let Some(src) = pkt(&ctx).load::<[u8; 16]>(V6_SRC) else {
        return xdp_action::XDP_PASS;
    };
    if LPM_V6.get(Key::new(128, src)).is_some() {
        xdp_action::XDP_DROP
    } else {
        xdp_action::XDP_PASS
    }
}

/// Writes the next sample address over the source at `off`, `len` bytes.
#[inline(always)]
fn rewrite_source(ctx: &XdpContext, off: usize, len: usize) -> bool {
    let Some(cursor) = CURSOR.get_ptr_mut(0) else {
        return false;
    };
    let Some(mask) = SAMPLE_MASK.get(0) else {
        return false;
    };
    // SAFETY: per-CPU slot, this CPU only.
    let i = unsafe {
        let i = *cursor;
        *cursor = i.wrapping_add(1);
        i
    };
    let Some(sample) = SAMPLES.get(i & *mask) else {
        return false;
    };
    let start = ctx.data();
    let end = ctx.data_end();
    if start + off + 16 > end {
        return false;
    }
    let dst = (start + off) as *mut u8;
    // SAFETY: bounds checked above (16 bytes ≥ len for both families).
    unsafe {
        if len == 4 {
            core::ptr::copy_nonoverlapping(sample.as_ptr(), dst, 4);
        } else {
            core::ptr::copy_nonoverlapping(sample.as_ptr(), dst, 16);
        }
    }
    true
}

/// Rewrites the IPv4 source, then tail-calls the program under test.
#[xdp]
pub fn bench_vary_v4(ctx: XdpContext) -> u32 {
    if !rewrite_source(&ctx, V4_SRC, 4) {
        return xdp_action::XDP_ABORTED;
    }
    // SAFETY: TARGET holds an XDP program or nothing; on failure we fall through.
    unsafe {
        TARGET.tail_call(&ctx, 0);
    }
    xdp_action::XDP_ABORTED
}

/// Rewrites the IPv6 source, then tail-calls the program under test.
#[xdp]
pub fn bench_vary_v6(ctx: XdpContext) -> u32 {
    if !rewrite_source(&ctx, V6_SRC, 16) {
        return xdp_action::XDP_ABORTED;
    }
    // SAFETY: as above.
    unsafe {
        TARGET.tail_call(&ctx, 0);
    }
    xdp_action::XDP_ABORTED
}

/// Traffic generator for BPF_F_TEST_XDP_LIVE_FRAMES: rewrite the IPv4 source
/// and transmit out of the veth the test run is bound to.
#[xdp]
pub fn bench_gen_v4(ctx: XdpContext) -> u32 {
    if rewrite_source(&ctx, V4_SRC, 4) {
        xdp_action::XDP_TX
    } else {
        xdp_action::XDP_ABORTED
    }
}

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
