//! Expiry in the kernel's clock.
//!
//! The data path reads `bpf_ktime_get_coarse_ns` (CLOCK_MONOTONIC at tick
//! resolution: a few ns per call here, against ~24 ns for the precise clock), so
//! every expiry stored in a map is an absolute CLOCK_MONOTONIC time in ns, with 0
//! meaning "never". A coarse clock lags by at most one tick (≤ 4 ms at HZ=250),
//! which is far below any TTL an operator sets.

/// Expiry value meaning "never expires".
pub const NEVER: u64 = 0;

/// True when an entry with this expiry no longer applies at `now_ns`.
#[inline(always)]
pub const fn is_expired(expires_ns: u64, now_ns: u64) -> bool {
    expires_ns != NEVER && now_ns >= expires_ns
}

/// The expiry for a TTL starting at `now_ns`; never 0 (which would mean "never"),
/// saturating instead of wrapping.
#[inline(always)]
pub const fn expiry_after(now_ns: u64, ttl_ns: u64) -> u64 {
    let e = now_ns.saturating_add(ttl_ns);
    if e == NEVER { 1 } else { e }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry() {
        assert!(!is_expired(NEVER, u64::MAX));
        assert!(!is_expired(100, 99));
        assert!(is_expired(100, 100));
        assert!(is_expired(100, 101));
        assert_eq!(expiry_after(5, 10), 15);
        assert_eq!(expiry_after(u64::MAX - 1, 10), u64::MAX);
        assert_eq!(expiry_after(0, 0), 1);
    }
}
