//! The decision store: the one writer of the allow and block maps.
//!
//! Every way a decision arrives (CLI, policy file, feeds, detectors, CrowdSec)
//! ends here as a [`Change`]. The store keeps each origin's decision on a prefix
//! separately, so a feed dropping a prefix does not lift a manual ban on it, and
//! writes the longest-lasting one to the kernel. Expiry, origin, reason and the
//! audit log live in one place. A batch of changes is all or nothing: the kernel
//! write is refused before anything changes if it would not fit, and memory and
//! journal are only updated after the kernel accepted it.

pub mod decision;
pub mod journal;
pub mod log;

use std::{collections::HashMap as StdHashMap, path::Path, time::Duration};

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use enforcer_common::blocklist::{AllowEntry, BlockEntry, Origin};
use ipnet::IpNet;
use smallvec::SmallVec;
use tracing::{info, warn};

use crate::kernel::{KernelError, clock, prefix_maps::PrefixMaps};
pub use decision::{DecisionView, Entry, Kind};
use decision::{effective, now_ms, origin_from_name, rfc3339};
use journal::{Journal, Record};

/// Where the store's decisions go: the kernel maps (or a test double).
pub trait Sink: Send {
    fn upsert_blocks(&mut self, items: &[(IpNet, BlockEntry)]) -> Result<(), KernelError>;
    fn remove_blocks(&mut self, prefixes: &[IpNet]) -> Result<(), KernelError>;
    fn upsert_allows(&mut self, items: &[(IpNet, AllowEntry)]) -> Result<(), KernelError>;
    fn remove_allows(&mut self, prefixes: &[IpNet]) -> Result<(), KernelError>;
}

impl Sink for PrefixMaps {
    fn upsert_blocks(&mut self, items: &[(IpNet, BlockEntry)]) -> Result<(), KernelError> {
        Self::upsert_blocks(self, items)
    }
    fn remove_blocks(&mut self, prefixes: &[IpNet]) -> Result<(), KernelError> {
        Self::remove_blocks(self, prefixes)
    }
    fn upsert_allows(&mut self, items: &[(IpNet, AllowEntry)]) -> Result<(), KernelError> {
        Self::upsert_allows(self, items)
    }
    fn remove_allows(&mut self, prefixes: &[IpNet]) -> Result<(), KernelError> {
        Self::remove_allows(self, prefixes)
    }
}

/// One requested change.
#[derive(Debug, Clone)]
pub enum Change {
    /// Adds or replaces `origin`/`source`'s decision on `prefix`.
    Put {
        kind: Kind,
        prefix: IpNet,
        origin: Origin,
        source: u32,
        /// Shared: a bulk batch repeats one reason for every prefix.
        reason: std::sync::Arc<str>,
        /// `None` = never expires.
        ttl: Option<Duration>,
    },
    /// Removes decisions on `prefix`: every origin's, or only the given one's.
    Remove {
        kind: Kind,
        prefix: IpNet,
        origin: Option<Origin>,
        source: Option<u32>,
    },
}

/// What a batch did.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ApplyReport {
    pub added: usize,
    pub updated: usize,
    pub removed: usize,
    /// Prefixes a `Remove` named that held no matching decision.
    pub not_found: Vec<IpNet>,
    /// Set when the change is live but could not be made durable.
    pub journal_error: Option<String>,
}

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Kernel(#[from] KernelError),
    #[error("state directory {path}: {source}")]
    State {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

type Entries = SmallVec<[Entry; 1]>;

/// Key of `StoreStats::added`: `kind:origin`, e.g. `block:detector`.
pub fn stat_key(kind: Kind, origin: Origin) -> String {
    format!("{}:{}", kind.name(), origin.name())
}

/// A shared reason string.
pub fn shared(reason: &str) -> std::sync::Arc<str> {
    std::sync::Arc::from(reason)
}

/// Batches at least this large of uniform puts take the bulk path.
const BULK_MIN: usize = 1024;

/// Decisions of one batch logged one by one; the rest are summarised.
pub const LOG_DETAIL_LIMIT: usize = 100;

/// Reason texts, stored once.
#[derive(Default)]
struct Interner {
    ids: HashMap<String, u32>,
    texts: Vec<String>,
    /// The last id handed out: batches repeat one reason a million times.
    last: Option<u32>,
}

impl Interner {
    fn id(&mut self, s: &str) -> u32 {
        if let Some(l) = self.last
            && self.texts[l as usize] == s
        {
            return l;
        }
        if let Some(id) = self.ids.get(s) {
            self.last = Some(*id);
            return *id;
        }
        let id = self.texts.len() as u32;
        self.texts.push(s.to_owned());
        self.ids.insert(s.to_owned(), id);
        self.last = Some(id);
        id
    }

    fn text(&self, id: u32) -> &str {
        self.texts.get(id as usize).map_or("", String::as_str)
    }
}

/// Totals kept for status and metrics.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoreStats {
    /// Decisions added, by `kind:origin` (e.g. `block:detector`).
    pub added: StdHashMap<String, u64>,
    pub removed: u64,
    pub expired: u64,
    pub journal_errors: u64,
    pub recovered_from_pins: u64,
    pub damaged_journal_lines: u64,
}

/// The decision store.
pub struct Store<S: Sink> {
    sink: S,
    blocks: HashMap<IpNet, Entries>,
    allows: HashMap<IpNet, Entries>,
    reasons: Interner,
    journal: Option<Journal>,
    /// Earliest expiry among held entries (0 = none pending).
    next_expiry_ms: u64,
    pub stats: StoreStats,
    /// Where decision-log lines are also published (for `enforcer log`).
    hub: Option<std::sync::Arc<log::LogHub>>,
}

impl<S: Sink> Store<S> {
    /// A store without durable state (tests, benchmarks).
    pub fn in_memory(sink: S) -> Self {
        Self {
            sink,
            blocks: HashMap::default(),
            allows: HashMap::default(),
            reasons: Interner::default(),
            journal: None,
            next_expiry_ms: 0,
            stats: StoreStats::default(),
            hub: None,
        }
    }

    /// Publishes decision-log lines to `hub` from now on.
    pub fn set_log_hub(&mut self, hub: std::sync::Arc<log::LogHub>) {
        self.hub = Some(hub);
    }

    fn publish(&self, v: &serde_json::Value) {
        if let Some(h) = &self.hub {
            h.publish(v.to_string());
        }
    }

    pub const fn sink(&self) -> &S {
        &self.sink
    }

    pub const fn sink_mut(&mut self) -> &mut S {
        &mut self.sink
    }

    fn table(&self, kind: Kind) -> &HashMap<IpNet, Entries> {
        match kind {
            Kind::Block => &self.blocks,
            Kind::Allow => &self.allows,
        }
    }

    fn table_mut(&mut self, kind: Kind) -> &mut HashMap<IpNet, Entries> {
        match kind {
            Kind::Block => &mut self.blocks,
            Kind::Allow => &mut self.allows,
        }
    }

    /// Number of prefixes with at least one decision, per kind.
    pub fn len(&self, kind: Kind) -> usize {
        self.table(kind).len()
    }

    /// Applies a batch of changes, all or nothing.
    pub fn apply(&mut self, changes: Vec<Change>) -> Result<ApplyReport, StoreError> {
        if changes.len() >= BULK_MIN
            && let Some(Change::Put {
                kind,
                origin,
                source,
                reason,
                ttl,
                ..
            }) = changes.first()
            && changes.iter().all(|c| {
                matches!(c, Change::Put { kind: k, origin: o, source: s, reason: r, ttl: t, .. }
                    if k == kind && o == origin && s == source && t == ttl
                        && std::sync::Arc::ptr_eq(r, reason))
            })
        {
            let (kind, origin, source, reason, ttl) =
                (*kind, *origin, *source, std::sync::Arc::clone(reason), *ttl);
            let prefixes: Vec<IpNet> = changes
                .into_iter()
                .filter_map(|c| match c {
                    Change::Put { prefix, .. } => Some(prefix),
                    Change::Remove { .. } => None,
                })
                .collect();
            return self.apply_bulk(kind, origin, source, &reason, ttl, prefixes);
        }
        self.apply_general(changes)
    }

    /// The bulk path (an import, a feed): many puts that differ only in the
    /// prefix. Same semantics as the general path, without its per-change map
    /// (a repeated prefix yields identical updates, so none is needed), and
    /// with the journal encoded while the kernel is written.
    fn apply_bulk(
        &mut self,
        kind: Kind,
        origin: Origin,
        source: u32,
        reason: &str,
        ttl: Option<Duration>,
        prefixes: Vec<IpNet>,
    ) -> Result<ApplyReport, StoreError> {
        let t_start = std::time::Instant::now();
        let now = now_ms();
        let expires_ms = ttl.map_or(0, |t| (now + t.as_millis() as u64).max(1));
        let entry = Entry {
            origin,
            source,
            reason: self.reasons.id(reason),
            created_ms: now,
            expires_ms,
        };
        let mut report = ApplyReport::default();
        let table = self.table(kind);
        let mut touched: Vec<(IpNet, Entries)> = Vec::with_capacity(prefixes.len());
        for p in &prefixes {
            let mut list = table.get(p).cloned().unwrap_or_default();
            if let Some(slot) = list
                .iter_mut()
                .find(|e| e.origin == origin && e.source == source)
            {
                *slot = entry;
                report.updated += 1;
            } else {
                list.push(entry);
                report.added += 1;
            }
            touched.push((*p, list));
        }
        let records = vec![Record::PutMany {
            kind,
            prefixes,
            origin: origin.name().to_owned(),
            source,
            reason: reason.to_owned(),
            created: now,
            expires: expires_ms,
        }];
        let t_kernel = std::time::Instant::now();
        let (kernel, encoded) = std::thread::scope(|scope| {
            let enc = scope.spawn(|| journal::encode(&records));
            let kernel = self.push_to_kernel(touched.iter().map(|(p, l)| (kind, *p, l)), now);
            (kernel, enc.join())
        });
        kernel?;
        let kernel_ms = t_kernel.elapsed().as_millis() as u64;
        if expires_ms != 0 && (self.next_expiry_ms == 0 || expires_ms < self.next_expiry_ms) {
            self.next_expiry_ms = expires_ms;
        }
        let log: Vec<(&'static str, Kind, IpNet, Entry)> = touched
            .iter()
            .take(LOG_DETAIL_LIMIT)
            .map(|(p, _)| ("add", kind, *p, entry))
            .collect();
        let table = self.table_mut(kind);
        table.reserve(touched.len());
        for (p, list) in touched {
            table.insert(p, list);
        }
        let n = report.added + report.updated;
        for (action, kind, prefix, e) in &log {
            self.log_decision(action, *kind, *prefix, e);
        }
        if n > log.len() {
            self.log_bulk("add", kind, (n - log.len()) as u64, origin, reason);
        }
        *self.stats.added.entry(stat_key(kind, origin)).or_default() += n as u64;
        let t_journal = std::time::Instant::now();
        if let Some(j) = self.journal.as_mut() {
            let r = encoded
                .unwrap_or_else(|_| Err(std::io::Error::other("journal encoder panicked")))
                .and_then(|bytes| j.append_encoded(&bytes, 1));
            if let Err(e) = r {
                self.stats.journal_errors += 1;
                warn!(error = %e, "could not make decisions durable; they are live but will not \
                      survive a reboot");
                report.journal_error = Some(e.to_string());
            } else if j.wants_compaction() {
                self.compact();
            }
        }
        tracing::debug!(
            changes = n,
            prepare_ms = t_kernel.duration_since(t_start).as_millis() as u64,
            kernel_ms,
            journal_ms = t_journal.elapsed().as_millis() as u64,
            "store: applied (bulk)"
        );
        release_free_memory();
        Ok(report)
    }

    fn apply_general(&mut self, changes: Vec<Change>) -> Result<ApplyReport, StoreError> {
        let t_start = std::time::Instant::now();
        let now = now_ms();
        let mut report = ApplyReport::default();
        // Work on copies of the touched prefixes' entries.
        let mut pending: HashMap<(Kind, IpNet), Entries> =
            HashMap::with_capacity_and_hasher(changes.len(), Default::default());
        let mut records: Vec<Record> = Vec::new();
        let mut log: Vec<(&'static str, Kind, IpNet, Entry)> = Vec::with_capacity(changes.len());
        for change in &changes {
            match change {
                Change::Put {
                    kind,
                    prefix,
                    origin,
                    source,
                    reason,
                    ttl,
                } => {
                    let expires_ms = ttl.map_or(0, |t| (now + t.as_millis() as u64).max(1));
                    let entry = Entry {
                        origin: *origin,
                        source: *source,
                        reason: self.reasons.id(reason),
                        created_ms: now,
                        expires_ms,
                    };
                    let table = match kind {
                        Kind::Block => &self.blocks,
                        Kind::Allow => &self.allows,
                    };
                    let list = pending
                        .entry((*kind, *prefix))
                        .or_insert_with(|| table.get(prefix).cloned().unwrap_or_default());
                    if let Some(slot) = list
                        .iter_mut()
                        .find(|e| e.origin == *origin && e.source == *source)
                    {
                        *slot = entry;
                        report.updated += 1;
                    } else {
                        list.push(entry);
                        report.added += 1;
                    }
                    log.push(("add", *kind, *prefix, entry));
                    Record::push_put(
                        &mut records,
                        *kind,
                        *prefix,
                        origin.name(),
                        *source,
                        reason,
                        now,
                        expires_ms,
                    );
                }
                Change::Remove {
                    kind,
                    prefix,
                    origin,
                    source,
                } => {
                    let table = match kind {
                        Kind::Block => &self.blocks,
                        Kind::Allow => &self.allows,
                    };
                    let list = pending
                        .entry((*kind, *prefix))
                        .or_insert_with(|| table.get(prefix).cloned().unwrap_or_default());
                    let before = list.len();
                    let matches = |e: &Entry| {
                        origin.is_none_or(|o| e.origin == o) && source.is_none_or(|s| e.source == s)
                    };
                    for e in list.iter().filter(|e| matches(e)) {
                        log.push(("remove", *kind, *prefix, *e));
                    }
                    list.retain(|e| !matches(e));
                    if list.len() == before {
                        report.not_found.push(*prefix);
                    } else {
                        report.removed += before - list.len();
                        Record::push_del(
                            &mut records,
                            *kind,
                            *prefix,
                            origin.map(Origin::name),
                            *source,
                        );
                    }
                }
            }
        }
        let t_kernel = std::time::Instant::now();
        self.push_to_kernel(pending.iter().map(|((k, p), l)| (*k, *p, l)), now)?;
        let kernel_ms = t_kernel.elapsed().as_millis() as u64;
        let t_commit = std::time::Instant::now();
        // The kernel accepted: commit to memory, then make it durable.
        self.blocks.reserve(pending.len());
        for ((kind, prefix), list) in pending {
            for e in &list {
                if e.expires_ms != 0
                    && (self.next_expiry_ms == 0 || e.expires_ms < self.next_expiry_ms)
                {
                    self.next_expiry_ms = e.expires_ms;
                }
            }
            if list.is_empty() {
                self.table_mut(kind).remove(&prefix);
            } else {
                self.table_mut(kind).insert(prefix, list);
            }
        }
        self.log_batch(&log);
        let commit_ms = t_commit.elapsed().as_millis() as u64;
        let t_journal = std::time::Instant::now();
        if let Some(j) = self.journal.as_mut() {
            if let Err(e) = j.append(&records) {
                self.stats.journal_errors += 1;
                warn!(error = %e, "could not make decisions durable; they are live but will not \
                      survive a reboot");
                report.journal_error = Some(e.to_string());
            } else if j.wants_compaction() {
                self.compact();
            }
        }
        tracing::debug!(
            changes = changes.len(),
            prepare_ms = t_kernel.duration_since(t_start).as_millis() as u64,
            kernel_ms,
            commit_ms,
            journal_ms = t_journal.elapsed().as_millis() as u64,
            "store: applied"
        );
        Ok(report)
    }

    /// Logs a batch's decisions: each one for ordinary batches; for bulk ones
    /// (an import, a feed) the first [`LOG_DETAIL_LIMIT`] and then one summary
    /// line per kind of change, so a million-entry feed does not write a
    /// million log lines.
    fn log_batch(&mut self, log: &[(&'static str, Kind, IpNet, Entry)]) {
        let mut rest: StdHashMap<(&'static str, Kind, Origin, u32), u64> = StdHashMap::new();
        let mut added: StdHashMap<(Kind, Origin), u64> = StdHashMap::new();
        for (i, (action, kind, prefix, e)) in log.iter().enumerate() {
            if i < LOG_DETAIL_LIMIT {
                self.log_decision(action, *kind, *prefix, e);
            } else {
                *rest.entry((action, *kind, e.origin, e.reason)).or_default() += 1;
            }
            if *action == "add" {
                *added.entry((*kind, e.origin)).or_default() += 1;
            } else {
                self.stats.removed += 1;
            }
        }
        for ((kind, origin), n) in added {
            *self.stats.added.entry(stat_key(kind, origin)).or_default() += n;
        }
        for ((action, kind, origin, reason), n) in rest {
            self.log_bulk(action, kind, n, origin, self.reasons.text(reason));
        }
    }

    /// Writes the effective entry of every touched prefix (or removes it).
    fn push_to_kernel<'a>(
        &mut self,
        touched: impl Iterator<Item = (Kind, IpNet, &'a Entries)>,
        now: u64,
    ) -> Result<(), KernelError> {
        let mut block_up = Vec::new();
        let mut block_rm = Vec::new();
        let mut allow_up = Vec::new();
        let mut allow_rm = Vec::new();
        for (kind, prefix, list) in touched {
            match (kind, effective(list, now)) {
                (Kind::Block, Some(e)) => block_up.push((prefix, block_entry(&e))),
                (Kind::Block, None) => block_rm.push(prefix),
                (Kind::Allow, Some(e)) => allow_up.push((
                    prefix,
                    AllowEntry {
                        origin: e.origin as u32,
                    },
                )),
                (Kind::Allow, None) => allow_rm.push(prefix),
            }
        }
        // Additions first (they are what can be refused), removals after.
        self.sink.upsert_allows(&allow_up)?;
        self.sink.upsert_blocks(&block_up)?;
        self.sink.remove_blocks(&block_rm)?;
        self.sink.remove_allows(&allow_rm)?;
        Ok(())
    }

    fn log_decision(&self, action: &str, kind: Kind, prefix: IpNet, e: &Entry) {
        let expires = if e.expires_ms == 0 {
            "never".to_owned()
        } else {
            rfc3339(e.expires_ms)
        };
        info!(
            target: "enforcer::decision",
            action,
            kind = kind.name(),
            prefix = %prefix,
            origin = e.origin.name(),
            source = e.source,
            reason = self.reasons.text(e.reason),
            expires = %expires,
            "decision"
        );
        self.publish(&serde_json::json!({
            "ts": rfc3339(now_ms()),
            "action": action,
            "kind": kind.name(),
            "prefix": prefix.to_string(),
            "origin": e.origin.name(),
            "source": e.source,
            "reason": self.reasons.text(e.reason),
            "expires": expires,
        }));
    }

    fn log_bulk(&self, action: &str, kind: Kind, count: u64, origin: Origin, reason: &str) {
        info!(
            target: "enforcer::decision",
            action,
            kind = kind.name(),
            count,
            origin = origin.name(),
            reason,
            "decisions (bulk, not listed one by one)"
        );
        self.publish(&serde_json::json!({
            "ts": rfc3339(now_ms()),
            "action": action,
            "kind": kind.name(),
            "count": count,
            "origin": origin.name(),
            "reason": reason,
        }));
    }

    /// Removes expired entries (the kernel already ignores them) and rewrites
    /// prefixes whose effective entry changed. Cheap when nothing is due.
    pub fn sweep(&mut self) -> Result<usize, StoreError> {
        let now = now_ms();
        if self.next_expiry_ms == 0 || now < self.next_expiry_ms {
            return Ok(0);
        }
        let mut pending: HashMap<(Kind, IpNet), Entries> = HashMap::default();
        let mut next = 0u64;
        let mut expired: Vec<(Kind, IpNet, Entry)> = Vec::new();
        for kind in [Kind::Block, Kind::Allow] {
            for (prefix, list) in self.table(kind) {
                if list.iter().any(|e| e.is_expired(now)) {
                    let kept: Entries = list
                        .iter()
                        .copied()
                        .filter(|e| !e.is_expired(now))
                        .collect();
                    expired.extend(
                        list.iter()
                            .filter(|e| e.is_expired(now))
                            .map(|e| (kind, *prefix, *e)),
                    );
                    pending.insert((kind, *prefix), kept);
                }
                for e in list
                    .iter()
                    .filter(|e| !e.is_expired(now) && e.expires_ms != 0)
                {
                    if next == 0 || e.expires_ms < next {
                        next = e.expires_ms;
                    }
                }
            }
        }
        self.push_to_kernel(pending.iter().map(|((k, p), l)| (*k, *p, l)), now)?;
        for ((kind, prefix), list) in pending {
            if list.is_empty() {
                self.table_mut(kind).remove(&prefix);
            } else {
                self.table_mut(kind).insert(prefix, list);
            }
        }
        for (kind, prefix, e) in &expired {
            self.log_decision("expire", *kind, *prefix, e);
        }
        self.stats.expired += expired.len() as u64;
        self.next_expiry_ms = next;
        Ok(expired.len())
    }

    /// Every decision, sorted by kind then prefix.
    pub fn list(&self, kind: Option<Kind>) -> Vec<DecisionView> {
        let now = now_ms();
        let mut out = Vec::new();
        for k in [Kind::Block, Kind::Allow] {
            if kind.is_some_and(|want| want != k) {
                continue;
            }
            for (prefix, list) in self.table(k) {
                for e in list.iter().filter(|e| !e.is_expired(now)) {
                    out.push(self.view(k, *prefix, e, now));
                }
            }
        }
        out.sort_by_key(|a| (a.kind, a.prefix));
        out
    }

    fn view(&self, kind: Kind, prefix: IpNet, e: &Entry, now: u64) -> DecisionView {
        DecisionView {
            kind,
            prefix,
            origin: e.origin.name().to_owned(),
            source: e.source,
            reason: self.reasons.text(e.reason).to_owned(),
            created: rfc3339(e.created_ms),
            expires: (e.expires_ms != 0).then(|| rfc3339(e.expires_ms)),
            ttl_secs: (e.expires_ms != 0).then(|| e.expires_ms.saturating_sub(now).div_ceil(1000)),
        }
    }

    /// Decisions of one origin/source, for diffing a policy or a feed.
    pub fn prefixes_of(&self, kind: Kind, origin: Origin, source: u32) -> HashSet<IpNet> {
        self.table(kind)
            .iter()
            .filter(|(_, l)| l.iter().any(|e| e.origin == origin && e.source == source))
            .map(|(p, _)| *p)
            .collect()
    }

    /// Makes origin/source's decisions of `kind` exactly `desired`: adds what is
    /// missing (or has another reason), removes what is no longer there, and
    /// leaves the rest untouched.
    pub fn replace_origin(
        &mut self,
        kind: Kind,
        origin: Origin,
        source: u32,
        desired: &[(IpNet, String)],
    ) -> Result<ApplyReport, StoreError> {
        let current: HashMap<IpNet, String> = self
            .table(kind)
            .iter()
            .filter_map(|(p, l)| {
                l.iter()
                    .find(|e| e.origin == origin && e.source == source)
                    .map(|e| (*p, self.reasons.text(e.reason).to_owned()))
            })
            .collect();
        let mut changes = Vec::new();
        let mut wanted = HashSet::with_capacity_and_hasher(desired.len(), Default::default());
        // One shared string per distinct reason (a feed has one): uniform
        // puts then take the bulk path.
        let mut last: Option<std::sync::Arc<str>> = None;
        for (p, reason) in desired {
            wanted.insert(*p);
            if current.get(p) != Some(reason) {
                let r = match &last {
                    Some(l) if **l == **reason => std::sync::Arc::clone(l),
                    _ => {
                        let l = shared(reason);
                        last = Some(std::sync::Arc::clone(&l));
                        l
                    }
                };
                changes.push(Change::Put {
                    kind,
                    prefix: *p,
                    origin,
                    source,
                    reason: r,
                    ttl: None,
                });
            }
        }
        for p in current.keys().filter(|p| !wanted.contains(p)) {
            changes.push(Change::Remove {
                kind,
                prefix: *p,
                origin: Some(origin),
                source: Some(source),
            });
        }
        self.apply(changes)
    }

    fn live_records(&self) -> Vec<Record> {
        let now = now_ms();
        let mut out = Vec::new();
        for kind in [Kind::Block, Kind::Allow] {
            for (prefix, list) in self.table(kind) {
                for e in list.iter().filter(|e| !e.is_expired(now)) {
                    Record::push_put(
                        &mut out,
                        kind,
                        *prefix,
                        e.origin.name(),
                        e.source,
                        self.reasons.text(e.reason),
                        e.created_ms,
                        e.expires_ms,
                    );
                }
            }
        }
        out
    }

    /// Rewrites the snapshot from memory (errors are logged and counted).
    pub fn compact(&mut self) {
        let records = self.live_records();
        if let Some(j) = self.journal.as_mut()
            && let Err(e) = j.compact(records.into_iter())
        {
            self.stats.journal_errors += 1;
            warn!(error = %e, "compacting the decision journal failed; will retry later");
        }
    }
}

/// A bulk batch allocates large temporary buffers (the request text, key
/// arrays, the encoded journal); hand the freed pages back to the system
/// instead of keeping them in the allocator's free lists.
fn release_free_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only returns free heap memory to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn block_entry(e: &Entry) -> BlockEntry {
    BlockEntry {
        expires_ns: clock::monotonic_expiry(
            (e.expires_ms != 0).then(|| decision::ms_to_system(e.expires_ms)),
        ),
        origin: e.origin as u32,
        reason_id: e.reason,
    }
}

impl<S: Sink> Store<S> {
    /// A journalled put: replaces the entry of the same origin and source
    /// on each prefix (a record of an unknown origin is skipped).
    fn replay_put(
        &mut self,
        kind: Kind,
        prefixes: impl IntoIterator<Item = IpNet>,
        origin: &str,
        source: u32,
        reason: &str,
        (created_ms, expires_ms): (u64, u64),
    ) {
        let Some(origin) = origin_from_name(origin) else {
            return;
        };
        let entry = Entry {
            origin,
            source,
            reason: self.reasons.id(reason),
            created_ms,
            expires_ms,
        };
        let table = self.table_mut(kind);
        for prefix in prefixes {
            let list = table.entry(prefix).or_default();
            list.retain(|e| !(e.origin == origin && e.source == source));
            list.push(entry);
        }
    }

    fn replay_del(&mut self, kind: Kind, prefix: IpNet, origin: Option<&str>, source: Option<u32>) {
        let origin = origin.and_then(origin_from_name);
        if let Some(list) = self.table_mut(kind).get_mut(&prefix) {
            list.retain(|e| {
                !(origin.is_none_or(|o| e.origin == o) && source.is_none_or(|s| e.source == s))
            });
            if list.is_empty() {
                self.table_mut(kind).remove(&prefix);
            }
        }
    }
}

impl Store<PrefixMaps> {
    /// Opens the durable state in `dir`, replays it, and reconciles it with what
    /// the (possibly reused) kernel maps hold: the union survives. Kernel entries
    /// the journal does not know are adopted as "recovered", so no block is lost
    /// to a missing or damaged state directory.
    pub fn open(mut maps: PrefixMaps, dir: &Path) -> Result<Self, StoreError> {
        let state_err = |source| StoreError::State {
            path: dir.display().to_string(),
            source,
        };
        let (kernel_blocks, kernel_allows) = maps.adopt_existing()?;
        let (journal, replay) = Journal::open(dir).map_err(state_err)?;
        let mut store = Self::in_memory(maps);
        store.stats.damaged_journal_lines = replay.damaged as u64;
        if replay.damaged > 0 {
            warn!(lines = replay.damaged, dir = %dir.display(), "skipped damaged lines in the decision journal");
        }
        let now = now_ms();
        for r in replay.records {
            match r {
                Record::Put {
                    kind,
                    prefix,
                    origin,
                    source,
                    reason,
                    created,
                    expires,
                } => store.replay_put(kind, [prefix], &origin, source, &reason, (created, expires)),
                Record::Del {
                    kind,
                    prefix,
                    origin,
                    source,
                } => store.replay_del(kind, prefix, origin.as_deref(), source),
                Record::PutMany {
                    kind,
                    prefixes,
                    origin,
                    source,
                    reason,
                    created,
                    expires,
                } => store.replay_put(kind, prefixes, &origin, source, &reason, (created, expires)),
                Record::DelMany {
                    kind,
                    prefixes,
                    origin,
                    source,
                } => {
                    for prefix in prefixes {
                        store.replay_del(kind, prefix, origin.as_deref(), source);
                    }
                }
            }
        }
        for kind in [Kind::Block, Kind::Allow] {
            store.table_mut(kind).retain(|_, l| {
                l.retain(|e| !e.is_expired(now));
                !l.is_empty()
            });
        }
        // Kernel entries unknown to the journal: adopt them.
        let recovered = store.reasons.id("recovered from pinned map");
        let mono_now = clock::monotonic_ns();
        for (prefix, be) in kernel_blocks {
            if store.blocks.contains_key(&prefix) {
                continue;
            }
            if be.expires_ns != 0 && be.expires_ns <= mono_now {
                continue;
            }
            let expires_ms = if be.expires_ns == 0 {
                0
            } else {
                now + (be.expires_ns - mono_now) / 1_000_000
            };
            store.blocks.insert(
                prefix,
                smallvec::smallvec![Entry {
                    origin: Origin::from_u32(be.origin).unwrap_or(Origin::Manual),
                    source: 0,
                    reason: recovered,
                    created_ms: now,
                    expires_ms,
                }],
            );
            store.stats.recovered_from_pins += 1;
        }
        for (prefix, ae) in kernel_allows {
            store.allows.entry(prefix).or_insert_with(|| {
                smallvec::smallvec![Entry {
                    origin: Origin::from_u32(ae.origin).unwrap_or(Origin::Manual),
                    source: 0,
                    reason: recovered,
                    created_ms: now,
                    expires_ms: 0,
                }]
            });
        }
        if store.stats.recovered_from_pins > 0 {
            warn!(
                entries = store.stats.recovered_from_pins,
                "adopted block entries found in the pinned maps but not in the decision journal"
            );
        }
        // Write the whole state to the kernel (entries already there are
        // replaced with identical values; nothing is ever removed here).
        let all: HashMap<(Kind, IpNet), Entries> = [Kind::Block, Kind::Allow]
            .into_iter()
            .flat_map(|k| {
                store
                    .table(k)
                    .iter()
                    .map(move |(p, l)| ((k, *p), l.clone()))
            })
            .collect();
        store.push_to_kernel(all.iter().map(|((k, p), l)| (*k, *p, l)), now)?;
        store.next_expiry_ms = all
            .values()
            .flatten()
            .filter(|e| e.expires_ms != 0)
            .map(|e| e.expires_ms)
            .min()
            .unwrap_or(0);
        store.journal = Some(journal);
        store.compact();
        Ok(store)
    }
}

#[cfg(test)]
mod tests;
