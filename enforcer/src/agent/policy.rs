//! Reloading the policy, and following feed files.
//!
//! A reload (SIGHUP, `enforcer reload`, or a change of the policy files) is
//! validated and compiled completely before anything changes; an invalid
//! policy changes nothing, is logged and counted, and `enforcer status` shows
//! its errors until a reload succeeds. Program settings (rate-limit rules)
//! switch in one write of a generation word; list entries (static lists,
//! feeds) are applied as diffs that add before they remove, so a source
//! blocked by both the old and the new policy is never let through in
//! between.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use enforcer_common::blocklist::Origin;
use notify::{RecursiveMode, Watcher as _};
use tracing::{info, warn};

use super::Agent;
use crate::{
    config::{Config, FeedSpec},
    feeds,
    store::Kind,
};

/// The state of one feed, for `enforcer status`.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct FeedStatus {
    pub name: String,
    pub path: String,
    /// Prefixes in force, after aggregation.
    pub prefixes: usize,
    /// Prefixes as listed in the file.
    pub listed: usize,
    /// Lines skipped as unreadable in the last load.
    pub bad_lines: usize,
    /// RFC 3339 time of the last successful load.
    pub loaded: Option<String>,
    /// The last error (file missing, unreadable).
    pub error: Option<String>,
    /// Map writes and deletes the last load caused (the diff's size).
    pub last_writes: u64,
    pub last_deletes: u64,
}

/// Reads a feed and makes its decisions exactly the file's prefixes.
/// A missing or unreadable file changes nothing (the last good state stays).
pub fn apply_feed(agent: &Agent, spec: &FeedSpec) {
    let t = Instant::now();
    let text = match std::fs::read_to_string(&spec.path) {
        Ok(t) => t,
        Err(e) => {
            warn!(feed = %spec.name, path = %spec.path.display(), error = %e, "cannot read the feed; keeping its last state");
            record(agent, spec, |s| {
                s.error = Some(format!("cannot read {}: {e}", spec.path.display()))
            });
            return;
        }
    };
    let parsed = feeds::parse(&text, spec.format);
    drop(text);
    for (line, why) in parsed.bad.iter().take(10) {
        warn!(feed = %spec.name, "{}:{line}: {why} (line skipped)", spec.path.display());
    }
    let desired: Vec<_> = parsed
        .prefixes
        .iter()
        .map(|p| (*p, spec.reason.clone()))
        .collect();
    let Ok(mut store) = agent.store.lock() else {
        return;
    };
    let (w0, d0) = (store.sink().writes, store.sink().deletes);
    let r = store.replace_origin(Kind::Block, Origin::Feed, spec.source_id(), &desired);
    let (w1, d1) = (store.sink().writes, store.sink().deletes);
    drop(store);
    match r {
        Ok(rep) => {
            info!(
                feed = %spec.name,
                prefixes = parsed.prefixes.len(),
                listed = parsed.listed,
                added = rep.added + rep.updated,
                removed = rep.removed,
                bad_lines = parsed.bad.len(),
                ms = t.elapsed().as_millis() as u64,
                "feed applied"
            );
            record(agent, spec, |s| {
                s.prefixes = parsed.prefixes.len();
                s.listed = parsed.listed;
                s.bad_lines = parsed.bad.len();
                s.loaded = Some(humantime::format_rfc3339_seconds(SystemTime::now()).to_string());
                s.error = None;
                s.last_writes = w1 - w0;
                s.last_deletes = d1 - d0;
            });
        }
        Err(e) => {
            warn!(feed = %spec.name, error = %e, "applying the feed failed; nothing of it changed");
            record(agent, spec, |s| s.error = Some(e.to_string()));
        }
    }
}

fn record(agent: &Agent, spec: &FeedSpec, f: impl FnOnce(&mut FeedStatus)) {
    if let Ok(mut m) = agent.feeds.lock() {
        let s = m.entry(spec.name.clone()).or_insert_with(|| FeedStatus {
            name: spec.name.clone(),
            path: spec.path.display().to_string(),
            ..FeedStatus::default()
        });
        f(s);
    }
}

/// Removes the decisions of feeds no longer in the policy.
fn drop_feeds(agent: &Agent, gone: &[FeedSpec]) {
    for spec in gone {
        if let Ok(mut store) = agent.store.lock()
            && let Err(e) = store.replace_origin(Kind::Block, Origin::Feed, spec.source_id(), &[])
        {
            warn!(feed = %spec.name, error = %e, "could not remove the decisions of a dropped feed");
        }
        if let Ok(mut m) = agent.feeds.lock() {
            m.remove(&spec.name);
        }
        info!(feed = %spec.name, "feed removed from the policy; its decisions are lifted");
    }
}

/// Reloads the policy. On error nothing changes and the error is returned
/// (and kept for `status`).
pub fn reload(agent: &Agent, why: &str) -> Result<(), String> {
    let Some(path) = agent.config_path.clone() else {
        return Err("the agent runs without a policy file (--config); nothing to reload".into());
    };
    // One reload at a time (a file change and `enforcer reload` may race).
    let _one = agent.reload_lock.lock();
    let t = Instant::now();
    let fail = |msg: String| {
        agent
            .reloads_failed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Ok(mut l) = agent.last_reload_error.lock() {
            *l = Some(msg.clone());
        }
        warn!(
            trigger = why,
            "policy reload refused; the running policy stays:\n{msg}"
        );
        Err(msg)
    };
    let mut new = match Config::load(&path) {
        Ok(c) => c,
        Err(e) => return fail(e.to_string()),
    };
    let old = match agent.config.lock() {
        Ok(c) => c.clone(),
        Err(_) => return fail("agent state is poisoned".into()),
    };
    // Settings that only take effect at start keep their running values.
    new.overrides_from(&old);
    if let Ok(mut store) = agent.store.lock()
        && let Err(e) = super::apply_static_lists(&mut store, &new)
    {
        return fail(format!("{e:#}"));
    }
    if let Ok(mut rate) = agent.rate.lock()
        && let Err(e) = super::install_limits(&mut rate, &new)
    {
        return fail(format!("{e:#}"));
    }
    let batch = match agent.responses.lock() {
        Ok(mut d) => {
            d.reconfigure(new.http.responses.clone(), new.ratelimit.ban.clone());
            d.batch()
        }
        Err(_) => 0,
    };
    if let Ok(mut http) = agent.http.lock()
        && let Err(e) = super::install_http(&mut http, &new, batch)
    {
        return fail(format!("{e:#}"));
    }
    if let Ok(mut d) = agent.detector.lock() {
        d.reconfigure(new.ratelimit.ban.clone(), new.ratelimit.rules.clone());
        d.set_routes(super::route_names(&new));
    }
    let gone: Vec<FeedSpec> = old
        .feeds
        .iter()
        .filter(|f| !new.feeds.iter().any(|n| n.name == f.name))
        .cloned()
        .collect();
    drop_feeds(agent, &gone);
    for f in &new.feeds {
        apply_feed(agent, f);
    }
    let crowdsec_changed = old.crowdsec != new.crowdsec;
    if let Ok(mut c) = agent.config.lock() {
        *c = new;
    }
    if crowdsec_changed {
        super::crowdsec::restart(agent);
    }
    agent
        .reloads_ok
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if let Ok(mut l) = agent.last_reload_error.lock() {
        *l = None;
    }
    info!(trigger = why, config = %path.display(), ms = t.elapsed().as_millis() as u64, "policy reloaded");
    Ok(())
}

/// Directories to watch: the policy's, its drop-in directory, every feed's.
fn watch_dirs(agent: &Agent) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = agent.config_path.as_ref().and_then(|p| p.parent()) {
        dirs.push(d.to_owned());
        dirs.push(d.join("conf.d"));
    }
    if let Ok(c) = agent.config.lock() {
        for f in &c.feeds {
            if let Some(d) = f.path.parent() {
                dirs.push(d.to_owned());
            }
        }
    }
    dirs.sort();
    dirs.dedup();
    dirs
}

fn is_policy_file(agent: &Agent, p: &Path) -> bool {
    let Some(main) = &agent.config_path else {
        return false;
    };
    p == main.as_path()
        || (p.parent() == main.parent().map(|d| d.join("conf.d")).as_deref()
            && p.extension().is_some_and(|x| x == "toml"))
}

/// A file watcher set up and watching: made before the agent reports ready,
/// so no change made after that can be missed.
pub struct FileWatch {
    watcher: notify::RecommendedWatcher,
    rx: tokio::sync::mpsc::UnboundedReceiver<PathBuf>,
    watched: Vec<PathBuf>,
}

fn rewatch(agent: &Agent, w: &mut FileWatch) {
    for d in watch_dirs(agent) {
        if !w.watched.contains(&d)
            && d.is_dir()
            && w.watcher.watch(&d, RecursiveMode::NonRecursive).is_ok()
        {
            w.watched.push(d);
        }
    }
}

/// Starts watching the policy's and the feeds' directories.
pub fn start_watch(agent: &Agent) -> Option<FileWatch> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<PathBuf>();
    let watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        if let Ok(ev) = ev {
            for p in ev.paths {
                let _ = tx.send(p);
            }
        }
    });
    let watcher = match watcher {
        Ok(w) => w,
        Err(e) => {
            warn!(error = %e, "cannot watch the policy files; reload with SIGHUP or `enforcer reload`");
            return None;
        }
    };
    let mut w = FileWatch {
        watcher,
        rx,
        watched: Vec::new(),
    };
    rewatch(agent, &mut w);
    Some(w)
}

/// Follows changes of the policy files and feed files (directories are
/// watched, so an editor's write-to-temp-and-rename is seen), debounced.
pub async fn watch(agent: Arc<Agent>, mut w: FileWatch) {
    loop {
        let Some(first) = w.rx.recv().await else {
            return;
        };
        // Debounce: an editor's save is several events.
        let mut paths = vec![first];
        let deadline = tokio::time::Instant::now() + Duration::from_millis(300);
        while let Ok(Some(p)) = tokio::time::timeout_at(deadline, w.rx.recv()).await {
            paths.push(p);
        }
        let policy = paths.iter().any(|p| is_policy_file(&agent, p));
        let feeds: Vec<FeedSpec> = agent
            .config
            .lock()
            .map(|c| {
                c.feeds
                    .iter()
                    .filter(|f| paths.contains(&f.path))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let a = Arc::clone(&agent);
        let _ = tokio::task::spawn_blocking(move || {
            if policy {
                let _ = reload(&a, "file change");
            } else {
                for f in &feeds {
                    apply_feed(&a, f);
                }
            }
        })
        .await;
        rewatch(&agent, &mut w);
    }
}

/// Feed status for `enforcer status`, in policy order.
pub fn feed_status(agent: &Agent) -> Vec<FeedStatus> {
    let names: Vec<String> = agent
        .config
        .lock()
        .map(|c| c.feeds.iter().map(|f| f.name.clone()).collect())
        .unwrap_or_default();
    let m: HashMap<String, FeedStatus> = agent.feeds.lock().map(|m| m.clone()).unwrap_or_default();
    names.iter().filter_map(|n| m.get(n).cloned()).collect()
}
