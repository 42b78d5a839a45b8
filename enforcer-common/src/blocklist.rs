//! Keys and values of the allow and block maps.
//!
//! Block maps are exact-match hashes keyed by (prefix length, masked address); the
//! allowlist is small and uses the kernel's LPM trie, whose key layout (`u32`
//! prefix length, then the address bytes) is the same shape, so one key type per
//! family serves both. Keys carry no padding: the kernel hashes every key byte.

/// Key of the IPv4 block map and the IPv4 allow trie.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PrefixKeyV4 {
    pub prefix_len: u32,
    /// Network-order address bytes, masked to `prefix_len`.
    pub addr: [u8; 4],
}

/// Key of the IPv6 block map and the IPv6 allow trie.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PrefixKeyV6 {
    pub prefix_len: u32,
    /// Network-order address bytes, masked to `prefix_len`.
    pub addr: [u8; 16],
}

impl PrefixKeyV4 {
    /// The key for `addr/len`, masking the host bits.
    pub const fn new(addr: [u8; 4], len: u32) -> Self {
        Self {
            prefix_len: len,
            addr: crate::prefix::mask_v4(addr, len),
        }
    }
}

impl PrefixKeyV6 {
    /// The key for `addr/len`, masking the host bits.
    pub const fn new(addr: &[u8; 16], len: u32) -> Self {
        Self {
            prefix_len: len,
            addr: crate::prefix::mask_v6(addr, len),
        }
    }
}

/// Who made a decision. Stored in every block entry so drops are counted per origin.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Origin {
    /// `enforcer block` and the control API.
    Manual = 0,
    /// Static entries of the policy file.
    Config = 1,
    /// Blocklist feed files.
    Feed = 2,
    /// The agent's own detectors (rate-limit offenders, response codes).
    Detector = 3,
    /// CrowdSec's decision stream.
    Crowdsec = 4,
    /// Decisions shared by other hosts of a fleet.
    Fleet = 5,
    /// External detectors through `enforcer decisions apply`.
    External = 6,
}

/// Number of [`Origin`] values; counters reserve this many block reasons.
pub const ORIGIN_COUNT: u32 = 7;

impl Origin {
    pub const ALL: [Self; ORIGIN_COUNT as usize] = [
        Self::Manual,
        Self::Config,
        Self::Feed,
        Self::Detector,
        Self::Crowdsec,
        Self::Fleet,
        Self::External,
    ];

    /// The origin with this numeric value, if any.
    pub const fn from_u32(v: u32) -> Option<Self> {
        if v < ORIGIN_COUNT {
            Some(Self::ALL[v as usize])
        } else {
            None
        }
    }

    /// Stable lowercase name, used in metrics, JSON and tables.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Manual => "manual",
            Self::Config => "config",
            Self::Feed => "feed",
            Self::Detector => "detector",
            Self::Crowdsec => "crowdsec",
            Self::Fleet => "fleet",
            Self::External => "external",
        }
    }
}

/// Value of a block-map entry.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockEntry {
    /// CLOCK_MONOTONIC ns after which the entry no longer matches; 0 = never.
    pub expires_ns: u64,
    /// An [`Origin`] as `u32`.
    pub origin: u32,
    /// The agent's id for the decision's reason text (reported in events).
    pub reason_id: u32,
}

/// Value of an allow-trie entry.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AllowEntry {
    /// An [`Origin`] as `u32`.
    pub origin: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_have_no_padding() {
        assert_eq!(core::mem::size_of::<PrefixKeyV4>(), 8);
        assert_eq!(core::mem::size_of::<PrefixKeyV6>(), 20);
        assert_eq!(core::mem::size_of::<BlockEntry>(), 16);
        assert_eq!(core::mem::size_of::<AllowEntry>(), 4);
    }

    #[test]
    fn keys_mask_host_bits() {
        assert_eq!(PrefixKeyV4::new([198, 18, 1, 77], 24).addr, [198, 18, 1, 0]);
        let a = [0x20, 0x01, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x99];
        assert_eq!(PrefixKeyV6::new(&a, 64).addr[15], 0);
    }

    #[test]
    fn origins_round_trip() {
        for o in Origin::ALL {
            assert_eq!(Origin::from_u32(o as u32), Some(o));
        }
        assert_eq!(Origin::from_u32(ORIGIN_COUNT), None);
    }
}
