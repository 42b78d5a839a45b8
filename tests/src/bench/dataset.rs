//! A blocklist shaped like real ones, and the sources benchmarks send from.
//!
//! Packets (in BPF_PROG_TEST_RUN buffers and on veths) only ever carry sources
//! from 198.18.0.0/15 and 2001:2::/48. A million IPv4 prefixes do not fit in a
//! /15, so most of the set lies elsewhere in the address space as map data
//! only; the part packets hit is placed inside the /15:
//!
//! - 198.18.0.0/16: every /32 (65,536) — the "blocked" sources;
//! - 198.19.0.0/16: every odd /32 (32,768) and 128 /24s covering 198.19.0.0/17 —
//!   the "not listed" sources are the even addresses of 198.19.128.0/17, which
//!   share a summary bucket with two prefix lengths (two probes per lookup);
//! - the rest: random prefixes outside the /15, 80% /32, 15% /24, 5% /16–/23.
//!
//! IPv6: 100,000 prefixes inside 2001:2::/48 (/128, /64 and /56); blocked
//! sources are the /128s, not-listed ones random addresses in 2001:2:0:f000::/52.

use std::{
    collections::HashSet,
    net::{Ipv4Addr, Ipv6Addr},
};

use enforcer::net::IpNet;

pub struct Dataset {
    pub v4: Vec<IpNet>,
    pub v6: Vec<IpNet>,
    pub v4_blocked: Vec<Ipv4Addr>,
    pub v4_clear: Vec<Ipv4Addr>,
    pub v6_blocked: Vec<Ipv6Addr>,
    pub v6_clear: Vec<Ipv6Addr>,
}

/// Deterministic generator (reproducible sets across runs).
pub struct Rng(pub u64);

impl Rng {
    pub const fn next(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

const fn in_test_range(a: u32) -> bool {
    a >> 17 == u32::from_be_bytes([198, 18, 0, 0]) >> 17
}

pub fn generate(n_v4: usize, n_v6: usize) -> Dataset {
    let mut rng = Rng(0x5EED);
    let mut v4: Vec<IpNet> = Vec::with_capacity(n_v4);
    let mut seen: HashSet<IpNet> = HashSet::with_capacity(n_v4);
    let base18 = u32::from(Ipv4Addr::new(198, 18, 0, 0));
    let base19 = u32::from(Ipv4Addr::new(198, 19, 0, 0));
    let mut push = |v4: &mut Vec<IpNet>, n: IpNet| {
        if seen.insert(n) {
            v4.push(n);
        }
    };
    let mut v4_blocked = Vec::with_capacity(65536);
    for i in 0..65536u32 {
        let a = Ipv4Addr::from(base18 + i);
        push(&mut v4, IpNet::new(a.into(), 32).unwrap());
        v4_blocked.push(a);
    }
    for i in (1..65536u32).step_by(2) {
        push(
            &mut v4,
            IpNet::new(Ipv4Addr::from(base19 + i).into(), 32).unwrap(),
        );
    }
    for i in 0..128u32 {
        push(
            &mut v4,
            IpNet::new(Ipv4Addr::from(base19 + (i << 8)).into(), 24).unwrap(),
        );
    }
    let v4_clear: Vec<Ipv4Addr> = (0..16384u32)
        .map(|i| Ipv4Addr::from(base19 + 0x8000 + 2 * i))
        .collect();
    while v4.len() < n_v4 {
        let a = rng.next() as u32;
        if in_test_range(a) {
            continue;
        }
        let r = rng.next() % 100;
        let len = if r < 80 {
            32
        } else if r < 95 {
            24
        } else {
            16 + (rng.next() % 8) as u8
        };
        let n = IpNet::new(Ipv4Addr::from(a).into(), len).unwrap().trunc();
        if let IpNet::V4(n4) = n
            && in_test_range(u32::from(n4.network()))
        {
            continue;
        }
        push(&mut v4, n);
    }

    let base6 = u128::from("2001:2::".parse::<Ipv6Addr>().unwrap());
    let mut v6 = Vec::with_capacity(n_v6);
    let mut seen6: HashSet<IpNet> = HashSet::with_capacity(n_v6);
    let mut v6_blocked = Vec::new();
    // 16 /56s covering 2001:2:0:0::/52, half /128s in 2001:2:0:1000::/64,
    // the rest /64s from 2001:2:0:2000::/64 upwards; nothing in 2001:2:0:f000::/52.
    for sub in 0..16u128 {
        if v6.len() >= n_v6 {
            break;
        }
        let n = IpNet::new(Ipv6Addr::from(base6 | (sub << 72)).into(), 56).unwrap();
        seen6.insert(n);
        v6.push(n);
    }
    while v6.len() < n_v6 / 2 {
        let a = base6 | (0x1000u128 << 64) | u128::from(rng.next());
        let n = IpNet::new(Ipv6Addr::from(a).into(), 128).unwrap();
        if seen6.insert(n) {
            if v6_blocked.len() < 32768 {
                v6_blocked.push(Ipv6Addr::from(a));
            }
            v6.push(n);
        }
    }
    let mut sub = 0x2000u128;
    while v6.len() < n_v6 && sub < 0xF000 {
        v6.push(IpNet::new(Ipv6Addr::from(base6 | (sub << 64)).into(), 64).unwrap());
        sub += 1;
    }
    let v6_clear: Vec<Ipv6Addr> = (0..32768)
        .map(|_| {
            let host = ((rng.next() as u128 & 0x0FFF) << 64) | rng.next() as u128;
            Ipv6Addr::from(base6 | (0xF000u128 << 64) | host)
        })
        .collect();
    Dataset {
        v4,
        v6,
        v4_blocked,
        v4_clear,
        v6_blocked,
        v6_clear,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_in_range_and_classified() {
        let d = generate(200_000, 10_000);
        assert_eq!(d.v4.len(), 200_000);
        assert_eq!(d.v6.len(), 10_000);
        let set4: HashSet<IpNet> = d.v4.iter().copied().collect();
        for a in d.v4_blocked.iter().chain(&d.v4_clear) {
            assert!(in_test_range(u32::from(*a)), "{a}");
        }
        for a in &d.v4_clear {
            let covered =
                (0..=32).any(|l| set4.contains(&IpNet::new((*a).into(), l).unwrap().trunc()));
            assert!(!covered, "{a} should not be listed");
        }
        let r6: IpNet = "2001:2::/48".parse().unwrap();
        for a in d.v6_blocked.iter().chain(&d.v6_clear) {
            assert!(r6.contains(&std::net::IpAddr::from(*a)), "{a}");
        }
        assert!(d.v6.iter().all(|n| r6.contains(n)));
    }
}
