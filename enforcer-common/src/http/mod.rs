//! HTTP/1.x at packet level: the request line and Host header of a client
//! segment, and the status line of a server's response.
//!
//! The request parser ([`scan`]) works a word (8 bytes) at a time: the XDP
//! program copies the start of the payload into a word buffer in a per-CPU
//! map and runs the word steps from `bpf_loop` callbacks (verified once),
//! the host tests run the same steps in plain loops. It never looks past the
//! bytes it is given: a request line or header split across segments is
//! simply not seen (documented limit).

mod scan;

pub use scan::{Driver, NONE, Request, SCAN_WORDS, Scan, Search, host_hash, parse};

/// Bytes of a segment's payload the program looks at.
pub const SCAN_BYTES: usize = 512;
/// Bytes of the path kept for route matching.
pub const MAX_PATH: usize = 128;
/// Bytes of a Host value hashed.
pub const MAX_HOST: usize = 64;

/// Method ids (0 = any, in route keys).
pub const METHOD_ANY: u8 = 0;
pub const METHOD_GET: u8 = 1;
pub const METHOD_HEAD: u8 = 2;
pub const METHOD_POST: u8 = 3;
pub const METHOD_PUT: u8 = 4;
pub const METHOD_DELETE: u8 = 5;
pub const METHOD_CONNECT: u8 = 6;
pub const METHOD_OPTIONS: u8 = 7;
pub const METHOD_TRACE: u8 = 8;
pub const METHOD_PATCH: u8 = 9;

/// The registered methods of RFC 9110 (§9) and PATCH (RFC 5789), by id.
pub const METHODS: [&str; 10] = [
    "*", "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// The method id for a name (case-sensitive, as RFC 9110 says).
pub fn method_id(name: &str) -> Option<u8> {
    let mut i = 1;
    while i < METHODS.len() {
        if METHODS[i].as_bytes() == name.as_bytes() {
            return Some(i as u8);
        }
        i += 1;
    }
    None
}

/// Recognizes a method and the space after it at the start of a request;
/// returns (method id, bytes up to and including the space).
#[inline(always)]
pub const fn method(b: &[u8; 8]) -> Option<(u8, usize)> {
    match *b {
        [b'G', b'E', b'T', b' ', ..] => Some((METHOD_GET, 4)),
        [b'P', b'U', b'T', b' ', ..] => Some((METHOD_PUT, 4)),
        [b'P', b'O', b'S', b'T', b' ', ..] => Some((METHOD_POST, 5)),
        [b'H', b'E', b'A', b'D', b' ', ..] => Some((METHOD_HEAD, 5)),
        [b'P', b'A', b'T', b'C', b'H', b' ', ..] => Some((METHOD_PATCH, 6)),
        [b'T', b'R', b'A', b'C', b'E', b' ', ..] => Some((METHOD_TRACE, 6)),
        [b'D', b'E', b'L', b'E', b'T', b'E', b' ', ..] => Some((METHOD_DELETE, 7)),
        [b'O', b'P', b'T', b'I', b'O', b'N', b'S', b' '] => Some((METHOD_OPTIONS, 8)),
        [b'C', b'O', b'N', b'N', b'E', b'C', b'T', b' '] => Some((METHOD_CONNECT, 8)),
        _ => None,
    }
}

/// Parses the start of a server response: `HTTP/1.x NNN `. Returns NNN.
#[inline(always)]
pub const fn status(b: &[u8; 13]) -> Option<u16> {
    match *b {
        [
            b'H',
            b'T',
            b'T',
            b'P',
            b'/',
            b'1',
            b'.',
            v,
            b' ',
            d1,
            d2,
            d3,
            sp,
        ] if (v == b'0' || v == b'1')
            && d1 >= b'1'
            && d1 <= b'5'
            && d2.is_ascii_digit()
            && d3.is_ascii_digit()
            && (sp == b' ' || sp == b'\r') =>
        {
            Some((d1 - b'0') as u16 * 100 + (d2 - b'0') as u16 * 10 + (d3 - b'0') as u16)
        }
        _ => None,
    }
}

/// Response classes the TC program counts per client.
pub const STATUS_401: u32 = 0;
pub const STATUS_403: u32 = 1;
pub const STATUS_404: u32 = 2;
pub const STATUS_429: u32 = 3;
pub const STATUS_5XX: u32 = 4;
pub const STATUS_CLASSES: u32 = 5;

/// The counted class of a status code, if any.
#[inline(always)]
pub const fn status_class(code: u16) -> Option<u32> {
    match code {
        401 => Some(STATUS_401),
        403 => Some(STATUS_403),
        404 => Some(STATUS_404),
        429 => Some(STATUS_429),
        500..=599 => Some(STATUS_5XX),
        _ => None,
    }
}

/// Names of the classes, for config, metrics and tables.
pub const STATUS_NAMES: [&str; STATUS_CLASSES as usize] = ["401", "403", "404", "429", "5xx"];

/// Parses a whole request start (host side, and tests): the bytes beyond
/// [`SCAN_BYTES`] are not looked at, as in the program.
pub fn scan(payload: &[u8], want_host: bool) -> Option<Request> {
    let mut s = Scan::new();
    s.fill(payload);
    parse(&mut s, &mut scan::Loops, want_host)
}

#[cfg(test)]
mod tests;
