//! `[[feeds]]` and `[crowdsec]`: where decisions come from besides the CLI.

use std::{path::PathBuf, time::Duration};

use serde::Deserialize;
use toml::Spanned;

use super::{Config, ConfigError, Source, values::duration};

/// How a feed file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FeedFormat {
    /// Guess from the content: JSON lines are Spamhaus JSON, anything else
    /// one prefix per line with `#`/`;` comments.
    Auto,
    /// FireHOL netset: `#` comments, one address or CIDR per line.
    Netset,
    /// One address or CIDR per line.
    Plain,
    /// Spamhaus DROP text: `CIDR ; SBLnnn`.
    Spamhaus,
    /// Spamhaus DROP JSON lines: `{"cidr": "...", "sblid": "..."}`.
    SpamhausJson,
}

/// A blocklist feed to follow.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FeedSpec {
    pub name: String,
    pub path: PathBuf,
    pub format: FeedFormat,
    pub reason: String,
}

impl FeedSpec {
    /// The feed's stable source id in the decision store (from its name, so
    /// reordering feeds in the policy changes nothing).
    pub fn source_id(&self) -> u32 {
        // FNV-1a: small, stable across versions and platforms.
        let mut h: u32 = 0x811C_9DC5;
        for b in self.name.bytes() {
            h ^= u32::from(b);
            h = h.wrapping_mul(0x0100_0193);
        }
        h | 1
    }
}

/// CrowdSec bouncer mode.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CrowdsecSpec {
    /// Base URL of the Local API, e.g. `http://127.0.0.1:8080`.
    pub url: String,
    /// The bouncer key (`cscli bouncers add NAME`).
    pub api_key: String,
    pub poll_interval: Duration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFeed {
    name: Spanned<String>,
    path: Spanned<String>,
    format: Option<Spanned<String>>,
    reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCrowdsec {
    url: Spanned<String>,
    api_key: Option<Spanned<String>>,
    api_key_file: Option<Spanned<String>>,
    poll_interval: Option<Spanned<String>>,
}

pub(super) fn validate(
    src: &Source<'_>,
    feeds: &[RawFeed],
    crowdsec: Option<&RawCrowdsec>,
    errors: &mut Vec<ConfigError>,
    cfg: &mut Config,
    seen: &mut std::collections::HashMap<String, String>,
) {
    for (i, f) in feeds.iter().enumerate() {
        let k = |x: &str| format!("feeds[{i}].{x}");
        let name = f.name.get_ref().trim().to_owned();
        let (line, col) = src.position(f.name.span().start);
        if name.is_empty() {
            errors.push(src.error(
                f.name.span(),
                k("name"),
                "found an empty name",
                "a non-empty name",
            ));
            continue;
        }
        if let Some(first) = seen.get(&name) {
            errors.push(src.error(
                f.name.span(),
                k("name"),
                format!("feed {name:?} is already defined at {first}"),
                "a name no other feed uses (in this file or an earlier drop-in)",
            ));
            continue;
        }
        seen.insert(name.clone(), format!("{}:{line}:{col}", src.file.display()));
        if !f.path.get_ref().starts_with('/') {
            errors.push(src.error(
                f.path.span(),
                k("path"),
                format!("found {:?}", f.path.get_ref()),
                "an absolute path to the feed file",
            ));
            continue;
        }
        let format = match f.format.as_ref().map(|v| (v, v.get_ref().as_str())) {
            None | Some((_, "auto")) => FeedFormat::Auto,
            Some((_, "netset")) => FeedFormat::Netset,
            Some((_, "plain")) => FeedFormat::Plain,
            Some((_, "spamhaus")) => FeedFormat::Spamhaus,
            Some((_, "spamhaus-json")) => FeedFormat::SpamhausJson,
            Some((v, other)) => {
                errors.push(src.error(
                    v.span(),
                    k("format"),
                    format!("found {other:?}"),
                    "\"auto\", \"netset\", \"plain\", \"spamhaus\" or \"spamhaus-json\"",
                ));
                continue;
            }
        };
        cfg.feeds.push(FeedSpec {
            reason: f.reason.clone().unwrap_or_else(|| format!("feed {name}")),
            name,
            path: f.path.get_ref().into(),
            format,
        });
    }
    if let Some(c) = crowdsec {
        let url = c.url.get_ref().trim_end_matches('/').to_owned();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            errors.push(src.error(
                c.url.span(),
                "crowdsec.url",
                format!("found {:?}", c.url.get_ref()),
                "the Local API's URL, e.g. \"http://127.0.0.1:8080\"",
            ));
            return;
        }
        let key = match (&c.api_key, &c.api_key_file) {
            (Some(k), None) => k.get_ref().trim().to_owned(),
            (None, Some(f)) => match std::fs::read_to_string(f.get_ref()) {
                Ok(k) => k.trim().to_owned(),
                Err(e) => {
                    errors.push(src.error(
                        f.span(),
                        "crowdsec.api_key_file",
                        format!("cannot read {:?}: {e}", f.get_ref()),
                        "a readable file holding the bouncer key",
                    ));
                    return;
                }
            },
            _ => {
                errors.push(src.error(
                    c.url.span(),
                    "crowdsec",
                    "found neither or both of api_key and api_key_file",
                    "exactly one of them (`cscli bouncers add NAME` prints a key)",
                ));
                return;
            }
        };
        if key.is_empty() {
            errors.push(src.error(
                c.url.span(),
                "crowdsec.api_key",
                "found an empty key",
                "the bouncer key `cscli bouncers add NAME` printed",
            ));
            return;
        }
        let poll = c
            .poll_interval
            .as_ref()
            .and_then(|v| duration(src, v, "crowdsec.poll_interval", errors))
            .unwrap_or(Duration::from_secs(10));
        cfg.crowdsec = Some(CrowdsecSpec {
            url,
            api_key: key,
            poll_interval: poll,
        });
    }
}
