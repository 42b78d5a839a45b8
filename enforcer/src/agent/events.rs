//! Reading the ring buffer of events and acting on them.

use std::{sync::Arc, time::Instant};

use aya::maps::{MapData, RingBuf};
use enforcer_common::{
    blocklist::Origin,
    ratelimit::{EVENT_RATE_LIMIT, LimitEvent},
    route::{
        EVENT_REQUEST, EVENT_RESET, EVENT_RESPONSE, RequestSample, ResetEvent, ResponseReport,
    },
};
use tokio::io::unix::AsyncFd;
use tracing::{error, warn};

use super::Agent;
use crate::store::{Change, Kind, shared};

/// The rate-limit detector's `source` id in the decision store.
pub const SOURCE_RATE_LIMIT: u32 = 1;
/// The response detector's `source` id.
pub const SOURCE_RESPONSES: u32 = 2;

/// One event from the ring buffer (every kind is 48 bytes, kind first).
#[derive(Debug, Clone, Copy)]
enum Event {
    Limit(LimitEvent),
    Request(RequestSample),
    Response(ResponseReport),
    Reset(ResetEvent),
}

/// Decodes an event; `None` for an unknown kind or a short record.
fn decode(item: &[u8]) -> Option<Event> {
    fn read<T: Copy>(item: &[u8]) -> Option<T> {
        (item.len() >= std::mem::size_of::<T>()).then(|| {
            // SAFETY: the length was checked; the program writes whole
            // records of plain integers, and the read is unaligned-safe.
            unsafe { std::ptr::read_unaligned(item.as_ptr().cast::<T>()) }
        })
    }
    match read::<u32>(item)? {
        EVENT_RATE_LIMIT => read(item).map(Event::Limit),
        EVENT_REQUEST => read(item).map(Event::Request),
        EVENT_RESPONSE => read(item).map(Event::Response),
        EVENT_RESET => read(item).map(Event::Reset),
        _ => None,
    }
}

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
                if let Some(ev) = decode(&item) {
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

fn handle(agent: &Agent, batch: &[Event]) {
    let now = Instant::now();
    let mut bans = Vec::new();
    if let Ok(mut d) = agent.detector.lock() {
        for e in batch {
            if let Event::Limit(e) = e
                && let Some(b) = d.on_event(e, now)
            {
                bans.push((SOURCE_RATE_LIMIT, b));
            }
        }
    }
    if let Ok(mut d) = agent.responses.lock() {
        for e in batch {
            if let Event::Response(r) = e {
                bans.extend(
                    d.on_report(r, now)
                        .into_iter()
                        .map(|b| (SOURCE_RESPONSES, b)),
                );
            }
        }
    }
    if let Ok(mut w) = agent.requests.lock() {
        for e in batch {
            if let Event::Request(s) = e {
                w.add(s, now);
            }
        }
    }
    if let Ok(mut r) = agent.resets.lock() {
        for e in batch {
            if let Event::Reset(e) = e {
                r.on_event(e);
            }
        }
    }
    if bans.is_empty() {
        return;
    }
    let changes = bans
        .into_iter()
        .map(|(source, b)| Change::Put {
            kind: Kind::Block,
            prefix: b.prefix,
            origin: Origin::Detector,
            source,
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
