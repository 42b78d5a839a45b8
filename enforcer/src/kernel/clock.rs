//! The kernel clock expiries are written in.
//!
//! The data path compares expiries with `bpf_ktime_get_coarse_ns`
//! (CLOCK_MONOTONIC); decisions are kept in wall-clock time so they survive
//! reboots, and converted at the moment they are written to a map.

use std::time::{Duration, SystemTime};

/// CLOCK_MONOTONIC now, in ns.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut ts) };
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

/// The monotonic expiry for a wall-clock expiry (`None` = never → 0).
pub fn monotonic_expiry(expires: Option<SystemTime>) -> u64 {
    let Some(expires) = expires else {
        return enforcer_common::time::NEVER;
    };
    let left = expires
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO);
    enforcer_common::time::expiry_after(monotonic_ns(), left.as_nanos() as u64)
}
