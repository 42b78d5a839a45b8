//! The agent: loads and attaches the programs, owns the decision store, serves
//! the control socket and expires decisions, until it is told to stop.
//!
//! Stopping the agent does not stop enforcement: links and maps stay pinned,
//! and the next agent takes them over without a gap. `enforcer uninstall`
//! removes the pins.

mod bpffs;
pub mod crowdsec;
pub mod detector;
mod events;
mod handlers;
pub mod http;
mod metrics;
pub mod policy;
mod resets;

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use enforcer_common::blocklist::Origin;
use tracing::{error, info, warn};

use crate::{
    config::{Config, DEFAULT_CONFIG},
    control::server::{self, Access},
    kernel::{
        AttachedMode, Attachment, Datapath, LoadOptions, Programs, XdpModeChoice,
        counters::Counters, http::HttpMaps, prefix_maps::PrefixMaps, ratelimit::RateMaps,
    },
    store::{Kind, Store},
};

/// How often expired decisions are swept out of the maps. The kernel already
/// ignores them at their expiry; sweeping only reclaims entries and logs.
const SWEEP_INTERVAL: Duration = Duration::from_millis(250);

/// `enforcer run` options; each overrides the config file.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub config: Option<PathBuf>,
    pub interfaces: Vec<String>,
    pub xdp_mode: Option<XdpModeChoice>,
    pub socket: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
    pub bpffs: Option<PathBuf>,
}

/// Everything the control handlers reach.
pub struct Agent {
    pub(crate) store: Mutex<Store<PrefixMaps>>,
    pub(crate) counters: Counters,
    pub(crate) programs: Mutex<Programs>,
    pub(crate) config: Mutex<Config>,
    pub(crate) config_path: Option<PathBuf>,
    pub(crate) started: Instant,
    pub(crate) reused_pins: bool,
    pub(crate) rate: Mutex<RateMaps>,
    pub(crate) detector: Mutex<detector::Detector>,
    pub(crate) http: Mutex<HttpMaps>,
    pub(crate) requests: Mutex<http::RequestWindow>,
    pub(crate) responses: Mutex<http::ResponseDetector>,
    pub(crate) resets: Mutex<resets::ServerResets>,
    pub(crate) reloads_ok: std::sync::atomic::AtomicU64,
    pub(crate) reloads_failed: std::sync::atomic::AtomicU64,
    /// The last reload's error, shown by `status` until a reload succeeds.
    pub(crate) last_reload_error: Mutex<Option<String>>,
    pub(crate) feeds: Mutex<HashMap<String, policy::FeedStatus>>,
    pub(crate) reload_lock: Mutex<()>,
    pub(crate) crowdsec: Mutex<crowdsec::CrowdsecStatus>,
    pub(crate) crowdsec_task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    pub(crate) runtime: tokio::runtime::Handle,
    /// A handle on the agent itself, for tasks started from a reload.
    pub(crate) me: std::sync::OnceLock<std::sync::Weak<Agent>>,
}

impl Agent {
    /// Policy reloads so far: (succeeded, failed).
    pub fn reloads(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.reloads_ok.load(Relaxed),
            self.reloads_failed.load(Relaxed),
        )
    }
}

fn resolve_config(opts: &RunOptions) -> anyhow::Result<(Config, Option<PathBuf>)> {
    let path = match &opts.config {
        Some(p) => Some(p.clone()),
        None => Some(PathBuf::from(DEFAULT_CONFIG)).filter(|p| p.exists()),
    };
    let mut cfg = match &path {
        Some(p) => Config::load(p).map_err(|e| anyhow::anyhow!("invalid configuration:\n{e}"))?,
        None => Config::default(),
    };
    if !opts.interfaces.is_empty() {
        cfg.interfaces.clone_from(&opts.interfaces);
    }
    if let Some(m) = opts.xdp_mode {
        cfg.xdp_mode = m;
    }
    if let Some(s) = &opts.socket {
        cfg.socket.clone_from(s);
    }
    if let Some(s) = &opts.state_dir {
        cfg.state_dir.clone_from(s);
    }
    if let Some(b) = &opts.bpffs {
        cfg.bpffs.clone_from(b);
    }
    if cfg.interfaces.is_empty() {
        anyhow::bail!(
            "no interface to protect: pass --iface IF (repeatable) or set agent.interfaces in the \
             config file"
        );
    }
    Ok((cfg, path))
}

const ATTACHMENTS_FILE: &str = "attachments.json";

fn previous_modes(state_dir: &Path) -> HashMap<String, AttachedMode> {
    std::fs::read(state_dir.join(ATTACHMENTS_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice::<Vec<Attachment>>(&b).ok())
        .map(|v| v.into_iter().map(|a| (a.iface, a.mode)).collect())
        .unwrap_or_default()
}

fn save_attachments(state_dir: &Path, a: &[Attachment]) {
    let tmp = state_dir.join(format!("{ATTACHMENTS_FILE}.tmp"));
    let r = serde_json::to_vec_pretty(a)
        .map_err(std::io::Error::other)
        .and_then(|b| std::fs::write(&tmp, b))
        .and_then(|()| std::fs::rename(&tmp, state_dir.join(ATTACHMENTS_FILE)));
    if let Err(e) = r {
        warn!(error = %e, "could not record attachment modes");
    }
}

/// Runs the agent until SIGINT or SIGTERM.
pub async fn run(opts: RunOptions) -> anyhow::Result<()> {
    let (cfg, config_path) = resolve_config(&opts)?;
    bpffs::ensure(&cfg.bpffs)?;
    std::fs::create_dir_all(&cfg.state_dir)
        .with_context(|| format!("creating the state directory {}", cfg.state_dir.display()))?;
    let admin_gid = cfg
        .admin_group
        .as_deref()
        .map(server::group_id)
        .transpose()?;
    // Bind the socket early: a second agent fails here, before touching pins.
    let listener = server::bind(&cfg.socket, Access { admin_gid }).await?;

    let mut dp = Datapath::load(&LoadOptions {
        pin_root: Some(cfg.bpffs.clone()),
        block_v4_capacity: cfg.capacity_block_v4,
        block_v6_capacity: cfg.capacity_block_v6,
        allow_capacity: cfg.capacity_allow,
        rate_state_capacity: cfg.ratelimit.state_entries,
    })?;
    let reused_pins = dp.reused_pins;
    let previous = previous_modes(&cfg.state_dir);
    for iface in &cfg.interfaces {
        dp.attach(iface, cfg.xdp_mode, previous.get(iface).copied())?;
    }
    save_attachments(&cfg.state_dir, &dp.attachments);
    let parts = dp.split();
    let (programs, maps, counters, mut rate, mut http_maps) = (
        parts.programs,
        parts.maps,
        parts.counters,
        parts.rate,
        parts.http,
    );
    install_limits(&mut rate, &cfg)?;
    let responses =
        http::ResponseDetector::new(cfg.http.responses.clone(), cfg.ratelimit.ban.clone());
    install_http(&mut http_maps, &cfg, responses.batch())?;
    let mut limit_detector =
        detector::Detector::new(cfg.ratelimit.ban.clone(), cfg.ratelimit.rules.clone());
    limit_detector.set_routes(route_names(&cfg));

    let hub = Arc::new(crate::store::log::LogHub::default());
    let mut store = Store::open(maps, &cfg.state_dir)?;
    store.set_log_hub(Arc::clone(&hub));
    apply_static_lists(&mut store, &cfg)?;
    info!(
        blocks = store.len(Kind::Block),
        allows = store.len(Kind::Allow),
        reused_pins,
        "decisions loaded"
    );

    let agent = Arc::new(Agent {
        store: Mutex::new(store),
        counters,
        programs: Mutex::new(programs),
        config: Mutex::new(cfg.clone()),
        config_path,
        started: Instant::now(),
        reused_pins,
        rate: Mutex::new(rate),
        detector: Mutex::new(limit_detector),
        http: Mutex::new(http_maps),
        requests: Mutex::new(http::RequestWindow::default()),
        responses: Mutex::new(responses),
        resets: Mutex::new(resets::ServerResets::default()),
        reloads_ok: 0.into(),
        reloads_failed: 0.into(),
        last_reload_error: Mutex::new(None),
        feeds: Mutex::new(HashMap::new()),
        reload_lock: Mutex::new(()),
        crowdsec: Mutex::new(crowdsec::CrowdsecStatus::default()),
        crowdsec_task: Mutex::new(None),
        runtime: tokio::runtime::Handle::current(),
        me: std::sync::OnceLock::new(),
    });
    let metrics = match cfg.metrics {
        Some(addr) => Some(metrics::serve(addr, &agent).await?),
        None => None,
    };
    let _ = agent.me.set(Arc::downgrade(&agent));
    let events = parts
        .events
        .map(|ring| tokio::spawn(events::run(ring, Arc::clone(&agent))));
    {
        let a = Arc::clone(&agent);
        let feeds = cfg.feeds.clone();
        tokio::task::spawn_blocking(move || {
            for f in &feeds {
                policy::apply_feed(&a, f);
            }
        })
        .await?;
    }
    crowdsec::restart(&agent);
    let watcher =
        policy::start_watch(&agent).map(|w| tokio::spawn(policy::watch(Arc::clone(&agent), w)));

    let handler = {
        let agent = Arc::clone(&agent);
        Arc::new(move |req| handlers::handle(&agent, req))
    };
    let server = tokio::spawn(server::serve(
        listener,
        Access { admin_gid },
        handler,
        cfg.socket.clone(),
        Some(hub),
    ));
    let sweeper = {
        let agent = Arc::clone(&agent);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SWEEP_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let agent = Arc::clone(&agent);
                let r = tokio::task::spawn_blocking(move || match agent.store.lock() {
                    Ok(mut s) => s.sweep().map(|_| ()).map_err(|e| e.to_string()),
                    Err(_) => Err("the decision store is poisoned".to_owned()),
                })
                .await;
                if let Ok(Err(e)) = r {
                    error!(error = %e, "expiring decisions failed; will retry");
                }
            }
        })
    };
    info!(socket = %cfg.socket.display(), interfaces = ?cfg.interfaces, "agent ready");

    wait_for_shutdown(&agent).await;
    server.abort();
    sweeper.abort();
    if let Some(w) = watcher {
        w.abort();
    }
    if let Ok(mut t) = agent.crowdsec_task.lock()
        && let Some(t) = t.take()
    {
        t.abort();
    }
    if let Some(m) = metrics {
        m.abort();
    }
    if let Some(e) = events {
        e.abort();
    }
    if let Ok(mut s) = agent.store.lock() {
        s.compact();
    }
    let _ = std::fs::remove_file(&cfg.socket);
    info!(
        bpffs = %cfg.bpffs.display(),
        "agent stopped; enforcement stays attached through the pinned links (`enforcer uninstall` removes it)"
    );
    Ok(())
}

/// Compiles the configured limits and makes them live in one step.
pub(crate) fn install_limits(rate: &mut RateMaps, cfg: &Config) -> anyhow::Result<()> {
    let rules: Vec<_> = cfg.ratelimit.rules.iter().map(|r| r.compile()).collect();
    rate.install(&rules, cfg.ratelimit.report_interval.as_nanos() as u64)
        .context("installing the rate limits")?;
    if !rules.is_empty() {
        info!(limits = rules.len(), "rate limits installed");
    }
    Ok(())
}

/// Route names in route order (route ids index it).
pub(crate) fn route_names(cfg: &Config) -> Vec<String> {
    cfg.http.routes.iter().map(|r| r.name.clone()).collect()
}

/// Makes the configured HTTP ports, routes and response settings live.
pub(crate) fn install_http(http: &mut HttpMaps, cfg: &Config, batch: u32) -> anyhow::Result<()> {
    http.install(&cfg.http, batch)
        .context("installing the HTTP routes")?;
    if !cfg.http.routes.is_empty() || !cfg.http.responses.is_empty() {
        info!(
            ports = ?cfg.http.ports,
            routes = cfg.http.routes.len(),
            response_rules = cfg.http.responses.len(),
            "HTTP routes installed"
        );
    }
    Ok(())
}

/// Applies the config file's static allow and block lists as the `config`
/// origin, replacing what an earlier config put there.
pub(crate) fn apply_static_lists(
    store: &mut Store<PrefixMaps>,
    cfg: &Config,
) -> anyhow::Result<()> {
    store
        .replace_origin(Kind::Allow, Origin::Config, 0, &cfg.allow)
        .context("applying the configured allowlist")?;
    store
        .replace_origin(Kind::Block, Origin::Config, 0, &cfg.block)
        .context("applying the configured blocklist")?;
    Ok(())
}

async fn wait_for_shutdown(agent: &Arc<Agent>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        error!("cannot install signal handlers; stop the agent with SIGKILL");
        std::future::pending::<()>().await;
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => { info!("SIGTERM: stopping"); return; }
            _ = int.recv() => { info!("SIGINT: stopping"); return; }
            _ = hup.recv() => {
                let agent = Arc::clone(agent);
                let _ = tokio::task::spawn_blocking(move || policy::reload(&agent, "SIGHUP")).await;
            }
        }
    }
}
