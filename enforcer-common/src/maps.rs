//! Map names and default sizes.
//!
//! Userspace finds maps by these names (and pins them under them), so a rename
//! on one side is a compile error on the other rather than a runtime surprise.

pub const COUNTERS: &str = "COUNTERS";
pub const ALLOW_V4: &str = "ALLOW_V4";
pub const ALLOW_V6: &str = "ALLOW_V6";
pub const BLOCK_V4: &str = "BLOCK_V4";
pub const BLOCK_V6: &str = "BLOCK_V6";
pub const BLOCK_V4_SUMMARY: &str = "BLOCK_V4_SUMMARY";
pub const BLOCK_V6_SUMMARY: &str = "BLOCK_V6_SUMMARY";
pub const BLOCK_V4_FILTER: &str = "BLOCK_V4_FILTER";
pub const BLOCK_V6_FILTER: &str = "BLOCK_V6_FILTER";
pub const RATE_RULES: &str = "RATE_RULES";
pub const RATE_CONFIG: &str = "RATE_CONFIG";
pub const RATE_STATE: &str = "RATE_STATE";
pub const EVENTS: &str = "EVENTS";
pub const STATS: &str = "STATS";
pub const RATE_HITS: &str = "RATE_HITS";
pub const HTTP_PORTS: &str = "HTTP_PORTS";
pub const HTTP_CONFIG: &str = "HTTP_CONFIG";
pub const ROUTES0: &str = "ROUTES0";
pub const ROUTES1: &str = "ROUTES1";
pub const ROUTE_REQS: &str = "ROUTE_REQS";
pub const ROUTE_OVER: &str = "ROUTE_OVER";
pub const RESP_COUNTS: &str = "RESP_COUNTS";
pub const RESP_STATE: &str = "RESP_STATE";

/// Every map the agent pins, in a stable order.
pub const PINNED: [&str; 23] = [
    COUNTERS,
    ALLOW_V4,
    ALLOW_V6,
    BLOCK_V4,
    BLOCK_V6,
    BLOCK_V4_SUMMARY,
    BLOCK_V6_SUMMARY,
    BLOCK_V4_FILTER,
    BLOCK_V6_FILTER,
    RATE_RULES,
    RATE_CONFIG,
    RATE_STATE,
    EVENTS,
    STATS,
    RATE_HITS,
    HTTP_PORTS,
    HTTP_CONFIG,
    ROUTES0,
    ROUTES1,
    ROUTE_REQS,
    ROUTE_OVER,
    RESP_COUNTS,
    RESP_STATE,
];

/// Default capacity of the rate-limit state (keys across all rules).
pub const DEFAULT_RATE_STATE_ENTRIES: u32 = 1_000_000;

/// Capacity of the per-client response counters (LRU).
pub const DEFAULT_RESP_STATE_ENTRIES: u32 = 262_144;

/// Default capacity of the IPv4 block map (the agent may resize at load).
pub const DEFAULT_BLOCK_V4_ENTRIES: u32 = 2_000_000;
/// Default capacity of the IPv6 block map.
pub const DEFAULT_BLOCK_V6_ENTRIES: u32 = 500_000;
/// Capacity of each allow trie.
pub const DEFAULT_ALLOW_ENTRIES: u32 = 65_536;

/// Most VLAN tags the parser follows (802.1ad outer + 802.1Q inner).
pub const MAX_VLAN_TAGS: u32 = 2;
/// Most IPv6 extension headers the parser follows before giving up.
pub const MAX_IPV6_EXT_HEADERS: u32 = 8;
