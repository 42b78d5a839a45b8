//! enforcer's XDP program: allowlist, then blocklist, on every IPv4 and IPv6
//! packet, whatever its tags, options, extension headers or fragmentation.
//!
//! Flow: parse L2 → read the source address → allowlist (LPM trie) → blocklist
//! (summary-filtered exact-match probes per prefix length) → walk the remaining
//! headers → verdict. Every path returns an [`Outcome`] to the single exit in
//! [`enforcer`], which records it in the per-CPU counters.
#![no_std]
#![no_main]

mod http;
mod limits;
mod lists;
mod maps;
mod reject;
mod responses;

use aya_ebpf::{bindings::xdp_action, macros::xdp, maps::lpm_trie::Key, programs::XdpContext};
use enforcer_common::counters::{Reason, Verdict, block_reason, counter_index};
use enforcer_ebpf::{
    headers::{ETH_P_IP, ETH_P_IPV6, IPPROTO_TCP, TCP_FLAGS_OFF},
    packet::Packet,
    parse::{L4, ParseError, parse_l2, v4_source, v4_transport, v6_source, v6_transport},
};

use crate::{
    lists::{Block, block_v4, block_v6},
    maps::{ALLOW_V4, ALLOW_V6, COUNTERS, UNLISTED},
};

/// A verdict and the reason for it, as recorded at the exit.
#[derive(Clone, Copy)]
pub(crate) struct Outcome {
    pub(crate) verdict: Verdict,
    pub(crate) reason: u32,
}

impl Outcome {
    #[inline(always)]
    pub(crate) const fn new(verdict: Verdict, reason: u32) -> Self {
        Self { verdict, reason }
    }

    #[inline(always)]
    const fn pass(reason: Reason) -> Self {
        Self::new(Verdict::Pass, reason as u32)
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
    let len = pkt.len() as u64;
    // Verifier workarounds: the stages run one after the other from here,
    // each in its own frame (`classify`, `rate_limit`, `stage` and
    // `build_rst` are not inlined), so their stacks never add up past the
    // 512-byte limit; and what `classify` found goes to the later stages
    // through a per-CPU map, not the stack, so the verifier sees unknown
    // values there and checks the later stages once, not once for each of
    // the parsers' paths.
    let outcome = match UNLISTED.get_ptr_mut(0) {
        // SAFETY: this CPU's slot, used by one program run at a time.
        Some(u) => decide(&ctx, &pkt, unsafe { &mut *u }),
        None => Outcome::pass(Reason::NotListed),
    };
    // The single exit: every packet is counted here, by verdict and reason.
    let idx = counter_index(outcome.verdict as u32, outcome.reason);
    if let Some(c) = COUNTERS.get_ptr_mut(idx) {
        // SAFETY: a per-CPU slot, written only by this CPU with preemption off.
        unsafe {
            (*c).packets += 1;
            (*c).bytes += len;
        }
    }
    match outcome.verdict {
        Verdict::Pass | Verdict::Monitor => xdp_action::XDP_PASS,
        Verdict::Drop => xdp_action::XDP_DROP,
        Verdict::Reject => xdp_action::XDP_TX,
    }
}

#[inline(always)]
fn decide(ctx: &XdpContext, pkt: &Packet, u: &mut Unlisted) -> Outcome {
    if let Some(o) = classify(pkt, u) {
        return o;
    }
    let outcome = limits::rate_limit(u)
        .or_else(|| http::stage(ctx, u))
        .unwrap_or_else(|| unlisted(u.expired));
    // A reset that cannot be built (IP options, extension headers) is a drop.
    if outcome.verdict == Verdict::Reject && !reject::build_rst(ctx, u) {
        return Outcome::new(Verdict::Drop, outcome.reason);
    }
    outcome
}

/// Parses the packet and looks its source up in the lists: `Some` when that
/// decides it, else `None` with `u` filled in for the later stages.
///
/// Verifier workaround: it takes the packet's bounds, not the context. Given
/// the context, LLVM passes the 32-bit `data`/`data_end` fields instead and
/// widens them here with shifts, and the verifier forbids arithmetic on
/// `data_end`.
#[inline(never)]
fn classify(pkt: &Packet, u: &mut Unlisted) -> Option<Outcome> {
    let l2 = match parse_l2(pkt) {
        Ok(l2) => l2,
        Err(e) => return Some(Outcome::from_parse_error(e)),
    };
    let r = match l2.ethertype {
        ETH_P_IP => classify_v4(pkt, l2.l3_off, u),
        ETH_P_IPV6 => classify_v6(pkt, l2.l3_off, u),
        _ => return Some(Outcome::pass(Reason::NonIp)),
    };
    r.err()
}

/// A packet the lists did not decide.
#[derive(Clone, Copy, Default)]
pub(crate) struct Unlisted {
    /// 4 or 6.
    family: u32,
    /// Source address (IPv4 in the first 4 bytes, the rest zero).
    src: [u8; 16],
    /// A TCP SYN without ACK.
    syn: bool,
    /// Blocklist entries cover the source, all expired.
    expired: bool,
    /// A TCP segment with its header complete (the fields below are valid).
    tcp: bool,
    dport: u16,
    l3: usize,
    l4: usize,
    payload_off: usize,
    payload_len: usize,
    /// No IPv4 options, no IPv6 extension headers.
    plain: bool,
}

/// The TCP fields later stages need, when the segment has a complete header.
#[derive(Clone, Copy, Default)]
struct Tcp {
    tcp: bool,
    syn: bool,
    dport: u16,
    payload_off: usize,
    payload_len: usize,
}

/// Reads the TCP header at `l4` (if the packet is TCP with its header) and
/// the payload's extent, bounded by the IP length (not Ethernet padding).
#[inline(always)]
fn tcp_info(pkt: &Packet, l4: &L4, ip_end: usize) -> Tcp {
    const SYN: u8 = 0x02;
    const ACK: u8 = 0x10;
    if !l4.has_header || l4.proto != IPPROTO_TCP {
        return Tcp::default();
    }
    let Some(h) = pkt.load::<[u8; 14]>(l4.off) else {
        return Tcp::default();
    };
    let payload_off = l4.off + ((h[12] >> 4) as usize) * 4;
    let end = if ip_end < pkt.len() {
        ip_end
    } else {
        pkt.len()
    };
    Tcp {
        tcp: true,
        syn: h[TCP_FLAGS_OFF] & (SYN | ACK) == SYN,
        dport: u16::from_be_bytes([h[2], h[3]]),
        payload_off,
        payload_len: end.saturating_sub(payload_off),
    }
}

/// `Err` carries the outcome when the lists (or a parse error) decide.
#[inline(always)]
fn classify_v4(pkt: &Packet, l3: usize, u: &mut Unlisted) -> Result<(), Outcome> {
    let src = v4_source(pkt, l3).map_err(Outcome::from_parse_error)?;
    if ALLOW_V4.get(Key::new(32, src)).is_some() {
        return Err(Outcome::pass(Reason::Allowlisted));
    }
    let block = block_v4(src);
    if let Block::Hit(e) = block {
        return Err(Outcome::new(Verdict::Drop, block_reason(e.origin)));
    }
    let l4 = v4_transport(pkt, l3).map_err(Outcome::from_parse_error)?;
    let mut src16 = [0u8; 16];
    src16[0] = src[0];
    src16[1] = src[1];
    src16[2] = src[2];
    src16[3] = src[3];
    let total = pkt.be16(l3 + 2).unwrap_or(0) as usize;
    let t = tcp_info(pkt, &l4, l3 + total);
    *u = Unlisted {
        family: 4,
        src: src16,
        syn: t.syn,
        expired: matches!(block, Block::Expired),
        tcp: t.tcp,
        dport: t.dport,
        l3,
        l4: l4.off,
        payload_off: t.payload_off,
        payload_len: t.payload_len,
        plain: l4.off == l3 + 20,
    };
    Ok(())
}

#[inline(always)]
fn classify_v6(pkt: &Packet, l3: usize, u: &mut Unlisted) -> Result<(), Outcome> {
    let src = v6_source(pkt, l3).map_err(Outcome::from_parse_error)?;
    if ALLOW_V6.get(Key::new(128, src)).is_some() {
        return Err(Outcome::pass(Reason::Allowlisted));
    }
    let block = block_v6(&src);
    if let Block::Hit(e) = block {
        return Err(Outcome::new(Verdict::Drop, block_reason(e.origin)));
    }
    let l4 = v6_transport(pkt, l3).map_err(Outcome::from_parse_error)?;
    let payload = pkt.be16(l3 + 4).unwrap_or(0) as usize;
    let t = tcp_info(pkt, &l4, l3 + 40 + payload);
    *u = Unlisted {
        family: 6,
        src,
        syn: t.syn,
        expired: matches!(block, Block::Expired),
        tcp: t.tcp,
        dport: t.dport,
        l3,
        l4: l4.off,
        payload_off: t.payload_off,
        payload_len: t.payload_len,
        plain: l4.off == l3 + 40,
    };
    Ok(())
}

#[inline(always)]
const fn unlisted(expired: bool) -> Outcome {
    if expired {
        Outcome::pass(Reason::ExpiredBlock)
    } else {
        Outcome::pass(Reason::NotListed)
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
