//! HTTP routes in the kernel: keys of the route tries, values, settings,
//! and the events the HTTP stages send the agent.
//!
//! A route trie key is `[method][host hash: 4 bytes][path bytes]`, matched as
//! a longest prefix: method and host exactly (0 = any), the path as a prefix.
//! The program looks up each (method | any) × (host | any) combination that
//! has routes and keeps the longest path match.

use crate::http::MAX_PATH;

/// Bytes of route-key data: method, host hash, path.
pub const ROUTE_KEY_DATA: usize = 1 + 4 + MAX_PATH;
/// Most routes per policy.
pub const MAX_ROUTES: u32 = 4096;

/// The prefix length (in bits) of a route key for a path prefix of `len` bytes.
#[inline(always)]
pub const fn route_key_bits(path_len: u32) -> u32 {
    (1 + 4 + path_len) * 8
}

pub const ACTION_DROP: u32 = 0;
pub const ACTION_REJECT: u32 = 1;
pub const ACTION_MONITOR: u32 = 2;

/// What a route does to a client over its rate.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RouteValue {
    /// Index of the route in the policy (reported in events and metrics).
    pub id: u32,
    pub action: u32,
    /// The route's path prefix length, to pick the longest across lookups.
    pub path_len: u32,
    /// Client key tiers.
    pub v4_len: u32,
    pub v6_len: u32,
    pub _pad: u32,
    pub interval_ns: u64,
    pub tolerance_ns: u64,
}

/// Which (method, host) combinations have routes (bits of `HttpConfig::combos`).
pub const COMBO_METHOD_HOST: u32 = 1;
pub const COMBO_METHOD: u32 = 2;
pub const COMBO_HOST: u32 = 4;
pub const COMBO_ANY: u32 = 8;

/// HTTP settings (slot 0 of the config array).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HttpConfig {
    /// Which route trie is live (0 or 1) in bit 16, `COMBO_*` bits below.
    pub active: u32,
    /// Sample one parsed request in this many (0: no samples).
    pub sample_every: u32,
    /// A key reports responses at most once per this many ns.
    pub report_interval_ns: u64,
    /// Client key tiers for response counting.
    pub resp_v4_len: u32,
    pub resp_v6_len: u32,
    /// A key also reports as soon as it has this many unreported responses
    /// of one class (the smallest detection threshold: a burst is seen at
    /// once, not an interval later). 0: only by interval.
    pub resp_batch: u32,
    /// Bit `m` set when method `m` has method-specific routes: the
    /// method-specific tries are skipped for other methods.
    pub method_bits: u32,
    /// Bit `hash & 63` set for each host that has routes: the host-specific
    /// tries are skipped for requests to other hosts.
    pub host_bits: u64,
}

/// Bit of `HttpConfig::active`: the any-method routes are also in the
/// method tries (under every method that has routes), so a request whose
/// method has routes needs no any-method lookup.
pub const ACTIVE_MERGED: u32 = 1 << 17;

/// Which lookups a request needs (`COMBO_*` bits), done in the order
/// (method, host), (any, host), (method, any), (any, any), a strictly longer
/// path replacing the best so far: the longest path wins, then a host
/// route, then a method route.
#[inline(always)]
pub const fn lookup_plan(
    active: u32,
    method_bits: u32,
    host_bits: u64,
    method: u8,
    host: u32,
) -> u32 {
    let mut c = active & 0xF;
    let method_routes = method_bits & (1u32 << (method & 31)) != 0;
    if !method_routes {
        c &= !(COMBO_METHOD_HOST | COMBO_METHOD);
    }
    if host == 0 || host_bits & host_bit(host) == 0 {
        c &= !(COMBO_METHOD_HOST | COMBO_HOST);
    }
    if active & ACTIVE_MERGED != 0 && method_routes {
        c &= !(COMBO_HOST | COMBO_ANY);
    }
    c
}

/// The bit of `host_bits` for a host hash.
#[inline(always)]
pub const fn host_bit(hash: u32) -> u64 {
    1 << (hash & 63)
}

/// Rate-limit state keys of routes: `ROUTE_RULE_BASE + route id`.
pub const ROUTE_RULE_BASE: u32 = 0x1_0000;

/// Ring-buffer event kinds beyond rate-limit reports.
pub const EVENT_REQUEST: u32 = 2;
pub const EVENT_RESPONSE: u32 = 3;
pub const EVENT_RESET: u32 = 4;

/// No route matched (in a request sample).
pub const NO_ROUTE: u32 = u32::MAX;

/// A sampled request (same size as every event: 48 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RequestSample {
    pub kind: u32,
    pub route: u32,
    pub family: u32,
    pub method: u32,
    pub addr: [u8; 16],
    pub host: u32,
    /// How many requests this sample stands for.
    pub weight: u32,
    pub ts_ns: u64,
}

/// Responses of one class sent to one client key since its last report.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResponseReport {
    pub kind: u32,
    /// `http::STATUS_*`.
    pub class: u32,
    pub family: u32,
    pub prefix_len: u32,
    pub addr: [u8; 16],
    pub count: u64,
    pub ts_ns: u64,
}

/// A request answered with a reset (`reject`): the connection the server
/// still holds open, for the agent to close on the server's side too (one
/// XDP verdict sends one packet, to the client).
///
/// Addresses as on the wire (an IPv4 address in the first 4 bytes of the
/// first word); ports in host order.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResetEvent {
    pub kind: u32,
    /// 4 or 6.
    pub family: u16,
    pub client_port: u16,
    pub server_port: u16,
    pub _pad: [u16; 3],
    pub client: [u64; 2],
    pub server: [u64; 2],
}

/// Key of the per-client response counters.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RespKey {
    pub class: u32,
    pub family: u32,
    pub addr: [u8; 16],
}

/// Response counter state of one client key and status class.
///
/// `count` runs from one batch report to the next; `sent` is how much of it
/// interval reports already told the agent. So a batch fires when `batch`
/// responses have come since the last batch, however many interval reports
/// came between: a threshold the agent is waiting for is reached with the
/// response that crosses it, not an interval later. (Same size and layout
/// as the former `count: u64`, so a pinned map from before reads as counts.)
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RespState {
    pub count: u32,
    pub sent: u32,
    pub last_event_ns: u64,
}

/// Counts one more response; returns how many responses to report now (the
/// ones not reported yet), if a report is due: when `batch` (0: none)
/// responses have come since the last batch, or `interval` ns have passed
/// since the last report.
#[inline(always)]
pub fn resp_step(st: &mut RespState, now: u64, interval: u64, batch: u32) -> Option<u64> {
    st.count = st.count.saturating_add(1);
    let unsent = u64::from(st.count.saturating_sub(st.sent));
    if batch != 0 && st.count >= batch {
        *st = RespState {
            count: 0,
            sent: 0,
            last_event_ns: now,
        };
        return Some(unsent);
    }
    if now.saturating_sub(st.last_event_ns) >= interval {
        // Without batches nothing would ever reset the count: start over.
        st.sent = if batch == 0 { 0 } else { st.count };
        if batch == 0 {
            st.count = 0;
        }
        st.last_event_ns = now;
        return Some(unsent);
    }
    None
}

/// Computes the TCP checksum of a 20-byte RST segment (no options, no
/// payload) over its pseudo-header sum. `pseudo` is the one's-complement
/// sum of the pseudo-header words; the result goes in the header as is.
#[inline(always)]
pub const fn tcp_rst_checksum(
    pseudo: u32,
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
) -> u16 {
    let mut sum: u64 = pseudo as u64;
    sum += sport as u64;
    sum += dport as u64;
    sum += (seq >> 16) as u64 + (seq & 0xFFFF) as u64;
    sum += (ack >> 16) as u64 + (ack & 0xFFFF) as u64;
    // Data offset 5, no reserved bits, then the flags; window 0; urgent 0.
    sum += ((5u64 << 12) | flags as u64) & 0xFFFF;
    fold(sum)
}

/// Folds a sum to 16 bits and complements it.
#[inline(always)]
pub const fn fold(mut sum: u64) -> u16 {
    sum = (sum & 0xFFFF) + (sum >> 16);
    sum = (sum & 0xFFFF) + (sum >> 16);
    sum = (sum & 0xFFFF) + (sum >> 16);
    !(sum as u16)
}

/// One's-complement sum of an IPv4 pseudo-header for a 20-byte TCP segment.
#[inline(always)]
pub const fn pseudo_v4(src: [u8; 4], dst: [u8; 4]) -> u32 {
    u16::from_be_bytes([src[0], src[1]]) as u32
        + u16::from_be_bytes([src[2], src[3]]) as u32
        + u16::from_be_bytes([dst[0], dst[1]]) as u32
        + u16::from_be_bytes([dst[2], dst[3]]) as u32
        + 6
        + 20
}

/// One's-complement sum of an IPv6 pseudo-header for a 20-byte TCP segment.
#[inline(always)]
pub const fn pseudo_v6(src: &[u8; 16], dst: &[u8; 16]) -> u32 {
    let mut s = 6 + 20;
    let mut i = 0;
    while i < 16 {
        s += u16::from_be_bytes([src[i], src[i + 1]]) as u32;
        s += u16::from_be_bytes([dst[i], dst[i + 1]]) as u32;
        i += 2;
    }
    s
}

/// Sum of the two big-endian 16-bit words of 4 bytes loaded from memory as
/// a native `u32` (how the XDP program reads them: a word at a time).
#[inline(always)]
pub const fn words32(raw: u32) -> u32 {
    let v = u32::from_be(raw);
    (v >> 16) + (v & 0xFFFF)
}

/// Sum of the four big-endian 16-bit words of 8 bytes loaded as a native `u64`.
#[inline(always)]
pub const fn words64(raw: u64) -> u32 {
    let v = u64::from_be(raw);
    ((v >> 48) + ((v >> 32) & 0xFFFF) + ((v >> 16) & 0xFFFF) + (v & 0xFFFF)) as u32
}

/// TTL of the resets the `reject` action sends.
pub const RST_TTL: u8 = 64;

/// The header checksum of a reset's IPv4 header (version 4, IHL 5, total
/// length 40, ID 0, DF, TTL `RST_TTL`, TCP) given the sum of its address
/// words.
#[inline(always)]
pub const fn rst_ipv4_checksum(addr_sum: u32) -> u16 {
    fold(0x4500 + 40 + 0x4000 + (((RST_TTL as u64) << 8) | 6) + addr_sum as u64)
}

/// The IPv4 header checksum of a 20-byte header without options, given its
/// fields (checksum field zero).
#[inline(always)]
pub const fn ipv4_checksum(h: &[u8; 20]) -> u16 {
    let mut s: u64 = 0;
    let mut i = 0;
    while i < 20 {
        if i != 10 {
            s += u16::from_be_bytes([h[i], h[i + 1]]) as u64;
        }
        i += 2;
    }
    fold(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference: the plain RFC 1071 sum over the bytes.
    fn reference(parts: &[&[u8]]) -> u16 {
        let mut all = std::vec::Vec::new();
        for p in parts {
            all.extend_from_slice(p);
        }
        let mut s: u32 = 0;
        for c in all.chunks(2) {
            s += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
        }
        while s > 0xFFFF {
            s = (s & 0xFFFF) + (s >> 16);
        }
        !(s as u16)
    }
    extern crate std;

    #[test]
    fn rst_checksums_match_the_reference() {
        let (src, dst) = ([198, 18, 0, 1], [198, 19, 7, 9]);
        let mut tcp = [0u8; 20];
        tcp[0..2].copy_from_slice(&80u16.to_be_bytes());
        tcp[2..4].copy_from_slice(&40000u16.to_be_bytes());
        tcp[4..8].copy_from_slice(&0xDEAD_BEEFu32.to_be_bytes());
        tcp[8..12].copy_from_slice(&0x0102_0304u32.to_be_bytes());
        tcp[12] = 5 << 4;
        tcp[13] = 0x14;
        let mut pseudo = std::vec::Vec::new();
        pseudo.extend_from_slice(&src);
        pseudo.extend_from_slice(&dst);
        pseudo.extend_from_slice(&[0, 6, 0, 20]);
        let want = reference(&[&pseudo, &tcp]);
        let got = tcp_rst_checksum(
            pseudo_v4(src, dst),
            80,
            40000,
            0xDEAD_BEEF,
            0x0102_0304,
            0x14,
        );
        assert_eq!(got, want);
        let s6 = [0x20, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let d6 = [0x20, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
        let mut p6 = std::vec::Vec::new();
        p6.extend_from_slice(&s6);
        p6.extend_from_slice(&d6);
        p6.extend_from_slice(&[0, 0, 0, 20, 0, 0, 0, 6]);
        assert_eq!(
            tcp_rst_checksum(
                pseudo_v6(&s6, &d6),
                80,
                40000,
                0xDEAD_BEEF,
                0x0102_0304,
                0x14
            ),
            reference(&[&p6, &tcp])
        );
        let mut ip = [
            0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0, 198, 18, 0, 1, 198, 19, 7, 9,
        ];
        let c = ipv4_checksum(&ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(reference(&[&ip]), 0);
        // The word-at-a-time forms agree with the byte forms.
        let a = words32(u32::from_ne_bytes(src)) + words32(u32::from_ne_bytes(dst));
        assert_eq!(a + 26, pseudo_v4(src, dst));
        assert_eq!(rst_ipv4_checksum(a), c);
        let w = |b: &[u8]| words64(u64::from_ne_bytes(b.try_into().unwrap()));
        assert_eq!(
            w(&s6[..8]) + w(&s6[8..]) + w(&d6[..8]) + w(&d6[8..]) + 26,
            pseudo_v6(&s6, &d6)
        );
    }

    #[test]
    fn a_batch_counts_what_interval_reports_already_sent() {
        let mut st = RespState {
            count: 0,
            sent: 0,
            last_event_ns: 0,
        };
        let (iv, batch) = (10, 5);
        // Two responses, the second after the interval: reported, kept.
        assert_eq!(resp_step(&mut st, 1, iv, batch), None);
        assert_eq!(resp_step(&mut st, 20, iv, batch), Some(2));
        // Three more at once: the fifth since the batch began fires it, with
        // the three not yet reported.
        assert_eq!(resp_step(&mut st, 21, iv, batch), None);
        assert_eq!(resp_step(&mut st, 22, iv, batch), None);
        assert_eq!(resp_step(&mut st, 23, iv, batch), Some(3));
        assert_eq!(st.count, 0);
        // Everything is reported exactly once, over any sequence.
        let mut total = 0;
        let mut reported = 0;
        let mut st = RespState::default();
        for t in 0..10_000u64 {
            total += 1;
            reported += resp_step(&mut st, t * 3 % 7 + t, 25, 7).unwrap_or(0);
        }
        assert_eq!(reported + u64::from(st.count - st.sent), total);
    }

    #[test]
    fn without_batches_interval_reports_start_over() {
        let mut st = RespState::default();
        assert_eq!(resp_step(&mut st, 5, 10, 0), None);
        assert_eq!(resp_step(&mut st, 10, 10, 0), Some(2));
        assert_eq!(st.count, 0);
        assert_eq!(resp_step(&mut st, 30, 10, 0), Some(1));
    }

    #[test]
    fn layouts() {
        assert_eq!(core::mem::size_of::<RouteValue>(), 40);
        assert_eq!(core::mem::size_of::<HttpConfig>(), 40);
        assert_eq!(core::mem::size_of::<RequestSample>(), 48);
        assert_eq!(core::mem::size_of::<ResponseReport>(), 48);
        assert_eq!(core::mem::size_of::<ResetEvent>(), 48);
        assert_eq!(core::mem::offset_of!(ResetEvent, client), 16);
        assert_eq!(core::mem::size_of::<RespKey>(), 24);
        assert_eq!(core::mem::size_of::<RespState>(), 16);
        assert_eq!(route_key_bits(6), 88);
    }
}
