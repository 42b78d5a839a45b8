//! Header parsing: Ethernet with up to two VLAN tags, IPv4 with options and
//! fragments, IPv6 through a bounded extension-header chain, TCP and UDP.
//!
//! Parsing is split at the source address on purpose: the source is known as
//! soon as the fixed IP header is in the packet, and the allow/block decision
//! needs nothing else. Checking it before walking options, extension headers or
//! L4 means no header trick (a truncated option, an extension chain longer than
//! we follow, a non-first fragment without L4) can carry a blocked source past
//! the blocklist.

use crate::{headers::*, packet::Packet};
use enforcer_common::maps::{MAX_IPV6_EXT_HEADERS, MAX_VLAN_TAGS};

/// Why parsing stopped before a verdict could use the headers.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// Truncated or inconsistent headers.
    Malformed,
    /// Valid, but beyond what we follow (more tags or extension headers).
    Unsupported,
}

/// The network layer found after Ethernet.
#[derive(Clone, Copy)]
pub struct L2 {
    pub ethertype: u16,
    pub l3_off: usize,
}

/// Ethernet, following 802.1Q / 802.1ad tags up to `MAX_VLAN_TAGS`.
#[inline(always)]
pub fn parse_l2(pkt: &Packet) -> Result<L2, ParseError> {
    let mut ethertype = pkt.be16(ETH_TYPE_OFF).ok_or(ParseError::Malformed)?;
    let mut off = ETH_HLEN;
    // Bounded: one iteration per tag we are willing to follow.
    for _ in 0..MAX_VLAN_TAGS {
        if !is_vlan(ethertype) {
            break;
        }
        // The inner EtherType is the last two bytes of the 4-byte tag.
        ethertype = pkt.be16(off + 2).ok_or(ParseError::Malformed)?;
        off += VLAN_HLEN;
    }
    if is_vlan(ethertype) {
        return Err(ParseError::Unsupported);
    }
    Ok(L2 {
        ethertype,
        l3_off: off,
    })
}

#[inline(always)]
const fn is_vlan(ethertype: u16) -> bool {
    ethertype == ETH_P_8021Q || ethertype == ETH_P_8021AD || ethertype == ETH_P_QINQ_9100
}

/// Where the transport header is, if this packet has one we can read.
#[derive(Clone, Copy)]
pub struct L4 {
    /// IP protocol number of the transport header.
    pub proto: u8,
    /// Offset of the transport header.
    pub off: usize,
    /// False for a non-first fragment (it carries no transport header).
    pub has_header: bool,
}

/// The IPv4 source address, once the fixed header is present and says version 4.
#[inline(always)]
pub fn v4_source(pkt: &Packet, l3: usize) -> Result<[u8; 4], ParseError> {
    let fixed = pkt
        .load::<[u8; IPV4_MIN_HLEN]>(l3)
        .ok_or(ParseError::Malformed)?;
    if fixed[0] >> 4 != 4 {
        return Err(ParseError::Malformed);
    }
    Ok([
        fixed[IPV4_SRC_OFF],
        fixed[IPV4_SRC_OFF + 1],
        fixed[IPV4_SRC_OFF + 2],
        fixed[IPV4_SRC_OFF + 3],
    ])
}

/// The rest of IPv4: options (any header length) and fragments, then L4.
#[inline(always)]
pub fn v4_transport(pkt: &Packet, l3: usize) -> Result<L4, ParseError> {
    let ver_ihl = pkt.byte(l3).ok_or(ParseError::Malformed)?;
    let hlen = ((ver_ihl & 0x0F) as usize) * 4;
    if hlen < IPV4_MIN_HLEN {
        return Err(ParseError::Malformed);
    }
    let off = l3 + hlen;
    // Options must be entirely present.
    if pkt.len() < off {
        return Err(ParseError::Malformed);
    }
    let frag = pkt.be16(l3 + IPV4_FRAG_OFF).ok_or(ParseError::Malformed)?;
    let proto = pkt.byte(l3 + IPV4_PROTO_OFF).ok_or(ParseError::Malformed)?;
    if frag & IPV4_FRAG_OFFSET_MASK != 0 {
        return Ok(L4 {
            proto,
            off,
            has_header: false,
        });
    }
    transport(pkt, proto, off)
}

/// The IPv6 source address, once the fixed header is present and says version 6.
#[inline(always)]
pub fn v6_source(pkt: &Packet, l3: usize) -> Result<[u8; 16], ParseError> {
    let ver = pkt.byte(l3).ok_or(ParseError::Malformed)?;
    if ver >> 4 != 6 {
        return Err(ParseError::Malformed);
    }
    pkt.load::<[u8; 16]>(l3 + IPV6_SRC_OFF)
        .ok_or(ParseError::Malformed)
}

/// The rest of IPv6: the extension-header chain (bounded), then L4.
#[inline(always)]
pub fn v6_transport(pkt: &Packet, l3: usize) -> Result<L4, ParseError> {
    if pkt.len() < l3 + IPV6_HLEN {
        return Err(ParseError::Malformed);
    }
    let mut next = pkt.byte(l3 + IPV6_NEXT_OFF).ok_or(ParseError::Malformed)?;
    let mut off = l3 + IPV6_HLEN;
    // Bounded: one iteration per extension header we are willing to follow.
    for _ in 0..MAX_IPV6_EXT_HEADERS {
        match next {
            IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS => {
                let h = pkt.load::<[u8; 2]>(off).ok_or(ParseError::Malformed)?;
                next = h[0];
                off += (h[1] as usize + 1) * 8;
            }
            IPPROTO_FRAGMENT => {
                let h = pkt
                    .load::<[u8; IPV6_FRAG_HLEN]>(off)
                    .ok_or(ParseError::Malformed)?;
                next = h[0];
                off += IPV6_FRAG_HLEN;
                let frag_off = u16::from_be_bytes([h[2], h[3]]) & IPV6_FRAG_OFFSET_MASK;
                if frag_off != 0 {
                    return Ok(L4 {
                        proto: next,
                        off,
                        has_header: false,
                    });
                }
            }
            IPPROTO_AH => {
                let h = pkt.load::<[u8; 2]>(off).ok_or(ParseError::Malformed)?;
                next = h[0];
                off += (h[1] as usize + 2) * 4;
            }
            _ => return transport(pkt, next, off),
        }
    }
    match next {
        IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS | IPPROTO_FRAGMENT | IPPROTO_AH => {
            Err(ParseError::Unsupported)
        }
        _ => transport(pkt, next, off),
    }
}

/// Checks that a TCP or UDP header is complete; other protocols carry on as-is.
#[inline(always)]
fn transport(pkt: &Packet, proto: u8, off: usize) -> Result<L4, ParseError> {
    match proto {
        IPPROTO_TCP => {
            let doff = pkt.byte(off + 12).ok_or(ParseError::Malformed)?;
            let hlen = ((doff >> 4) as usize) * 4;
            if hlen < TCP_MIN_HLEN || pkt.len() < off + hlen {
                return Err(ParseError::Malformed);
            }
        }
        IPPROTO_UDP => {
            pkt.load::<[u8; UDP_HLEN]>(off)
                .ok_or(ParseError::Malformed)?;
        }
        _ => {}
    }
    Ok(L4 {
        proto,
        off,
        has_header: true,
    })
}
