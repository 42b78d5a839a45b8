//! ns/packet of the allow/block path under BPF_PROG_TEST_RUN, with the source
//! varied over the loaded set.
//!
//! A single repeated packet hits one map entry and hides cache misses, so each
//! run goes through `bench_vary_*`: it rewrites the source from a sample array
//! (one per run, cycling) and tail-calls the program under test. Every target,
//! baselines included, pays the same wrapper cost, so ratios compare like with
//! like; the wrapper-plus-`XDP_PASS` figure is the floor.

use std::{os::fd::AsFd as _, time::Duration};

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, MapData, ProgramArray},
    programs::{ProgramFd, TestRun as _, TestRunOptions, Xdp},
};
use enforcer::{
    kernel::{Datapath, LoadOptions, object, sys},
    net::IpNet,
};
use enforcer_common::blocklist::{BlockEntry, Origin};

use super::{
    dataset::Dataset,
    report::{Report, median, min_max, wait_idle},
};
use crate::packet::{Ipv4, Ipv6, L4, TCP_SYN, v4_frame, v6_frame};

/// The reference object with its maps filled from the dataset.
pub struct BenchObject {
    pub ebpf: Ebpf,
}

fn xdp<'a>(ebpf: &'a mut Ebpf, name: &str) -> &'a mut Xdp {
    ebpf.program_mut(name)
        .unwrap_or_else(|| panic!("no program {name}"))
        .try_into()
        .unwrap()
}

impl BenchObject {
    pub fn load(d: Option<&Dataset>) -> Self {
        let mut ebpf = EbpfLoader::new()
            .load(object::BENCH)
            .expect("loading the bench object");
        for name in [
            "bench_pass",
            "bench_drop",
            "bench_hash_v4",
            "bench_hashnp_v4",
            "bench_lpm_v4",
            "bench_hash_v6",
            "bench_lpm_v6",
            "bench_vary_v4",
            "bench_vary_v6",
            "bench_gen_v4",
        ] {
            xdp(&mut ebpf, name)
                .load()
                .unwrap_or_else(|e| panic!("verifying {name}: {e:?}"));
        }
        let mut me = Self { ebpf };
        if let Some(d) = d {
            me.fill(d);
        }
        me
    }

    fn fill(&mut self, d: &Dataset) {
        let fd = |e: &Ebpf, name: &str| -> MapData {
            let m = e.map(name).unwrap();
            match m {
                aya::maps::Map::HashMap(m) | aya::maps::Map::LpmTrie(m) => {
                    MapData::from_fd(m.fd().as_fd().try_clone_to_owned().unwrap()).unwrap()
                }
                _ => panic!("{name}"),
            }
        };
        // The single-hash baseline: one key per loaded IPv4 prefix's address.
        let keys4: Vec<[u8; 4]> =
            d.v4.iter()
                .filter_map(|n| match n {
                    IpNet::V4(n) => Some(n.network().octets()),
                    IpNet::V6(_) => None,
                })
                .collect();
        let vals4 = vec![1u32; keys4.len()];
        for name in ["HASH_V4", "HASH_V4_NP"] {
            let m = fd(&self.ebpf, name);
            sys::update_batch(m.fd().as_fd(), &keys4, &vals4).unwrap();
        }
        let keys6: Vec<[u8; 16]> =
            d.v6.iter()
                .filter_map(|n| match n {
                    IpNet::V6(n) => Some(n.network().octets()),
                    IpNet::V4(_) => None,
                })
                .collect();
        let vals6 = vec![1u32; keys6.len()];
        let m = fd(&self.ebpf, "HASH_V6");
        sys::update_batch(m.fd().as_fd(), &keys6, &vals6).unwrap();
        // The LPM-trie alternative, with the real prefixes.
        let mut lpm4: aya::maps::LpmTrie<_, [u8; 4], u32> =
            aya::maps::LpmTrie::try_from(self.ebpf.map_mut("LPM_V4").unwrap()).unwrap();
        for n in &d.v4 {
            if let IpNet::V4(n) = n {
                lpm4.insert(
                    &aya::maps::lpm_trie::Key::new(u32::from(n.prefix_len()), n.network().octets()),
                    1,
                    0,
                )
                .unwrap();
            }
        }
        let mut lpm6: aya::maps::LpmTrie<_, [u8; 16], u32> =
            aya::maps::LpmTrie::try_from(self.ebpf.map_mut("LPM_V6").unwrap()).unwrap();
        for n in &d.v6 {
            if let IpNet::V6(n) = n {
                lpm6.insert(
                    &aya::maps::lpm_trie::Key::new(u32::from(n.prefix_len()), n.network().octets()),
                    1,
                    0,
                )
                .unwrap();
            }
        }
    }

    /// Loads the sources the wrapper and generator cycle through.
    /// Uses the largest power-of-two prefix of `samples` (the wrapper masks).
    pub fn set_samples(&mut self, samples: &[[u8; 16]]) {
        assert!(!samples.is_empty());
        let n = 1usize << (usize::BITS - 1 - samples.len().leading_zeros());
        let samples = &samples[..n];
        let mut arr: Array<_, [u8; 16]> =
            Array::try_from(self.ebpf.map_mut("SAMPLES").unwrap()).unwrap();
        for (i, s) in samples.iter().enumerate() {
            arr.set(i as u32, s, 0).unwrap();
        }
        let mut mask: Array<_, u32> =
            Array::try_from(self.ebpf.map_mut("SAMPLE_MASK").unwrap()).unwrap();
        mask.set(0, (samples.len() - 1) as u32, 0).unwrap();
    }

    pub fn set_target(&mut self, prog: &ProgramFd) {
        let mut pa: ProgramArray<_> =
            ProgramArray::try_from(self.ebpf.map_mut("TARGET").unwrap()).unwrap();
        pa.set(0, prog, 0).unwrap();
    }

    pub fn prog_fd(&self, name: &str) -> ProgramFd {
        let p: &Xdp = self.ebpf.program(name).unwrap().try_into().unwrap();
        p.fd().unwrap().try_clone().unwrap()
    }

    /// Mean ns per run of `wrapper` over `repeat` runs of `frame`.
    pub fn ns_per_run(&self, wrapper: &str, frame: &[u8], repeat: u32) -> f64 {
        let p: &Xdp = self.ebpf.program(wrapper).unwrap().try_into().unwrap();
        let mut opts = TestRunOptions::new();
        opts.data_in = Some(frame);
        opts.repeat = repeat;
        let r = p.test_run(opts).unwrap();
        assert_ne!(
            r.return_value, 0,
            "{wrapper}: the tail call failed (XDP_ABORTED)"
        );
        r.duration.as_nanos() as f64
    }
}

fn v4_samples(a: &[std::net::Ipv4Addr]) -> Vec<[u8; 16]> {
    a.iter()
        .map(|x| {
            let mut s = [0u8; 16];
            s[..4].copy_from_slice(&x.octets());
            s
        })
        .collect()
}

fn v6_samples(a: &[std::net::Ipv6Addr]) -> Vec<[u8; 16]> {
    a.iter().map(std::net::Ipv6Addr::octets).collect()
}

/// Loads enforcer's program with the dataset through the agent's own writer;
/// returns it and the time the writes took.
pub fn load_enforcer(d: &Dataset) -> (Datapath, Duration) {
    let mut dp = Datapath::load(&LoadOptions {
        pin_root: None,
        block_v4_capacity: 1 << 21,
        block_v6_capacity: 1 << 18,
        allow_capacity: 1024,
        ..LoadOptions::default()
    })
    .unwrap();
    let entry = BlockEntry {
        expires_ns: 0,
        origin: Origin::Feed as u32,
        reason_id: 0,
    };
    let items: Vec<(IpNet, BlockEntry)> = d.v4.iter().chain(&d.v6).map(|p| (*p, entry)).collect();
    let t = std::time::Instant::now();
    dp.maps.upsert_blocks(&items).unwrap();
    (dp, t.elapsed())
}

/// A benchmark case: label, family, sources, frame.
type Case<'a> = (&'a str, &'a str, Vec<[u8; 16]>, &'a [u8]);

pub fn run(report: &mut Report, d: &Dataset, rounds: usize, repeat: u32) {
    let (dp, load_time) = load_enforcer(d);
    report.line(format!(
        "Loaded {} IPv4 and {} IPv6 prefixes into enforcer's maps in {:.2} s (batched writes + summaries).\n",
        d.v4.len(),
        d.v6.len(),
        load_time.as_secs_f64()
    ));
    let enforcer_fd = dp.program().fd().unwrap().try_clone().unwrap();
    let t = std::time::Instant::now();
    let mut b = BenchObject::load(Some(d));
    report.line(format!(
        "Baselines loaded (1M-key hash, 1M-prefix LPM trie, IPv6 equivalents) in {:.1} s.\n",
        t.elapsed().as_secs_f64()
    ));
    let f4 = v4_frame(&Ipv4::new(
        "198.18.0.1".parse().unwrap(),
        "198.19.255.254".parse().unwrap(),
        L4::tcp(40000, 80, TCP_SYN),
    ));
    let f6 = v6_frame(&Ipv6::new(
        "2001:2::1".parse().unwrap(),
        "2001:2::ffff".parse().unwrap(),
        L4::tcp(40000, 80, TCP_SYN),
    ));
    let targets = [
        ("XDP_PASS (floor)", "pass"),
        ("single hash lookup (preallocated)", "hash"),
        ("single hash lookup (BPF_F_NO_PREALLOC)", "hashnp"),
        ("kernel LPM trie", "lpm"),
        ("enforcer", "enforcer"),
    ];
    let cases: [Case<'_>; 4] = [
        ("IPv4 blocked", "v4", v4_samples(&d.v4_blocked), &f4),
        ("IPv4 not listed", "v4", v4_samples(&d.v4_clear), &f4),
        ("IPv6 blocked", "v6", v6_samples(&d.v6_blocked), &f6),
        ("IPv6 not listed", "v6", v6_samples(&d.v6_clear), &f6),
    ];
    let mut rows = Vec::new();
    for (case, fam, samples, frame) in &cases {
        b.set_samples(samples);
        let mut results: Vec<Vec<f64>> = vec![Vec::new(); targets.len()];
        for _ in 0..rounds {
            for (i, (_, t)) in targets.iter().enumerate() {
                if *t == "hashnp" && *fam == "v6" {
                    continue;
                }
                let fd = match *t {
                    "hashnp" => b.prog_fd("bench_hashnp_v4"),
                    "pass" => b.prog_fd("bench_pass"),
                    "hash" => b.prog_fd(&format!("bench_hash_{fam}")),
                    "lpm" => b.prog_fd(&format!("bench_lpm_{fam}")),
                    _ => enforcer_fd.try_clone().unwrap(),
                };
                b.set_target(&fd);
                wait_idle(Duration::from_secs(2));
                results[i].push(b.ns_per_run(&format!("bench_vary_{fam}"), frame, repeat));
            }
        }
        let meds: Vec<f64> = results.iter_mut().map(|r| median(r)).collect();
        for (i, (label, _)) in targets.iter().enumerate() {
            if results[i].is_empty() {
                continue;
            }
            let (lo, hi) = min_max(&results[i]);
            rows.push(vec![
                (*case).to_owned(),
                (*label).to_owned(),
                format!("{:.0}", meds[i]),
                format!("{lo:.0}–{hi:.0}"),
                format!("{:.2}×", meds[i] / meds[0]),
                format!("{:.2}×", meds[i] / meds[1]),
            ]);
        }
    }
    report.table(
        &[
            "case",
            "program",
            "ns/packet (median)",
            "range",
            "vs XDP_PASS",
            "vs hash lookup",
        ],
        &rows,
    );
    drop(dp);
}
