extern crate std;

use std::{format, string::String, vec::Vec};

use proptest::prelude::*;

use super::*;

fn path_of(s: &RequestScan) -> &[u8] {
    &s.path[..s.path_len as usize]
}

#[test]
fn every_registered_method() {
    for (i, m) in METHODS.iter().enumerate().skip(1) {
        let req = format!("{m} /x HTTP/1.1\r\nHost: a\r\n\r\n");
        let (id, s) = scan(req.as_bytes()).unwrap_or_else(|| panic!("{m}"));
        assert_eq!(id as usize, i);
        assert_eq!(path_of(&s), b"/x");
        assert_eq!(method_id(m), Some(id));
    }
    assert!(
        scan(b"get / HTTP/1.1\r\n\r\n").is_none(),
        "methods are case-sensitive"
    );
    assert!(scan(b"PROPFIND / HTTP/1.1\r\n\r\n").is_none());
    assert!(scan(b"GET  / HTTP/1.1\r\n").is_none());
    assert_eq!(method_id("post"), None);
}

#[test]
fn origin_and_absolute_forms_and_hosts() {
    let (_, s) =
        scan(b"GET /api/items?id=3 HTTP/1.1\r\nAccept: */*\r\nhOsT:  Shop.Example \r\n\r\n")
            .unwrap();
    assert_eq!(path_of(&s), b"/api/items");
    assert_eq!(s.host, host_hash("shop.example"));
    assert_eq!(s.version_ok, 1);
    let (_, s) =
        scan(b"GET http://Shop.Example:8080/login HTTP/1.1\r\nHost: other\r\n\r\n").unwrap();
    assert_eq!(path_of(&s), b"/login");
    assert_eq!(
        s.host,
        host_hash("shop.example"),
        "absolute-form: the authority is the host"
    );
    let (_, s) = scan(b"GET https://h.example HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(path_of(&s), b"/");
    let (_, s) = scan(b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
    assert_eq!(path_of(&s), b"*");
    // No Host in this segment: none.
    let (_, s) = scan(b"POST /login HTTP/1.1\r\nContent-Length: 3\r\n").unwrap();
    assert_eq!(s.host, 0);
    assert!(scan(b"SSH-2.0-OpenSSH_9.2\r\n").is_none());
    assert!(
        scan(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03").is_none(),
        "TLS ClientHello"
    );
    assert!(scan(b"GET ftp://x/ HTTP/1.1\r\n").is_none());
}

#[test]
fn long_targets_are_bounded() {
    let long = format!("GET /{} HTTP/1.1\r\nHost: h\r\n\r\n", "a".repeat(4096));
    let (_, s) = scan(long.as_bytes()).unwrap();
    assert_eq!(s.path_len as usize, MAX_PATH);
    assert_eq!(
        s.version_ok, 0,
        "the line end lies beyond the bytes scanned"
    );
    assert_eq!(s.host, 0);
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
        let ours = scan(req.as_bytes());
        let registered = method_id(&m).is_some();
        let form_ok = t.starts_with('/') || t.starts_with("http://") || t == "*";
        if let Ok(httparse::Status::Complete(_)) = reference
            && registered
            && form_ok
            && matches!(r.version, Some(0 | 1))
        {
            {
                let (id, s) = ours.expect("a request httparse reads");
                prop_assert_eq!(METHODS[id as usize], r.method.unwrap());
                let path = r.path.unwrap();
                let path = if let Some(rest) = path.strip_prefix("http://") {
                    rest.find('/').map_or("/", |i| &rest[i..])
                } else {
                    path
                };
                let path = path.split('?').next().unwrap();
                let want: Vec<u8> = path.bytes().take(MAX_PATH).collect();
                prop_assert_eq!(path_of(&s), &want[..]);
                prop_assert_eq!(s.version_ok, 1);
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
        let _ = scan(&bytes);
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
