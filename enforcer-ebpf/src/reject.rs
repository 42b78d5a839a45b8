//! The `reject` action: the client's request is answered, in XDP, by a TCP
//! reset sent back out of the interface it came in on (XDP_TX). The reset's
//! sequence number is the client's acknowledgement number (its RCV.NXT), so
//! its stack accepts it at once (RFC 5961) and the connection fails fast
//! instead of retrying; the server never sees the request. The connection
//! is then reported to the agent, which closes the server's side of it.
//!
//! Headers are copied to the stack with `bpf_xdp_load_bytes`, rewritten a
//! word at a time and copied back with `bpf_xdp_store_bytes`. Read in place,
//! the unaligned packet words become byte loads, each byte takes its own
//! stack slot, and the frame no longer fits beside the entry's in the
//! 512-byte BPF stack. It is the rare path: the helper calls cost nothing
//! that matters.

use aya_ebpf::{
    EbpfContext as _,
    helpers::generated::{bpf_xdp_adjust_tail, bpf_xdp_load_bytes, bpf_xdp_store_bytes},
    programs::XdpContext,
};
use enforcer_common::{
    route::{
        EVENT_RESET, RST_TTL, ResetEvent, rst_ipv4_checksum, tcp_rst_checksum, words32, words64,
    },
    stats::{STAT_EVENTS_LOST, STAT_EVENTS_SENT},
};
use enforcer_ebpf::{headers::IPPROTO_TCP, packet::Packet};

use crate::{Unlisted, limits::stat_add, maps::EVENTS};

const TCP_FIN: u8 = 0x01;
const TCP_SYN: u8 = 0x02;
const TCP_RST: u8 = 0x04;
const TCP_ACK: u8 = 0x10;
/// Bytes of a TCP header without options, and its data-offset byte.
const TCP_HLEN: usize = 20;
const TCP_DOFF_5: u32 = 5 << 4;
/// The pseudo-header's protocol and TCP-length words for a bare header.
const PSEUDO_TAIL: u32 = IPPROTO_TCP as u32 + TCP_HLEN as u32;

/// Copies `N` words of type `T` from the packet at `off` to the stack.
#[inline(always)]
fn load<T: Copy + Default, const N: usize>(ctx: &XdpContext, off: usize) -> Option<[T; N]> {
    let mut buf = [T::default(); N];
    // SAFETY: the helper writes exactly `size_of_val(&buf)` bytes into `buf`.
    let r = unsafe {
        bpf_xdp_load_bytes(
            ctx.as_ptr().cast(),
            off as u32,
            buf.as_mut_ptr().cast(),
            core::mem::size_of_val(&buf) as u32,
        )
    };
    (r == 0).then_some(buf)
}

/// Copies `buf` into the packet at `off`.
#[inline(always)]
fn store<T: Copy, const N: usize>(ctx: &XdpContext, off: usize, buf: &[T; N]) -> bool {
    // SAFETY: the helper reads exactly `size_of_val(buf)` bytes from `buf`
    // and checks the packet's bounds itself.
    unsafe {
        bpf_xdp_store_bytes(
            ctx.as_ptr().cast(),
            off as u32,
            buf.as_ptr().cast_mut().cast(),
            core::mem::size_of_val(buf) as u32,
        ) == 0
    }
}

/// Rewrites the packet into the reset. False (packet unusable, to be
/// dropped) when it cannot be built: IPv4 options or IPv6 extension headers.
///
/// Verifier workaround: not inlined, for its own stack frame.
#[inline(never)]
pub(crate) fn build_rst(ctx: &XdpContext, u: &Unlisted) -> bool {
    if !u.plain {
        return false;
    }
    let Some(mac) = load::<u32, 3>(ctx, 0) else {
        return false;
    };
    let Some(tcp) = load::<u32, 4>(ctx, u.l4) else {
        return false;
    };
    let sport = u16::from_be(tcp[0] as u16);
    let dport = u16::from_be((tcp[0] >> 16) as u16);
    let seq_in = u32::from_be(tcp[1]);
    let ack_in = u32::from_be(tcp[2]);
    let flags_in = (tcp[3] >> 8) as u8;
    // RFC 793: a reset answering a segment with ACK takes its sequence number
    // from that ACK; it acknowledges everything the segment carried.
    let seq = if flags_in & TCP_ACK != 0 { ack_in } else { 0 };
    let mut consumed = u.payload_len as u32;
    if flags_in & TCP_SYN != 0 {
        consumed += 1;
    }
    if flags_in & TCP_FIN != 0 {
        consumed += 1;
    }
    let ack = seq_in.wrapping_add(consumed);
    let flags = TCP_RST | TCP_ACK;
    let (pseudo, client, server) = if u.family == 4 {
        let Some(ip) = load::<u32, 5>(ctx, u.l3) else {
            return false;
        };
        let addrs = words32(ip[3]) + words32(ip[4]);
        let csum = u32::from(rst_ipv4_checksum(addrs).to_be());
        // Version/IHL 0x45, TOS 0, total length 40; ID 0, DF; TTL, TCP, checksum.
        let out = [
            0x45 | (40 << 24),
            0x40 << 16,
            u32::from(RST_TTL) | (u32::from(IPPROTO_TCP) << 8) | (csum << 16),
            ip[4],
            ip[3],
        ];
        if !store(ctx, u.l3, &out) {
            return false;
        }
        (
            addrs + PSEUDO_TAIL,
            [u64::from(ip[3]), 0],
            [u64::from(ip[4]), 0],
        )
    } else {
        let Some(ip) = load::<u64, 5>(ctx, u.l3) else {
            return false;
        };
        // Version 6, no traffic class or flow label; payload 20; TCP; hop limit.
        let first = 0x60
            | ((TCP_HLEN as u64) << 40)
            | (u64::from(IPPROTO_TCP) << 48)
            | (u64::from(RST_TTL) << 56);
        if !store(ctx, u.l3, &[first, ip[3], ip[4], ip[1], ip[2]]) {
            return false;
        }
        (
            words64(ip[1]) + words64(ip[2]) + words64(ip[3]) + words64(ip[4]) + PSEUDO_TAIL,
            [ip[1], ip[2]],
            [ip[3], ip[4]],
        )
    };
    let csum = u32::from(tcp_rst_checksum(pseudo, dport, sport, seq, ack, flags).to_be());
    let out: [u32; 5] = [
        tcp[0].rotate_right(16),
        seq.to_be(),
        ack.to_be(),
        TCP_DOFF_5 | (u32::from(flags) << 8),
        csum,
    ];
    let swapped = [
        (mac[1] >> 16) | (mac[2] << 16),
        (mac[2] >> 16) | (mac[0] << 16),
        (mac[0] >> 16) | (mac[1] << 16),
    ];
    if !(store(ctx, u.l4, &out) && store(ctx, 0, &swapped)) {
        return false;
    }
    // Drop everything after the TCP header (the request's payload, options).
    let len = Packet::new(ctx.data(), ctx.data_end()).len();
    let delta = (u.l4 + TCP_HLEN) as i32 - len as i32;
    if delta < 0 {
        // SAFETY: shrinking the packet; no pointer into it is used afterwards.
        if unsafe { bpf_xdp_adjust_tail(ctx.as_ptr().cast(), delta) } != 0 {
            return false;
        }
    }
    if let Some(mut e) = EVENTS.reserve::<ResetEvent>(0) {
        e.write(ResetEvent {
            kind: EVENT_RESET,
            family: u.family as u16,
            client_port: sport,
            server_port: dport,
            _pad: [0; 3],
            client,
            server,
        });
        e.submit(0);
        stat_add(STAT_EVENTS_SENT, 1);
    } else {
        stat_add(STAT_EVENTS_LOST, 1);
    }
    true
}
