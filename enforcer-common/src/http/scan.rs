//! The word-at-a-time request parser.
//!
//! Why words: the XDP program pays for every step it takes, and a byte
//! state machine costs a `bpf_loop` iteration per byte — about a
//! microsecond for an ordinary request line and Host header. Here a step
//! looks at 8 bytes at once: "which of these bytes is one of the delimiters"
//! is a handful of arithmetic operations per delimiter (SWAR), so the path
//! of a request is crossed in a few steps and a header line in one or two.
//!
//! The parse is a fixed sequence of searches ([`parse`]); each search is a
//! loop of steps ([`Scan::find_step`], [`Scan::line_step`]) that a
//! [`Driver`] runs: plain loops on the host, `bpf_loop` callbacks in the
//! program, where the state lives in map memory so the verifier checks each
//! callback once instead of once per iteration.

use super::{MAX_HOST, MAX_PATH, SCAN_BYTES, method};

/// Words of the scan buffer.
pub const SCAN_WORDS: usize = SCAN_BYTES / 8;
/// "Not found" for positions.
pub const NONE: u32 = u32::MAX;

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;
const LOW7: u64 = 0x7F7F_7F7F_7F7F_7F7F;
/// Setting bit 5 lowercases ASCII letters (and leaves `:`, `/`, digits,
/// `.` and `-` as they are).
const LOWER: u64 = 0x2020_2020_2020_2020;

/// What a search looks for. Each is a few SWAR operations per word; the
/// control bytes (below `!`: space, CR, LF, tab, ...) end every token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Search {
    /// The end of a path: a control byte, `?` or `#`.
    Path = 0,
    /// The end of a query: a control byte.
    Query = 1,
    /// The end of an authority's host: a control byte, `:`, `/`, `?`, `#`.
    Auth = 2,
    /// The end of an authority's port: a control byte, `/`, `?`, `#`.
    Port = 3,
    /// The end of a Host header value: a control byte or `:`.
    HostEnd = 4,
    /// The first byte that is not optional whitespace (space, tab).
    NotSpace = 5,
}

/// `b` as the 8 little-endian lanes of a word, for comparisons.
const fn le(b: &[u8; 8]) -> u64 {
    u64::from_le_bytes(*b)
}

/// High bit of each byte lane of `w` that equals `c` (exact, no borrows
/// between lanes).
#[inline(always)]
const fn eq_lanes(w: u64, c: u8) -> u64 {
    let x = w ^ (ONES * c as u64);
    !(((x & LOW7) + LOW7) | x | LOW7)
}

/// High bit of each byte lane of `w` below `n` (exact, `n` at most 0x80).
#[inline(always)]
const fn lt_lanes(w: u64, n: u8) -> u64 {
    !(((w & LOW7) + ONES * (0x80 - n as u64)) | w) & HIGH
}

/// The lanes of `w` that a search of `kind` stops at.
#[inline(always)]
const fn stop_lanes(kind: u32, w: u64) -> u64 {
    const CONTROL_END: u8 = b'!';
    match kind {
        0 => lt_lanes(w, CONTROL_END) | eq_lanes(w, b'?') | eq_lanes(w, b'#'),
        1 => lt_lanes(w, CONTROL_END),
        2 => {
            lt_lanes(w, CONTROL_END)
                | eq_lanes(w, b':')
                | eq_lanes(w, b'/')
                | eq_lanes(w, b'?')
                | eq_lanes(w, b'#')
        }
        3 => lt_lanes(w, CONTROL_END) | eq_lanes(w, b'/') | eq_lanes(w, b'?') | eq_lanes(w, b'#'),
        4 => lt_lanes(w, CONTROL_END) | eq_lanes(w, b':'),
        _ => !(eq_lanes(w, b' ') | eq_lanes(w, b'\t')) & HIGH,
    }
}

/// Lanes at or after byte `from` (0..8) of a word.
#[inline(always)]
const fn lanes_from(from: u32) -> u64 {
    HIGH << ((from & 7) * 8)
}

/// Lanes before byte `count` of a word (all for 8 or more).
#[inline(always)]
const fn lanes_before(count: u32) -> u64 {
    if count >= 8 {
        HIGH
    } else {
        HIGH & ((1u64 << (count * 8)) - 1)
    }
}

/// A mask of the first `count` bytes of a word (all for 8 or more).
#[inline(always)]
const fn bytes_mask(count: u32) -> u64 {
    if count >= 8 {
        u64::MAX
    } else {
        (1u64 << (count * 8)) - 1
    }
}

/// Index (0..8) of the lowest set lane; `lanes` is not 0.
#[inline(always)]
const fn first_lane(lanes: u64) -> u32 {
    let mut b = (lanes & lanes.wrapping_neg()) >> 7;
    let mut k = 0;
    if b >= 1 << 32 {
        k += 4;
        b >>= 32;
    }
    if b >= 1 << 16 {
        k += 2;
        b >>= 16;
    }
    if b >= 1 << 8 {
        k += 1;
    }
    k
}

/// Mixes one word into a host hash.
#[inline(always)]
const fn mix(h: u64, w: u64) -> u64 {
    (h ^ w).wrapping_mul(0x0000_0100_0000_01B3)
}

const HASH_SEED: u64 = 0xCBF2_9CE4_8422_2325;

/// Folds a host hash to the 32 bits route keys carry (never 0: 0 is "none").
#[inline(always)]
const fn fold(h: u64) -> u32 {
    let v = (h ^ (h >> 32)) as u32;
    if v == 0 { 1 } else { v }
}

/// Hash of a host name as routes store it: lowercased, without a port, at
/// most [`MAX_HOST`] bytes; the program computes the same from a request.
pub fn host_hash(host: &str) -> u32 {
    let b = host.as_bytes();
    let end = b
        .iter()
        .position(|&c| c == b':')
        .unwrap_or(b.len())
        .min(MAX_HOST);
    let mut h = HASH_SEED;
    for chunk in b[..end].chunks(8) {
        let mut w = [0u8; 8];
        w[..chunk.len()].copy_from_slice(chunk);
        h = mix(
            h,
            u64::from_le_bytes(w) | (LOWER & bytes_mask(chunk.len() as u32)),
        );
    }
    fold(h)
}

/// The parse state and the bytes it works on. In the program it lives in a
/// per-CPU map (too big for the stack, and imprecise to the verifier).
#[repr(C)]
#[derive(Clone, Debug)]
pub struct Scan {
    /// The payload's first bytes; zero after `n` for at least a word.
    pub buf: [u64; SCAN_WORDS],
    /// Bytes of payload in `buf`.
    pub n: u32,
    /// The current search: from `pos` to before `end`, of a [`Search`] kind.
    pub pos: u32,
    pub end: u32,
    pub found: u32,
    pub kind: u32,
}

impl Default for Scan {
    fn default() -> Self {
        Self::new()
    }
}

impl Scan {
    pub const fn new() -> Self {
        Self {
            buf: [0; SCAN_WORDS],
            n: 0,
            pos: 0,
            end: 0,
            found: NONE,
            kind: 0,
        }
    }

    /// Copies the start of `payload` in (host side; the program loads the
    /// buffer itself and calls [`Scan::seal`]).
    pub fn fill(&mut self, payload: &[u8]) {
        let n = payload.len().min(SCAN_BYTES);
        self.buf = [0; SCAN_WORDS];
        for (i, c) in payload[..n].chunks(8).enumerate() {
            let mut w = [0u8; 8];
            w[..c.len()].copy_from_slice(c);
            self.buf[i] = u64::from_le_bytes(w);
        }
        self.seal(n as u32);
    }

    /// Records `n` bytes as loaded and zeroes the rest of their word and
    /// the next one (left over from an earlier packet), so reads just past
    /// the end see zeros.
    #[inline(always)]
    pub fn seal(&mut self, n: u32) {
        let n = if n > SCAN_BYTES as u32 {
            SCAN_BYTES as u32
        } else {
            n
        };
        self.n = n;
        let k = (n >> 3) as usize;
        if k < SCAN_WORDS {
            self.buf[k & (SCAN_WORDS - 1)] &= bytes_mask(n & 7);
        }
        if k + 1 < SCAN_WORDS {
            self.buf[(k + 1) & (SCAN_WORDS - 1)] = 0;
        }
    }

    /// The byte at `i`, for `i` below `n` (zero just past it; past the
    /// buffer, indices wrap: callers stay below `n`).
    ///
    /// Verifier workaround: indices are masked, never range-checked. After a
    /// range check LLVM drops the mask as redundant and may index with a copy
    /// of the value the verifier did not see checked.
    #[inline(always)]
    pub const fn byte(&self, i: u32) -> u8 {
        (self.buf[(i as usize >> 3) & (SCAN_WORDS - 1)] >> ((i & 7) * 8)) as u8
    }

    /// The 8 bytes starting at `i`, as a little-endian word (callers mask
    /// what lies at or past `n`).
    #[inline(always)]
    pub const fn word_at(&self, i: u32) -> u64 {
        let k = i as usize >> 3;
        let lo = self.buf[k & (SCAN_WORDS - 1)];
        let hi = self.buf[(k + 1) & (SCAN_WORDS - 1)];
        let s = (i & 7) * 8;
        if s == 0 {
            lo
        } else {
            (lo >> s) | (hi << (64 - s))
        }
    }

    /// Starts a search of `[from, end)`.
    #[inline(always)]
    fn start(&mut self, from: u32, end: u32, kind: Search) {
        self.pos = from;
        self.end = if end > self.n { self.n } else { end };
        self.found = NONE;
        self.kind = kind as u32;
    }

    /// One word of the current search. Returns false when it is over
    /// (`found` is the position, or [`NONE`]).
    #[inline(always)]
    pub fn find_step(&mut self) -> bool {
        if self.pos >= self.end || self.pos >= SCAN_BYTES as u32 {
            return false;
        }
        let k = self.pos >> 3;
        let w = self.buf[(k as usize) & (SCAN_WORDS - 1)];
        let lanes =
            stop_lanes(self.kind, w) & lanes_from(self.pos & 7) & lanes_before(self.end - k * 8);
        if lanes != 0 {
            self.found = k * 8 + first_lane(lanes);
            return false;
        }
        self.pos = (k + 1) * 8;
        true
    }

    /// One step of the search for a Host header: from `pos`, the next line
    /// start; a `host:` there ends the search with `found` at its value, an
    /// empty line (the end of the headers) or the end of the bytes with
    /// [`NONE`]. Returns false when the search is over.
    #[inline(always)]
    pub fn line_step(&mut self) -> bool {
        if self.pos >= self.n || self.pos >= SCAN_BYTES as u32 {
            self.found = NONE;
            return false;
        }
        let k = self.pos >> 3;
        let w = self.buf[(k as usize) & (SCAN_WORDS - 1)];
        let lanes = eq_lanes(w, b'\n') & lanes_from(self.pos & 7) & lanes_before(self.n - k * 8);
        if lanes == 0 {
            self.pos = (k + 1) * 8;
            return true;
        }
        let p = k * 8 + first_lane(lanes) + 1;
        let c = self.byte(p);
        if p >= self.n || c == b'\r' || c == b'\n' {
            self.found = NONE;
            return false;
        }
        if p + 5 <= self.n && (self.word_at(p) | LOWER) & bytes_mask(5) == le(b"host:\0\0\0") {
            self.found = p + 5;
            return false;
        }
        self.pos = p;
        true
    }

    /// Hash of the bytes `[from, to)` (at most [`MAX_HOST`]), as [`host_hash`].
    #[inline(always)]
    pub fn hash(&self, from: u32, to: u32) -> u32 {
        let to = if to > from + MAX_HOST as u32 {
            from + MAX_HOST as u32
        } else {
            to
        };
        let mut h = HASH_SEED;
        let mut j = 0;
        while j < MAX_HOST as u32 / 8 {
            let i = from + j * 8;
            if i < to {
                let m = bytes_mask(to - i);
                h = mix(h, (self.word_at(i) & m) | (LOWER & m));
            }
            j += 1;
        }
        fold(h)
    }
}

/// Runs the steps of a search to its end.
pub trait Driver {
    /// Runs [`Scan::find_step`] until it returns false.
    fn find(&mut self, s: &mut Scan);
    /// Runs [`Scan::line_step`] until it returns false.
    fn lines(&mut self, s: &mut Scan);
}

/// The host's driver: plain loops (each step advances, so they end).
pub struct Loops;

impl Driver for Loops {
    fn find(&mut self, s: &mut Scan) {
        while s.find_step() {}
    }
    fn lines(&mut self, s: &mut Scan) {
        while s.line_step() {}
    }
}

/// What a request start says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Request {
    pub method: u8,
    /// Where the path starts in the payload, and its length (at most
    /// [`MAX_PATH`]). An absolute-form target without a path has the
    /// path `/` (`slash` is set, nothing to copy).
    pub path_start: u32,
    pub path_len: u32,
    pub slash: bool,
    /// Host hash (0: none seen): the authority of an absolute-form target,
    /// else the Host header (looked for only when asked).
    pub host: u32,
    /// The version was seen (false for a target longer than the bytes).
    pub version: bool,
    pub absolute: bool,
}

impl Request {
    /// The path bytes, from the payload they were parsed from.
    pub fn path<'a>(&self, payload: &'a [u8]) -> &'a [u8] {
        if self.slash {
            return b"/";
        }
        let a = self.path_start as usize;
        &payload[a..a + self.path_len as usize]
    }
}

#[inline(always)]
fn find<D: Driver>(s: &mut Scan, d: &mut D, from: u32, end: u32, kind: Search) -> u32 {
    s.start(from, end, kind);
    d.find(s);
    s.found
}

#[inline(always)]
const fn path_len(from: u32, to: u32) -> u32 {
    let l = to - from;
    if l > MAX_PATH as u32 {
        MAX_PATH as u32
    } else {
        l
    }
}

/// Parses the request start in `s` (see [`Scan::fill`]). `None` when the
/// bytes are not the start of an HTTP/1.0 or 1.1 request: an unregistered
/// or lowercase method, a target not in origin, absolute or asterisk form,
/// a line end inside the target, another version. A target longer than the
/// bytes is taken as a request (its version is out of sight).
#[inline(always)]
pub fn parse<D: Driver>(s: &mut Scan, d: &mut D, want_host: bool) -> Option<Request> {
    let n = s.n;
    let (method, skip) = method(&s.buf[0].to_le_bytes())?;
    let skip = skip as u32;
    if skip >= n {
        return None;
    }
    let mut r = Request {
        method,
        ..Request::default()
    };
    // The target's path, and where the target ends (a space, or NONE).
    let c = s.byte(skip);
    let mut at = skip;
    if c == b'h' || c == b'H' {
        let w = s.word_at(skip) | LOWER;
        let auth = if w & bytes_mask(7) == le(b"http://\0") {
            skip + 7
        } else if w == le(b"https://") {
            skip + 8
        } else {
            return None;
        };
        r.absolute = true;
        let a_end = find(s, d, auth, n, Search::Auth);
        if a_end == NONE {
            r.host = s.hash(auth, n);
            r.slash = true;
            r.path_len = 1;
            return Some(r);
        }
        r.host = s.hash(auth, a_end);
        at = a_end;
        if s.byte(at) == b':' {
            at = find(s, d, at + 1, n, Search::Port);
            if at == NONE {
                r.slash = true;
                r.path_len = 1;
                return Some(r);
            }
        }
        if s.byte(at) != b'/' {
            // No path: it is "/"; `at` is the space, `?`, `#` or a line end.
            r.slash = true;
            r.path_len = 1;
        }
    } else if c != b'/' && c != b'*' {
        return None;
    }
    if !r.slash {
        r.path_start = at;
        let e = find(s, d, at, n, Search::Path);
        if e == NONE {
            r.path_len = path_len(at, n);
            return Some(r);
        }
        r.path_len = path_len(at, e);
        at = e;
    }
    let c = s.byte(at);
    if c == b'?' || c == b'#' {
        at = find(s, d, at, n, Search::Query);
        if at == NONE {
            return Some(r);
        }
    }
    // A line end or another control byte inside the target: not a request.
    if s.byte(at) != b' ' {
        return None;
    }
    // " HTTP/1.0" or " HTTP/1.1", then the line end: as much as is visible.
    let v = at + 1;
    let visible = n.saturating_sub(v);
    let m = bytes_mask(visible);
    let w = s.word_at(v) & m;
    if w != le(b"HTTP/1.1") & m && w != le(b"HTTP/1.0") & m {
        return None;
    }
    if visible < 9 {
        return Some(r);
    }
    let c = s.byte(v + 8);
    if c != b'\r' && c != b'\n' {
        return None;
    }
    r.version = true;
    if !want_host || r.absolute {
        return Some(r);
    }
    // The Host header, if it is in these bytes.
    s.pos = v + 8;
    s.found = NONE;
    d.lines(s);
    let value = s.found;
    if value == NONE {
        return Some(r);
    }
    let start = find(s, d, value, value + 16, Search::NotSpace);
    if start == NONE {
        return Some(r);
    }
    let mut end = find(s, d, start, start + MAX_HOST as u32, Search::HostEnd);
    if end == NONE {
        end = if start + MAX_HOST as u32 > n {
            n
        } else {
            start + MAX_HOST as u32
        };
    }
    if end > start {
        r.host = s.hash(start, end);
    }
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_and_searches() {
        let w = le(b"ab c?d\r\n");
        assert_eq!(eq_lanes(w, b' '), 0x80 << 16);
        assert_eq!(first_lane(eq_lanes(w, b'?')), 4);
        assert_eq!(first_lane(eq_lanes(w, b'\n')), 7);
        // Exact: a match below does not make the next byte (c ^ 1) match.
        assert_eq!(eq_lanes(le(b"  !!!!!!"), b' '), 0x8080);
        let mut s = Scan::new();
        s.fill(b"0123456789abcdef ghij");
        assert_eq!(find(&mut s, &mut Loops, 3, 100, Search::Path), 16);
        assert_eq!(find(&mut s, &mut Loops, 17, 100, Search::Path), NONE);
        assert_eq!(
            find(&mut s, &mut Loops, 0, 10, Search::Path),
            NONE,
            "bounded by end"
        );
        assert_eq!(find(&mut s, &mut Loops, 16, 100, Search::NotSpace), 17);
        // Below `!`, exactly: every control byte and the space, nothing else.
        for c in 0..=255u8 {
            let w = u64::from_le_bytes([b'a', c, b'a', b'a', b'a', b'a', b'a', b'a']);
            assert_eq!(lt_lanes(w, b'!') != 0, c < b'!', "{c:#x}");
        }
        assert_eq!(s.word_at(13), le(b"def ghij"));
        assert_eq!(s.byte(20), b'j');
        assert_eq!(s.byte(21), 0, "zero past the end");
        assert_eq!(s.word_at(21), 0);
    }

    #[test]
    fn host_hashes_agree() {
        let mut s = Scan::new();
        s.fill(b"xx Shop.Example.TEST:8080");
        assert_eq!(s.hash(3, 20), host_hash("shop.example.test"));
        assert_eq!(host_hash("a.example:80"), host_hash("A.EXAMPLE"));
        assert_ne!(host_hash("a.example"), host_hash("b.example"));
        let long = "x".repeat(100);
        assert_eq!(host_hash(&long), host_hash(&long[..MAX_HOST]));
    }
}
