//! Reading the ring buffer of events and acting on them.

use std::{sync::Arc, time::Instant};

use aya::maps::{MapData, RingBuf};
use enforcer_common::{
    blocklist::Origin,
    ratelimit::{EVENT_RATE_LIMIT, LimitEvent},
};
use tokio::io::unix::AsyncFd;
use tracing::{error, warn};

use super::Agent;
use crate::store::{Change, Kind, shared};

/// The detector's `source` id in the decision store.
pub const SOURCE_RATE_LIMIT: u32 = 1;

/// Drains events as they arrive, until the task is dropped.
pub async fn run(ring: RingBuf<MapData>, agent: Arc<Agent>) {
    // SAFETY: `ring` owns its fd, which stays open while `fd` owns `ring`.
    let mut fd = match unsafe { AsyncFd::register(ring) } {
        Ok(fd) => fd,
        Err(e) => {
            error!(error = %e, "cannot poll the event ring buffer; detectors are off");
            return;
        }
    };
    loop {
        let mut guard = match fd.readable_mut().await {
            Ok(g) => g,
            Err(e) => {
                error!(error = %e, "polling the event ring buffer failed; detectors are off");
                return;
            }
        };
        let mut batch = Vec::new();
        {
            let ring = guard.get_inner_mut();
            while let Some(item) = ring.next() {
                if item.len() >= std::mem::size_of::<LimitEvent>() {
                    // SAFETY: the program writes whole `LimitEvent`s; the
                    // length was checked and the read is unaligned-safe.
                    let ev =
                        unsafe { std::ptr::read_unaligned(item.as_ptr().cast::<LimitEvent>()) };
                    batch.push(ev);
                }
            }
        }
        guard.clear_ready();
        if batch.is_empty() {
            continue;
        }
        let agent = Arc::clone(&agent);
        let _ = tokio::task::spawn_blocking(move || handle(&agent, &batch)).await;
    }
}

fn handle(agent: &Agent, batch: &[LimitEvent]) {
    let now = Instant::now();
    let bans: Vec<_> = {
        let Ok(mut d) = agent.detector.lock() else {
            return;
        };
        batch
            .iter()
            .filter(|e| e.kind == EVENT_RATE_LIMIT)
            .filter_map(|e| d.on_event(e, now))
            .collect()
    };
    if bans.is_empty() {
        return;
    }
    let changes = bans
        .into_iter()
        .map(|b| Change::Put {
            kind: Kind::Block,
            prefix: b.prefix,
            origin: Origin::Detector,
            source: SOURCE_RATE_LIMIT,
            reason: shared(&b.reason),
            ttl: Some(b.ttl),
        })
        .collect();
    let Ok(mut store) = agent.store.lock() else {
        return;
    };
    if let Err(e) = store.apply(changes) {
        warn!(error = %e, "could not apply detector bans");
    }
}
