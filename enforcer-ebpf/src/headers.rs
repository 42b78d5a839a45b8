//! Protocol numbers and header offsets, named once.

/// Ethernet header length without tags.
pub const ETH_HLEN: usize = 14;
/// Offset of the EtherType in an untagged frame.
pub const ETH_TYPE_OFF: usize = 12;
/// Length of one VLAN tag (TCI + inner EtherType).
pub const VLAN_HLEN: usize = 4;

pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86DD;
pub const ETH_P_8021Q: u16 = 0x8100;
pub const ETH_P_8021AD: u16 = 0x88A8;
/// Pre-standard QinQ outer tag still emitted by some switches.
pub const ETH_P_QINQ_9100: u16 = 0x9100;

/// IPv4 header without options.
pub const IPV4_MIN_HLEN: usize = 20;
pub const IPV4_FRAG_OFF: usize = 6;
pub const IPV4_PROTO_OFF: usize = 9;
pub const IPV4_SRC_OFF: usize = 12;
pub const IPV4_DST_OFF: usize = 16;
/// Fragment offset bits of the flags/offset field.
pub const IPV4_FRAG_OFFSET_MASK: u16 = 0x1FFF;

pub const IPV6_HLEN: usize = 40;
pub const IPV6_NEXT_OFF: usize = 6;
pub const IPV6_SRC_OFF: usize = 8;
pub const IPV6_DST_OFF: usize = 24;
/// Fragment offset bits of an IPv6 fragment header's offset field.
pub const IPV6_FRAG_OFFSET_MASK: u16 = 0xFFF8;
pub const IPV6_FRAG_HLEN: usize = 8;

pub const IPPROTO_HOPOPTS: u8 = 0;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_ROUTING: u8 = 43;
pub const IPPROTO_FRAGMENT: u8 = 44;
pub const IPPROTO_ESP: u8 = 50;
pub const IPPROTO_AH: u8 = 51;
pub const IPPROTO_NONE: u8 = 59;
pub const IPPROTO_DSTOPTS: u8 = 60;

pub const TCP_MIN_HLEN: usize = 20;
pub const TCP_FLAGS_OFF: usize = 13;
pub const UDP_HLEN: usize = 8;
