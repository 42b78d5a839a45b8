//! Prefix arithmetic: masking addresses and mapping prefixes to summary buckets.
//!
//! The blocklist is an exact-match hash keyed by (prefix length, masked address),
//! probed once per prefix length that can match. To avoid probing lengths that are
//! absent near an address, a summary array records, per bucket of address space,
//! which prefix lengths exist there. IPv4 buckets are the top 16 bits of the
//! address (an exact index); IPv6 buckets are a hash of the top 32 bits (the usual
//! allocation size), so a bucket is a filter: a false positive costs a probe, never
//! a wrong answer. Prefixes shorter than the bucket width fan out to every bucket
//! they cover. All of it is integer code without `u128` (BPF has no 128-bit ops).

/// Number of summary buckets per family (an array map of this many entries).
pub const SUMMARY_BUCKETS: u32 = 1 << 16;
/// IPv4 buckets are indexed by this many leading address bits.
pub const V4_BUCKET_BITS: u32 = 16;
/// IPv6 buckets are a hash of this many leading address bits.
pub const V6_BUCKET_BITS: u32 = 32;
/// Longest prefix per family.
pub const V4_MAX_LEN: u32 = 32;
pub const V6_MAX_LEN: u32 = 128;

/// Bitmask of prefix lengths 0..=32 present in an IPv4 summary bucket (bit L = length L).
pub type V4LengthMask = u64;

/// Bitmask of prefix lengths 0..=128 present in an IPv6 summary bucket:
/// bit L of the 129 lives in `words[L / 64]`, bit `L % 64`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct V6LengthMask {
    pub words: [u64; 3],
}

impl V6LengthMask {
    pub const fn set(&mut self, len: u32) {
        if len <= V6_MAX_LEN {
            self.words[(len / 64) as usize] |= 1u64 << (len % 64);
        }
    }

    pub const fn clear(&mut self, len: u32) {
        if len <= V6_MAX_LEN {
            self.words[(len / 64) as usize] &= !(1u64 << (len % 64));
        }
    }

    pub const fn contains(&self, len: u32) -> bool {
        len <= V6_MAX_LEN && self.words[(len / 64) as usize] & (1u64 << (len % 64)) != 0
    }

    pub const fn is_empty(&self) -> bool {
        self.words[0] == 0 && self.words[1] == 0 && self.words[2] == 0
    }
}

/// The network mask of an IPv4 prefix length, host order. Lengths over 32 clamp to 32.
#[inline(always)]
pub const fn v4_netmask(len: u32) -> u32 {
    if len == 0 {
        0
    } else if len >= V4_MAX_LEN {
        u32::MAX
    } else {
        u32::MAX << (V4_MAX_LEN - len)
    }
}

/// `addr` (network-order bytes) with every bit after `len` cleared.
#[inline(always)]
pub const fn mask_v4(addr: [u8; 4], len: u32) -> [u8; 4] {
    (u32::from_be_bytes(addr) & v4_netmask(len)).to_be_bytes()
}

/// The mask of a 64-bit half of an IPv6 address, for the bits `len` covers in it.
#[inline(always)]
const fn half_mask(len: u32) -> u64 {
    if len == 0 {
        0
    } else if len >= 64 {
        u64::MAX
    } else {
        u64::MAX << (64 - len)
    }
}

/// Splits an IPv6 address into its two big-endian halves.
#[inline(always)]
pub const fn v6_halves(addr: &[u8; 16]) -> (u64, u64) {
    let hi = u64::from_be_bytes([
        addr[0], addr[1], addr[2], addr[3], addr[4], addr[5], addr[6], addr[7],
    ]);
    let lo = u64::from_be_bytes([
        addr[8], addr[9], addr[10], addr[11], addr[12], addr[13], addr[14], addr[15],
    ]);
    (hi, lo)
}

/// Joins two big-endian halves back into IPv6 address bytes.
#[inline(always)]
pub const fn v6_join(hi: u64, lo: u64) -> [u8; 16] {
    let h = hi.to_be_bytes();
    let l = lo.to_be_bytes();
    [
        h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7], l[0], l[1], l[2], l[3], l[4], l[5], l[6],
        l[7],
    ]
}

/// `addr` with every bit after `len` cleared. Lengths over 128 clamp to 128.
#[inline(always)]
pub const fn mask_v6(addr: &[u8; 16], len: u32) -> [u8; 16] {
    let (hi, lo) = v6_halves(addr);
    let hi_len = if len > 64 { 64 } else { len };
    let lo_len = len.saturating_sub(64);
    v6_join(hi & half_mask(hi_len), lo & half_mask(lo_len))
}

/// Summary bucket of an IPv4 address: its top 16 bits.
#[inline(always)]
pub const fn v4_bucket(addr: [u8; 4]) -> u32 {
    ((addr[0] as u32) << 8) | addr[1] as u32
}

/// Summary bucket of an IPv6 address: a multiplicative hash of its top 32 bits.
#[inline(always)]
pub const fn v6_bucket(addr: &[u8; 16]) -> u32 {
    let top = u32::from_be_bytes([addr[0], addr[1], addr[2], addr[3]]);
    v6_bucket_of_top(top)
}

#[inline(always)]
const fn v6_bucket_of_top(top: u32) -> u32 {
    // Fibonacci hashing: the high bits of the product mix every input bit.
    top.wrapping_mul(0x9E37_79B1) >> (32 - 16)
}

/// The summary buckets an IPv4 prefix covers, as a range of bucket indices.
/// A prefix of at least 16 bits lies in one bucket; a shorter one spans
/// `2^(16 - len)` consecutive buckets.
pub const fn v4_prefix_buckets(addr: [u8; 4], len: u32) -> core::ops::Range<u32> {
    let first = v4_bucket(mask_v4(addr, len));
    if len >= V4_BUCKET_BITS {
        first..first + 1
    } else {
        first..first + (1 << (V4_BUCKET_BITS - len))
    }
}

/// Iterator over the summary buckets an IPv6 prefix covers (with repeats when
/// two covered /32s hash to the same bucket; setting a bit twice is harmless,
/// but reference counts must count each distinct bucket once: see [`V6Buckets::all`]).
#[derive(Clone, Debug)]
pub struct V6Buckets {
    next_top: u64,
    end_top: u64,
    all: bool,
}

impl V6Buckets {
    /// True when the prefix covers every bucket (so callers can skip hashing).
    pub const fn all(&self) -> bool {
        self.all
    }
}

impl Iterator for V6Buckets {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        if self.next_top >= self.end_top {
            return None;
        }
        let top = self.next_top;
        self.next_top += 1;
        if self.all {
            Some(top as u32)
        } else {
            Some(v6_bucket_of_top(top as u32))
        }
    }
}

/// The summary buckets an IPv6 prefix covers.
pub const fn v6_prefix_buckets(addr: &[u8; 16], len: u32) -> V6Buckets {
    let masked = mask_v6(addr, len);
    if len >= V6_BUCKET_BITS {
        let top = u32::from_be_bytes([masked[0], masked[1], masked[2], masked[3]]) as u64;
        // One /32 in one bucket: reuse the hashing branch with a one-element range.
        return V6Buckets {
            next_top: top,
            end_top: top + 1,
            all: false,
        };
    }
    let span = 1u64 << (V6_BUCKET_BITS - len);
    if span >= SUMMARY_BUCKETS as u64 {
        // Covers at least as many /32s as there are buckets: every bucket.
        V6Buckets {
            next_top: 0,
            end_top: SUMMARY_BUCKETS as u64,
            all: true,
        }
    } else {
        let first = u32::from_be_bytes([masked[0], masked[1], masked[2], masked[3]]) as u64;
        V6Buckets {
            next_top: first,
            end_top: first + span,
            all: false,
        }
    }
}

/// log2 of the IPv4 block filter's size in bits (16 Mbit = 2 MiB).
pub const V4_FILTER_BITS_LOG2: u32 = 24;
/// log2 of the IPv6 block filter's size in bits (4 Mbit = 512 KiB).
pub const V6_FILTER_BITS_LOG2: u32 = 22;
/// `u64` words in the IPv4 filter array.
pub const V4_FILTER_WORDS: u32 = 1 << (V4_FILTER_BITS_LOG2 - 6);
/// `u64` words in the IPv6 filter array.
pub const V6_FILTER_WORDS: u32 = 1 << (V6_FILTER_BITS_LOG2 - 6);

/// The block filter: one bit per (prefix length, masked address), set when
/// some block entry hashes there. A probe of the block hash is skipped when
/// its bit is clear. The filter is small enough to stay in cache, so a lookup
/// that matches nothing costs cache hits instead of a DRAM miss per prefix
/// length. A collision only costs a probe; it never changes an answer.
#[inline(always)]
const fn fmix32(mut h: u32) -> u32 {
    // MurmurHash3's finaliser: every input bit affects every output bit.
    h ^= h >> 16;
    h = h.wrapping_mul(0x85EB_CA6B);
    h ^= h >> 13;
    h = h.wrapping_mul(0xC2B2_AE35);
    h ^= h >> 16;
    h
}

/// Filter hash of an IPv4 prefix; `masked` must already be masked to `len`.
#[inline(always)]
pub const fn v4_filter_hash(masked: [u8; 4], len: u32) -> u32 {
    fmix32(u32::from_be_bytes(masked) ^ len.wrapping_mul(0x9E37_79B9))
}

/// Filter hash of an IPv6 prefix; `masked` must already be masked to `len`.
#[inline(always)]
pub const fn v6_filter_hash(masked: &[u8; 16], len: u32) -> u32 {
    let w0 = u32::from_be_bytes([masked[0], masked[1], masked[2], masked[3]]);
    let w1 = u32::from_be_bytes([masked[4], masked[5], masked[6], masked[7]]);
    let w2 = u32::from_be_bytes([masked[8], masked[9], masked[10], masked[11]]);
    let w3 = u32::from_be_bytes([masked[12], masked[13], masked[14], masked[15]]);
    fmix32(
        w0.wrapping_mul(0xCC9E_2D51)
            ^ w1.wrapping_mul(0x1B87_3593).rotate_left(7)
            ^ w2.wrapping_mul(0xE654_6B64).rotate_left(13)
            ^ w3.wrapping_mul(0x85EB_CA6B).rotate_left(19)
            ^ len.wrapping_mul(0x9E37_79B9),
    )
}

/// The (word, bit) a filter hash selects in a filter of `2^bits_log2` bits.
#[inline(always)]
pub const fn filter_slot(hash: u32, bits_log2: u32) -> (u32, u32) {
    let bit = hash & ((1u32 << bits_log2) - 1);
    (bit >> 6, bit & 63)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::{collections::BTreeSet, vec::Vec};

    use super::*;

    #[test]
    fn v4_masks() {
        assert_eq!(mask_v4([198, 18, 7, 9], 0), [0, 0, 0, 0]);
        assert_eq!(mask_v4([198, 18, 7, 9], 16), [198, 18, 0, 0]);
        assert_eq!(mask_v4([198, 18, 7, 9], 23), [198, 18, 6, 0]);
        assert_eq!(mask_v4([198, 18, 7, 9], 32), [198, 18, 7, 9]);
        assert_eq!(mask_v4([198, 18, 7, 9], 40), [198, 18, 7, 9]);
        assert_eq!(v4_netmask(1), 0x8000_0000);
    }

    #[test]
    fn v6_masks_match_u128_reference() {
        let addr: [u8; 16] = [
            0x20, 0x01, 0x00, 0x02, 0xab, 0xcd, 0xef, 0x01, 0x23, 0x45, 0x67, 0x89, 0xfe, 0xdc,
            0xba, 0x98,
        ];
        for len in 0..=130u32 {
            let l = len.min(128);
            let reference = if l == 0 {
                0
            } else {
                u128::from_be_bytes(addr) & (u128::MAX << (128 - l))
            };
            assert_eq!(mask_v6(&addr, len), reference.to_be_bytes(), "len {len}");
        }
    }

    #[test]
    fn v4_buckets() {
        assert_eq!(v4_prefix_buckets([198, 18, 7, 9], 24), 0xC612..0xC613);
        assert_eq!(v4_prefix_buckets([198, 18, 7, 9], 16), 0xC612..0xC613);
        assert_eq!(v4_prefix_buckets([198, 18, 7, 9], 15), 0xC612..0xC614);
        assert_eq!(v4_prefix_buckets([198, 19, 7, 9], 15), 0xC612..0xC614);
        assert_eq!(v4_prefix_buckets([1, 2, 3, 4], 0), 0..65536);
        // Every address inside a prefix falls in one of the prefix's buckets.
        for len in 0..=32 {
            let r = v4_prefix_buckets([198, 18, 200, 1], len);
            assert!(r.contains(&v4_bucket([198, 18, 200, 1])));
        }
    }

    #[test]
    fn v6_buckets_cover_every_member_address() {
        let base: [u8; 16] = [0x20, 0x01, 0x00, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        for len in [0u32, 8, 16, 17, 20, 29, 31, 32, 33, 48, 64, 128] {
            let buckets: BTreeSet<u32> = v6_prefix_buckets(&base, len).collect();
            // Sample member addresses by flipping bits after the prefix.
            let mut members: Vec<[u8; 16]> = Vec::new();
            for bit in len..128 {
                let mut a = mask_v6(&base, len);
                a[(bit / 8) as usize] |= 0x80 >> (bit % 8);
                members.push(a);
            }
            members.push(mask_v6(&base, len));
            for m in members {
                assert!(buckets.contains(&v6_bucket(&m)), "len {len}");
            }
            assert!(buckets.iter().all(|b| *b < SUMMARY_BUCKETS));
        }
        assert!(v6_prefix_buckets(&base, 16).all());
        assert!(!v6_prefix_buckets(&base, 17).all());
    }

    #[test]
    fn filter_hashes_spread() {
        // Adjacent /32s and the same address at different lengths land in
        // different slots (a weak hash would cluster dense blocklists).
        let mut slots = BTreeSet::new();
        for i in 0..4096u32 {
            let a = (0xC612_0000u32 + i).to_be_bytes();
            slots.insert(filter_slot(v4_filter_hash(a, 32), V4_FILTER_BITS_LOG2));
        }
        assert!(slots.len() > 4000, "{}", slots.len());
        let a = [198, 18, 0, 0];
        assert_ne!(v4_filter_hash(a, 16), v4_filter_hash(a, 24));
        let b = [0x20, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_ne!(v6_filter_hash(&b, 48), v6_filter_hash(&b, 64));
        let mut slots6 = BTreeSet::new();
        for i in 0..4096u32 {
            let mut x = b;
            x[6..8].copy_from_slice(&(i as u16).to_be_bytes());
            slots6.insert(filter_slot(v6_filter_hash(&x, 64), V6_FILTER_BITS_LOG2));
        }
        assert!(slots6.len() > 4000, "{}", slots6.len());
        let (w, bit) = filter_slot(u32::MAX, V6_FILTER_BITS_LOG2);
        assert!(w < V6_FILTER_WORDS && bit < 64);
    }

    #[test]
    fn v6_length_mask() {
        let mut m = V6LengthMask::default();
        assert!(m.is_empty());
        for l in [0, 63, 64, 127, 128] {
            m.set(l);
            assert!(m.contains(l));
        }
        m.set(129); // ignored
        assert!(!m.contains(129));
        for l in [0, 63, 64, 127, 128] {
            m.clear(l);
        }
        assert!(m.is_empty());
    }
}
