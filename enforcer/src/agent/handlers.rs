//! What the agent does for each control request.

use std::time::Duration;

use enforcer_common::blocklist::Origin;

use super::Agent;
use crate::{
    control::protocol::{ErrorKind, LimitsView, MapStatus, Reply, Request, StatusView},
    kernel::AttachedMode,
    net::parse_prefixes,
    store::{Change, Kind, StoreError},
};

fn bad(message: String) -> Reply {
    Reply::Error {
        kind: ErrorKind::BadRequest,
        message,
    }
}

fn internal(message: String) -> Reply {
    Reply::Error {
        kind: ErrorKind::Internal,
        message,
    }
}

/// Parses every prefix or reports every bad one (nothing is applied then).
fn prefixes(tokens: &[String]) -> Result<Vec<ipnet::IpNet>, Reply> {
    if tokens.is_empty() {
        return Err(bad("no prefix given".into()));
    }
    parse_prefixes(tokens).map_err(|errs| {
        bad(errs
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; "))
    })
}

fn apply(agent: &Agent, changes: Vec<Change>) -> Reply {
    let Ok(mut store) = agent.store.lock() else {
        return internal("the decision store is poisoned by an earlier panic".into());
    };
    match store.apply(changes) {
        Ok(report) => Reply::Applied(report),
        Err(StoreError::Kernel(e @ crate::kernel::KernelError::Full { .. })) => Reply::Error {
            kind: ErrorKind::Refused,
            message: e.to_string(),
        },
        Err(e) => internal(e.to_string()),
    }
}

pub(super) fn handle(agent: &Agent, req: Request) -> Reply {
    match req {
        Request::Block {
            prefixes: p,
            ttl_secs,
            reason,
        } => {
            let t = std::time::Instant::now();
            let ps = match prefixes(&p) {
                Ok(ps) => ps,
                Err(r) => return r,
            };
            if ttl_secs == Some(0) {
                return bad(ZERO_TTL.into());
            }
            tracing::debug!(
                prefixes = ps.len(),
                parse_ms = t.elapsed().as_millis() as u64,
                "block: parsed"
            );
            let reason = crate::store::shared(reason.as_deref().unwrap_or("manual block"));
            apply(agent, manual_blocks(ps, &reason, ttl_secs))
        }
        Request::Import {
            text,
            name,
            ttl_secs,
            reason,
        } => {
            let ps = match crate::net::parse_prefix_list(&text) {
                Ok(ps) if ps.is_empty() => return bad(format!("{name} holds no prefix")),
                Ok(ps) => ps,
                Err(errs) => {
                    let mut msg: Vec<String> = errs
                        .iter()
                        .take(20)
                        .map(|(line, e)| format!("{name}:{line}: {e}"))
                        .collect();
                    if errs.len() > 20 {
                        msg.push(format!("... and {} more bad lines", errs.len() - 20));
                    }
                    msg.push("nothing was applied".into());
                    return bad(msg.join("\n"));
                }
            };
            drop(text);
            if ttl_secs == Some(0) {
                return bad(ZERO_TTL.into());
            }
            let reason = crate::store::shared(
                reason
                    .as_deref()
                    .unwrap_or(&format!("imported from {name}")),
            );
            apply(agent, manual_blocks(ps, &reason, ttl_secs))
        }
        Request::Unblock { prefixes: p } => match prefixes(&p) {
            Ok(ps) => apply(
                agent,
                ps.into_iter()
                    .map(|prefix| Change::Remove {
                        kind: Kind::Block,
                        prefix,
                        origin: None,
                        source: None,
                    })
                    .collect(),
            ),
            Err(r) => r,
        },
        Request::Allow {
            prefixes: p,
            reason,
        } => match prefixes(&p) {
            Ok(ps) => {
                let reason = crate::store::shared(reason.as_deref().unwrap_or("manual allow"));
                apply(
                    agent,
                    ps.into_iter()
                        .map(|prefix| Change::Put {
                            kind: Kind::Allow,
                            prefix,
                            origin: Origin::Manual,
                            source: 0,
                            reason: reason.clone(),
                            ttl: None,
                        })
                        .collect(),
                )
            }
            Err(r) => r,
        },
        Request::Unallow { prefixes: p } => match prefixes(&p) {
            Ok(ps) => apply(
                agent,
                ps.into_iter()
                    .map(|prefix| Change::Remove {
                        kind: Kind::Allow,
                        prefix,
                        origin: None,
                        source: None,
                    })
                    .collect(),
            ),
            Err(r) => r,
        },
        Request::List { kind } => match agent.store.lock() {
            Ok(s) => Reply::Decisions {
                decisions: s.list(kind),
            },
            Err(_) => internal("the decision store is poisoned".into()),
        },
        Request::Status => status(agent),
        Request::Limits { top } => limits(agent, top),
        Request::Routes { top } => routes(agent, top),
        Request::Reload => match super::policy::reload(agent, "enforcer reload") {
            Ok(()) => Reply::Reloaded {
                files: agent
                    .config
                    .lock()
                    .map(|c| c.files.iter().map(|f| f.display().to_string()).collect())
                    .unwrap_or_default(),
            },
            Err(message) => Reply::Error {
                kind: ErrorKind::Refused,
                message,
            },
        },
        Request::Decisions { items } => external(agent, items),
        // Served by the control server itself (it owns the stream).
        Request::Log { .. } => internal("the decision log is not available".into()),
    }
}

fn routes(agent: &Agent, top: usize) -> Reply {
    let (specs, sample_every) = match agent.config.lock() {
        Ok(c) => (c.http.routes.clone(), c.http.sample_every),
        Err(_) => return internal("agent state is poisoned".into()),
    };
    let (counts, responses) = match agent.http.lock() {
        Ok(h) => (
            h.route_counts().unwrap_or_default(),
            h.response_counts().unwrap_or_default(),
        ),
        Err(_) => return internal("agent state is poisoned".into()),
    };
    let names: Vec<String> = specs.iter().map(|r| r.name.clone()).collect();
    let (busiest_routes, busiest_clients) = match agent.requests.lock() {
        Ok(mut w) => w.busiest(&names, top, std::time::Instant::now()),
        Err(_) => return internal("agent state is poisoned".into()),
    };
    let routes = specs
        .into_iter()
        .zip(
            counts
                .into_iter()
                .chain(std::iter::repeat(Default::default())),
        )
        .map(|(spec, c)| crate::control::protocol::RouteRow {
            spec,
            requests: c.requests,
            over: c.over,
        })
        .collect();
    Reply::Routes(Box::new(crate::control::protocol::RoutesView {
        routes,
        sample_every,
        window_secs: super::http::SAMPLE_WINDOW.as_secs(),
        busiest_routes,
        busiest_clients,
        responses: enforcer_common::http::STATUS_NAMES
            .iter()
            .zip(responses.into_iter().chain(std::iter::repeat(0)))
            .map(|(n, c)| ((*n).to_owned(), c))
            .collect(),
    }))
}

/// Decisions from `enforcer decisions apply` (validated again here).
fn external(agent: &Agent, items: Vec<crate::decisions::Decision>) -> Reply {
    let mut changes = Vec::with_capacity(items.len());
    let mut reasons: std::collections::HashMap<String, std::sync::Arc<str>> =
        std::collections::HashMap::new();
    for (i, d) in items.into_iter().enumerate() {
        let prefix = match crate::net::parse_prefix(&d.prefix) {
            Ok(p) => p,
            Err(e) => return bad(format!("decision {}: {e}; nothing was applied", i + 1)),
        };
        if d.ban {
            let text = d.reason.unwrap_or_else(|| "external detector".into());
            let reason = std::sync::Arc::clone(
                reasons
                    .entry(text.clone())
                    .or_insert_with(|| crate::store::shared(&text)),
            );
            changes.push(Change::Put {
                kind: Kind::Block,
                prefix,
                origin: Origin::External,
                source: 0,
                reason,
                ttl: d.ttl_secs.map(Duration::from_secs),
            });
        } else {
            changes.push(Change::Remove {
                kind: Kind::Block,
                prefix,
                origin: Some(Origin::External),
                source: None,
            });
        }
    }
    apply(agent, changes)
}

fn limits(agent: &Agent, top: usize) -> Reply {
    let (Ok(d), Ok(rate)) = (agent.detector.lock(), agent.rate.lock()) else {
        return internal("agent state is poisoned".into());
    };
    let stats = match rate.stats() {
        Ok(s) => s.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        Err(e) => return internal(e.to_string()),
    };
    Reply::Limits(Box::new(LimitsView {
        rules: d.rules().to_vec(),
        ban: d.policy().clone(),
        top: d.top(top.clamp(1, 1000)),
        stats,
    }))
}

fn status(agent: &Agent) -> Reply {
    let (cfg, attachments) = match (agent.config.lock(), agent.programs.lock()) {
        (Ok(c), Ok(p)) => (c.clone(), p.attachments.clone()),
        _ => return internal("agent state is poisoned".into()),
    };
    let Ok(store) = agent.store.lock() else {
        return internal("the decision store is poisoned".into());
    };
    let maps = store.sink();
    let (b4, b6) = maps.block_occupancy();
    let (a4, a6) = maps.allow_occupancy();
    let mut degraded = Vec::new();
    for a in &attachments {
        if a.degraded
            || (a.mode == AttachedMode::Generic
                && cfg.xdp_mode != crate::kernel::XdpModeChoice::Generic)
        {
            degraded.push(format!("{}: generic XDP (native not available)", a.iface));
        }
        if !a.pinned {
            degraded.push(format!(
                "{}: link not pinned (detaches when the agent exits)",
                a.iface
            ));
        }
    }
    let counters = match agent.counters.totals() {
        Ok(c) => c,
        Err(e) => return internal(e.to_string()),
    };
    let stats = agent
        .rate
        .lock()
        .ok()
        .and_then(|r| r.stats().ok())
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    if let Some((_, lost)) = agent
        .rate
        .lock()
        .ok()
        .and_then(|r| r.stats().ok())
        .and_then(|s| s.into_iter().find(|(k, _)| *k == "events_lost"))
        && lost > 0
    {
        degraded.push(format!("{lost} event(s) lost: the ring buffer was full"));
    }
    Reply::Status(Box::new(StatusView {
        version: env!("CARGO_PKG_VERSION").into(),
        pid: std::process::id(),
        uptime_secs: agent.started.elapsed().as_secs(),
        config: agent.config_path.as_ref().map(|p| p.display().to_string()),
        socket: cfg.socket.display().to_string(),
        state_dir: cfg.state_dir.display().to_string(),
        bpffs: cfg.bpffs.display().to_string(),
        reused_pins: agent.reused_pins,
        interfaces: attachments,
        maps: vec![
            MapStatus {
                name: "blocklist_v4".into(),
                occupancy: b4,
            },
            MapStatus {
                name: "blocklist_v6".into(),
                occupancy: b6,
            },
            MapStatus {
                name: "allowlist_v4".into(),
                occupancy: a4,
            },
            MapStatus {
                name: "allowlist_v6".into(),
                occupancy: a6,
            },
        ],
        decisions_block: store.len(Kind::Block),
        decisions_allow: store.len(Kind::Allow),
        counters,
        stats,
        limits: cfg.ratelimit.rules.len(),
        store: store.stats.clone(),
        degraded,
        reloads: agent.reloads(),
        files: cfg.files.iter().map(|f| f.display().to_string()).collect(),
        feeds: super::policy::feed_status(agent),
        crowdsec: cfg
            .crowdsec
            .as_ref()
            .and_then(|_| agent.crowdsec.lock().ok().map(|c| c.clone())),
        map_writes: maps.writes,
        map_deletes: maps.deletes,
        last_reload_error: agent.last_reload_error.lock().ok().and_then(|l| l.clone()),
    }))
}

const ZERO_TTL: &str = "a TTL must be at least 1 second";

/// Blocks by an operator (`block`, `import`): origin manual.
fn manual_blocks(
    prefixes: Vec<ipnet::IpNet>,
    reason: &std::sync::Arc<str>,
    ttl_secs: Option<u64>,
) -> Vec<Change> {
    prefixes
        .into_iter()
        .map(|prefix| Change::Put {
            kind: Kind::Block,
            prefix,
            origin: Origin::Manual,
            source: 0,
            reason: reason.clone(),
            ttl: ttl_secs.map(Duration::from_secs),
        })
        .collect()
}
