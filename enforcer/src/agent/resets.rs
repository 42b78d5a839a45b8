//! The server's side of connections that `reject` reset: closed by the
//! agent when the server is local (see `kernel::sockdiag` for why only
//! connections that carried no byte).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use enforcer_common::route::ResetEvent;
use tracing::warn;

use crate::kernel::sockdiag::{Closed, SockDiag};

/// Outcomes so far, for the metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ResetCounts {
    pub closed: u64,
    pub not_found: u64,
    pub spared: u64,
    pub failed: u64,
}

#[derive(Default)]
pub struct ServerResets {
    diag: Option<SockDiag>,
    pub counts: ResetCounts,
    warned: bool,
}

/// The event's (server, client) socket addresses.
pub fn endpoints(e: &ResetEvent) -> Option<(SocketAddr, SocketAddr)> {
    let ip = |w: [u64; 2]| -> Option<IpAddr> {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&w[0].to_ne_bytes());
        b[8..].copy_from_slice(&w[1].to_ne_bytes());
        match e.family {
            4 => Some(IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))),
            6 => Some(IpAddr::V6(Ipv6Addr::from(b))),
            _ => None,
        }
    };
    Some((
        SocketAddr::new(ip(e.server)?, e.server_port),
        SocketAddr::new(ip(e.client)?, e.client_port),
    ))
}

impl ServerResets {
    pub fn on_event(&mut self, e: &ResetEvent) {
        let Some((server, client)) = endpoints(e) else {
            return;
        };
        if self.diag.is_none() {
            match SockDiag::open() {
                Ok(d) => self.diag = Some(d),
                Err(err) => {
                    self.fail(&err);
                    return;
                }
            }
        }
        let Some(diag) = self.diag.as_mut() else {
            return;
        };
        match diag.close_unused(server, client) {
            Ok(Closed::Closed) => self.counts.closed += 1,
            Ok(Closed::NotFound) => self.counts.not_found += 1,
            Ok(Closed::Spared) => self.counts.spared += 1,
            Err(err) => {
                // A fresh socket next time (this one may be out of step).
                self.diag = None;
                self.fail(&err);
            }
        }
    }

    fn fail(&mut self, err: &std::io::Error) {
        self.counts.failed += 1;
        if !self.warned {
            self.warned = true;
            warn!(
                error = %err,
                "cannot close the server's side of rejected connections (sock_diag); \
                 they stay open until the server's idle timeout"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_of_both_families() {
        let v4 = u64::from(u32::from_ne_bytes([198, 18, 0, 1]));
        let e = ResetEvent {
            kind: 4,
            family: 4,
            client_port: 40000,
            server_port: 80,
            _pad: [0; 3],
            client: [u64::from(u32::from_ne_bytes([198, 18, 0, 2])), 0],
            server: [v4, 0],
        };
        assert_eq!(
            endpoints(&e),
            Some((
                "198.18.0.1:80".parse().unwrap(),
                "198.18.0.2:40000".parse().unwrap()
            ))
        );
        let a: Ipv6Addr = "2001:2::1".parse().unwrap();
        let o = a.octets();
        let w = [
            u64::from_ne_bytes(o[..8].try_into().unwrap()),
            u64::from_ne_bytes(o[8..].try_into().unwrap()),
        ];
        let e6 = ResetEvent {
            family: 6,
            server: w,
            client: w,
            ..e
        };
        assert_eq!(endpoints(&e6).unwrap().0, "[2001:2::1]:80".parse().unwrap());
        assert_eq!(endpoints(&ResetEvent { family: 9, ..e }), None);
    }
}
