//! Serving the control socket.

use std::{
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    sync::Arc,
};

use tokio::{
    io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader},
    net::{UnixListener, UnixStream},
};
use tracing::{debug, warn};

use super::protocol::{ErrorKind, Reply, Request};

/// Largest request accepted (a million prefixes fit comfortably).
pub const MAX_REQUEST_BYTES: usize = 256 << 20;

/// Who may talk to the agent.
#[derive(Debug, Clone, Copy)]
pub struct Access {
    /// Members of this group (primary or supplementary) are admitted besides root.
    pub admin_gid: Option<u32>,
}

/// Errors setting up the socket.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("another agent is already serving {0}; stop it first")]
    InUse(String),
    #[error("control socket {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("admin group `{0}` does not exist")]
    NoSuchGroup(String),
}

/// Looks up a group id by name.
pub fn group_id(name: &str) -> Result<u32, ServerError> {
    let c = std::ffi::CString::new(name).map_err(|_| ServerError::NoSuchGroup(name.into()))?;
    // SAFETY: getgrnam returns a pointer to static storage or null; we copy the
    // gid out immediately and the agent does not call it concurrently.
    let g = unsafe { libc::getgrnam(c.as_ptr()) };
    if g.is_null() {
        return Err(ServerError::NoSuchGroup(name.into()));
    }
    // SAFETY: non-null result of getgrnam.
    Ok(unsafe { (*g).gr_gid })
}

/// Binds the socket with mode 0600 (0660 and the admin group's ownership when
/// one is configured). A stale socket file is replaced; a live one is refused.
pub async fn bind(path: &Path, access: Access) -> Result<UnixListener, ServerError> {
    let p = path.display().to_string();
    let io = |source| ServerError::Io {
        path: p.clone(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            return Err(ServerError::InUse(p));
        }
        std::fs::remove_file(path).map_err(io)?;
    }
    // Create it private from the start: no window in which others could connect.
    // SAFETY: umask only changes this process's file-creation mask.
    let old = unsafe { libc::umask(0o177) };
    let listener = UnixListener::bind(path);
    // SAFETY: as above, restoring the previous mask.
    unsafe { libc::umask(old) };
    let listener = listener.map_err(io)?;
    if let Some(gid) = access.admin_gid {
        std::os::unix::fs::chown(path, None, Some(gid)).map_err(io)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(io)?;
    } else {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    }
    Ok(listener)
}

/// Supplementary groups of a process, from /proc.
fn groups_of(pid: i32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Groups:").map(str::to_owned))
        })
        .map(|g| {
            g.split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn admitted(stream: &UnixStream, access: Access) -> bool {
    let Ok(cred) = stream.peer_cred() else {
        return false;
    };
    if cred.uid() == 0 {
        return true;
    }
    match access.admin_gid {
        Some(gid) if cred.gid() == gid => true,
        Some(gid) => cred.pid().is_some_and(|pid| groups_of(pid).contains(&gid)),
        None => false,
    }
}

/// Serves connections until the task is dropped. `handle` runs on the blocking
/// pool (it may hold the store lock for a large batch).
pub async fn serve<H>(
    listener: UnixListener,
    access: Access,
    handle: Arc<H>,
    socket: PathBuf,
    hub: Option<Arc<crate::store::log::LogHub>>,
) where
    H: Fn(Request) -> Reply + Send + Sync + 'static,
{
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, socket = %socket.display(), "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let handle = Arc::clone(&handle);
        let hub = hub.clone();
        tokio::spawn(async move {
            if let Err(e) = connection(stream, access, handle, hub).await {
                debug!(error = %e, "control connection ended with an error");
            }
        });
    }
}

async fn send(write: &mut tokio::net::unix::OwnedWriteHalf, reply: &Reply) -> std::io::Result<()> {
    let mut out = serde_json::to_vec(reply).unwrap_or_else(|e| {
        format!("{{\"type\":\"error\",\"kind\":\"internal\",\"message\":\"{e}\"}}").into_bytes()
    });
    out.push(b'\n');
    write.write_all(&out).await
}

/// Streams the decision log to one client until it goes away.
async fn follow_log(
    write: &mut tokio::net::unix::OwnedWriteHalf,
    hub: &crate::store::log::LogHub,
    lines: usize,
) -> std::io::Result<()> {
    let mut rx = hub.subscribe();
    send(
        write,
        &Reply::LogLines {
            lines: hub.recent(lines),
        },
    )
    .await?;
    loop {
        match rx.recv().await {
            Ok(line) => send(write, &Reply::LogLines { lines: vec![line] }).await?,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                let note = serde_json::json!({ "action": "lagged", "missed": n }).to_string();
                send(write, &Reply::LogLines { lines: vec![note] }).await?;
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return Ok(()),
        }
    }
}

async fn connection<H>(
    stream: UnixStream,
    access: Access,
    handle: Arc<H>,
    hub: Option<Arc<crate::store::log::LogHub>>,
) -> std::io::Result<()>
where
    H: Fn(Request) -> Reply + Send + Sync + 'static,
{
    let ok = admitted(&stream, access);
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = (&mut reader)
            .take(MAX_REQUEST_BYTES as u64 + 1)
            .read_until(b'\n', &mut line)
            .await?;
        if n == 0 {
            return Ok(());
        }
        let reply = if !ok {
            warn!(
                "refused a control connection from a peer that is neither root nor in the admin group"
            );
            Reply::Error {
                kind: ErrorKind::Forbidden,
                message: "permission denied: the control API is for root or the configured admin \
                          group"
                    .into(),
            }
        } else if n > MAX_REQUEST_BYTES {
            Reply::Error {
                kind: ErrorKind::BadRequest,
                message: format!("request larger than {MAX_REQUEST_BYTES} bytes"),
            }
        } else {
            match serde_json::from_slice::<Request>(&line) {
                Ok(Request::Log { lines, follow }) if hub.is_some() => {
                    let hub = hub.as_ref().map(Arc::clone).unwrap_or_default();
                    if follow {
                        return follow_log(&mut write, &hub, lines).await;
                    }
                    Reply::LogLines {
                        lines: hub.recent(lines),
                    }
                }
                Ok(req) => {
                    let h = Arc::clone(&handle);
                    tokio::task::spawn_blocking(move || h(req))
                        .await
                        .unwrap_or_else(|e| Reply::Error {
                            kind: ErrorKind::Internal,
                            message: format!("the request handler failed: {e}"),
                        })
                }
                Err(e) => Reply::Error {
                    kind: ErrorKind::BadRequest,
                    message: format!("malformed request: {e}"),
                },
            }
        };
        send(&mut write, &reply).await?;
        if !ok {
            return Ok(());
        }
    }
}

use tokio::io::AsyncReadExt as _;
