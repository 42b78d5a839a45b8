//! Checks of single values shared by every section: each records a
//! file:line error naming the key and what is expected, and gives `None`,
//! so validation goes on and reports every bad value in one pass.

use std::time::Duration;

use toml::Spanned;

use super::{ConfigError, Source};

/// A duration of at least 1 ms.
pub(super) fn duration(
    src: &Source<'_>,
    v: &Spanned<String>,
    key: &str,
    errors: &mut Vec<ConfigError>,
) -> Option<Duration> {
    match humantime::parse_duration(v.get_ref()) {
        Ok(d) if d >= Duration::from_millis(1) => Some(d),
        _ => {
            errors.push(src.error(
                v.span(),
                key,
                format!("found {:?}", v.get_ref()),
                "a duration such as \"500ms\", \"30s\", \"10m\", \"1h\", \"7d\"",
            ));
            None
        }
    }
}

/// An integer in `range`.
pub(super) fn int_in(
    src: &Source<'_>,
    v: &Spanned<i64>,
    key: impl Into<String>,
    range: std::ops::RangeInclusive<i64>,
    what: &str,
    errors: &mut Vec<ConfigError>,
) -> Option<i64> {
    let n = *v.get_ref();
    if range.contains(&n) {
        Some(n)
    } else {
        errors.push(src.error(v.span(), key, format!("found {n}"), what));
        None
    }
}

/// An IPv4 prefix length, 1..=32.
pub(super) fn v4_len(
    src: &Source<'_>,
    v: &Spanned<i64>,
    key: impl Into<String>,
    errors: &mut Vec<ConfigError>,
) -> Option<u8> {
    int_in(
        src,
        v,
        key,
        1..=32,
        "an IPv4 prefix length from 1 to 32",
        errors,
    )
    .map(|n| n as u8)
}

/// An IPv6 prefix length, 1..=128.
pub(super) fn v6_len(
    src: &Source<'_>,
    v: &Spanned<i64>,
    key: impl Into<String>,
    errors: &mut Vec<ConfigError>,
) -> Option<u8> {
    int_in(
        src,
        v,
        key,
        1..=128,
        "an IPv6 prefix length from 1 to 128",
        errors,
    )
    .map(|n| n as u8)
}

/// A token bucket and its client key, as every limit, tier and route has
/// them.
pub(super) struct Bucket {
    pub rate: u64,
    pub burst: u64,
    pub v4: u8,
    pub v6: u8,
}

/// The four values of a bucket, each checked (every bad one reported):
/// `burst` defaults to the rate, the prefix lengths to /32 and /64.
pub(super) fn bucket(
    src: &Source<'_>,
    key: impl Fn(&str) -> String,
    rate: (&Spanned<i64>, &str),
    burst: Option<&Spanned<i64>>,
    v4: Option<&Spanned<i64>>,
    v6: Option<&Spanned<i64>>,
    errors: &mut Vec<ConfigError>,
) -> Option<Bucket> {
    const MAX: i64 = 1_000_000_000;
    let r = int_in(src, rate.0, key("rate"), 1..=MAX, rate.1, errors);
    let b = burst.map_or(r, |b| {
        int_in(
            src,
            b,
            key("burst"),
            1..=MAX,
            "a burst of at least 1",
            errors,
        )
    });
    let v4 = v4.map_or(Some(32), |v| v4_len(src, v, key("ipv4_prefix"), errors));
    let v6 = v6.map_or(Some(64), |v| v6_len(src, v, key("ipv6_prefix"), errors));
    Some(Bucket {
        rate: r? as u64,
        burst: b? as u64,
        v4: v4?,
        v6: v6?,
    })
}
