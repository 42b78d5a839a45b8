//! BPF_PROG_TEST_RUN table tests of the allow/block path through the real
//! compiled XDP program, with map contents written by the agent's own writer.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use enforcer_tests::{
    packet::*,
    testrun::{Program, XDP_DROP, XDP_PASS},
};

fn v4(src: &str) -> Ipv4 {
    Ipv4::new(
        src.parse().unwrap(),
        Ipv4Addr::new(198, 19, 0, 1),
        L4::tcp(40000, 80, TCP_SYN),
    )
}

fn v6(src: &str) -> Ipv6 {
    Ipv6::new(
        src.parse().unwrap(),
        "2001:2::1".parse().unwrap(),
        L4::tcp(40000, 80, TCP_SYN),
    )
}

#[test]
fn ipv4_blocked_and_not_blocked() {
    let mut p = Program::new();
    p.block("198.18.5.7", None);
    assert_eq!(p.run(&v4_frame(&v4("198.18.5.7"))), XDP_DROP);
    assert_eq!(p.run(&v4_frame(&v4("198.18.5.8"))), XDP_PASS);
    assert_eq!(p.count("drop", "blocklist_manual"), 1);
    assert_eq!(p.count("pass", "not_listed"), 1);
    p.unblock("198.18.5.7");
    assert_eq!(p.run(&v4_frame(&v4("198.18.5.7"))), XDP_PASS);
}

#[test]
fn ipv6_blocked_and_not_blocked() {
    let mut p = Program::new();
    p.block("2001:2:0:7::/64", None);
    assert_eq!(p.run(&v6_frame(&v6("2001:2:0:7::99"))), XDP_DROP);
    assert_eq!(p.run(&v6_frame(&v6("2001:2:0:8::99"))), XDP_PASS);
    p.block("2001:2:0:8::99", None);
    assert_eq!(p.run(&v6_frame(&v6("2001:2:0:8::99"))), XDP_DROP);
    assert_eq!(p.run(&v6_frame(&v6("2001:2:0:8::98"))), XDP_PASS);
    assert_eq!(p.count("drop", "blocklist_manual"), 2);
}

#[test]
fn allowlist_wins_over_a_covering_block() {
    let mut p = Program::new();
    p.block("198.18.0.0/16", None);
    p.allow("198.18.9.0/24");
    assert_eq!(p.run(&v4_frame(&v4("198.18.9.200"))), XDP_PASS);
    assert_eq!(p.run(&v4_frame(&v4("198.18.10.1"))), XDP_DROP);
    assert_eq!(p.count("pass", "allowlisted"), 1);
    p.block("2001:2::/48", None);
    p.allow("2001:2:0:1::/64");
    assert_eq!(p.run(&v6_frame(&v6("2001:2:0:1::5"))), XDP_PASS);
    assert_eq!(p.run(&v6_frame(&v6("2001:2:0:2::5"))), XDP_DROP);
}

#[test]
fn vlan_tags_do_not_hide_a_blocked_source() {
    let mut p = Program::new();
    p.block("198.18.7.0/24", None);
    p.block("2001:2:0:7::/64", None);
    let bad4 = v4("198.18.7.1").bytes();
    let good4 = v4("198.18.8.1").bytes();
    let bad6 = v6("2001:2:0:7::1").bytes();
    for tags in [
        vec![dot1q(10)],
        vec![dot1ad(100), dot1q(10)],
        vec![dot1q(100), dot1q(10)],
    ] {
        assert_eq!(
            p.run(&ethernet(&tags, ETH_P_IP, &bad4)),
            XDP_DROP,
            "{tags:?}"
        );
        assert_eq!(
            p.run(&ethernet(&tags, ETH_P_IP, &good4)),
            XDP_PASS,
            "{tags:?}"
        );
        assert_eq!(
            p.run(&ethernet(&tags, ETH_P_IPV6, &bad6)),
            XDP_DROP,
            "{tags:?}"
        );
    }
    // A third tag is beyond what we follow: passed and counted as unsupported.
    let three = [dot1ad(1), dot1q(2), dot1q(3)];
    assert_eq!(p.run(&ethernet(&three, ETH_P_IP, &bad4)), XDP_PASS);
    assert_eq!(p.count("pass", "unsupported"), 1);
}

#[test]
fn ipv4_options_and_fragments() {
    let mut p = Program::new();
    p.block("198.18.7.0/24", None);
    // Router alert + NOPs: a 24-byte header; and the 60-byte maximum.
    let ra = v4("198.18.7.1").options(&[148, 4, 0, 0]);
    let max = v4("198.18.7.1").options(&[1; 40]);
    assert_eq!(p.run(&v4_frame(&ra)), XDP_DROP);
    assert_eq!(p.run(&v4_frame(&max)), XDP_DROP);
    assert_eq!(
        p.run(&v4_frame(&v4("198.18.8.1").options(&[1; 40]))),
        XDP_PASS
    );
    // First fragment (MF, offset 0) and a later one (offset 185 * 8 bytes).
    let first = v4("198.18.7.1").fragment(true, 0);
    let later = Ipv4 {
        l4: L4::Raw {
            proto: 6,
            bytes: vec![0xAA; 64],
        },
        ..v4("198.18.7.1").fragment(false, 185)
    };
    assert_eq!(p.run(&v4_frame(&first)), XDP_DROP);
    assert_eq!(p.run(&v4_frame(&later)), XDP_DROP);
    let later_ok = Ipv4 {
        src: Ipv4Addr::new(198, 18, 8, 1),
        ..later
    };
    assert_eq!(p.run(&v4_frame(&later_ok)), XDP_PASS);
    assert_eq!(p.count("pass", "not_listed"), 2);
}

#[test]
fn ipv6_extension_headers_each_and_chained() {
    let mut p = Program::new();
    p.block("2001:2:0:7::/64", None);
    let all = [
        Ext::HopByHop,
        Ext::Routing,
        Ext::DestOpts,
        Ext::Fragment {
            offset: 0,
            more: true,
        },
        Ext::Auth,
    ];
    for e in &all {
        let bad = v6("2001:2:0:7::1").ext(e.clone());
        let good = v6("2001:2:0:8::1").ext(e.clone());
        assert_eq!(p.run(&v6_frame(&bad)), XDP_DROP, "{e:?}");
        assert_eq!(p.run(&v6_frame(&good)), XDP_PASS, "{e:?}");
    }
    let mut chain_bad = v6("2001:2:0:7::1");
    let mut chain_good = v6("2001:2:0:8::1");
    for e in &all {
        chain_bad = chain_bad.ext(e.clone());
        chain_good = chain_good.ext(e.clone());
    }
    assert_eq!(p.run(&v6_frame(&chain_bad)), XDP_DROP);
    let before = p.count("pass", "not_listed");
    assert_eq!(p.run(&v6_frame(&chain_good)), XDP_PASS);
    assert_eq!(
        p.count("pass", "not_listed"),
        before + 1,
        "a full chain parses"
    );
    // A non-first IPv6 fragment carries no TCP header and is still dropped.
    let later = Ipv6 {
        l4: L4::Raw {
            proto: 6,
            bytes: vec![0xBB; 48],
        },
        ..v6("2001:2:0:7::1").ext(Ext::Fragment {
            offset: 100,
            more: false,
        })
    };
    assert_eq!(p.run(&v6_frame(&later)), XDP_DROP);
    // A chain longer than we follow is unsupported, yet a blocked source drops.
    let mut long_bad = v6("2001:2:0:7::1");
    let mut long_good = v6("2001:2:0:8::1");
    for _ in 0..12 {
        long_bad = long_bad.ext(Ext::DestOpts);
        long_good = long_good.ext(Ext::DestOpts);
    }
    assert_eq!(p.run(&v6_frame(&long_bad)), XDP_DROP);
    assert_eq!(p.run(&v6_frame(&long_good)), XDP_PASS);
    assert_eq!(p.count("pass", "unsupported"), 1);
}

#[test]
fn expired_entries_do_not_match() {
    let mut p = Program::new();
    p.block_with_expiry("198.18.7.1", 1);
    assert_eq!(p.run(&v4_frame(&v4("198.18.7.1"))), XDP_PASS);
    assert_eq!(p.count("pass", "expired_block"), 1);
    // An expired /32 does not hide a live /24 around it.
    p.block("198.18.7.0/24", None);
    assert_eq!(p.run(&v4_frame(&v4("198.18.7.1"))), XDP_DROP);
    // A TTL in the future matches; IPv6 too.
    p.block("2001:2::5", Some(Duration::from_secs(60)));
    assert_eq!(p.run(&v6_frame(&v6("2001:2::5"))), XDP_DROP);
    p.block_with_expiry("2001:2::6", 1);
    assert_eq!(p.run(&v6_frame(&v6("2001:2::6"))), XDP_PASS);
    assert_eq!(p.count("pass", "expired_block"), 2);
}

const ETH_HLEN: usize = 14;

/// Cuts a frame at every length short of complete and checks it passes and is
/// counted as malformed, unless the source address is already known to be
/// blocked (then it drops: truncating L4 must not bypass the blocklist).
fn truncations(p: &Program, frame: &[u8], src_end: usize, blocked: bool) {
    // BPF_PROG_TEST_RUN refuses XDP input shorter than an Ethernet header
    // (EINVAL), as no driver delivers one: start at 14 bytes.
    for cut in ETH_HLEN..frame.len() {
        let before = p.count("pass", "malformed");
        let verdict = p.run(&frame[..cut]);
        if blocked && cut >= src_end {
            assert_eq!(verdict, XDP_DROP, "cut at {cut}");
        } else {
            assert_eq!(verdict, XDP_PASS, "cut at {cut}");
            assert_eq!(
                p.count("pass", "malformed"),
                before + 1,
                "cut at {cut} not counted"
            );
        }
    }
}

#[test]
fn truncated_at_every_boundary_passes_and_is_counted() {
    let mut p = Program::new();
    p.block("198.18.7.0/24", None);
    p.block("2001:2:0:7::/64", None);
    // Ethernet + one VLAN + IPv4 with options + TCP: every cut short of the end.
    let ok4 = ethernet(
        &[dot1q(5)],
        ETH_P_IP,
        &v4("198.18.8.1").options(&[1; 8]).bytes(),
    );
    truncations(&p, &ok4, 0, false);
    let bad4 = ethernet(
        &[dot1q(5)],
        ETH_P_IP,
        &v4("198.18.7.1").options(&[1; 8]).bytes(),
    );
    // The first 20 IPv4 header bytes end at 18 + 20 = 38.
    truncations(&p, &bad4, 38, true);
    let ok6 = v6_frame(&v6("2001:2:0:8::1").ext(Ext::HopByHop).ext(Ext::Fragment {
        offset: 0,
        more: true,
    }));
    truncations(&p, &ok6, 0, false);
    let bad6 = v6_frame(&v6("2001:2:0:7::1").ext(Ext::HopByHop));
    // The source ends at 14 + 8 + 16 = 38.
    truncations(&p, &bad6, 38, true);
}

#[test]
fn non_ip_passes_and_is_counted() {
    let p = Program::new();
    assert_eq!(p.run(&ethernet(&[], ETH_P_ARP, &[0u8; 28])), XDP_PASS);
    assert_eq!(p.count("pass", "non_ip"), 1);
}

/// Tiny deterministic generator (no external crate needed for a table test).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 11
    }
}

/// Random prefixes of every length against random addresses: the program
/// agrees with a reference containment check, for both families.
#[test]
fn matches_reference_on_random_prefix_sets() {
    use enforcer::net::IpNet;
    let mut p = Program::new();
    let mut rng = Lcg(7);
    let mut set: Vec<IpNet> = Vec::new();
    for _ in 0..400 {
        // Inside 198.18.0.0/15, lengths 15..=32.
        let a = u32::from(Ipv4Addr::new(198, 18, 0, 0)) | (rng.next() as u32 & 0x1FFFF);
        let len = 15 + (rng.next() % 18) as u8;
        let n = IpNet::new(Ipv4Addr::from(a).into(), len).unwrap().trunc();
        set.push(n);
        // Inside 2001:2::/48, lengths 48..=128.
        let lo = ((rng.next() as u128) << 64) | rng.next() as u128;
        let a6 = u128::from("2001:2::".parse::<Ipv6Addr>().unwrap()) | (lo >> 48);
        let len6 = 48 + (rng.next() % 81) as u8;
        set.push(IpNet::new(Ipv6Addr::from(a6).into(), len6).unwrap().trunc());
    }
    for n in &set {
        p.block(&n.to_string(), None);
    }
    let mut hits = 0;
    for i in 0..3000 {
        // Half the probes are members of random set entries, half random.
        let addr: std::net::IpAddr = if i % 2 == 0 {
            let n = set[(rng.next() as usize) % set.len()];
            match n {
                IpNet::V4(n) => {
                    let host = rng.next() as u32 & !u32::from(n.netmask());
                    Ipv4Addr::from(u32::from(n.network()) | host).into()
                }
                IpNet::V6(n) => {
                    let host = (((rng.next() as u128) << 64) | rng.next() as u128)
                        & !u128::from(n.netmask());
                    Ipv6Addr::from(u128::from(n.network()) | host).into()
                }
            }
        } else if i % 4 == 1 {
            Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 0)) | (rng.next() as u32 & 0x1FFFF))
                .into()
        } else {
            let lo = ((rng.next() as u128) << 64) | rng.next() as u128;
            Ipv6Addr::from(u128::from("2001:2::".parse::<Ipv6Addr>().unwrap()) | (lo >> 48)).into()
        };
        let expected = set.iter().any(|n| n.contains(&addr));
        let frame = match addr {
            std::net::IpAddr::V4(a) => v4_frame(&v4(&a.to_string())),
            std::net::IpAddr::V6(a) => v6_frame(&v6(&a.to_string())),
        };
        let got = p.run(&frame) == XDP_DROP;
        assert_eq!(got, expected, "{addr}");
        hits += usize::from(got);
    }
    assert!(hits > 1000, "the sample exercised matches ({hits})");
    // Removing everything leaves nothing matching (summary bits cleared).
    for n in &set {
        p.unblock(&n.to_string());
    }
    assert_eq!(p.run(&v4_frame(&v4("198.18.0.1"))), XDP_PASS);
}

/// The block filter is far smaller than the set, so bits are shared between
/// prefixes. Removing half the set must clear no bit the other half needs.
#[test]
fn filter_bits_shared_by_several_prefixes_are_kept() {
    use enforcer::net::IpNet;
    let n = 150_000u32;
    let mut p = Program::with_capacity(1 << 18);
    let base = u128::from("2001:2:0:5::".parse::<Ipv6Addr>().unwrap());
    let set: Vec<IpNet> = (0..n)
        .map(|i| IpNet::new(Ipv6Addr::from(base | (u128::from(i) * 7919)).into(), 128).unwrap())
        .collect();
    p.block_many(&set);
    let (gone, kept): (Vec<IpNet>, Vec<IpNet>) = set
        .iter()
        .partition(|n| matches!(n, IpNet::V6(a) if u128::from(a.addr()) % 2 == 0));
    p.unblock_many(&gone);
    for (i, k) in kept.iter().enumerate().step_by(37) {
        assert_eq!(
            p.run(&v6_frame(&v6(&k.addr().to_string()))),
            XDP_DROP,
            "kept #{i} {k}"
        );
    }
    for g in gone.iter().step_by(37) {
        assert_eq!(
            p.run(&v6_frame(&v6(&g.addr().to_string()))),
            XDP_PASS,
            "removed {g}"
        );
    }
}
