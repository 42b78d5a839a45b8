//! The HTTP stage: on configured ports, the start of a client segment is
//! parsed for a request line (and the Host header when it is in the same
//! segment), matched against the routes (longest path prefix), and held to
//! the route's rate per client key.

use aya_ebpf::{
    EbpfContext as _,
    cty::c_void,
    helpers::generated::{bpf_get_prandom_u32, bpf_loop, bpf_xdp_load_bytes},
    maps::lpm_trie::Key,
    programs::XdpContext,
};
use enforcer_common::{
    counters::{Reason, Verdict},
    http::{MAX_PATH, RequestScan, SCAN_BYTES, method},
    prefix::mask_v6,
    ratelimit::RateKey,
    route::{
        ACTION_MONITOR, ACTION_REJECT, COMBO_ANY, COMBO_HOST, COMBO_METHOD, COMBO_METHOD_HOST,
        EVENT_REQUEST, MAX_ROUTES, NO_ROUTE, ROUTE_KEY_DATA, ROUTE_RULE_BASE, RequestSample,
        RouteValue, route_key_bits,
    },
    stats::{STAT_EVENTS_LOST, STAT_EVENTS_SENT},
};

use crate::{
    Outcome, Unlisted,
    limits::{conforms, report, stat_add},
    lists::now_ns,
    maps::{EVENTS, HTTP_CONFIG, HTTP_PORTS, ROUTE_OVER, ROUTE_REQS, ROUTES0, ROUTES1, SCRATCH},
};

/// Working memory of one packet's HTTP stage.
#[repr(C)]
pub(crate) struct Scratch {
    buf: [u8; SCAN_BYTES],
    scan: RequestScan,
    key: Key<[u8; ROUTE_KEY_DATA]>,
    /// Position of the `bpf_loop` scan in `buf`, and its end.
    ///
    /// Verifier workaround: kept here, in map memory, rather than in a
    /// context on the stack. The verifier tracks stack values exactly, so a
    /// stack counter makes every loop iteration a new state and the callback
    /// is re-verified for each of the 512 bytes; a map value is an unknown
    /// scalar and the callback converges after one pass.
    pos: u32,
    end: u32,
}

/// True when `port` is a configured HTTP port.
#[inline(always)]
pub(crate) fn is_http_port(port: u16) -> bool {
    HTTP_PORTS
        .get(u32::from(port >> 6))
        .is_some_and(|w| w & (1u64 << (port & 63)) != 0)
}

/// One byte of the request scan. Returns 1 to stop.
#[inline(never)]
extern "C" fn scan_step(_index: u64, _ctx: *mut c_void) -> i64 {
    let Some(s) = SCRATCH.get_ptr_mut(0) else {
        return 1;
    };
    // SAFETY: this CPU's scratch slot, used by one program run at a time.
    let s = unsafe { &mut *s };
    if s.pos >= s.end {
        return 1;
    }
    // Verifier workaround: the mask makes the index provably in bounds.
    let b = s.buf[(s.pos as usize) & (SCAN_BYTES - 1)];
    s.pos += 1;
    i64::from(!s.scan.step(b))
}

/// The HTTP stage. `None` when the packet is not an HTTP request start on a
/// configured port, or no route holds it back.
///
/// Verifier workaround: a subprogram of its own (not inlined), so its locals
/// get their own stack frame instead of adding to the entry's 512 bytes.
#[inline(never)]
pub(crate) fn stage(ctx: &XdpContext, u: &Unlisted) -> Option<Outcome> {
    if !u.tcp || u.payload_len == 0 || !is_http_port(u.dport) {
        return None;
    }
    let cfg = HTTP_CONFIG.get(0)?;
    let s = SCRATCH.get_ptr_mut(0)?;
    // SAFETY: this CPU's scratch slot.
    let s = unsafe { &mut *s };
    // Verifier workaround: a length the verifier can bound (1..=SCAN_BYTES).
    let n = u.payload_len.min(SCAN_BYTES) as u32;
    if n == 0 || n as usize > SCAN_BYTES {
        return None;
    }
    // SAFETY: copies `n` bytes of the packet into the scratch buffer.
    let r = unsafe {
        bpf_xdp_load_bytes(
            ctx.as_ptr().cast(),
            u.payload_off as u32,
            s.buf.as_mut_ptr().cast(),
            n,
        )
    };
    if r != 0 {
        return None;
    }
    let mut head = [0u8; 8];
    let mut i = 0;
    while i < 8 {
        if (i as u32) < n {
            head[i] = s.buf[i];
        }
        i += 1;
    }
    let (m, skip) = method(&head)?;
    s.scan.reset();
    s.pos = skip as u32;
    s.end = n;
    // SAFETY: the callback takes no context; it works on the scratch slot.
    unsafe {
        bpf_loop(
            SCAN_BYTES as u32,
            scan_step as *mut c_void,
            core::ptr::null_mut(),
            0,
        );
    }
    s.scan.finish();
    if s.scan.is_request == 0 {
        return None;
    }
    let host = s.scan.host;
    let path_len = s.scan.path_len.min(MAX_PATH as u32);
    let found = match_route(s, cfg.active, m, host, path_len);
    let now = now_ns();
    if cfg.sample_every != 0
        // SAFETY: a helper without side effects.
        && unsafe { bpf_get_prandom_u32() } % cfg.sample_every == 0
    {
        sample(
            u,
            m,
            host,
            found.map_or(NO_ROUTE, |v| v.id),
            cfg.sample_every,
            now,
        );
    }
    let route = found?;
    let half = (cfg.active >> 16) & 1;
    let slot = half * MAX_ROUTES + (route.id % MAX_ROUTES);
    count(&ROUTE_REQS, slot);
    let len = if u.family == 4 {
        route.v4_len
    } else {
        route.v6_len
    };
    let key = RateKey {
        rule: ROUTE_RULE_BASE + route.id,
        family: u.family,
        addr: mask_v6(&u.src, len),
    };
    if conforms(&key, route.interval_ns, route.tolerance_ns, now) {
        return None;
    }
    count(&ROUTE_OVER, slot);
    report(&key, len, now, cfg.report_interval_ns);
    let reason = Reason::RouteLimit as u32;
    Some(match route.action {
        ACTION_MONITOR => Outcome::new(Verdict::Monitor, reason),
        ACTION_REJECT => Outcome::new(Verdict::Reject, reason),
        _ => Outcome::new(Verdict::Drop, reason),
    })
}

#[inline(always)]
fn count(map: &aya_ebpf::maps::PerCpuArray<u64>, slot: u32) {
    if let Some(c) = map.get_ptr_mut(slot) {
        // SAFETY: a per-CPU slot, this CPU only.
        unsafe { *c += 1 };
    }
}

/// The route with the longest path prefix among the (method | any) ×
/// (host | any) combinations that have routes.
#[inline(always)]
fn match_route(
    s: &mut Scratch,
    active: u32,
    m: u8,
    host: u32,
    path_len: u32,
) -> Option<RouteValue> {
    let combos = active & 0xF;
    if combos == 0 {
        return None;
    }
    let half = (active >> 16) & 1;
    s.key.prefix_len = route_key_bits(path_len);
    let mut i = 0;
    while i < MAX_PATH {
        s.key.data[5 + i] = s.scan.path[i];
        i += 1;
    }
    let mut best: Option<RouteValue> = None;
    let tries: [(u32, u8, u32); 4] = [
        (COMBO_METHOD_HOST, m, host),
        (COMBO_METHOD, m, 0),
        (COMBO_HOST, 0, host),
        (COMBO_ANY, 0, 0),
    ];
    let mut t = 0;
    while t < 4 {
        let (bit, mm, hh) = tries[t];
        t += 1;
        if combos & bit == 0 || (bit & (COMBO_METHOD_HOST | COMBO_HOST) != 0 && host == 0) {
            continue;
        }
        s.key.data[0] = mm;
        let hb = hh.to_be_bytes();
        s.key.data[1] = hb[0];
        s.key.data[2] = hb[1];
        s.key.data[3] = hb[2];
        s.key.data[4] = hb[3];
        let v = if half == 0 {
            ROUTES0.get(&s.key)
        } else {
            ROUTES1.get(&s.key)
        };
        if let Some(v) = v
            && best.is_none_or(|b| v.path_len > b.path_len)
        {
            best = Some(*v);
        }
    }
    best
}

/// Sends a sampled request to the agent.
#[inline(always)]
fn sample(u: &Unlisted, m: u8, host: u32, route: u32, weight: u32, now: u64) {
    if let Some(mut e) = EVENTS.reserve::<RequestSample>(0) {
        e.write(RequestSample {
            kind: EVENT_REQUEST,
            route,
            family: u.family,
            method: u32::from(m),
            addr: u.src,
            host,
            weight,
            ts_ns: now,
        });
        e.submit(0);
        stat_add(STAT_EVENTS_SENT, 1);
    } else {
        stat_add(STAT_EVENTS_LOST, 1);
    }
}
