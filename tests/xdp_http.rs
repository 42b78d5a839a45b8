//! BPF_PROG_TEST_RUN tests of the HTTP stage (request parsing, route
//! matching, per-route limits, the `reject` reset) and of the TC response
//! observer, through the real compiled programs.

use std::{
    net::{Ipv4Addr, Ipv6Addr},
    time::Duration,
};

use enforcer::config::{Config, HttpConfig};
use enforcer_common::{
    http::{STATUS_5XX, STATUS_401},
    route::{EVENT_REQUEST, EVENT_RESPONSE, NO_ROUTE, RequestSample, ResponseReport},
};
use enforcer_tests::{
    packet::*,
    testrun::{Program, XDP_DROP, XDP_PASS, XDP_TX},
};

const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 7);
const SERVER: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 1);
/// Client sequence and acknowledgement numbers in the request segments.
const SEQ: u32 = 0x1111_2222;
const ACK: u32 = 0x8877_6655;

/// The `[http]` and `[[routes]]` of a policy text.
fn http(toml: &str) -> HttpConfig {
    Config::parse(std::path::Path::new("test.toml"), toml)
        .unwrap_or_else(|e| panic!("{e}"))
        .http
}

fn segment(dport: u16, payload: &[u8]) -> L4 {
    L4::Tcp {
        sport: 40000,
        dport,
        seq: SEQ,
        ack: ACK,
        flags: TCP_ACK | TCP_PSH,
        payload: payload.to_vec(),
    }
}

fn req4(dport: u16, payload: &[u8]) -> Vec<u8> {
    v4_frame(&Ipv4::new(CLIENT, SERVER, segment(dport, payload)))
}

fn req6(payload: &[u8]) -> Vec<u8> {
    v6_frame(&Ipv6::new(
        "2001:2::7".parse().unwrap(),
        "2001:2:1::1".parse().unwrap(),
        segment(80, payload),
    ))
}

/// A program with `routes` installed (every route: 1 request/s, burst 1).
fn program(toml: &str) -> Program {
    let mut p = Program::new();
    p.set_http(&http(toml), 0);
    p
}

fn requests(p: &Program) -> Vec<u64> {
    p.dp.http
        .route_counts()
        .unwrap()
        .iter()
        .map(|c| c.requests)
        .collect()
}

const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

#[test]
fn each_registered_method_is_recognised_and_matched_to_its_route() {
    let mut toml = String::new();
    for m in METHODS {
        toml += &format!(
            "[[routes]]\nname = \"{m}\"\nmethod = \"{m}\"\npath = \"/\"\nrate = 1\nburst = 1\n"
        );
    }
    let p = program(&toml);
    for (i, m) in METHODS.iter().enumerate() {
        let target = if *m == "CONNECT" {
            "api.test:443"
        } else {
            "/x"
        };
        let line = format!("{m} {target} HTTP/1.1\r\nHost: api.test\r\n\r\n");
        assert_eq!(p.run(&req4(80, line.as_bytes())), XDP_PASS, "{m}: first");
        let got = requests(&p);
        if *m == "CONNECT" {
            // An authority-form target is no path: no route matches it.
            assert_eq!(got[i], 0, "{m}");
            continue;
        }
        assert_eq!(got[i], 1, "{m} counted on its own route: {got:?}");
        assert_eq!(p.run(&req4(80, line.as_bytes())), XDP_DROP, "{m}: over 1/s");
    }
    // Each route saw only its method.
    let got = requests(&p);
    assert_eq!(got.iter().sum::<u64>(), 2 * 8, "{got:?}");
}

#[test]
fn lowercase_and_unknown_methods_are_not_requests() {
    let p = program("[[routes]]\nname = \"all\"\npath = \"/\"\nrate = 1\nburst = 1\n");
    for line in [
        &b"get / HTTP/1.1\r\n\r\n"[..],
        b"Get / HTTP/1.1\r\n\r\n",
        b"FETCH / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/2.0\r\n\r\n",
        b"GET /\r\n\r\n",
        b"GET  / HTTP/1.1\r\n\r\n",
    ] {
        for _ in 0..3 {
            assert_eq!(p.run(&req4(80, line)), XDP_PASS);
        }
        assert_eq!(requests(&p), vec![0], "{:?}", String::from_utf8_lossy(line));
    }
    assert_eq!(p.run(&req4(80, b"GET / HTTP/1.0\r\n\r\n")), XDP_PASS);
    assert_eq!(requests(&p), vec![1], "HTTP/1.0 is a request");
}

#[test]
fn origin_and_absolute_form_targets_match_the_longest_prefix() {
    let p = program(
        "[[routes]]\nname = \"root\"\npath = \"/\"\nrate = 100\n\
         [[routes]]\nname = \"api\"\npath = \"/api/\"\nrate = 100\n\
         [[routes]]\nname = \"login\"\nmethod = \"POST\"\npath = \"/api/login\"\nrate = 100\n",
    );
    p.run(&req4(80, b"GET /index.html HTTP/1.1\r\n\r\n"));
    assert_eq!(requests(&p), vec![1, 0, 0]);
    p.run(&req4(80, b"GET /api/items?page=2 HTTP/1.1\r\n\r\n"));
    assert_eq!(requests(&p), vec![1, 1, 0]);
    p.run(&req4(80, b"POST /api/login HTTP/1.1\r\nHost: a\r\n\r\n"));
    assert_eq!(requests(&p), vec![1, 1, 1]);
    // GET /api/login: the POST route does not apply, the next longest does.
    p.run(&req4(80, b"GET /api/login HTTP/1.1\r\n\r\n"));
    assert_eq!(requests(&p), vec![1, 2, 1]);
    // Absolute form: the path after the authority is what is matched.
    p.run(&req4(
        80,
        b"POST http://api.test/api/login HTTP/1.1\r\n\r\n",
    ));
    assert_eq!(requests(&p), vec![1, 2, 2]);
    p.run(&req4(
        80,
        b"GET http://api.test:8080/api/x HTTP/1.1\r\n\r\n",
    ));
    assert_eq!(requests(&p), vec![1, 3, 2]);
    // IPv6 clients are parsed the same way.
    p.run(&req6(b"POST /api/login HTTP/1.1\r\n\r\n"));
    assert_eq!(requests(&p), vec![1, 3, 3]);
}

#[test]
fn a_long_target_is_bounded_and_matched_on_its_first_bytes() {
    let p = program(
        "[[routes]]\nname = \"long\"\npath = \"/aaaa\"\nrate = 1\nburst = 1\n\
         [[routes]]\nname = \"root\"\npath = \"/\"\nrate = 100\n",
    );
    // The largest frame BPF_PROG_TEST_RUN takes for a non-frags XDP program
    // is about a page: a 3,400-byte target, far past the 512 bytes scanned
    // (the netns test sends a real 4 KiB target).
    let target = format!("/{}", "a".repeat(3_400));
    let line = format!("GET {target} HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(p.run(&req4(80, line.as_bytes())), XDP_PASS);
    assert_eq!(requests(&p), vec![1, 0]);
    assert_eq!(p.run(&req4(80, line.as_bytes())), XDP_DROP);
    // A long target whose line end is beyond the scan is still a request:
    // the scan stops at its bound without reading further.
    assert_eq!(requests(&p), vec![2, 0]);
}

#[test]
fn host_routes_need_the_host_header_in_the_same_segment() {
    let p = program(
        "[[routes]]\nname = \"api-host\"\npath = \"/\"\nhost = \"api.example.test\"\nrate = 100\n\
         [[routes]]\nname = \"any-host\"\npath = \"/\"\nrate = 100\n",
    );
    p.run(&req4(
        80,
        b"GET /x HTTP/1.1\r\nUser-Agent: t\r\nHost: api.example.test\r\n\r\n",
    ));
    assert_eq!(requests(&p), vec![1, 0], "Host present");
    p.run(&req4(
        80,
        b"GET /x HTTP/1.1\r\nhost: API.Example.Test:80\r\n\r\n",
    ));
    assert_eq!(
        requests(&p),
        vec![2, 0],
        "header name and host are case-insensitive, port ignored"
    );
    p.run(&req4(80, b"GET /x HTTP/1.1\r\nHost: other.test\r\n\r\n"));
    assert_eq!(requests(&p), vec![2, 1], "another host");
    p.run(&req4(80, b"GET /x HTTP/1.1\r\nAccept: */*\r\n\r\n"));
    assert_eq!(requests(&p), vec![2, 2], "Host absent");
    // The request line alone in one segment, the Host in the next one: the
    // first is matched without a host, the second is not a request start.
    p.run(&req4(80, b"GET /x HTTP/1.1\r\n"));
    p.run(&req4(80, b"Host: api.example.test\r\n\r\n"));
    assert_eq!(requests(&p), vec![2, 3], "Host in another segment");
    // Absolute form carries the host in the target.
    p.run(&req4(80, b"GET http://api.example.test/x HTTP/1.1\r\n\r\n"));
    assert_eq!(
        requests(&p),
        vec![3, 3],
        "host from the absolute-form target"
    );
}

#[test]
fn non_http_payloads_and_other_ports_are_left_alone() {
    let p = program("[[routes]]\nname = \"all\"\npath = \"/\"\nrate = 1\nburst = 1\n");
    for payload in [
        &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"[..],
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"SSH-2.0-OpenSSH_9.6\r\n",
        b"\0\0\0\0\0\0\0\0\0\0",
        b"G",
    ] {
        for _ in 0..3 {
            assert_eq!(p.run(&req4(80, payload)), XDP_PASS);
        }
    }
    // 8080 is a default port, 9090 is not configured.
    for _ in 0..3 {
        assert_eq!(p.run(&req4(9090, b"GET / HTTP/1.1\r\n\r\n")), XDP_PASS);
    }
    assert_eq!(requests(&p), vec![0]);
    p.run(&req4(8080, b"GET / HTTP/1.1\r\n\r\n"));
    assert_eq!(requests(&p), vec![1]);
    // With ports = [9090], 80 is no longer parsed and 9090 is.
    let mut p = p;
    p.set_http(
        &http("[http]\nports = [9090]\n[[routes]]\nname = \"all\"\npath = \"/\"\nrate = 1\nburst = 1\n"),
        0,
    );
    p.run(&req4(80, b"GET / HTTP/1.1\r\n\r\n"));
    assert_eq!(requests(&p), vec![0], "the new route set starts from zero");
    p.run(&req4(9090, b"GET / HTTP/1.1\r\n\r\n"));
    assert_eq!(requests(&p), vec![1]);
}

#[test]
fn monitor_passes_and_counts_and_reject_answers_with_a_reset() {
    let p = program(
        "[[routes]]\nname = \"watch\"\npath = \"/watch\"\nrate = 1\nburst = 1\naction = \"monitor\"\n\
         [[routes]]\nname = \"login\"\nmethod = \"POST\"\npath = \"/login\"\nrate = 1\nburst = 1\naction = \"reject\"\n",
    );
    for _ in 0..5 {
        assert_eq!(p.run(&req4(80, b"GET /watch HTTP/1.1\r\n\r\n")), XDP_PASS);
    }
    let c = p.dp.http.route_counts().unwrap();
    assert_eq!((c[0].requests, c[0].over), (5, 4));
    assert_eq!(p.count("monitor", "route_limit"), 4);

    let payload = b"POST /login HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n";
    let frame = req4(80, payload);
    assert_eq!(p.run(&frame), XDP_PASS);
    let (action, out) = p.run_out(&frame);
    assert_eq!(action, XDP_TX);
    assert_eq!(p.count("reject", "route_limit"), 1);
    // Ethernet: addresses swapped.
    assert_eq!(out.len(), 14 + 20 + 20, "payload trimmed");
    assert_eq!(&out[0..6], &frame[6..12]);
    assert_eq!(&out[6..12], &frame[0..6]);
    assert_eq!(&out[12..14], &[0x08, 0x00]);
    // IPv4: addresses swapped, length 40, TCP, DF, valid checksum.
    let ip = &out[14..34];
    assert_eq!(ip[0], 0x45);
    assert_eq!(u16::from_be_bytes([ip[2], ip[3]]), 40);
    assert_eq!(ip[6] & 0x40, 0x40, "DF");
    assert_eq!(ip[9], 6);
    assert!(ip[8] > 0, "TTL");
    assert_eq!(&ip[12..16], &SERVER.octets());
    assert_eq!(&ip[16..20], &CLIENT.octets());
    assert_eq!(checksum(&[ip]), 0, "IPv4 header checksum");
    // TCP: ports swapped, SEQ = the request's ACK, ACK = its SEQ + payload.
    let tcp = &out[34..54];
    assert_eq!(u16::from_be_bytes([tcp[0], tcp[1]]), 80);
    assert_eq!(u16::from_be_bytes([tcp[2], tcp[3]]), 40000);
    assert_eq!(u32::from_be_bytes(tcp[4..8].try_into().unwrap()), ACK);
    assert_eq!(
        u32::from_be_bytes(tcp[8..12].try_into().unwrap()),
        SEQ + payload.len() as u32
    );
    assert_eq!(tcp[12] >> 4, 5, "no options");
    assert_eq!(tcp[13], TCP_RST | TCP_ACK);
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&SERVER.octets());
    pseudo.extend_from_slice(&CLIENT.octets());
    pseudo.extend_from_slice(&[0, 6, 0, 20]);
    assert_eq!(checksum(&[&pseudo, tcp]), 0, "TCP checksum");
}

#[test]
fn the_reset_is_right_over_ipv6_too() {
    let p = program(
        "[[routes]]\nname = \"login\"\npath = \"/login\"\nrate = 1\nburst = 1\naction = \"reject\"\n",
    );
    let payload = b"POST /login HTTP/1.1\r\n\r\n";
    let frame = req6(payload);
    assert_eq!(p.run(&frame), XDP_PASS);
    let (action, out) = p.run_out(&frame);
    assert_eq!(action, XDP_TX);
    assert_eq!(out.len(), 14 + 40 + 20);
    assert_eq!(&out[0..6], &frame[6..12]);
    let ip = &out[14..54];
    assert_eq!(ip[0] >> 4, 6);
    assert_eq!(u16::from_be_bytes([ip[4], ip[5]]), 20);
    assert_eq!(ip[6], 6);
    let client: Ipv6Addr = "2001:2::7".parse().unwrap();
    let server: Ipv6Addr = "2001:2:1::1".parse().unwrap();
    assert_eq!(&ip[8..24], &server.octets());
    assert_eq!(&ip[24..40], &client.octets());
    let tcp = &out[54..74];
    assert_eq!(u32::from_be_bytes(tcp[4..8].try_into().unwrap()), ACK);
    assert_eq!(
        u32::from_be_bytes(tcp[8..12].try_into().unwrap()),
        SEQ + payload.len() as u32
    );
    assert_eq!(tcp[13], TCP_RST | TCP_ACK);
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&server.octets());
    pseudo.extend_from_slice(&client.octets());
    pseudo.extend_from_slice(&[0, 0, 0, 20, 0, 0, 0, 6]);
    assert_eq!(checksum(&[&pseudo, tcp]), 0, "TCP checksum");
}

#[test]
fn a_reset_cannot_be_built_with_ip_options_so_it_drops() {
    let p = program(
        "[[routes]]\nname = \"login\"\npath = \"/login\"\nrate = 1\nburst = 1\naction = \"reject\"\n",
    );
    let frame = v4_frame(
        &Ipv4::new(CLIENT, SERVER, segment(80, b"POST /login HTTP/1.1\r\n\r\n"))
            .options(&[1, 1, 1, 1]),
    );
    assert_eq!(p.run(&frame), XDP_PASS);
    assert_eq!(p.run(&frame), XDP_DROP);
}

#[test]
fn route_limits_are_per_client_key() {
    let p = program("[[routes]]\nname = \"login\"\npath = \"/login\"\nrate = 1\nburst = 2\n");
    let from = |a: Ipv4Addr| {
        v4_frame(&Ipv4::new(
            a,
            SERVER,
            segment(80, b"POST /login HTTP/1.1\r\n\r\n"),
        ))
    };
    let a = Ipv4Addr::new(198, 18, 0, 1);
    let b = Ipv4Addr::new(198, 18, 0, 2);
    assert_eq!(p.run(&from(a)), XDP_PASS);
    assert_eq!(p.run(&from(a)), XDP_PASS);
    assert_eq!(p.run(&from(a)), XDP_DROP);
    assert_eq!(
        p.run(&from(b)),
        XDP_PASS,
        "another client has its own bucket"
    );
    // Non-request segments of the same client (ACKs, bodies) are not limited.
    assert_eq!(p.run(&req4(80, b"{\"user\":\"x\"}")), XDP_PASS);
}

#[test]
fn requests_are_sampled_to_the_agent() {
    let mut p = Program::new();
    p.set_http(
        &http("[http]\nsample_every = 1\n[[routes]]\nname = \"login\"\nmethod = \"POST\"\npath = \"/login\"\nrate = 100\n"),
        0,
    );
    p.run(&req4(80, b"POST /login HTTP/1.1\r\n\r\n"));
    p.run(&req4(80, b"GET /other HTTP/1.1\r\n\r\n"));
    let samples: Vec<RequestSample> = p
        .raw_events()
        .iter()
        // SAFETY: 48-byte events of plain integers.
        .map(|b| unsafe { std::ptr::read_unaligned(b.as_ptr().cast()) })
        .collect();
    assert_eq!(samples.len(), 2);
    assert!(
        samples
            .iter()
            .all(|s| s.kind == EVENT_REQUEST && s.weight == 1)
    );
    assert_eq!((samples[0].route, samples[0].method), (0, 3));
    assert_eq!(&samples[0].addr[..4], &CLIENT.octets());
    assert_eq!((samples[1].route, samples[1].method), (NO_ROUTE, 1));
}

fn response4(sport: u16, payload: &[u8]) -> Vec<u8> {
    v4_frame(&Ipv4::new(
        SERVER,
        CLIENT,
        L4::Tcp {
            sport,
            dport: 40000,
            seq: 1,
            ack: 1,
            flags: TCP_ACK | TCP_PSH,
            payload: payload.to_vec(),
        },
    ))
}

#[test]
fn the_tc_program_counts_watched_statuses_per_client() {
    let mut p = Program::new();
    p.set_http(&http("[http]\nreport_interval = \"1h\"\n"), 3);
    const TC_NEXT: i32 = -1;
    for _ in 0..4 {
        assert_eq!(
            p.run_tc(&response4(
                80,
                b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n"
            )),
            TC_NEXT
        );
    }
    p.run_tc(&response4(80, b"HTTP/1.1 503 Service Unavailable\r\n\r\n"));
    // Not counted: a status not watched, another port, a body segment.
    p.run_tc(&response4(80, b"HTTP/1.1 200 OK\r\n\r\n"));
    p.run_tc(&response4(9090, b"HTTP/1.1 401 Unauthorized\r\n\r\n"));
    p.run_tc(&response4(80, b"<html>HTTP/1.1 401</html>"));
    let counts = p.dp.http.response_counts().unwrap();
    assert_eq!(counts, vec![4, 0, 0, 0, 1]);
    let reports: Vec<ResponseReport> = p
        .raw_events()
        .iter()
        // SAFETY: 48-byte events of plain integers.
        .map(|b| unsafe { std::ptr::read_unaligned(b.as_ptr().cast()) })
        .collect();
    assert!(reports.iter().all(|r| r.kind == EVENT_RESPONSE));
    // The first 401 is reported at once; then the batch of 3 fills.
    let r401: Vec<u64> = reports
        .iter()
        .filter(|r| r.class == STATUS_401)
        .map(|r| r.count)
        .collect();
    assert_eq!(r401, vec![1, 3]);
    assert_eq!(
        &reports[0].addr[..4],
        &CLIENT.octets(),
        "the client is the destination"
    );
    assert_eq!(reports[0].prefix_len, 32);
    assert!(
        reports
            .iter()
            .any(|r| r.class == STATUS_5XX && r.count == 1)
    );
}

#[test]
fn a_batch_fires_with_the_response_that_fills_it_despite_interval_reports() {
    let mut p = Program::new();
    p.set_http(&http("[http]\nreport_interval = \"20ms\"\n"), 3);
    let r401 = || response4(80, b"HTTP/1.1 401 Unauthorized\r\n\r\n");
    p.run_tc(&r401()); // the first: reported at once
    std::thread::sleep(Duration::from_millis(60));
    p.run_tc(&r401()); // after the interval: reported (1), and kept in the batch
    p.run_tc(&r401());
    p.run_tc(&r401()); // the third since the batch began: the batch fires
    let counts: Vec<u64> = p
        .raw_events()
        .iter()
        // SAFETY: 48-byte events of plain integers.
        .map(|b| unsafe { std::ptr::read_unaligned::<ResponseReport>(b.as_ptr().cast()) })
        .filter(|r| r.class == STATUS_401)
        .map(|r| r.count)
        .collect();
    // Counting from the last report instead would hold the last two until
    // the next interval: [1, 1].
    assert_eq!(counts, vec![1, 1, 2]);
}
