//! Building frames for BPF_PROG_TEST_RUN: Ethernet with VLAN tags, IPv4 with
//! options and fragments, IPv6 with extension headers, TCP and UDP, with valid
//! checksums so the same frames can also be sent on real links.

use std::net::{Ipv4Addr, Ipv6Addr};

pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86DD;
pub const ETH_P_ARP: u16 = 0x0806;
pub const ETH_P_8021Q: u16 = 0x8100;
pub const ETH_P_8021AD: u16 = 0x88A8;

pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_PSH: u8 = 0x08;
pub const TCP_ACK: u8 = 0x10;

/// A transport header plus payload.
#[derive(Clone, Debug)]
pub enum L4 {
    Tcp {
        sport: u16,
        dport: u16,
        seq: u32,
        ack: u32,
        flags: u8,
        payload: Vec<u8>,
    },
    Udp {
        sport: u16,
        dport: u16,
        payload: Vec<u8>,
    },
    /// Raw bytes with an explicit protocol number (ICMP, or garbage).
    Raw { proto: u8, bytes: Vec<u8> },
}

impl L4 {
    pub fn tcp(sport: u16, dport: u16, flags: u8) -> Self {
        Self::Tcp {
            sport,
            dport,
            seq: 1000,
            ack: if flags & TCP_ACK != 0 { 2000 } else { 0 },
            flags,
            payload: Vec::new(),
        }
    }

    pub fn tcp_data(sport: u16, dport: u16, payload: &[u8]) -> Self {
        Self::Tcp {
            sport,
            dport,
            seq: 1000,
            ack: 2000,
            flags: TCP_ACK | TCP_PSH,
            payload: payload.to_vec(),
        }
    }

    pub fn udp(sport: u16, dport: u16, payload: &[u8]) -> Self {
        Self::Udp {
            sport,
            dport,
            payload: payload.to_vec(),
        }
    }

    pub const fn proto(&self) -> u8 {
        match self {
            Self::Tcp { .. } => 6,
            Self::Udp { .. } => 17,
            Self::Raw { proto, .. } => *proto,
        }
    }

    /// The header and payload bytes, with the checksum over `pseudo`.
    fn bytes(&self, pseudo: &[u8]) -> Vec<u8> {
        match self {
            Self::Tcp {
                sport,
                dport,
                seq,
                ack,
                flags,
                payload,
            } => {
                let mut b = Vec::with_capacity(20 + payload.len());
                b.extend_from_slice(&sport.to_be_bytes());
                b.extend_from_slice(&dport.to_be_bytes());
                b.extend_from_slice(&seq.to_be_bytes());
                b.extend_from_slice(&ack.to_be_bytes());
                b.push(5 << 4);
                b.push(*flags);
                b.extend_from_slice(&64240u16.to_be_bytes());
                b.extend_from_slice(&[0, 0, 0, 0]);
                b.extend_from_slice(payload);
                let c = checksum(&[pseudo, &b]);
                b[16..18].copy_from_slice(&c.to_be_bytes());
                b
            }
            Self::Udp {
                sport,
                dport,
                payload,
            } => {
                let mut b = Vec::with_capacity(8 + payload.len());
                b.extend_from_slice(&sport.to_be_bytes());
                b.extend_from_slice(&dport.to_be_bytes());
                b.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
                b.extend_from_slice(&[0, 0]);
                b.extend_from_slice(payload);
                let c = checksum(&[pseudo, &b]);
                b[6..8].copy_from_slice(&(if c == 0 { 0xFFFF } else { c }).to_be_bytes());
                b
            }
            Self::Raw { bytes, .. } => bytes.clone(),
        }
    }
}

/// The Internet checksum over the concatenation of `parts`.
pub fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    let mut odd: Option<u8> = None;
    for part in parts {
        for &byte in *part {
            match odd.take() {
                Some(hi) => sum += u32::from(u16::from_be_bytes([hi, byte])),
                None => odd = Some(byte),
            }
        }
    }
    if let Some(hi) = odd {
        sum += u32::from(u16::from_be_bytes([hi, 0]));
    }
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4 packet.
#[derive(Clone, Debug)]
pub struct Ipv4 {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub options: Vec<u8>,
    pub more_fragments: bool,
    /// Fragment offset in 8-byte units.
    pub frag_offset: u16,
    pub ttl: u8,
    pub l4: L4,
}

impl Ipv4 {
    pub fn new(src: Ipv4Addr, dst: Ipv4Addr, l4: L4) -> Self {
        Self {
            src,
            dst,
            options: Vec::new(),
            more_fragments: false,
            frag_offset: 0,
            ttl: 64,
            l4,
        }
    }

    /// Adds IP options (padded to a multiple of 4 bytes with End-of-List).
    pub fn options(mut self, opts: &[u8]) -> Self {
        self.options = opts.to_vec();
        while !self.options.len().is_multiple_of(4) {
            self.options.push(0);
        }
        self
    }

    pub const fn fragment(mut self, more: bool, offset_units: u16) -> Self {
        self.more_fragments = more;
        self.frag_offset = offset_units;
        self
    }

    pub fn bytes(&self) -> Vec<u8> {
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&self.src.octets());
        pseudo.extend_from_slice(&self.dst.octets());
        pseudo.push(0);
        pseudo.push(self.l4.proto());
        let l4 = self.l4.bytes(&{
            let mut p = pseudo.clone();
            // Length filled in below once known; compute with the real length.
            p.extend_from_slice(&0u16.to_be_bytes());
            p
        });
        // Recompute the transport checksum with the right pseudo-header length.
        let mut p = pseudo;
        p.extend_from_slice(&(l4.len() as u16).to_be_bytes());
        let l4 = self.l4.bytes(&p);
        let hlen = 20 + self.options.len();
        let mut h = Vec::with_capacity(hlen + l4.len());
        h.push(0x40 | (hlen / 4) as u8);
        h.push(0);
        h.extend_from_slice(&((hlen + l4.len()) as u16).to_be_bytes());
        h.extend_from_slice(&0x1234u16.to_be_bytes());
        let flags_off = (u16::from(self.more_fragments) << 13) | (self.frag_offset & 0x1FFF);
        h.extend_from_slice(&flags_off.to_be_bytes());
        h.push(self.ttl);
        h.push(self.l4.proto());
        h.extend_from_slice(&[0, 0]);
        h.extend_from_slice(&self.src.octets());
        h.extend_from_slice(&self.dst.octets());
        h.extend_from_slice(&self.options);
        let c = checksum(&[&h]);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        h.extend_from_slice(&l4);
        h
    }
}

/// An IPv6 extension header.
#[derive(Clone, Debug)]
pub enum Ext {
    HopByHop,
    Routing,
    DestOpts,
    /// Fragment header: offset in 8-byte units, more-fragments flag.
    Fragment {
        offset: u16,
        more: bool,
    },
    /// Authentication header.
    Auth,
}

impl Ext {
    const fn number(&self) -> u8 {
        match self {
            Self::HopByHop => 0,
            Self::Routing => 43,
            Self::Fragment { .. } => 44,
            Self::Auth => 51,
            Self::DestOpts => 60,
        }
    }

    fn bytes(&self, next: u8) -> Vec<u8> {
        match self {
            // 8 bytes: next, hdr-ext-len 0, then a PadN option of 4 bytes.
            Self::HopByHop | Self::DestOpts => vec![next, 0, 1, 4, 0, 0, 0, 0],
            // Type 4 (segment routing style) with 0 segments left, 16 bytes.
            Self::Routing => {
                let mut v = vec![next, 1, 4, 0, 0, 0, 0, 0];
                v.extend_from_slice(&[0; 8]);
                v
            }
            Self::Fragment { offset, more } => {
                let f = (offset << 3) | u16::from(*more);
                let mut v = vec![next, 0];
                v.extend_from_slice(&f.to_be_bytes());
                v.extend_from_slice(&0xABCD_0001u32.to_be_bytes());
                v
            }
            // AH with payload length 4 → (4 + 2) * 4 = 24 bytes.
            Self::Auth => {
                let mut v = vec![next, 4, 0, 0];
                v.extend_from_slice(&[0; 20]);
                v
            }
        }
    }
}

/// An IPv6 packet.
#[derive(Clone, Debug)]
pub struct Ipv6 {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub ext: Vec<Ext>,
    pub l4: L4,
}

impl Ipv6 {
    pub const fn new(src: Ipv6Addr, dst: Ipv6Addr, l4: L4) -> Self {
        Self {
            src,
            dst,
            ext: Vec::new(),
            l4,
        }
    }

    pub fn ext(mut self, ext: Ext) -> Self {
        self.ext.push(ext);
        self
    }

    pub fn bytes(&self) -> Vec<u8> {
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&self.src.octets());
        pseudo.extend_from_slice(&self.dst.octets());
        let l4_len = self.l4.bytes(&[]).len() as u32;
        pseudo.extend_from_slice(&l4_len.to_be_bytes());
        pseudo.extend_from_slice(&[0, 0, 0, self.l4.proto()]);
        let l4 = self.l4.bytes(&pseudo);
        let mut chain = Vec::new();
        for (i, e) in self.ext.iter().enumerate() {
            let next = self.ext.get(i + 1).map_or(self.l4.proto(), Ext::number);
            chain.extend_from_slice(&e.bytes(next));
        }
        let first = self.ext.first().map_or(self.l4.proto(), Ext::number);
        let mut h = Vec::with_capacity(40 + chain.len() + l4.len());
        h.extend_from_slice(&[0x60, 0, 0, 0]);
        h.extend_from_slice(&((chain.len() + l4.len()) as u16).to_be_bytes());
        h.push(first);
        h.push(64);
        h.extend_from_slice(&self.src.octets());
        h.extend_from_slice(&self.dst.octets());
        h.extend_from_slice(&chain);
        h.extend_from_slice(&l4);
        h
    }
}

/// A VLAN tag: its TPID (0x8100 or 0x88A8) and VLAN id.
#[derive(Clone, Copy, Debug)]
pub struct Vlan {
    pub tpid: u16,
    pub vid: u16,
}

pub const fn dot1q(vid: u16) -> Vlan {
    Vlan {
        tpid: ETH_P_8021Q,
        vid,
    }
}

pub const fn dot1ad(vid: u16) -> Vlan {
    Vlan {
        tpid: ETH_P_8021AD,
        vid,
    }
}

pub const SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
pub const DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

/// An Ethernet frame around `payload` with the given tags (outermost first).
pub fn ethernet(vlans: &[Vlan], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + 4 * vlans.len() + payload.len());
    f.extend_from_slice(&DST_MAC);
    f.extend_from_slice(&SRC_MAC);
    for v in vlans {
        f.extend_from_slice(&v.tpid.to_be_bytes());
        f.extend_from_slice(&v.vid.to_be_bytes());
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An untagged IPv4 frame.
pub fn v4_frame(p: &Ipv4) -> Vec<u8> {
    ethernet(&[], ETH_P_IP, &p.bytes())
}

/// An untagged IPv6 frame.
pub fn v6_frame(p: &Ipv6) -> Vec<u8> {
    ethernet(&[], ETH_P_IPV6, &p.bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_header_checksum_verifies() {
        let p = Ipv4::new(
            Ipv4Addr::new(198, 18, 0, 1),
            Ipv4Addr::new(198, 18, 0, 2),
            L4::tcp(1, 2, TCP_SYN),
        )
        .options(&[1, 1, 1]);
        let b = p.bytes();
        assert_eq!(b[0] & 0x0F, 6);
        assert_eq!(checksum(&[&b[..24]]), 0);
    }
}
