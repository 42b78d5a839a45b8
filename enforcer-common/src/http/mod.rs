//! HTTP/1.x at packet level: the request line and Host header of a client
//! segment, and the status line of a server's response.
//!
//! The parser is a byte-at-a-time state machine ([`RequestScan::step`]) so the
//! XDP program can drive it from a `bpf_loop` callback over a bounded scratch
//! buffer (one callback, verified once) and the host tests can drive it over
//! any slice. It never looks past the bytes it is given: a request line or
//! header split across segments is simply not seen (documented limit).

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

/// FNV-1a over lowercased host bytes: route keys carry this, not the name.
pub const FNV_OFFSET: u32 = 0x811C_9DC5;
#[inline(always)]
pub const fn fnv_step(h: u32, c: u8) -> u32 {
    (h ^ (c.to_ascii_lowercase() as u32)).wrapping_mul(0x0100_0193)
}

/// Hash of a host name as routes store it: lowercased, without a port.
pub fn host_hash(host: &str) -> u32 {
    let mut h = FNV_OFFSET;
    for c in host.bytes().take(MAX_HOST) {
        if c == b':' {
            break;
        }
        h = fnv_step(h, c);
    }
    if h == 0 { 1 } else { h }
}

// Scanner states.
const S_TARGET: u8 = 0;
const S_SCHEME: u8 = 1;
const S_AUTHORITY: u8 = 2;
const S_AUTH_PORT: u8 = 3;
const S_PATH: u8 = 4;
const S_TARGET_REST: u8 = 5;
const S_VERSION: u8 = 6;
const S_LINE: u8 = 7;
const S_HDR_START: u8 = 8;
const S_HDR_SKIP: u8 = 9;
const S_HOST_NAME: u8 = 10;
const S_HOST_WS: u8 = 11;
const S_HOST: u8 = 12;
const S_DONE: u8 = 13;
const S_MINOR: u8 = 14;

/// The state of a request scan, and its results.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestScan {
    pub state: u8,
    /// 1 once the target was recognized (origin-, absolute- or asterisk-form).
    pub is_request: u8,
    /// 1 once " HTTP/1." followed the target.
    pub version_ok: u8,
    /// 1 when the target was absolute-form (its authority is the host).
    pub absolute: u8,
    /// Path bytes copied to `path` (at most `MAX_PATH`).
    pub path_len: u32,
    /// FNV hash of the host (0: none seen).
    pub host: u32,
    /// Working hash of the host being read.
    hash: u32,
    /// Bytes of a literal still to match (scheme, "HTTP/1.", "host:").
    skip: u32,
    /// Which literal is being matched, and where in it.
    lit: u32,
    lit_pos: u32,
    host_len: u32,
    pub path: [u8; MAX_PATH],
}

// Padded to 8 bytes: indices are masked with `& 7`, so every index is in
// bounds and no panic path reaches the BPF program.
const LIT_HTTP: &[u8; 8] = b"http://\0";
const LIT_VERSION: &[u8; 8] = b"HTTP/1.\0";
const LIT_HOST: &[u8; 8] = b"host:\0\0\0";

impl Default for RequestScan {
    fn default() -> Self {
        Self::new()
    }
}

impl RequestScan {
    /// A scan positioned just after the method's space.
    pub const fn new() -> Self {
        Self {
            state: S_TARGET,
            is_request: 0,
            version_ok: 0,
            absolute: 0,
            path_len: 0,
            host: 0,
            hash: FNV_OFFSET,
            skip: 0,
            lit: 0,
            lit_pos: 0,
            host_len: 0,
            path: [0; MAX_PATH],
        }
    }

    /// Starts a new scan in place (no temporary: in BPF the scan lives in a
    /// per-CPU map, and a copy would not fit the 512-byte stack). The path
    /// bytes are not cleared: `path_len` says how many are valid.
    #[inline(always)]
    pub fn reset(&mut self) {
        self.state = S_TARGET;
        self.is_request = 0;
        self.version_ok = 0;
        self.absolute = 0;
        self.path_len = 0;
        self.host = 0;
        self.hash = FNV_OFFSET;
        self.skip = 0;
        self.lit = 0;
        self.lit_pos = 0;
        self.host_len = 0;
    }

    #[inline(always)]
    fn push_path(&mut self, c: u8) {
        let n = self.path_len as usize;
        if n < MAX_PATH {
            // Verifier-friendly: the mask keeps the index provably in bounds.
            self.path[n & (MAX_PATH - 1)] = c;
            self.path_len += 1;
        }
    }

    #[inline(always)]
    fn finish_host(&mut self) {
        if self.host == 0 {
            self.host = if self.hash == 0 { 1 } else { self.hash };
        }
    }

    /// The bytes are not an HTTP/1.x request line after all.
    #[inline(always)]
    fn reject(&mut self) -> bool {
        self.is_request = 0;
        false
    }

    /// Takes the next byte. Returns false when the scan is over (the answer
    /// is known or the bytes are not a request).
    ///
    /// `is_request` is set once the target's form is recognized, and taken
    /// back if the line then proves not to be HTTP/1.x (a line end inside
    /// the target, another version). A target longer than the bytes scanned
    /// stays a request: its version is out of sight.
    #[inline(always)]
    pub fn step(&mut self, c: u8) -> bool {
        match self.state {
            S_TARGET => match c {
                b'/' | b'*' => {
                    self.is_request = 1;
                    self.state = S_PATH;
                    self.push_path(c);
                }
                b'h' | b'H' => {
                    self.state = S_SCHEME;
                    self.lit_pos = 1;
                }
                _ => return false,
            },
            // "http://" or "https://", case-insensitive.
            S_SCHEME => {
                let p = self.lit_pos as usize;
                let lc = c.to_ascii_lowercase();
                if p == 4 && lc == b's' && self.lit == 0 {
                    self.lit = 1; // https: one extra byte
                } else if p < 7 && lc == LIT_HTTP[p & 7] {
                    self.lit_pos += 1;
                    if self.lit_pos == 7 {
                        self.state = S_AUTHORITY;
                        self.is_request = 1;
                        self.absolute = 1;
                        self.hash = FNV_OFFSET;
                    }
                } else {
                    return false;
                }
            }
            S_AUTHORITY => match c {
                b'/' => {
                    self.finish_host();
                    self.state = S_PATH;
                    self.push_path(c);
                }
                b':' => {
                    self.finish_host();
                    self.state = S_AUTH_PORT;
                }
                b' ' => {
                    // No path: it is "/".
                    self.finish_host();
                    self.push_path(b'/');
                    self.state = S_VERSION;
                    self.lit_pos = 0;
                }
                b'\r' | b'\n' => return self.reject(),
                _ => {
                    if self.host_len < MAX_HOST as u32 {
                        self.hash = fnv_step(self.hash, c);
                        self.host_len += 1;
                    }
                }
            },
            S_AUTH_PORT => match c {
                b'/' => {
                    self.state = S_PATH;
                    self.push_path(c);
                }
                b' ' => {
                    self.push_path(b'/');
                    self.state = S_VERSION;
                    self.lit_pos = 0;
                }
                b'\r' | b'\n' => return self.reject(),
                _ => {}
            },
            S_PATH => match c {
                b' ' => {
                    self.state = S_VERSION;
                    self.lit_pos = 0;
                }
                b'?' | b'#' => self.state = S_TARGET_REST,
                b'\r' | b'\n' => return self.reject(),
                _ => self.push_path(c),
            },
            S_TARGET_REST => match c {
                b' ' => {
                    self.state = S_VERSION;
                    self.lit_pos = 0;
                }
                b'\r' | b'\n' => return self.reject(),
                _ => {}
            },
            S_VERSION => {
                let p = self.lit_pos as usize;
                if p < 7 {
                    if c != LIT_VERSION[p & 7] {
                        return self.reject();
                    }
                    self.lit_pos += 1;
                    if self.lit_pos == 7 {
                        self.state = S_MINOR;
                    }
                }
            }
            // The minor version: HTTP/1.0 or HTTP/1.1 (RFC 9112: one digit).
            S_MINOR => {
                if c != b'0' && c != b'1' {
                    return self.reject();
                }
                self.version_ok = 1;
                self.state = S_LINE;
            }
            S_LINE => {
                if c == b'\n' {
                    if self.absolute == 1 {
                        // The authority is the host; headers cannot change it.
                        self.state = S_DONE;
                        return false;
                    }
                    self.state = S_HDR_START;
                }
            }
            S_HDR_START => match c {
                b'\r' | b'\n' => {
                    self.state = S_DONE;
                    return false;
                }
                b'h' | b'H' => {
                    self.state = S_HOST_NAME;
                    self.lit_pos = 1;
                }
                _ => self.state = S_HDR_SKIP,
            },
            S_HOST_NAME => {
                let p = self.lit_pos as usize;
                if p < 5 && c.to_ascii_lowercase() == LIT_HOST[p & 7] {
                    self.lit_pos += 1;
                    if self.lit_pos == 5 {
                        self.state = S_HOST_WS;
                        self.hash = FNV_OFFSET;
                        self.host_len = 0;
                    }
                } else {
                    self.state = if c == b'\n' { S_HDR_START } else { S_HDR_SKIP };
                }
            }
            S_HDR_SKIP => {
                if c == b'\n' {
                    self.state = S_HDR_START;
                }
            }
            S_HOST_WS => match c {
                b' ' | b'\t' => {}
                b'\r' | b'\n' => {
                    self.state = S_DONE;
                    return false;
                }
                _ => {
                    self.state = S_HOST;
                    self.hash = fnv_step(self.hash, c);
                    self.host_len = 1;
                }
            },
            S_HOST => match c {
                b':' | b'\r' | b'\n' | b' ' | b'\t' => {
                    self.finish_host();
                    self.state = S_DONE;
                    return false;
                }
                _ => {
                    if self.host_len < MAX_HOST as u32 {
                        self.hash = fnv_step(self.hash, c);
                        self.host_len += 1;
                    }
                }
            },
            _ => return false,
        }
        true
    }

    /// Ends the scan at the end of the bytes available (a Host value cut by
    /// the end of the segment is taken as read so far).
    pub const fn finish(&mut self) {
        if self.state == S_HOST && self.host == 0 {
            self.host = if self.hash == 0 { 1 } else { self.hash };
        }
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

/// Runs a whole request start through the scanner (host side, and tests).
pub fn scan(payload: &[u8]) -> Option<(u8, RequestScan)> {
    let mut head = [0u8; 8];
    for (i, b) in payload.iter().take(8).enumerate() {
        head[i] = *b;
    }
    let (m, skip) = method(&head)?;
    let mut s = RequestScan::new();
    for &c in payload.iter().take(SCAN_BYTES).skip(skip) {
        if !s.step(c) {
            break;
        }
    }
    s.finish();
    (s.is_request == 1).then_some((m, s))
}

#[cfg(test)]
mod tests;
