//! `cargo xtask demo [--duration 30s]`: see `enforcer_tests::demo`.

use std::sync::{Arc, atomic::AtomicBool};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut duration = std::time::Duration::from_secs(30);
    let mut json = false;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--duration" => {
                i += 1;
                duration = args
                    .get(i)
                    .and_then(|d| humantime::parse_duration(d).ok())
                    .unwrap_or_else(|| {
                        eprintln!("enforcer-demo: --duration takes a duration such as 30s or 2m");
                        std::process::exit(2)
                    });
            }
            "--json" => json = true,
            other => {
                eprintln!("enforcer-demo: unknown argument {other:?} (use --duration D, --json)");
                std::process::exit(2);
            }
        }
        i += 1;
    }
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = Arc::clone(&stop);
        // Ctrl-C ends the run early; cleanup happens on the normal path.
        let _ = ctrlc::set_handler(move || stop.store(true, std::sync::atomic::Ordering::Relaxed));
    }
    let summary = enforcer_tests::demo::run(&enforcer_tests::demo::Options {
        duration,
        quiet: json,
        stop,
    });
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&summary).unwrap_or_default()
        );
    }
}
