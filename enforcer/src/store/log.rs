//! The decision log as a stream: every ban, unban and expiry as one JSON
//! object, kept for the last few hundred and broadcast to `enforcer log
//! --follow` clients. The same events also go to `tracing` (journald or
//! stderr); this is the copy the control socket serves.

use std::{collections::VecDeque, sync::Mutex};

use tokio::sync::broadcast;

/// Lines kept for clients that connect later.
const RECENT: usize = 500;

pub struct LogHub {
    recent: Mutex<VecDeque<String>>,
    tx: broadcast::Sender<String>,
}

impl Default for LogHub {
    fn default() -> Self {
        Self {
            recent: Mutex::new(VecDeque::with_capacity(RECENT)),
            tx: broadcast::channel(4096).0,
        }
    }
}

impl LogHub {
    pub fn publish(&self, line: String) {
        if let Ok(mut r) = self.recent.lock() {
            if r.len() == RECENT {
                r.pop_front();
            }
            r.push_back(line.clone());
        }
        // No subscriber is fine.
        let _ = self.tx.send(line);
    }

    /// The last `n` lines, oldest first.
    pub fn recent(&self, n: usize) -> Vec<String> {
        self.recent
            .lock()
            .map(|r| r.iter().skip(r.len().saturating_sub(n)).cloned().collect())
            .unwrap_or_default()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<String> {
        self.tx.subscribe()
    }
}
