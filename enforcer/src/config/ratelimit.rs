//! `[ratelimit]`: per-source limits at several prefix tiers, and the bans
//! that follow repeat offences.

use std::time::Duration;

use enforcer_common::ratelimit::{
    FLAG_MONITOR, KIND_PACKETS, KIND_SYN, MAX_RATE_RULES, RateRule, gcra_params,
};
use serde::Deserialize;
use toml::Spanned;

use super::{
    ConfigError, Source,
    values::{bucket, duration, int_in},
};

/// One limit at one tier, as the agent reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RuleSpec {
    /// The limit's name (several tiers share it).
    pub name: String,
    /// `packets` or `syn`.
    pub kind: String,
    pub rate: u64,
    pub burst: u64,
    pub ipv4_prefix: u8,
    pub ipv6_prefix: u8,
    pub monitor: bool,
}

impl RuleSpec {
    /// The kernel's form of the rule.
    pub fn compile(&self) -> RateRule {
        let (interval_ns, tolerance_ns) = gcra_params(self.rate, self.burst);
        RateRule {
            kind: if self.kind == "syn" {
                KIND_SYN
            } else {
                KIND_PACKETS
            },
            flags: if self.monitor { FLAG_MONITOR } else { 0 },
            v4_len: u32::from(self.ipv4_prefix),
            v6_len: u32::from(self.ipv6_prefix),
            interval_ns,
            tolerance_ns,
        }
    }
}

/// When repeat offenders are banned, fail2ban `bantime.increment` style.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BanPolicy {
    /// Reports (at most one per key per `report_interval`) that trigger a ban.
    pub after: u32,
    /// ... within this window.
    pub within: Duration,
    /// First ban's length.
    pub ban_time: Duration,
    /// Each further ban of the same key lasts this many times longer ...
    pub factor: f64,
    /// ... up to this.
    pub max_ban_time: Duration,
    /// False turns bans off (limits still apply).
    pub enabled: bool,
}

impl Default for BanPolicy {
    fn default() -> Self {
        Self {
            after: 5,
            within: Duration::from_secs(60),
            ban_time: Duration::from_secs(600),
            factor: 2.0,
            max_ban_time: Duration::from_secs(86_400),
            enabled: true,
        }
    }
}

impl BanPolicy {
    /// Length of the `n`th ban (1-based) of a key.
    pub fn ban_length(&self, n: u32) -> Duration {
        let f = self
            .factor
            .max(1.0)
            .powi(n.saturating_sub(1).min(64) as i32);
        let secs = (self.ban_time.as_secs_f64() * f).min(self.max_ban_time.as_secs_f64());
        Duration::from_secs_f64(secs.max(1.0))
    }
}

/// The validated `[ratelimit]` section.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RateLimitConfig {
    pub rules: Vec<RuleSpec>,
    pub state_entries: u32,
    pub report_interval: Duration,
    pub ban: BanPolicy,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            rules: Vec::new(),
            state_entries: enforcer_common::maps::DEFAULT_RATE_STATE_ENTRIES,
            report_interval: Duration::from_secs(1),
            ban: BanPolicy::default(),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRateLimit {
    state_entries: Option<Spanned<i64>>,
    report_interval: Option<Spanned<String>>,
    #[serde(default)]
    limits: Vec<RawLimit>,
    ban: Option<RawBan>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimit {
    name: Spanned<String>,
    kind: Option<Spanned<String>>,
    rate: Spanned<i64>,
    burst: Option<Spanned<i64>>,
    mode: Option<Spanned<String>>,
    ipv4_prefix: Option<Spanned<i64>>,
    ipv6_prefix: Option<Spanned<i64>>,
    #[serde(default)]
    tiers: Vec<RawTier>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTier {
    ipv4_prefix: Spanned<i64>,
    ipv6_prefix: Spanned<i64>,
    rate: Spanned<i64>,
    burst: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBan {
    enabled: Option<bool>,
    after: Option<Spanned<i64>>,
    within: Option<Spanned<String>>,
    ban_time: Option<Spanned<String>>,
    factor: Option<Spanned<f64>>,
    max_ban_time: Option<Spanned<String>>,
}

/// Applies one file's `[ratelimit]` onto `out`: keys it sets replace, limits
/// it defines are added (a name defined by an earlier file is a conflict).
pub(super) fn validate(
    src: &Source<'_>,
    raw: &RawRateLimit,
    errors: &mut Vec<ConfigError>,
    out: &mut RateLimitConfig,
    seen: &mut std::collections::HashMap<String, String>,
) {
    if let Some(v) = &raw.state_entries
        && let Some(n) = int_in(
            src,
            v,
            "ratelimit.state_entries",
            1024..=100_000_000,
            "a number of keys from 1024 to 100000000",
            errors,
        )
    {
        out.state_entries = n as u32;
    }
    if let Some(v) = &raw.report_interval
        && let Some(d) = duration(src, v, "ratelimit.report_interval", errors)
    {
        out.report_interval = d;
    }
    for (i, l) in raw.limits.iter().enumerate() {
        let k = |f: &str| format!("ratelimit.limits[{i}].{f}");
        let name = l.name.get_ref().trim().to_owned();
        let here = {
            let (line, col) = src.position(l.name.span().start);
            format!("{}:{line}:{col}", src.file.display())
        };
        if name.is_empty() {
            errors.push(src.error(
                l.name.span(),
                k("name"),
                "found an empty name",
                "a non-empty name",
            ));
        } else if let Some(first) = seen.get(&name) {
            errors.push(src.error(
                l.name.span(),
                k("name"),
                format!("limit {name:?} is already defined at {first}"),
                "a name no other limit uses (in this file or an earlier drop-in)",
            ));
        } else {
            seen.insert(name.clone(), here);
        }
        let kind = match l.kind.as_ref().map(|v| (v, v.get_ref().as_str())) {
            None | Some((_, "packets")) => "packets",
            Some((_, "syn")) => "syn",
            Some((v, other)) => {
                errors.push(src.error(
                    v.span(),
                    k("kind"),
                    format!("found {other:?}"),
                    "\"packets\" or \"syn\" (new TCP connections)",
                ));
                "packets"
            }
        };
        let monitor = match l.mode.as_ref().map(|v| (v, v.get_ref().as_str())) {
            None | Some((_, "enforce")) => false,
            Some((_, "monitor")) => true,
            Some((v, other)) => {
                errors.push(src.error(
                    v.span(),
                    k("mode"),
                    format!("found {other:?}"),
                    "\"enforce\" or \"monitor\"",
                ));
                false
            }
        };
        let rate_what = "a rate in events per second, a whole number of at least 1";
        let base = bucket(
            src,
            k,
            (&l.rate, rate_what),
            l.burst.as_ref(),
            l.ipv4_prefix.as_ref(),
            l.ipv6_prefix.as_ref(),
            errors,
        );
        let tiers = l.tiers.iter().enumerate().map(|(j, t)| {
            bucket(
                src,
                |f: &str| format!("ratelimit.limits[{i}].tiers[{j}].{f}"),
                (&t.rate, rate_what),
                t.burst.as_ref(),
                Some(&t.ipv4_prefix),
                Some(&t.ipv6_prefix),
                errors,
            )
        });
        let buckets: Vec<_> = std::iter::once(base).chain(tiers).collect();
        out.rules
            .extend(buckets.into_iter().flatten().map(|b| RuleSpec {
                name: name.clone(),
                kind: kind.into(),
                rate: b.rate,
                burst: b.burst,
                ipv4_prefix: b.v4,
                ipv6_prefix: b.v6,
                monitor,
            }));
    }
    if out.rules.len() > MAX_RATE_RULES as usize {
        let span = raw.limits.first().map_or(0..0, |l| l.name.span());
        errors.push(src.error(
            span,
            "ratelimit.limits",
            format!("{} limit tiers in all", out.rules.len()),
            "at most 8 (each limit and each of its tiers counts as one)",
        ));
        out.rules.truncate(MAX_RATE_RULES as usize);
    }
    if let Some(b) = &raw.ban {
        if let Some(e) = b.enabled {
            out.ban.enabled = e;
        }
        if let Some(v) = &b.after
            && let Some(n) = int_in(
                src,
                v,
                "ratelimit.ban.after",
                1..=1_000_000,
                "a number of reports of at least 1",
                errors,
            )
        {
            out.ban.after = n as u32;
        }
        for (v, key, slot) in [
            (&b.within, "ratelimit.ban.within", &mut out.ban.within),
            (&b.ban_time, "ratelimit.ban.ban_time", &mut out.ban.ban_time),
            (
                &b.max_ban_time,
                "ratelimit.ban.max_ban_time",
                &mut out.ban.max_ban_time,
            ),
        ] {
            if let Some(v) = v
                && let Some(d) = duration(src, v, key, errors)
            {
                *slot = d;
            }
        }
        if let Some(f) = &b.factor {
            if (1.0..=1000.0).contains(f.get_ref()) {
                out.ban.factor = *f.get_ref();
            } else {
                errors.push(src.error(
                    f.span(),
                    "ratelimit.ban.factor",
                    format!("found {}", f.get_ref()),
                    "a factor from 1.0 to 1000.0",
                ));
            }
        }
    }
}
