//! Drop rate on a veth: blocked sources sent at full speed into an interface
//! protected by enforcer (1M prefixes loaded), against an empty XDP_DROP
//! program (the ceiling) and an nftables ingress drop with the same set.
//!
//! Traffic comes from BPF_PROG_TEST_RUN with BPF_F_TEST_XDP_LIVE_FRAMES: an
//! XDP_TX program on one end of a veth pair rewrites the source per packet
//! (cycling through 65,536 addresses of 198.18.0.0/16) and transmits to the
//! other end. Generator and receiver run on the same CPU, so the time per
//! packet is generator cost + receiver cost; the generator's cost is the same
//! in every scenario.

use std::{
    io::Write as _,
    os::fd::AsRawFd as _,
    process::{Command, Stdio},
    time::Duration,
};

use aya::programs::{TestRun as _, TestRunAttrs, TestRunOptions, Xdp, XdpMode};
use enforcer::{kernel::XdpModeChoice, net::IpNet};

use super::{
    dataset::Dataset,
    lookup::{BenchObject, load_enforcer},
    report::{Report, median, min_max, pin_to_cpu, wait_idle},
};
use crate::{
    netns::{End, Netns, enter, veth},
    packet::{Ipv4, L4, v4_frame},
};

fn netns_fd(path: &str) -> std::fs::File {
    std::fs::File::open(path).unwrap()
}

/// Moves this thread back to the namespace `fd` refers to.
fn back_to(fd: &std::fs::File) {
    // SAFETY: setns on a valid namespace fd, this thread only.
    let r = unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(r, 0);
}

fn ifindex(name: &str) -> u32 {
    let c = std::ffi::CString::new(name).unwrap();
    // SAFETY: valid C string.
    unsafe { libc::if_nametoindex(c.as_ptr()) }
}

/// Sends `count` packets from the generator side; returns ns per packet.
/// Sends `count` packets from the generator side; returns ns per packet.
pub fn send_live(b: &BenchObject, gen_ns: &Netns, gen_if: &str, frame: &[u8], count: u32) -> f64 {
    generate(b, gen_ns, gen_if, frame, count)
}

fn generate(b: &BenchObject, gen_ns: &Netns, gen_if: &str, frame: &[u8], count: u32) -> f64 {
    let home = netns_fd("/proc/self/ns/net");
    enter(&gen_ns.path());
    let idx = ifindex(gen_if);
    let mut ctx = [0u8; 24];
    ctx[4..8].copy_from_slice(&(frame.len() as u32).to_ne_bytes());
    ctx[12..16].copy_from_slice(&idx.to_ne_bytes());
    let p: &Xdp = b.ebpf.program("bench_gen_v4").unwrap().try_into().unwrap();
    let mut opts = TestRunOptions::new();
    opts.data_in = Some(frame);
    opts.ctx_in = Some(&ctx);
    opts.repeat = count;
    opts.attrs = TestRunAttrs::new().xdp_live_frames(64);
    let t = std::time::Instant::now();
    let r = p.test_run(opts);
    let wall = t.elapsed();
    back_to(&home);
    let r = r.unwrap_or_else(|e| panic!("live-frames test run: {e:?}"));
    // The kernel's per-packet duration covers the batch loop, including the
    // receiver's NAPI poll on this CPU; wall time is the cross-check.
    let kernel = r.duration.as_nanos() as f64;
    let wall = wall.as_nanos() as f64 / f64::from(count);
    if std::env::var_os("ENFORCER_BENCH_DEBUG").is_some() {
        eprintln!("generator: kernel {kernel:.1} ns/packet, wall {wall:.1} ns/packet");
    }
    kernel.max(wall)
}

fn nft_set_file(d: &Dataset, rx_if: &str) -> String {
    let mut s = String::with_capacity(d.v4.len() * 20);
    s.push_str("table netdev enforcerbench {\n  set blk {\n    type ipv4_addr\n    flags interval\n    auto-merge\n    elements = {\n");
    let mut first = true;
    for n in &d.v4 {
        if let IpNet::V4(n) = n {
            if !first {
                s.push_str(",\n");
            }
            first = false;
            s.push_str(&n.to_string());
        }
    }
    s.push_str(&format!(
        "\n    }}\n  }}\n  counter dropped {{ }}\n  chain ingress {{\n    type filter hook ingress device \"{rx_if}\" priority -500; policy accept;\n    ip saddr @blk counter name dropped drop\n  }}\n}}\n"
    ));
    s
}

fn nft_counter(rx: &Netns) -> u64 {
    let out = rx
        .cmd("nft")
        .args(["list", "chain", "netdev", "enforcerbench", "ingress"])
        .output()
        .unwrap();
    let t = String::from_utf8_lossy(&out.stdout);
    t.split("packets ")
        .nth(1)
        .and_then(|x| x.split_whitespace().next())
        .and_then(|x| x.parse().ok())
        .unwrap_or(0)
}

pub fn run(report: &mut Report, d: &Dataset, rounds: usize, count: u32, with_nft: bool) {
    pin_to_cpu(0);
    let tag = format!("{}", std::process::id() % 100_000);
    let gen_ns = Netns::new(format!("enfb-{tag}-gen"));
    let rx = Netns::new(format!("enfb-{tag}-rx"));
    let (gen_if, rx_if) = (format!("bg{tag}"), format!("br{tag}"));
    veth(
        &End {
            ns: &gen_ns,
            name: &gen_if,
            addrs: &["198.18.250.1/30"],
        },
        &End {
            ns: &rx,
            name: &rx_if,
            addrs: &["198.18.250.2/30"],
        },
    );
    // NAPI on the receiving veth, so frames reach the stack (and nftables)
    // when no XDP program is attached there.
    let _ = rx.cmd("ethtool").args(["-K", &rx_if, "gro", "on"]).output();

    let mut b = BenchObject::load(None);
    let samples: Vec<[u8; 16]> = d
        .v4_blocked
        .iter()
        .map(|a| {
            let mut s = [0u8; 16];
            s[..4].copy_from_slice(&a.octets());
            s
        })
        .collect();
    b.set_samples(&samples);
    let frame = v4_frame(&Ipv4::new(
        "198.18.0.1".parse().unwrap(),
        "198.18.250.2".parse().unwrap(),
        L4::udp(40000, 9, &[0u8; 18]),
    ));
    let (mut dp, _) = load_enforcer(d);

    let nft_ok = with_nft && {
        let file = std::env::temp_dir().join(format!("enforcer-bench-nft-{tag}.nft"));
        std::fs::write(&file, nft_set_file(d, &rx_if)).unwrap();
        let t = std::time::Instant::now();
        let out = rx.cmd("nft").arg("-f").arg(&file).output().unwrap();
        let _ = std::fs::remove_file(&file);
        report.line(format!(
            "nftables: loading the same {} IPv4 prefixes as an interval set took {:.1} s{}.\n",
            d.v4.len(),
            t.elapsed().as_secs_f64(),
            if out.status.success() {
                ""
            } else {
                " and FAILED"
            }
        ));
        if !out.status.success() {
            report.line(format!(
                "nft said: {}",
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .next()
                    .unwrap_or("")
            ));
        }
        out.status.success()
    };

    let home = netns_fd("/proc/self/ns/net");
    let mut scenarios: Vec<&str> = vec!["xdp_drop", "enforcer"];
    if nft_ok {
        scenarios.push("nft");
    }
    let mut results: Vec<Vec<f64>> = vec![Vec::new(); scenarios.len()];
    let mut delivered_check = Vec::new();
    for _ in 0..rounds {
        for (i, s) in scenarios.iter().enumerate() {
            enter(&rx.path());
            let link = match *s {
                "xdp_drop" => {
                    let p: &mut Xdp = b
                        .ebpf
                        .program_mut("bench_drop")
                        .unwrap()
                        .try_into()
                        .unwrap();
                    Some(p.attach(&rx_if, XdpMode::Driver).unwrap())
                }
                "enforcer" => {
                    dp.attach(&rx_if, XdpModeChoice::Native, None).unwrap();
                    None
                }
                _ => None,
            };
            back_to(&home);
            let before = match *s {
                "enforcer" => dp
                    .counters
                    .totals()
                    .unwrap()
                    .iter()
                    .filter(|c| c.verdict == "drop")
                    .map(|c| c.packets)
                    .sum(),
                "nft" => nft_counter(&rx),
                _ => 0,
            };
            wait_idle(Duration::from_secs(3));
            results[i].push(generate(&b, &gen_ns, &gen_if, &frame, count));
            let after: u64 = match *s {
                "enforcer" => dp
                    .counters
                    .totals()
                    .unwrap()
                    .iter()
                    .filter(|c| c.verdict == "drop")
                    .map(|c| c.packets)
                    .sum(),
                "nft" => nft_counter(&rx),
                _ => 0,
            };
            if *s != "xdp_drop" {
                delivered_check.push((*s, after - before));
            }
            enter(&rx.path());
            match *s {
                "xdp_drop" => {
                    let p: &mut Xdp = b
                        .ebpf
                        .program_mut("bench_drop")
                        .unwrap()
                        .try_into()
                        .unwrap();
                    p.detach(link.unwrap()).unwrap();
                }
                "enforcer" => dp.detach(&rx_if).unwrap(),
                _ => {}
            }
            back_to(&home);
        }
    }
    let meds: Vec<f64> = results.iter_mut().map(|r| median(r)).collect();
    let mut rows = Vec::new();
    for (i, s) in scenarios.iter().enumerate() {
        let (lo, hi) = min_max(&results[i]);
        let label = match *s {
            "xdp_drop" => "empty XDP_DROP (ceiling)".to_owned(),
            "enforcer" => format!(
                "enforcer, {} IPv4 + {} IPv6 prefixes",
                d.v4.len(),
                d.v6.len()
            ),
            _ => format!("nftables ingress, {}-prefix interval set", d.v4.len()),
        };
        rows.push(vec![
            label,
            format!("{:.2}", 1e3 / meds[i]),
            format!("{:.2}–{:.2}", 1e3 / hi, 1e3 / lo),
            format!("{:.0}", meds[i]),
            format!("{:.0}%", 100.0 * meds[0] / meds[i]),
        ]);
    }
    report.table(
        &[
            "receiver",
            "Mpps (median)",
            "range",
            "ns/packet (gen + rx)",
            "of ceiling",
        ],
        &rows,
    );
    for (s, n) in delivered_check {
        report.line(format!(
            "- {s}: {n} of {count} packets counted as dropped by the receiver"
        ));
    }
    report.line("");
    let _ = std::io::stdout().flush();
    if nft_ok {
        let _ = rx
            .cmd("nft")
            .args(["delete", "table", "netdev", "enforcerbench"])
            .stdout(Stdio::null())
            .status();
    }
    drop(Command::new("true"));
}
