//! Closing the server's side of a connection that `reject` reset.
//!
//! One XDP verdict sends one packet: the reset goes to the client, and the
//! server, which never saw the request, would keep its socket (and one of
//! its connection slots) until its idle timeout. The agent closes it with
//! sock_diag's SOCK_DESTROY, what `ss -K` does, when the server is local.
//!
//! Only a connection on which the server has received no byte is closed:
//! the event carries addresses and ports but the program cannot check them
//! against the connection's sequence numbers, so a forged request from a
//! spoofed source could otherwise close a real client's connection without
//! knowing its sequence numbers. A connection that has carried requests
//! (a later request on a kept-alive connection rejected) is left to the
//! server's idle timeout, as before.
//!
//! The kernel's lookup by addresses falls back to the listening socket when
//! the connection is gone, so only an established socket is closed, and the
//! close names it by its cookie: a listener is never touched.

use std::{
    io,
    net::{IpAddr, SocketAddr},
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
};

/// netlink family and message types (linux/sock_diag.h, linux/inet_diag.h).
const NETLINK_SOCK_DIAG: i32 = 4;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const SOCK_DESTROY: u16 = 21;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSG_HDRLEN: usize = 16;
/// `inet_diag_req_v2`: family, protocol, ext, pad, states, then the socket id.
const REQ_LEN: usize = 56;
/// `inet_diag_msg` before its attributes.
const DIAG_MSG_LEN: usize = 72;
/// The attribute carrying `struct tcp_info`, and the bit asking for it.
const INET_DIAG_INFO: u16 = 2;
/// Offset of `tcpi_bytes_received` in `struct tcp_info`.
const TCPI_BYTES_RECEIVED: usize = 128;
/// Both cookie words all ones: look the socket up by addresses only.
const NO_COOKIE: u32 = u32::MAX;
/// `TCP_ESTABLISHED` in `idiag_state`.
const TCP_ESTABLISHED: u8 = 1;

/// What became of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// Closed (the server's next read fails with "connection aborted").
    Closed,
    /// No such connection here (the server is not local, or it is gone).
    NotFound,
    /// The server has received data on it: left open (see the module doc).
    Spared,
}

/// A netlink socket for sock_diag requests.
pub struct SockDiag {
    fd: OwnedFd,
    seq: u32,
}

impl SockDiag {
    pub fn open() -> io::Result<Self> {
        // SAFETY: a plain socket call; the descriptor is owned at once.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
                NETLINK_SOCK_DIAG,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Self { fd, seq: 0 })
    }

    /// Closes the TCP connection between `local` (the server) and `remote`
    /// (the client) if it has not received a byte.
    pub fn close_unused(&mut self, local: SocketAddr, remote: SocketAddr) -> io::Result<Closed> {
        let reply = self.request(SOCK_DIAG_BY_FAMILY, local, remote, 0, None)?;
        let sock = match reply {
            Reply::Error(e) if e == libc::ENOENT => return Ok(Closed::NotFound),
            Reply::Error(e) => return Err(io::Error::from_raw_os_error(e)),
            Reply::Done => return Ok(Closed::NotFound),
            Reply::Info(s) => s,
        };
        // Not this connection (the listener the lookup fell back to), or not
        // an established one.
        if sock.state != TCP_ESTABLISHED || sock.remote_port != remote.port() {
            return Ok(Closed::NotFound);
        }
        if sock.bytes_received != Some(0) {
            return Ok(Closed::Spared);
        }
        match self.request(SOCK_DESTROY, local, remote, NLM_F_ACK, Some(sock.cookie))? {
            Reply::Error(0) => Ok(Closed::Closed),
            // Gone meanwhile (ESTALE: the cookie names another socket now).
            Reply::Error(e) if e == libc::ENOENT || e == libc::ESTALE => Ok(Closed::NotFound),
            Reply::Error(e) => Err(io::Error::from_raw_os_error(e)),
            // Not an answer to a destroy: count it as not done.
            Reply::Done | Reply::Info(_) => Ok(Closed::NotFound),
        }
    }

    fn request(
        &mut self,
        kind: u16,
        local: SocketAddr,
        remote: SocketAddr,
        flags: u16,
        cookie: Option<[u32; 2]>,
    ) -> io::Result<Reply> {
        self.seq = self.seq.wrapping_add(1);
        let msg = message(kind, NLM_F_REQUEST | flags, self.seq, local, remote, cookie);
        // SAFETY: `msg` is a valid buffer of its length; the kernel is the
        // default destination of a netlink socket.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut buf = [0u8; 8192];
        loop {
            // SAFETY: `buf` is writable for its length.
            let n =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            if let Some(r) = parse(&buf[..n as usize], self.seq) {
                return Ok(r);
            }
        }
    }
}

/// The answer to one request.
#[derive(Debug, PartialEq, Eq)]
enum Reply {
    /// An acknowledgement: 0 or an errno.
    Error(i32),
    /// The end of a dump with no socket in it.
    Done,
    /// The socket found.
    Info(Sock),
}

/// What the kernel said of the socket it found.
#[derive(Debug, PartialEq, Eq)]
struct Sock {
    state: u8,
    remote_port: u16,
    cookie: [u32; 2],
    /// `tcpi_bytes_received`, if the kernel gave it.
    bytes_received: Option<u64>,
}

fn message(
    kind: u16,
    flags: u16,
    seq: u32,
    local: SocketAddr,
    remote: SocketAddr,
    cookie: Option<[u32; 2]>,
) -> Vec<u8> {
    let mut m = Vec::with_capacity(NLMSG_HDRLEN + REQ_LEN);
    m.extend_from_slice(&((NLMSG_HDRLEN + REQ_LEN) as u32).to_ne_bytes());
    m.extend_from_slice(&kind.to_ne_bytes());
    m.extend_from_slice(&flags.to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    // inet_diag_req_v2
    let family = if local.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    m.push(family as u8);
    m.push(libc::IPPROTO_TCP as u8);
    m.push(1 << (INET_DIAG_INFO - 1));
    m.push(0);
    m.extend_from_slice(&u32::MAX.to_ne_bytes()); // every state
    // inet_diag_sockid: the socket's own address is the source.
    m.extend_from_slice(&local.port().to_be_bytes());
    m.extend_from_slice(&remote.port().to_be_bytes());
    m.extend_from_slice(&addr16(local.ip()));
    m.extend_from_slice(&addr16(remote.ip()));
    m.extend_from_slice(&0u32.to_ne_bytes()); // any interface
    for w in cookie.unwrap_or([NO_COOKIE; 2]) {
        m.extend_from_slice(&w.to_ne_bytes());
    }
    debug_assert_eq!(m.len(), NLMSG_HDRLEN + REQ_LEN);
    m
}

fn addr16(ip: IpAddr) -> [u8; 16] {
    let mut a = [0u8; 16];
    match ip {
        IpAddr::V4(v4) => a[..4].copy_from_slice(&v4.octets()),
        IpAddr::V6(v6) => a = v6.octets(),
    }
    a
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(off..off + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

/// The first message of `buf` answering `seq`, if any.
fn parse(buf: &[u8], seq: u32) -> Option<Reply> {
    let mut off = 0;
    while off + NLMSG_HDRLEN <= buf.len() {
        let len = u32_at(buf, off)? as usize;
        let kind = u16_at(buf, off + 4)?;
        let mseq = u32_at(buf, off + 8)?;
        if len < NLMSG_HDRLEN || off + len > buf.len() {
            return None;
        }
        let body = &buf[off + NLMSG_HDRLEN..off + len];
        if mseq == seq {
            return match kind {
                NLMSG_ERROR => Some(Reply::Error(-(u32_at(body, 0)? as i32))),
                NLMSG_DONE => Some(Reply::Done),
                _ => Some(Reply::Info(Sock {
                    state: *body.get(1)?,
                    remote_port: u16::from_be_bytes(body.get(6..8)?.try_into().ok()?),
                    cookie: [u32_at(body, 44)?, u32_at(body, 48)?],
                    bytes_received: bytes_received(body),
                })),
            };
        }
        off += (len + 3) & !3;
    }
    None
}

/// `tcpi_bytes_received` from an `inet_diag_msg` and its attributes.
fn bytes_received(msg: &[u8]) -> Option<u64> {
    let mut off = DIAG_MSG_LEN;
    while off + 4 <= msg.len() {
        let len = usize::from(u16_at(msg, off)?);
        let kind = u16_at(msg, off + 2)?;
        if len < 4 || off + len > msg.len() {
            return None;
        }
        if kind == INET_DIAG_INFO {
            let v = msg.get(off + 4 + TCPI_BYTES_RECEIVED..off + 4 + TCPI_BYTES_RECEIVED + 8)?;
            return Some(u64::from_ne_bytes(v.try_into().ok()?));
        }
        off += (len + 3) & !3;
    }
    None
}

#[cfg(test)]
mod tests {
    use std::{
        io::{Read as _, Write as _},
        net::{TcpListener, TcpStream},
    };

    use super::*;

    /// Loopback only. Needs CAP_NET_ADMIN, like the agent (the tests run as root).
    fn case(bind: &str) {
        let listener = TcpListener::bind(bind).unwrap();
        let server_addr = listener.local_addr().unwrap();
        let mut diag = SockDiag::open().unwrap();

        // A fresh connection the server has received nothing on: closed.
        let client = TcpStream::connect(server_addr).unwrap();
        let (mut served, client_addr) = listener.accept().unwrap();
        assert_eq!(client.local_addr().unwrap(), client_addr);
        assert_eq!(
            diag.close_unused(server_addr, client_addr).unwrap(),
            Closed::Closed
        );
        let mut b = [0u8; 1];
        let e = served.read(&mut b).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionAborted, "{e}");
        // It is gone now.
        assert_eq!(
            diag.close_unused(server_addr, client_addr).unwrap(),
            Closed::NotFound
        );

        // The listener is never taken for the connection.
        let again = TcpStream::connect(server_addr).unwrap();
        drop(listener.accept().unwrap());
        drop(again);

        // A connection that carried a byte: spared.
        let mut client = TcpStream::connect(server_addr).unwrap();
        let (mut served, client_addr) = listener.accept().unwrap();
        client.write_all(b"x").unwrap();
        served.read_exact(&mut b).unwrap();
        assert_eq!(
            diag.close_unused(server_addr, client_addr).unwrap(),
            Closed::Spared
        );
        client.write_all(b"y").unwrap();
        served.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"y");
    }

    #[test]
    fn closes_a_fresh_local_connection_and_spares_a_used_one_v4() {
        case("127.0.0.1:0");
    }

    #[test]
    fn closes_a_fresh_local_connection_and_spares_a_used_one_v6() {
        case("[::1]:0");
    }

    #[test]
    fn requests_are_laid_out_as_the_kernel_expects() {
        let m = message(
            SOCK_DESTROY,
            NLM_F_REQUEST | NLM_F_ACK,
            7,
            "198.18.0.1:80".parse().unwrap(),
            "198.18.0.2:40000".parse().unwrap(),
            None,
        );
        assert_eq!(m.len(), 72);
        assert_eq!(u32_at(&m, 0), Some(72));
        assert_eq!(u16_at(&m, 4), Some(SOCK_DESTROY));
        assert_eq!(m[16], libc::AF_INET as u8);
        assert_eq!(&m[24..26], &80u16.to_be_bytes());
        assert_eq!(&m[26..28], &40000u16.to_be_bytes());
        assert_eq!(&m[28..32], &[198, 18, 0, 1]);
        assert_eq!(&m[44..48], &[198, 18, 0, 2]);
        assert_eq!(u32_at(&m, 64), Some(NO_COOKIE));
    }
}
