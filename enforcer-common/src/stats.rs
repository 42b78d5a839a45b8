//! Slots of the per-CPU housekeeping counters (the `STATS` map).

/// Ring-buffer events dropped because the buffer was full.
pub const STAT_EVENTS_LOST: u32 = 0;
/// Ring-buffer events sent.
pub const STAT_EVENTS_SENT: u32 = 1;
/// Rate-limit state keys created (beyond the map's capacity, each one
/// evicted the least recently used key).
pub const STAT_RATE_KEYS_CREATED: u32 = 2;
/// Slots in the map.
pub const STAT_SLOTS: u32 = 8;

/// Stable names for metrics and status.
pub const fn stat_name(slot: u32) -> Option<&'static str> {
    match slot {
        STAT_EVENTS_LOST => Some("events_lost"),
        STAT_EVENTS_SENT => Some("events_sent"),
        STAT_RATE_KEYS_CREATED => Some("rate_keys_created"),
        _ => None,
    }
}
