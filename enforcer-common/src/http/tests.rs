extern crate std;

use std::{format, string::String, vec::Vec};

use proptest::prelude::*;

use super::*;

/// The parsed request and its path bytes.
fn parsed(req: &[u8]) -> Option<(u8, Request, Vec<u8>)> {
    scan(req, true).map(|r| (r.method, r, r.path(req).to_vec()))
}

#[test]
fn every_registered_method() {
    for (i, m) in METHODS.iter().enumerate().skip(1) {
        let req = format!("{m} /x HTTP/1.1\r\nHost: a\r\n\r\n");
        let (id, _, path) = parsed(req.as_bytes()).unwrap_or_else(|| panic!("{m}"));
        assert_eq!(id as usize, i);
        assert_eq!(path, b"/x");
        assert_eq!(method_id(m), Some(id));
    }
    for not in [
        &b"get / HTTP/1.1\r\n\r\n"[..],
        b"PROPFIND / HTTP/1.1\r\n\r\n",
        b"GET  / HTTP/1.1\r\n",
        b"GET / HTTP/2.0\r\n\r\n",
        b"GET / HTTP/1.1x\r\n",
        b"GET /\r\n",
        b"GET /a?b\r\n",
        b"GET",
        b"GET ",
    ] {
        assert!(parsed(not).is_none(), "{:?}", String::from_utf8_lossy(not));
    }
    assert_eq!(method_id("post"), None);
}

#[test]
fn origin_and_absolute_forms_and_hosts() {
    let (_, r, path) =
        parsed(b"GET /api/items?id=3 HTTP/1.1\r\nAccept: */*\r\nhOsT:  Shop.Example \r\n\r\n")
            .unwrap();
    assert_eq!(path, b"/api/items");
    assert_eq!(r.host, host_hash("shop.example"));
    assert!(r.version);
    // Host is looked for only when asked.
    let req = b"GET / HTTP/1.1\r\nHost: a.example\r\n\r\n";
    assert_eq!(scan(req, false).unwrap().host, 0);
    assert_eq!(scan(req, true).unwrap().host, host_hash("a.example"));
    let (_, r, path) =
        parsed(b"GET http://Shop.Example:8080/login HTTP/1.1\r\nHost: other\r\n\r\n").unwrap();
    assert_eq!(path, b"/login");
    assert_eq!(
        r.host,
        host_hash("shop.example"),
        "absolute-form: the authority is the host"
    );
    let (_, r, path) = parsed(b"GET https://h.example HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(
        (path.as_slice(), r.host),
        (&b"/"[..], host_hash("h.example"))
    );
    let (_, _, path) = parsed(b"GET http://h.example?x=1 HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(path, b"/");
    let (_, _, path) = parsed(b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
    assert_eq!(path, b"*");
    // No Host in this segment: none; an empty line ends the headers.
    let (_, r, _) = parsed(b"POST /login HTTP/1.1\r\nContent-Length: 3\r\n").unwrap();
    assert_eq!(r.host, 0);
    let (_, r, _) = parsed(b"POST /login HTTP/1.1\r\n\r\nHost: a\r\n").unwrap();
    assert_eq!(r.host, 0, "a Host in the body is no header");
    // A Host value cut by the end of the segment is taken as read.
    let (_, r, _) = parsed(b"GET / HTTP/1.1\r\nHost: api.exa").unwrap();
    assert_eq!(r.host, host_hash("api.exa"));
    // Headers of every length around the word size.
    for k in 0..20 {
        let req = format!(
            "GET /p HTTP/1.1\r\nX-{}: v\r\nHost: h{k}.test\r\n\r\n",
            "a".repeat(k)
        );
        assert_eq!(
            parsed(req.as_bytes()).unwrap().1.host,
            host_hash(&format!("h{k}.test"))
        );
    }
    assert!(parsed(b"SSH-2.0-OpenSSH_9.2\r\n").is_none());
    assert!(
        parsed(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03").is_none(),
        "TLS ClientHello"
    );
    assert!(parsed(b"GET ftp://x/ HTTP/1.1\r\n").is_none());
}

#[test]
fn long_targets_are_bounded() {
    let long = format!("GET /{} HTTP/1.1\r\nHost: h\r\n\r\n", "a".repeat(4096));
    let (_, r, path) = parsed(long.as_bytes()).unwrap();
    assert_eq!(path.len(), MAX_PATH);
    assert!(!r.version, "the line end lies beyond the bytes scanned");
    assert_eq!(r.host, 0);
    // A version cut by the end of the bytes: as much as is visible must fit.
    let mut cut = format!("GET /{} HTTP/1.", "b".repeat(SCAN_BYTES - 16)).into_bytes();
    assert!(scan(&cut, true).is_some());
    cut.truncate(SCAN_BYTES);
    let n = cut.len();
    cut[n - 2] = b'X';
    assert!(scan(&cut, true).is_none());
}

#[test]
fn status_lines() {
    let st = |s: &[u8]| {
        let mut b = [0u8; 13];
        b.copy_from_slice(&s[..13]);
        status(&b)
    };
    assert_eq!(st(b"HTTP/1.1 401 Unauthorized"), Some(401));
    assert_eq!(st(b"HTTP/1.0 503 Service Unav"), Some(503));
    assert_eq!(st(b"HTTP/1.1 200\r\nContent-Le"), Some(200));
    assert_eq!(st(b"HTTP/2.0 200 OK\r\n\r\n...."), None);
    assert_eq!(st(b"HTTP/1.1 600 Whatever...."), None);
    assert_eq!(st(b"HTTP/1.1 4x1 Nope......."), None);
    assert_eq!(status_class(401), Some(STATUS_401));
    assert_eq!(status_class(502), Some(STATUS_5XX));
    assert_eq!(status_class(200), None);
}

/// Tokens that exercise the parser's edges.
fn arb_method() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(METHODS[1..].to_vec()).prop_map(String::from),
        "[A-Za-z]{1,9}",
    ]
}

fn arb_target() -> impl Strategy<Value = String> {
    prop_oneof![
        "/[a-zA-Z0-9/._~%-]{0,40}(\\?[a-z0-9=&]{0,10})?",
        "http://[a-z]{1,10}(\\.[a-z]{2,3})?(:[0-9]{1,4})?(/[a-z0-9/]{0,20})?",
        Just(String::from("*")),
        "[a-z]{1,5}",
    ]
}

proptest! {
    /// Against httparse on generated request heads: whenever httparse reads
    /// a complete, valid request line with a registered method, we see the
    /// same method and the same path (up to '?', cut at MAX_PATH), and the
    /// same Host; and we never call a request what httparse rejects as one.
    #[test]
    fn agrees_with_httparse(
        m in arb_method(),
        t in arb_target(),
        v in prop_oneof![Just("HTTP/1.1"), Just("HTTP/1.0"), Just("HTTP/2.0"), Just("HTX/1.1")],
        host in proptest::option::of("[a-zA-Z0-9.-]{1,20}"),
        extra in proptest::collection::vec(("[A-Za-z-]{1,12}", "[ -~]{0,20}"), 0..4),
    ) {
        let mut req = format!("{m} {t} {v}\r\n");
        for (k, val) in &extra {
            req.push_str(&format!("{k}: {val}\r\n"));
        }
        if let Some(h) = &host {
            req.push_str(&format!("Host: {h}\r\n"));
        }
        req.push_str("\r\n");
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut r = httparse::Request::new(&mut headers);
        let reference = r.parse(req.as_bytes());
        let ours = parsed(req.as_bytes());
        let registered = method_id(&m).is_some();
        let form_ok = t.starts_with('/') || t.starts_with("http://") || t == "*";
        if let Ok(httparse::Status::Complete(_)) = reference
            && registered
            && form_ok
            && matches!(r.version, Some(0 | 1))
        {
            {
                let (id, s, ours_path) = ours.clone().expect("a request httparse reads");
                prop_assert_eq!(METHODS[id as usize], r.method.unwrap());
                let path = r.path.unwrap();
                let path = if let Some(rest) = path.strip_prefix("http://") {
                    rest.find('/').map_or("/", |i| &rest[i..])
                } else {
                    path
                };
                let path = path.split('?').next().unwrap();
                let want: Vec<u8> = path.bytes().take(MAX_PATH).collect();
                prop_assert_eq!(&ours_path[..], &want[..]);
                prop_assert!(s.version);
                if !t.starts_with("http://") {
                    let h = r.headers.iter().find(|h| h.name.eq_ignore_ascii_case("host"));
                    match h {
                        Some(h) => {
                            let value = core::str::from_utf8(h.value).unwrap().trim();
                            prop_assert_eq!(s.host, host_hash(value));
                        }
                        None => prop_assert_eq!(s.host, 0),
                    }
                }
            }
        }
        if !registered {
            prop_assert!(ours.is_none(), "{m} is not a registered method");
        }
        // The other way: what we call a request (its line end is within the
        // bytes scanned here), httparse reads as an HTTP/1.x request.
        if ours.is_some() {
            prop_assert!(
                matches!(reference, Ok(httparse::Status::Complete(_)))
                    && matches!(r.version, Some(0 | 1)),
                "we took {req:?} for a request; httparse: {reference:?}"
            );
        }
    }

    /// Whatever the bytes, the scanner stays within its bounds and ends.
    #[test]
    fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..700)) {
        let _ = scan(&bytes, true);
        let mut b = [0u8; 13];
        for (i, x) in bytes.iter().take(13).enumerate() { b[i] = *x; }
        let _ = status(&b);
    }

    /// Status lines agree with httparse.
    #[test]
    fn status_agrees_with_httparse(code in 100u16..700, minor in 0u8..3, reason in "[A-Za-z ]{0,12}") {
        let line = format!("HTTP/1.{minor} {code} {reason}\r\n\r\n");
        let mut headers = [httparse::EMPTY_HEADER; 4];
        let mut r = httparse::Response::new(&mut headers);
        let reference = r.parse(line.as_bytes());
        let mut b = [0u8; 13];
        for (i, x) in line.bytes().take(13).enumerate() { b[i] = x; }
        let ours = status(&b);
        match reference {
            Ok(httparse::Status::Complete(_)) if minor <= 1 && (100..600).contains(&code) => prop_assert_eq!(ours, Some(code)),
            _ => prop_assert!(ours.is_none() || (100..600).contains(&code)),
        }
    }
}
