//! A small real HTTP/1.1 server for tests and the demo: keep-alive,
//! Content-Length bodies, and a few routes that behave like an API:
//! `POST /login` answers 401 unless the body contains `password=good`,
//! `/api/items...` answers JSON, everything else 200 "ok".

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::{SocketAddr, TcpListener, TcpStream},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread,
    time::Duration,
};

/// Requests served, by outcome.
#[derive(Default, Debug)]
pub struct Served {
    pub total: AtomicU64,
    pub unauthorized: AtomicU64,
}

/// A running server; stops (and its threads end) on drop.
pub struct Httpd {
    pub addr: SocketAddr,
    pub served: Arc<Served>,
    stop: Arc<AtomicBool>,
}

impl Drop for Httpd {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(100));
    }
}

/// Starts serving on `listen`, inside the network namespace at `ns_path` when given.
pub fn start(ns_path: Option<&str>, listen: SocketAddr) -> Httpd {
    let served = Arc::new(Served::default());
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = std::sync::mpsc::channel();
    {
        let served = Arc::clone(&served);
        let stop = Arc::clone(&stop);
        let ns = ns_path.map(str::to_owned);
        thread::spawn(move || {
            if let Some(ns) = &ns {
                crate::netns::enter(ns);
            }
            let l = match TcpListener::bind(listen) {
                Ok(l) => l,
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                    return;
                }
            };
            let _ = tx.send(Ok(l.local_addr().unwrap()));
            for conn in l.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let served = Arc::clone(&served);
                thread::spawn(move || {
                    let _ = serve_conn(conn, &served);
                });
            }
        });
    }
    let addr = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("httpd did not start")
        .unwrap_or_else(|e| panic!("httpd bind {listen}: {e}"));
    Httpd { addr, served, stop }
}

fn serve_conn(conn: TcpStream, served: &Served) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    conn.set_nodelay(true)?;
    let mut w = conn.try_clone()?;
    let mut r = BufReader::new(conn);
    loop {
        let mut request_line = String::new();
        if r.read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        let mut parts = request_line.split_whitespace();
        let method = parts.next().unwrap_or("").to_owned();
        let target = parts.next().unwrap_or("/").to_owned();
        let mut len = 0usize;
        let mut close = false;
        loop {
            let mut h = String::new();
            if r.read_line(&mut h)? == 0 {
                return Ok(());
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                let k = k.trim().to_ascii_lowercase();
                if k == "content-length" {
                    len = v.trim().parse().unwrap_or(0);
                } else if k == "connection" && v.trim().eq_ignore_ascii_case("close") {
                    close = true;
                }
            }
        }
        let mut body = vec![0u8; len.min(1 << 20)];
        r.read_exact(&mut body)?;
        let (status, text, ctype) = route(&method, &target, &body);
        served.total.fetch_add(1, Ordering::Relaxed);
        if status == 401 {
            served.unauthorized.fetch_add(1, Ordering::Relaxed);
        }
        let reason = match status {
            200 => "OK",
            401 => "Unauthorized",
            404 => "Not Found",
            _ => "Other",
        };
        // One write per response: written piecemeal, Nagle and delayed ACKs
        // would hold each keep-alive response back by tens of milliseconds.
        let resp = format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n{}\r\n{text}",
            text.len(),
            if close { "Connection: close\r\n" } else { "" }
        );
        w.write_all(resp.as_bytes())?;
        if close {
            return Ok(());
        }
    }
}

fn route(method: &str, target: &str, body: &[u8]) -> (u16, String, &'static str) {
    let path = target.split('?').next().unwrap_or("/");
    match (method, path) {
        ("POST", "/login") => {
            if String::from_utf8_lossy(body).contains("password=good") {
                (200, "{\"token\":\"t\"}".into(), "application/json")
            } else {
                (
                    401,
                    "{\"error\":\"bad credentials\"}".into(),
                    "application/json",
                )
            }
        }
        (_, p) if p.starts_with("/api/items") => (
            200,
            format!("{{\"item\":\"{}\"}}", p.trim_start_matches("/api/items")),
            "application/json",
        ),
        (_, "/missing") => (404, "not found".into(), "text/plain"),
        _ => (200, "ok\n".into(), "text/plain"),
    }
}
