//! The compiled eBPF objects, embedded in the binary.

/// The XDP/TC programs and their maps.
pub static ENFORCER: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/enforcer"));

/// Reference programs for benchmarks (bare XDP_PASS, single hash lookup, ...).
pub static BENCH: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/enforcer-bench"));

/// A bare XDP_PASS program (the peer end of test veths, benchmark baseline).
pub static PASS: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/enforcer-pass"));
