//! The HTTP stage: on configured ports, the start of a client segment is
//! parsed for a request line (and, when host routes exist, the Host header
//! in the same segment), matched against the routes (longest path prefix),
//! and held to the route's rate per client key.
//!
//! The parser is `enforcer_common::http::parse`, a word-at-a-time search;
//! this module drives its steps from `bpf_loop` callbacks.

use aya_ebpf::{
    EbpfContext as _,
    cty::c_void,
    helpers::generated::{bpf_loop, bpf_xdp_load_bytes},
    maps::lpm_trie::Key,
    programs::XdpContext,
};
use enforcer_common::{
    counters::{Reason, Verdict},
    http::{Driver, MAX_PATH, Request, SCAN_BYTES, SCAN_WORDS, Scan, method, parse},
    prefix::mask_v6,
    ratelimit::RateKey,
    route::{
        ACTION_MONITOR, ACTION_REJECT, COMBO_ANY, COMBO_HOST, COMBO_METHOD, COMBO_METHOD_HOST,
        EVENT_REQUEST, HttpConfig, MAX_ROUTES, NO_ROUTE, ROUTE_KEY_DATA, ROUTE_RULE_BASE,
        RequestSample, RouteValue, lookup_plan, route_key_bits,
    },
    stats::{STAT_EVENTS_LOST, STAT_EVENTS_SENT},
};
use enforcer_ebpf::packet::Packet;

use crate::{
    Outcome, Unlisted,
    limits::{conforms, report, stat_add},
    lists::now_ns,
    maps::{EVENTS, HTTP_CONFIG, HTTP_PORTS, ROUTE_OVER, ROUTE_REQS, ROUTES0, ROUTES1, SCRATCH},
};

/// Working memory of one packet's HTTP stage.
///
/// Verifier workaround: the parse state lives here, in map memory, rather
/// than on the stack. The verifier tracks stack values exactly, so a stack
/// cursor would make every loop iteration a new state and the callbacks
/// would be re-verified for each word; a map value is an unknown scalar and
/// each callback is verified once.
#[repr(C)]
pub(crate) struct Scratch {
    scan: Scan,
    key: Key<[u8; ROUTE_KEY_DATA]>,
    /// The path length, passed through memory (see `stage`).
    len: u32,
    /// The parse's result (see `parse_request`).
    req: Request,
    /// Requests until the next sample, on this CPU.
    sample_left: u32,
}

/// Counts a request toward the next sample; true when this one is it.
#[inline(always)]
fn take_sample(s: &mut Scratch, every: u32) -> bool {
    if s.sample_left == 0 {
        s.sample_left = every - 1;
        true
    } else {
        s.sample_left -= 1;
        false
    }
}

/// Parses the request in `s.scan` into `s.req`; false when it is none.
///
/// Verifier workaround: a subprogram of its own whose result goes through
/// map memory. The parse has a few dozen paths (per method, target form,
/// early ends); inlined, everything after it — route lookups, the bucket,
/// events — would be verified once per path, past the instruction budget.
/// Through memory the results are unknown scalars and the paths merge.
#[inline(never)]
fn parse_request(s: &mut Scratch, want_host: bool) -> bool {
    match parse(&mut s.scan, &mut BpfLoops, want_host) {
        Some(r) => {
            s.req = r;
            true
        }
        None => false,
    }
}

/// Runs the parser's searches under `bpf_loop`.
struct BpfLoops;

/// Most steps of a search: one per word of the buffer, and one more.
const SEARCH_STEPS: u32 = SCAN_WORDS as u32 + 1;

impl Driver for BpfLoops {
    #[inline(always)]
    fn find(&mut self, s: &mut Scan) {
        run(s, SEARCH_STEPS, find_cb);
    }

    #[inline(always)]
    fn lines(&mut self, s: &mut Scan) {
        run(s, 2 * SEARCH_STEPS, lines_cb);
    }
}

/// Runs `cb` under `bpf_loop` on `s`.
///
/// Verifier workaround: `bpf_loop` takes its context on the stack only, so
/// the context is a stack slot holding the pointer to the `Scan` (in map
/// memory). Handing the pointer to the helper this way also tells the
/// compiler that the call may change the `Scan`.
#[inline(always)]
fn run(s: &mut Scan, steps: u32, cb: extern "C" fn(u64, *mut c_void) -> i64) {
    let mut ptr: *mut Scan = s;
    // SAFETY: the callback dereferences `ctx` only as the `*mut Scan` slot
    // above, which lives through the call, and the `Scan` through it.
    unsafe {
        bpf_loop(steps, cb as *mut c_void, (&raw mut ptr).cast(), 0);
    }
}

#[inline(never)]
extern "C" fn find_cb(_index: u64, ctx: *mut c_void) -> i64 {
    // SAFETY: `ctx` is the slot `run` passed, holding a live `Scan` pointer.
    let s = unsafe { &mut **ctx.cast::<*mut Scan>() };
    i64::from(!s.find_step())
}

#[inline(never)]
extern "C" fn lines_cb(_index: u64, ctx: *mut c_void) -> i64 {
    // SAFETY: as in `find_cb`.
    let s = unsafe { &mut **ctx.cast::<*mut Scan>() };
    i64::from(!s.line_step())
}

/// True when `port` is a configured HTTP port.
#[inline(always)]
pub(crate) fn is_http_port(port: u16) -> bool {
    HTTP_PORTS
        .get(u32::from(port >> 6))
        .is_some_and(|w| w & (1u64 << (port & 63)) != 0)
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
    // Most segments on an HTTP port start no request (bodies, the rest of a
    // large request): the method is checked in place before anything is
    // copied.
    let pkt = Packet::new(ctx.data(), ctx.data_end());
    method(&pkt.load::<[u8; 8]>(u.payload_off)?)?;
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
            s.scan.buf.as_mut_ptr().cast(),
            n,
        )
    };
    if r != 0 {
        return None;
    }
    s.scan.seal(n);
    let want_host = cfg.active & (COMBO_METHOD_HOST | COMBO_HOST) != 0;
    if !parse_request(s, want_host) {
        return None;
    }
    let req = s.req;
    let m = req.method;
    let host = req.host;
    let path_len = req.path_len.min(MAX_PATH as u32);
    // The path goes straight from the packet into the route key.
    if req.slash {
        s.key.data[5] = b'/';
    } else {
        // Verifier workaround: the length is stored and read back (volatile)
        // before it is checked, so the register checked is the one passed to
        // the helper; computed in place, LLVM checks a zero-extended copy.
        // SAFETY: a field of this CPU's scratch slot.
        let len = unsafe {
            core::ptr::write_volatile(&raw mut s.len, path_len);
            core::ptr::read_volatile(&raw const s.len)
        };
        if len == 0 || len > MAX_PATH as u32 {
            return None;
        }
        // SAFETY: copies `len` (1..=MAX_PATH) bytes into the key's path.
        let r = unsafe {
            bpf_xdp_load_bytes(
                ctx.as_ptr().cast(),
                u.payload_off as u32 + req.path_start,
                s.key.data.as_mut_ptr().add(5).cast(),
                len,
            )
        };
        if r != 0 {
            return None;
        }
    }
    let found = match_route(s, cfg, m, host, path_len);
    let now = now_ns();
    // One request in `sample_every`, counted per CPU (cheaper than a random
    // draw, and as fair over many requests).
    if cfg.sample_every != 0 && take_sample(s, cfg.sample_every) {
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
/// (host | any) combinations that can match (see `lookup_plan`).
#[inline(always)]
fn match_route(
    s: &mut Scratch,
    cfg: &HttpConfig,
    m: u8,
    host: u32,
    path_len: u32,
) -> Option<RouteValue> {
    let active = cfg.active;
    let combos = lookup_plan(active, cfg.method_bits, cfg.host_bits, m, host);
    let half = (active >> 16) & 1;
    s.key.prefix_len = route_key_bits(path_len);
    // Four straight lookups, most specific first. (Written as a loop over
    // a table of (bit, method, host), LLVM shifts a register the verifier
    // knows holds a pointer on a path where its value is unused, which the
    // verifier refuses.)
    let mut best = 0u32;
    let mut found: Option<RouteValue> = None;
    let mut consider = |s: &mut Scratch, mm: u8, hh: u32| {
        if let Some(v) = lookup(s, half, mm, hh)
            && (found.is_none() || v.path_len > best)
        {
            best = v.path_len;
            found = Some(v);
        }
    };
    // The order `lookup_plan` documents: ties go to host, then method routes.
    if combos & COMBO_METHOD_HOST != 0 {
        consider(s, m, host);
    }
    if combos & COMBO_HOST != 0 {
        consider(s, 0, host);
    }
    if combos & COMBO_METHOD != 0 {
        consider(s, m, 0);
    }
    if combos & COMBO_ANY != 0 {
        consider(s, 0, 0);
    }
    found
}

/// One route trie lookup for (method, host) and the path in `s.key`.
#[inline(always)]
fn lookup(s: &mut Scratch, half: u32, m: u8, host: u32) -> Option<RouteValue> {
    s.key.data[0] = m;
    let hb = host.to_be_bytes();
    s.key.data[1] = hb[0];
    s.key.data[2] = hb[1];
    s.key.data[3] = hb[2];
    s.key.data[4] = hb[3];
    let v = if half == 0 {
        ROUTES0.get(&s.key)
    } else {
        ROUTES1.get(&s.key)
    };
    v.copied()
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
