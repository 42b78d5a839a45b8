//! `[http]`, `[[routes]]` and `[[detect.responses]]`: per-endpoint limits on
//! requests, and bans from the server's responses.

use std::time::Duration;

use enforcer_common::{
    http::{MAX_PATH, STATUS_NAMES, host_hash, method_id},
    ratelimit::gcra_params,
    route::{
        ACTION_DROP, ACTION_MONITOR, ACTION_REJECT, MAX_ROUTES, ROUTE_KEY_DATA, RouteValue,
        route_key_bits,
    },
};
use serde::Deserialize;
use toml::Spanned;

use super::{
    ConfigError, Source,
    values::{bucket, duration, int_in, v4_len, v6_len},
};

/// Defaults: the plaintext HTTP ports.
pub const DEFAULT_PORTS: [u16; 2] = [80, 8080];

/// The validated `[http]` section.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HttpConfig {
    pub ports: Vec<u16>,
    /// One parsed request in this many is sampled to the agent (0: none).
    pub sample_every: u32,
    pub response_ipv4_prefix: u8,
    pub response_ipv6_prefix: u8,
    pub report_interval: Duration,
    pub routes: Vec<RouteSpec>,
    pub responses: Vec<ResponseRule>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            ports: DEFAULT_PORTS.to_vec(),
            sample_every: 100,
            response_ipv4_prefix: 32,
            response_ipv6_prefix: 64,
            report_interval: Duration::from_secs(1),
            routes: Vec::new(),
            responses: Vec::new(),
        }
    }
}

/// One route.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RouteSpec {
    pub name: String,
    /// A registered method, or `*` for any.
    pub method: String,
    pub path: String,
    pub host: Option<String>,
    pub rate: u64,
    pub burst: u64,
    /// `drop`, `reject` or `monitor`.
    pub action: String,
    pub ipv4_prefix: u8,
    pub ipv6_prefix: u8,
}

impl RouteSpec {
    /// The route trie key data and prefix length, and the value, for route `id`.
    pub fn compile(&self, id: u32) -> ([u8; ROUTE_KEY_DATA], u32, RouteValue) {
        let mut data = [0u8; ROUTE_KEY_DATA];
        data[0] = method_id(&self.method).unwrap_or(0);
        let h = self.host.as_deref().map_or(0, host_hash);
        data[1..5].copy_from_slice(&h.to_be_bytes());
        // `*` is the empty prefix: every path (also absolute-form targets).
        let path = if self.path == "*" {
            &b""[..]
        } else {
            self.path.as_bytes()
        };
        let n = path.len().min(MAX_PATH);
        data[5..5 + n].copy_from_slice(&path[..n]);
        let (interval_ns, tolerance_ns) = gcra_params(self.rate, self.burst);
        let action = match self.action.as_str() {
            "reject" => ACTION_REJECT,
            "monitor" => ACTION_MONITOR,
            _ => ACTION_DROP,
        };
        (
            data,
            route_key_bits(n as u32),
            RouteValue {
                id,
                action,
                path_len: n as u32,
                v4_len: u32::from(self.ipv4_prefix),
                v6_len: u32::from(self.ipv6_prefix),
                _pad: 0,
                interval_ns,
                tolerance_ns,
            },
        )
    }
}

/// A ban rule on the server's responses to one client key.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ResponseRule {
    pub name: String,
    /// `http::STATUS_*` class.
    pub class: u32,
    /// More than this many responses ...
    pub more_than: u64,
    /// ... within this window ban the client key ...
    pub within: Duration,
    /// ... for this long (escalating like the rate-limit bans).
    pub ban_time: Duration,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHttp {
    ports: Option<Spanned<Vec<Spanned<i64>>>>,
    sample_every: Option<Spanned<i64>>,
    response_ipv4_prefix: Option<Spanned<i64>>,
    response_ipv6_prefix: Option<Spanned<i64>>,
    report_interval: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoute {
    name: Spanned<String>,
    method: Option<Spanned<String>>,
    path: Spanned<String>,
    host: Option<Spanned<String>>,
    rate: Spanned<i64>,
    burst: Option<Spanned<i64>>,
    action: Option<Spanned<String>>,
    ipv4_prefix: Option<Spanned<i64>>,
    ipv6_prefix: Option<Spanned<i64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDetect {
    #[serde(default)]
    responses: Vec<RawResponseRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawResponseRule {
    name: Spanned<String>,
    status: Spanned<toml::Value>,
    more_than: Spanned<i64>,
    within: Spanned<String>,
    ban_time: Spanned<String>,
}

/// Applies one file's `[http]`, `[[routes]]` and `[[detect.responses]]`.
pub(super) fn validate(
    src: &Source<'_>,
    raw: &RawHttp,
    routes: &[RawRoute],
    detect: &RawDetect,
    errors: &mut Vec<ConfigError>,
    out: &mut HttpConfig,
    seen: &mut std::collections::HashMap<String, String>,
) {
    if let Some(ports) = &raw.ports {
        let mut v = Vec::new();
        for (i, p) in ports.get_ref().iter().enumerate() {
            if let Some(n) = int_in(
                src,
                p,
                format!("http.ports[{i}]"),
                1..=65_535,
                "a TCP port from 1 to 65535",
                errors,
            ) {
                v.push(n as u16);
            }
        }
        out.ports = v;
    }
    if let Some(v) = &raw.sample_every
        && let Some(n) = int_in(
            src,
            v,
            "http.sample_every",
            0..=1_000_000,
            "0 (no samples) or one request in N, N up to 1000000",
            errors,
        )
    {
        out.sample_every = n as u32;
    }
    if let Some(v) = &raw.response_ipv4_prefix
        && let Some(n) = v4_len(src, v, "http.response_ipv4_prefix", errors)
    {
        out.response_ipv4_prefix = n;
    }
    if let Some(v) = &raw.response_ipv6_prefix
        && let Some(n) = v6_len(src, v, "http.response_ipv6_prefix", errors)
    {
        out.response_ipv6_prefix = n;
    }
    if let Some(v) = &raw.report_interval
        && let Some(d) = duration(src, v, "http.report_interval", errors)
    {
        out.report_interval = d;
    }
    for (i, r) in routes.iter().enumerate() {
        let k = |f: &str| format!("routes[{i}].{f}");
        let name = r.name.get_ref().trim().to_owned();
        if name.is_empty() {
            errors.push(src.error(
                r.name.span(),
                k("name"),
                "found an empty name",
                "a non-empty name",
            ));
            continue;
        }
        let (line, col) = src.position(r.name.span().start);
        if let Some(first) = seen.get(&name) {
            errors.push(src.error(
                r.name.span(),
                k("name"),
                format!("route {name:?} is already defined at {first}"),
                "a name no other route uses (in this file or an earlier drop-in)",
            ));
            continue;
        }
        seen.insert(name.clone(), format!("{}:{line}:{col}", src.file.display()));
        let method = match r.method.as_ref().map(|m| (m, m.get_ref().as_str())) {
            None | Some((_, "any" | "*")) => "*".to_owned(),
            Some((m, name)) => {
                if method_id(name).is_some() {
                    name.to_owned()
                } else {
                    errors.push(src.error(
                        m.span(),
                        k("method"),
                        format!("found {name:?}"),
                        "one of GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE, PATCH (uppercase, as on the wire) or \"any\"",
                    ));
                    continue;
                }
            }
        };
        let path = r.path.get_ref();
        if path.is_empty() || !(path.starts_with('/') || path == "*") {
            errors.push(src.error(
                r.path.span(),
                k("path"),
                format!("found {path:?}"),
                "a path prefix starting with '/' (e.g. \"/login\", \"/api/\"), or \"*\"",
            ));
            continue;
        }
        if path.len() > MAX_PATH {
            errors.push(src.error(r.path.span(), k("path"), format!("found a prefix of {} bytes", path.len()), format!("at most {MAX_PATH} bytes (the program matches the first {MAX_PATH} bytes of a path)")));
            continue;
        }
        let action = match r.action.as_ref().map(|a| (a, a.get_ref().as_str())) {
            None | Some((_, "drop")) => "drop",
            Some((_, "reject")) => "reject",
            Some((_, "monitor")) => "monitor",
            Some((a, other)) => {
                errors.push(src.error(
                    a.span(),
                    k("action"),
                    format!("found {other:?}"),
                    "\"drop\", \"reject\" (TCP reset) or \"monitor\"",
                ));
                continue;
            }
        };
        let b = bucket(
            src,
            k,
            (
                &r.rate,
                "a rate in requests per second, a whole number of at least 1",
            ),
            r.burst.as_ref(),
            r.ipv4_prefix.as_ref(),
            r.ipv6_prefix.as_ref(),
            errors,
        );
        let host = r
            .host
            .as_ref()
            .map(|h| h.get_ref().trim().to_ascii_lowercase());
        if let Some(h) = &r.host
            && (h.get_ref().trim().is_empty() || h.get_ref().contains(['/', ' ']))
        {
            errors.push(src.error(
                h.span(),
                k("host"),
                format!("found {:?}", h.get_ref()),
                "a host name such as \"api.example\"",
            ));
            continue;
        }
        if let Some(b) = b {
            let spec = RouteSpec {
                name,
                method,
                path: path.clone(),
                host,
                rate: b.rate,
                burst: b.burst,
                action: action.into(),
                ipv4_prefix: b.v4,
                ipv6_prefix: b.v6,
            };
            if let Some(other) = out
                .routes
                .iter()
                .find(|o| o.method == spec.method && o.path == spec.path && o.host == spec.host)
            {
                errors.push(src.error(
                    r.path.span(),
                    k("path"),
                    format!(
                        "route {:?} already covers {} {} (host {})",
                        other.name,
                        spec.method,
                        spec.path,
                        spec.host.as_deref().unwrap_or("any")
                    ),
                    "one route per method, host and path prefix",
                ));
                continue;
            }
            out.routes.push(spec);
        }
    }
    if out.routes.len() > MAX_ROUTES as usize {
        errors.push(src.error(
            0..0,
            "routes",
            format!("{} routes", out.routes.len()),
            format!("at most {MAX_ROUTES}"),
        ));
    }
    for (i, d) in detect.responses.iter().enumerate() {
        let k = |f: &str| format!("detect.responses[{i}].{f}");
        let status = match d.status.get_ref() {
            toml::Value::Integer(n) => n.to_string(),
            toml::Value::String(s) => s.to_ascii_lowercase(),
            _ => String::new(),
        };
        let Some(class) = STATUS_NAMES.iter().position(|n| *n == status) else {
            errors.push(src.error(
                d.status.span(),
                k("status"),
                format!("found {status:?}"),
                "401, 403, 404, 429 or \"5xx\"",
            ));
            continue;
        };
        let more_than = int_in(
            src,
            &d.more_than,
            k("more_than"),
            0..=100_000_000,
            "a count of responses, 0 or more",
            errors,
        );
        let within = duration(src, &d.within, &k("within"), errors);
        let ban = duration(src, &d.ban_time, &k("ban_time"), errors);
        if let (Some(more_than), Some(within), Some(ban_time)) = (more_than, within, ban) {
            out.responses.push(ResponseRule {
                name: d.name.get_ref().clone(),
                class: class as u32,
                more_than: more_than as u64,
                within,
                ban_time,
            });
        }
    }
}
