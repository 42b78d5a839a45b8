//! The Prometheus endpoint: `/metrics` and `/healthz`.
//!
//! Everything is read at scrape time — per-CPU kernel counters summed then,
//! map occupancy from the store's own bookkeeping (a scrape never walks a
//! big map), decision totals from the store — so the agent does no work
//! between scrapes. Metric names follow Prometheus conventions (`enforcer_`
//! prefix, base units, `_total` counters); no label ever carries an address.

use std::{
    net::SocketAddr,
    sync::{Arc, Weak},
};

use axum::{Router, http::header, response::IntoResponse, routing::get};
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric as _},
    metrics::{counter::ConstCounter, gauge::ConstGauge},
    registry::Registry,
};
use tracing::{error, info};

use super::Agent;
use crate::kernel::prefix_maps::Occupancy;

/// Reads the agent on every scrape.
#[derive(Debug)]
pub struct AgentCollector {
    agent: Weak<Agent>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Agent")
    }
}

type Labels<'a> = Vec<(&'static str, String)>;
/// Gauge samples: labels and value.
type GaugeSamples = Vec<(Labels<'static>, i64)>;

fn counter_family(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    samples: &[(Labels<'_>, u64)],
) -> Result<(), std::fmt::Error> {
    let c = ConstCounter::new(0u64);
    let mut fam = enc.encode_descriptor(name, help, None, c.metric_type())?;
    for (labels, v) in samples {
        let m = fam.encode_family(labels)?;
        ConstCounter::new(*v).encode(m)?;
    }
    Ok(())
}

fn gauge_family(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    samples: &[(Labels<'_>, i64)],
) -> Result<(), std::fmt::Error> {
    let g = ConstGauge::new(0i64);
    let mut fam = enc.encode_descriptor(name, help, None, g.metric_type())?;
    for (labels, v) in samples {
        let m = fam.encode_family(labels)?;
        ConstGauge::new(*v).encode(m)?;
    }
    Ok(())
}

impl Collector for AgentCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let Some(agent) = self.agent.upgrade() else {
            return Ok(());
        };
        let totals = agent.counters.totals().unwrap_or_default();
        let packets: Vec<_> = totals
            .iter()
            .map(|c| {
                (
                    vec![("verdict", c.verdict.clone()), ("reason", c.reason.clone())],
                    c.packets,
                )
            })
            .collect();
        let bytes: Vec<_> = totals
            .iter()
            .map(|c| {
                (
                    vec![("verdict", c.verdict.clone()), ("reason", c.reason.clone())],
                    c.bytes,
                )
            })
            .collect();
        counter_family(
            &mut enc,
            "enforcer_packets",
            "Packets seen by the XDP program, by verdict and reason.",
            &packets,
        )?;
        counter_family(
            &mut enc,
            "enforcer_bytes",
            "Bytes seen by the XDP program, by verdict and reason.",
            &bytes,
        )?;

        if let Ok(rate) = agent.rate.lock() {
            let stats = rate.stats().unwrap_or_default();
            let get = |k: &str| stats.iter().find(|(n, _)| *n == k).map_or(0, |(_, v)| *v);
            counter_family(
                &mut enc,
                "enforcer_events",
                "Events the XDP program sent to the agent.",
                &[(vec![], get("events_sent"))],
            )?;
            counter_family(
                &mut enc,
                "enforcer_events_lost",
                "Events lost because the ring buffer was full.",
                &[(vec![], get("events_lost"))],
            )?;
            counter_family(
                &mut enc,
                "enforcer_ratelimit_keys_created",
                "Rate-limit state keys created (beyond capacity each evicted the least recently used key).",
                &[(vec![], get("rate_keys_created"))],
            )?;
            let rules = agent
                .config
                .lock()
                .map(|c| c.ratelimit.rules.clone())
                .unwrap_or_default();
            let hits = rate.rule_hits().unwrap_or_default();
            let samples: Vec<_> = rules
                .iter()
                .zip(hits)
                .map(|(r, h)| {
                    (
                        vec![
                            ("limit", r.name.clone()),
                            ("tier", format!("v4/{} v6/{}", r.ipv4_prefix, r.ipv6_prefix)),
                            (
                                "mode",
                                if r.monitor { "monitor" } else { "enforce" }.to_owned(),
                            ),
                        ],
                        h,
                    )
                })
                .collect();
            counter_family(
                &mut enc,
                "enforcer_ratelimit_over",
                "Packets over a rate limit, by limit and tier (dropped, or counted in monitor mode).",
                &samples,
            )?;
            let created = get("rate_keys_created");
            let cap = agent
                .config
                .lock()
                .map(|c| c.ratelimit.state_entries)
                .unwrap_or(0);
            gauge_family(
                &mut enc,
                "enforcer_map_entries",
                "Entries in each map.",
                &map_samples(&agent, Some(created.min(u64::from(cap)))).0,
            )?;
            gauge_family(
                &mut enc,
                "enforcer_map_capacity",
                "Capacity of each map.",
                &map_samples(&agent, None).1,
            )?;
        }

        if let Ok(http) = agent.http.lock() {
            let routes = agent
                .config
                .lock()
                .map(|c| c.http.routes.clone())
                .unwrap_or_default();
            let counts = http.route_counts().unwrap_or_default();
            let label = |r: &crate::config::RouteSpec| {
                vec![
                    ("route", r.name.clone()),
                    ("method", r.method.clone()),
                    ("action", r.action.clone()),
                ]
            };
            let reqs: Vec<_> = routes
                .iter()
                .zip(&counts)
                .map(|(r, c)| (label(r), c.requests))
                .collect();
            let over: Vec<_> = routes
                .iter()
                .zip(&counts)
                .map(|(r, c)| (label(r), c.over))
                .collect();
            counter_family(
                &mut enc,
                "enforcer_route_requests",
                "HTTP requests matched to each route (since the route set was installed).",
                &reqs,
            )?;
            counter_family(
                &mut enc,
                "enforcer_route_over_limit",
                "HTTP requests over their route's limit (dropped, rejected, or counted in monitor mode).",
                &over,
            )?;
            let resp: Vec<_> = http
                .response_counts()
                .unwrap_or_default()
                .into_iter()
                .enumerate()
                .map(|(i, n)| {
                    (
                        vec![(
                            "status",
                            enforcer_common::http::STATUS_NAMES
                                .get(i)
                                .copied()
                                .unwrap_or("?")
                                .to_owned(),
                        )],
                        n,
                    )
                })
                .collect();
            counter_family(
                &mut enc,
                "enforcer_http_responses",
                "HTTP responses seen leaving on the HTTP ports, by status (the statuses detection watches).",
                &resp,
            )?;
        }

        if let Ok(store) = agent.store.lock() {
            let s = &store.stats;
            let mut added: Vec<_> = s
                .added
                .iter()
                .map(|(k, n)| {
                    let (kind, origin) = k.split_once(':').unwrap_or(("block", k));
                    (
                        vec![("kind", kind.to_owned()), ("origin", origin.to_owned())],
                        *n,
                    )
                })
                .collect();
            added.sort();
            counter_family(
                &mut enc,
                "enforcer_decisions_added",
                "Decisions added (kind block = bans, allow = allowlist entries), by origin.",
                &added,
            )?;
            counter_family(
                &mut enc,
                "enforcer_decisions_removed",
                "Decisions removed by a command or a policy change.",
                &[(vec![], s.removed)],
            )?;
            counter_family(
                &mut enc,
                "enforcer_decisions_expired",
                "Decisions that expired.",
                &[(vec![], s.expired)],
            )?;
            counter_family(
                &mut enc,
                "enforcer_journal_errors",
                "Failures to write the decision journal.",
                &[(vec![], s.journal_errors)],
            )?;
            gauge_family(
                &mut enc,
                "enforcer_decisions",
                "Prefixes with a live decision, by kind.",
                &[
                    (
                        vec![("kind", "block".to_owned())],
                        store.len(crate::store::Kind::Block) as i64,
                    ),
                    (
                        vec![("kind", "allow".to_owned())],
                        store.len(crate::store::Kind::Allow) as i64,
                    ),
                ],
            )?;
        }

        if let Ok(p) = agent.programs.lock() {
            let samples: Vec<_> = p
                .attachments
                .iter()
                .map(|a| {
                    (
                        vec![
                            ("interface", a.iface.clone()),
                            ("mode", a.mode.name().to_owned()),
                        ],
                        1i64,
                    )
                })
                .collect();
            gauge_family(
                &mut enc,
                "enforcer_xdp_attached",
                "XDP attachments: 1 per interface, labelled with the mode (native, generic).",
                &samples,
            )?;
        }
        let r = agent.resets.lock().map(|r| r.counts).unwrap_or_default();
        counter_family(
            &mut enc,
            "enforcer_reject_server_closes",
            "Server sides of connections reset by `reject`, by what the agent did: closed, not_found (server not local or gone), spared (it had carried data), failed.",
            &[
                (vec![("result", "closed".to_owned())], r.closed),
                (vec![("result", "not_found".to_owned())], r.not_found),
                (vec![("result", "spared".to_owned())], r.spared),
                (vec![("result", "failed".to_owned())], r.failed),
            ],
        )?;
        let (ok, failed) = agent.reloads();
        counter_family(
            &mut enc,
            "enforcer_config_reloads",
            "Policy reloads, by result.",
            &[
                (vec![("result", "success".to_owned())], ok),
                (vec![("result", "failure".to_owned())], failed),
            ],
        )?;
        gauge_family(
            &mut enc,
            "enforcer_build_info",
            "Build information (always 1).",
            &[(vec![("version", env!("CARGO_PKG_VERSION").to_owned())], 1)],
        )?;
        gauge_family(
            &mut enc,
            "enforcer_uptime_seconds",
            "Seconds since the agent started.",
            &[(vec![], agent.started.elapsed().as_secs() as i64)],
        )?;
        Ok(())
    }
}

/// (entries, capacity) samples for every map the agent owns.
fn map_samples(agent: &Agent, rate_entries: Option<u64>) -> (GaugeSamples, GaugeSamples) {
    let mut entries = Vec::new();
    let mut capacity = Vec::new();
    let mut push = |name: &str, o: Occupancy| {
        entries.push((vec![("map", name.to_owned())], o.entries as i64));
        capacity.push((vec![("map", name.to_owned())], o.capacity as i64));
    };
    if let Ok(store) = agent.store.lock() {
        let (b4, b6) = store.sink().block_occupancy();
        let (a4, a6) = store.sink().allow_occupancy();
        push("blocklist_v4", b4);
        push("blocklist_v6", b6);
        push("allowlist_v4", a4);
        push("allowlist_v6", a6);
    }
    if let Ok(c) = agent.config.lock() {
        let cap = c.ratelimit.state_entries as usize;
        push(
            "ratelimit_state",
            Occupancy {
                entries: rate_entries.unwrap_or(0) as usize,
                capacity: cap,
            },
        );
    }
    (entries, capacity)
}

/// Serves `/metrics` and `/healthz` on `listen` until the task is dropped.
pub async fn serve(
    listen: SocketAddr,
    agent: &Arc<Agent>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(AgentCollector {
        agent: Arc::downgrade(agent),
    }));
    let registry = Arc::new(registry);
    let health = Arc::downgrade(agent);
    let app = Router::new()
        .route(
            "/metrics",
            get(move || {
                let registry = Arc::clone(&registry);
                async move {
                    let body = tokio::task::spawn_blocking(move || {
                        let mut out = String::new();
                        prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
                            .map(|()| out)
                    })
                    .await;
                    match body {
                        Ok(Ok(b)) => (
                            [(
                                header::CONTENT_TYPE,
                                "text/plain; version=0.0.4; charset=utf-8",
                            )],
                            b,
                        )
                            .into_response(),
                        _ => (
                            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                            "encoding failed\n",
                        )
                            .into_response(),
                    }
                }
            }),
        )
        .route(
            "/healthz",
            get(move || {
                let ok = health
                    .upgrade()
                    .is_some_and(|a| a.programs.lock().is_ok_and(|p| !p.attachments.is_empty()));
                async move {
                    if ok {
                        (axum::http::StatusCode::OK, "ok\n")
                    } else {
                        (
                            axum::http::StatusCode::SERVICE_UNAVAILABLE,
                            "not attached\n",
                        )
                    }
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| {
        anyhow::anyhow!("metrics endpoint {listen}: {e} (set [metrics] listen, or enabled = false)")
    })?;
    info!(%listen, "metrics on /metrics, health on /healthz");
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            error!(error = %e, "the metrics endpoint stopped");
        }
    }))
}
