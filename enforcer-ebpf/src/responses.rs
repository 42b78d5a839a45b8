//! The TC egress program: on configured ports, the start of each server
//! segment is checked for an HTTP/1.x status line, and the statuses worth
//! watching (401, 403, 404, 429, 5xx) are counted per client key — the
//! destination of the response. Counts reach the agent through the ring
//! buffer, per key at most once per report interval or as soon as a batch
//! is reached; the agent turns them into bans by the detection rules.
//!
//! It only observes: every packet goes on unchanged.

use aya_ebpf::{macros::classifier, programs::TcContext};
use enforcer_common::{
    http::{STATUS_CLASSES, status, status_class},
    prefix::mask_v6,
    route::{EVENT_RESPONSE, RespKey, RespState, ResponseReport, resp_step},
    stats::{STAT_EVENTS_LOST, STAT_EVENTS_SENT},
};
use enforcer_ebpf::{
    headers::{ETH_P_IP, ETH_P_IPV6, IPPROTO_TCP, IPV4_DST_OFF, IPV6_DST_OFF},
    packet::Packet,
    parse::{parse_l2, v4_transport, v6_transport},
};

use crate::{
    http::is_http_port,
    limits::stat_add,
    lists::now_ns,
    maps::{EVENTS, HTTP_CONFIG, RESP_COUNTS, RESP_STATE},
};

/// TC verdict "no opinion": the packet continues (TCX_NEXT on a TCX link,
/// TC_ACT_UNSPEC on a classic clsact filter).
const TC_NEXT: i32 = -1;
/// Bytes of a status line we read: `HTTP/1.1 401 `.
const STATUS_LINE: usize = 13;

#[classifier]
pub fn responses(ctx: TcContext) -> i32 {
    observe(&ctx);
    TC_NEXT
}

#[inline(always)]
fn observe(ctx: &TcContext) -> Option<()> {
    let cfg = HTTP_CONFIG.get(0)?;
    let pkt = Packet::new(ctx.data(), ctx.data_end());
    let l2 = parse_l2(&pkt).ok()?;
    let l3 = l2.l3_off;
    let mut dst = [0u8; 16];
    let (family, l4, prefix_len) = match l2.ethertype {
        // Verifier workaround: the destination (the end of the fixed header)
        // is read before the transport walk. The other way round, LLVM drops
        // the walk's bounds checks on fixed-header fields as implied by its
        // `len >= l3 + ihl * 4` test, which the verifier cannot follow.
        ETH_P_IP => {
            let d = pkt.load::<[u8; 4]>(l3 + IPV4_DST_OFF)?;
            let l4 = v4_transport(&pkt, l3).ok()?;
            dst[0] = d[0];
            dst[1] = d[1];
            dst[2] = d[2];
            dst[3] = d[3];
            (4, l4, cfg.resp_v4_len)
        }
        ETH_P_IPV6 => {
            dst = pkt.load::<[u8; 16]>(l3 + IPV6_DST_OFF)?;
            let l4 = v6_transport(&pkt, l3).ok()?;
            (6, l4, cfg.resp_v6_len)
        }
        _ => return None,
    };
    if !l4.has_header || l4.proto != IPPROTO_TCP {
        return None;
    }
    let h = pkt.load::<[u8; 14]>(l4.off)?;
    if !is_http_port(u16::from_be_bytes([h[0], h[1]])) {
        return None;
    }
    let payload = l4.off + ((h[12] >> 4) as usize) * 4;
    // Usually in the linear part of the skb: read in place. Otherwise (GSO,
    // frags) through the helper, which reaches the rest.
    let line = match pkt.load::<[u8; STATUS_LINE]>(payload) {
        Some(l) => l,
        None => ctx.load::<[u8; STATUS_LINE]>(payload).ok()?,
    };
    let class = status_class(status(&line)?)?;
    if class >= STATUS_CLASSES {
        return None;
    }
    if let Some(c) = RESP_COUNTS.get_ptr_mut(class) {
        // SAFETY: a per-CPU slot, this CPU only.
        unsafe { *c += 1 };
    }
    let key = RespKey {
        class,
        family,
        addr: mask_v6(&dst, prefix_len),
    };
    count(&key, prefix_len, cfg.report_interval_ns, cfg.resp_batch);
    Some(())
}

/// Counts one response for `key`, reporting what the agent has not been told
/// when the key's interval has passed or its batch is full (`resp_step`).
#[inline(always)]
fn count(key: &RespKey, prefix_len: u32, interval: u64, batch: u32) {
    let now = now_ns();
    let Some(st) = RESP_STATE.get_ptr_mut(key) else {
        // First response for this key: reported at once.
        let _ = RESP_STATE.insert(
            key,
            &RespState {
                count: 0,
                sent: 0,
                last_event_ns: now,
            },
            0,
        );
        send(key, prefix_len, 1, now);
        return;
    };
    // SAFETY: a live map value for this program run. Updates from two CPUs
    // at once may lose a count; a torn word is impossible (aligned words).
    let mut state = unsafe { *st };
    let due = resp_step(&mut state, now, interval, batch);
    // SAFETY: as above.
    unsafe { *st = state };
    if let Some(n) = due {
        send(key, prefix_len, n, now);
    }
}

#[inline(always)]
fn send(key: &RespKey, prefix_len: u32, count: u64, now: u64) {
    if let Some(mut e) = EVENTS.reserve::<ResponseReport>(0) {
        e.write(ResponseReport {
            kind: EVENT_RESPONSE,
            class: key.class,
            family: key.family,
            prefix_len,
            addr: key.addr,
            count,
            ts_ns: now,
        });
        e.submit(0);
        stat_add(STAT_EVENTS_SENT, 1);
    } else {
        stat_add(STAT_EVENTS_LOST, 1);
    }
}
