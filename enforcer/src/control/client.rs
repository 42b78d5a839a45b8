//! The CLI's side of the control socket.

use std::{
    io::{BufRead as _, BufReader, Write as _},
    os::unix::net::UnixStream,
    path::Path,
    time::Duration,
};

use super::protocol::{Reply, Request};

/// Failures talking to the agent.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "no agent is running (nothing listening on {socket}); start one with `enforcer run --iface IF`"
    )]
    NotRunning { socket: String },
    #[error(
        "permission denied on {socket}: the control socket is for root or the configured admin group"
    )]
    PermissionDenied { socket: String },
    #[error("talking to the agent on {socket}: {source}")]
    Io {
        socket: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the agent sent an unreadable reply: {0}")]
    Protocol(String),
}

/// Sends one request and waits for its reply.
pub fn call(socket: &Path, req: &Request, timeout: Duration) -> Result<Reply, ClientError> {
    let s = socket.display().to_string();
    let io = |source: std::io::Error| ClientError::Io {
        socket: s.clone(),
        source,
    };
    let mut stream = UnixStream::connect(socket).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
            ClientError::NotRunning { socket: s.clone() }
        }
        std::io::ErrorKind::PermissionDenied => ClientError::PermissionDenied { socket: s.clone() },
        _ => io(e),
    })?;
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    let mut line = serde_json::to_vec(req).map_err(|e| ClientError::Protocol(e.to_string()))?;
    line.push(b'\n');
    stream.write_all(&line).map_err(io)?;
    let mut reader = BufReader::new(stream);
    let mut buf = String::new();
    reader.read_line(&mut buf).map_err(io)?;
    if buf.is_empty() {
        return Err(ClientError::Protocol(
            "the agent closed the connection".into(),
        ));
    }
    serde_json::from_str(&buf).map_err(|e| ClientError::Protocol(e.to_string()))
}
