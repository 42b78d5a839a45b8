//! Real traffic between namespaces: a UDP sender (flooding or paced) and a
//! UDP receiver that counts datagrams per source address. Every loop is
//! bounded in packets and in time.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr, UdpSocket},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use crate::netns::enter;

/// Counts datagrams per source address until dropped.
pub struct UdpCounter {
    pub addr: SocketAddr,
    counts: Arc<Mutex<HashMap<IpAddr, u64>>>,
    stop: Arc<AtomicBool>,
}

impl UdpCounter {
    /// Listens on `bind` inside the namespace at `ns_path`.
    pub fn start(ns_path: &str, bind: SocketAddr) -> Self {
        let counts = Arc::new(Mutex::new(HashMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let counts = Arc::clone(&counts);
            let stop = Arc::clone(&stop);
            let ns = ns_path.to_owned();
            thread::spawn(move || {
                enter(&ns);
                let s = UdpSocket::bind(bind).expect("bind the UDP counter");
                s.set_read_timeout(Some(Duration::from_millis(100)))
                    .unwrap();
                // A large receive buffer: the test measures what XDP lets
                // through, not what a small socket buffer can hold.
                let _ = set_rcvbuf(&s, 8 << 20);
                tx.send(s.local_addr().unwrap()).unwrap();
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((_, from)) = s.recv_from(&mut buf) {
                        // A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d.
                        *counts
                            .lock()
                            .unwrap()
                            .entry(from.ip().to_canonical())
                            .or_insert(0) += 1;
                    }
                }
            });
        }
        let addr = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("UDP counter start");
        Self { addr, counts, stop }
    }

    pub fn count_from(&self, ip: IpAddr) -> u64 {
        self.counts.lock().unwrap().get(&ip).copied().unwrap_or(0)
    }

    /// Datagrams from every source matching `f`.
    pub fn count_where(&self, f: impl Fn(&IpAddr) -> bool) -> u64 {
        self.counts
            .lock()
            .unwrap()
            .iter()
            .filter(|(k, _)| f(k))
            .map(|(_, v)| *v)
            .sum()
    }

    pub fn reset(&self) {
        self.counts.lock().unwrap().clear();
    }
}

impl Drop for UdpCounter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn set_rcvbuf(s: &UdpSocket, bytes: i32) -> std::io::Result<()> {
    use std::os::fd::AsRawFd as _;
    // SAFETY: setsockopt with a valid int option value.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&raw const bytes).cast(),
            std::mem::size_of::<i32>() as u32,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// How to send.
#[derive(Clone, Debug)]
pub struct Send {
    /// Source addresses to rotate through (each must be on the sender's interface).
    pub sources: Vec<IpAddr>,
    pub dst: SocketAddr,
    /// Packets per second; `None` sends as fast as possible.
    pub rate: Option<u64>,
    pub duration: Duration,
    pub max_packets: u64,
}

/// Sends from inside the namespace at `ns_path`; returns packets sent.
/// Runs on its own thread (the namespace switch is per thread) and blocks.
pub fn send(ns_path: &str, spec: Send) -> u64 {
    send_until(ns_path, spec, Arc::new(AtomicBool::new(false)))
}

/// As [`send`], also stopping early when `stop` is set.
pub fn send_until(ns_path: &str, spec: Send, stop: Arc<AtomicBool>) -> u64 {
    let ns = ns_path.to_owned();
    thread::spawn(move || {
        enter(&ns);
        let socks: Vec<UdpSocket> = spec
            .sources
            .iter()
            .map(|a| UdpSocket::bind(SocketAddr::new(*a, 0)).expect("bind the sender"))
            .collect();
        let payload = [0x55u8; 64];
        let start = Instant::now();
        let mut sent = 0u64;
        while sent < spec.max_packets
            && start.elapsed() < spec.duration
            && !stop.load(Ordering::Relaxed)
        {
            if let Some(rate) = spec.rate {
                let due = start + Duration::from_nanos(sent * 1_000_000_000 / rate.max(1));
                let now = Instant::now();
                if due > now {
                    thread::sleep(due - now);
                }
            }
            let s = &socks[(sent as usize) % socks.len()];
            if s.send_to(&payload, spec.dst).is_ok() {
                sent += 1;
            }
        }
        sent
    })
    .join()
    .expect("sender thread")
}
