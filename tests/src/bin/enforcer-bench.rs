//! `cargo xtask bench`: enforcer against its baselines, same run, rounds
//! interleaved, medians reported. Writes the markdown to stdout and to
//! target/bench/latest.md.

use enforcer_tests::bench::{dataset, drop, load, lookup, report::Report};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let want = |name: &str| {
        let named: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
        named.is_empty() || named.iter().any(|a| *a == name)
    };
    let (n4, n6, rounds) = if quick {
        (100_000, 10_000, 2)
    } else {
        (1_000_000, 100_000, 5)
    };
    let mut r = Report::default();
    r.line("# enforcer benchmarks\n");
    r.line(format!(
        "Machine: {} CPUs, kernel {}. Command: `cargo xtask bench{}`.\n",
        std::thread::available_parallelism().map_or(0, usize::from),
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim(),
        if quick { " -- --quick" } else { "" }
    ));
    let t = std::time::Instant::now();
    let d = dataset::generate(n4, n6);
    eprintln!(
        "dataset: {} IPv4 + {} IPv6 prefixes in {:.1}s",
        d.v4.len(),
        d.v6.len(),
        t.elapsed().as_secs_f64()
    );
    if want("lookup") {
        r.line("## Blocklist lookup cost (BPF_PROG_TEST_RUN, source varied over the loaded set)\n");
        lookup::run(&mut r, &d, rounds, if quick { 50_000 } else { 200_000 });
    }
    if want("drop") {
        r.line("## Drop rate on a veth, blocked sources\n");
        drop::run(
            &mut r,
            &d,
            if quick { 2 } else { 3 },
            if quick { 2_000_000 } else { 10_000_000 },
            true,
        );
    }
    if want("ratelimit") {
        r.line("## Rate limits: cost per packet (BPF_PROG_TEST_RUN)\n");
        enforcer_tests::bench::ratelimit::cost(
            &mut r,
            rounds,
            if quick { 50_000 } else { 200_000 },
        );
        r.line("## Rate limits: accuracy, one source flooding a veth\n");
        enforcer_tests::bench::ratelimit::accuracy(
            &mut r,
            &[1_000, 50_000],
            if quick { 3_000_000 } else { 10_000_000 },
        );
        r.line("## Rate limits: from over the limit to banned\n");
        enforcer_tests::bench::ratelimit::ban_latency(&mut r, if quick { 20 } else { 60 });
    }
    if want("http") || want("http-cost") {
        r.line("## HTTP: route matching cost per packet (BPF_PROG_TEST_RUN)\n");
        enforcer_tests::bench::http::cost(&mut r, rounds, if quick { 50_000 } else { 200_000 });
    }
    if want("http") {
        r.line("## HTTP: a real server's throughput on a veth\n");
        enforcer_tests::bench::http::throughput(
            &mut r,
            if quick { 2 } else { 7 },
            if quick { 3 } else { 4 },
        );
    }
    if want("http") || want("http-flood") {
        r.line("## HTTP: legitimate throughput under a flood from a limited client\n");
        enforcer_tests::bench::http::flood(
            &mut r,
            if quick { 2 } else { 3 },
            if quick { 3 } else { 5 },
        );
    }
    if want("agent") {
        r.line("## The agent: scrape cost and memory\n");
        enforcer_tests::bench::observe::run(&mut r, &d, if quick { 2 } else { 5 });
    }
    if want("policy") {
        r.line("## Policy reloads and external decisions\n");
        enforcer_tests::bench::policy::run(
            &mut r,
            if quick { 10_000 } else { 100_000 },
            if quick { 100_000 } else { 1_000_000 },
            if quick { 2 } else { 3 },
        );
    }
    if want("load") {
        r.line("## Loading the blocklist\n");
        load::run(&mut r, &d, if quick { 1 } else { 3 });
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join("latest.md"), &r.text);
}
