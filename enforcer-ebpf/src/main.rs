//! enforcer's XDP program: allowlist, then blocklist, on every IPv4 and IPv6
//! packet, whatever its tags, options, extension headers or fragmentation.
//!
//! Flow: parse L2 → read the source address → allowlist (LPM trie) → blocklist
//! (summary-filtered exact-match probes per prefix length) → walk the remaining
//! headers → verdict. Every path returns an [`Outcome`] to the single exit in
//! [`enforcer`], which records it in the per-CPU counters.
#![no_std]
#![no_main]

mod limits;
mod lists;
mod maps;

use aya_ebpf::{bindings::xdp_action, macros::xdp, maps::lpm_trie::Key, programs::XdpContext};
use enforcer_common::counters::{Reason, Verdict, block_reason, counter_index};
use enforcer_ebpf::{
    headers::{ETH_P_IP, ETH_P_IPV6, IPPROTO_TCP, TCP_FLAGS_OFF},
    packet::Packet,
    parse::{L4, ParseError, parse_l2, v4_source, v4_transport, v6_source, v6_transport},
};

use crate::{
    lists::{Block, block_v4, block_v6},
    maps::{ALLOW_V4, ALLOW_V6, COUNTERS},
};

/// A verdict and the reason for it, as recorded at the exit.
#[derive(Clone, Copy)]
pub(crate) struct Outcome {
    pub(crate) verdict: Verdict,
    pub(crate) reason: u32,
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
        Flow::Limit(next) => limits::rate_limit(&next).unwrap_or_else(|| unlisted(next.block)),
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
pub(crate) struct Unlisted {
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
const fn unlisted(block: Block) -> Outcome {
    match block {
        Block::Expired => Outcome::pass(Reason::ExpiredBlock),
        _ => Outcome::pass(Reason::NotListed),
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
