//! Compiling routes into route-trie entries.
//!
//! Why a compile step: a request can be matched by routes of four kinds —
//! (method, host), (any method, host), (method, any host), (any, any) — and
//! each kind is one trie lookup, about 75 ns with a thousand routes. Copying
//! the any-method routes under every method that has routes of its own
//! ("merging") lets a request whose method has routes skip the any-method
//! lookups: one or two lookups instead of up to four. When the copies would
//! not fit the trie, routes are installed as written and every lookup runs.

use std::collections::HashSet;

use enforcer_common::{
    http::METHOD_ANY,
    route::{
        ACTIVE_MERGED, COMBO_ANY, COMBO_HOST, COMBO_METHOD, COMBO_METHOD_HOST, MAX_ROUTES,
        ROUTE_KEY_DATA, RouteValue, host_bit,
    },
};

use super::RouteSpec;

/// One trie entry: key data, prefix length in bits, value.
pub type Entry = ([u8; ROUTE_KEY_DATA], u32, RouteValue);

/// Routes ready for the kernel.
#[derive(Debug, Clone, Default)]
pub struct Compiled {
    pub entries: Vec<Entry>,
    /// `COMBO_*` bits of the kinds present, and `ACTIVE_MERGED`.
    pub active_bits: u32,
    pub method_bits: u32,
    pub host_bits: u64,
}

fn host_of(data: &[u8; ROUTE_KEY_DATA]) -> u32 {
    u32::from_be_bytes([data[1], data[2], data[3], data[4]])
}

fn combo(data: &[u8; ROUTE_KEY_DATA]) -> u32 {
    match (data[0] != METHOD_ANY, host_of(data) != 0) {
        (true, true) => COMBO_METHOD_HOST,
        (true, false) => COMBO_METHOD,
        (false, true) => COMBO_HOST,
        (false, false) => COMBO_ANY,
    }
}

/// Compiles `routes` (route ids are their indices), merging when the trie
/// has room for it (`capacity` entries).
pub fn compile(routes: &[RouteSpec], capacity: usize) -> Compiled {
    let plain: Vec<Entry> = routes
        .iter()
        .enumerate()
        .map(|(i, r)| r.compile(i as u32))
        .collect();
    let mut c = Compiled::default();
    for (data, ..) in &plain {
        if data[0] != METHOD_ANY {
            c.method_bits |= 1 << data[0];
        }
        if host_of(data) != 0 {
            c.host_bits |= host_bit(host_of(data));
        }
    }
    let taken: HashSet<([u8; ROUTE_KEY_DATA], u32)> =
        plain.iter().map(|(d, bits, _)| (*d, *bits)).collect();
    let mut copies = Vec::new();
    for (data, bits, value) in plain.iter().filter(|(d, ..)| d[0] == METHOD_ANY) {
        for m in 1..32u8 {
            if c.method_bits & (1 << m) == 0 {
                continue;
            }
            let mut d = *data;
            d[0] = m;
            // A route of the method itself on the same key wins.
            if !taken.contains(&(d, *bits)) {
                copies.push((d, *bits, *value));
            }
        }
    }
    c.entries = plain;
    if c.entries.len() + copies.len() <= capacity {
        c.entries.extend(copies);
        c.active_bits |= ACTIVE_MERGED;
    }
    for (data, ..) in &c.entries {
        c.active_bits |= combo(data);
    }
    c
}

/// The default capacity: one route trie.
pub const CAPACITY: usize = MAX_ROUTES as usize;

#[cfg(test)]
mod tests {
    use enforcer_common::{
        http::{host_hash, method_id},
        route::lookup_plan,
    };
    use proptest::prelude::*;

    use super::*;

    fn spec(method: &str, host: Option<&str>, path: &str) -> RouteSpec {
        RouteSpec {
            name: format!("{method} {host:?} {path}"),
            method: method.into(),
            path: path.into(),
            host: host.map(str::to_owned),
            rate: 1,
            burst: 1,
            action: "drop".into(),
            ipv4_prefix: 32,
            ipv6_prefix: 64,
        }
    }

    /// What the program does: the planned lookups, in order, each a longest
    /// prefix match over the entries of one (method, host), a strictly
    /// longer path replacing the best so far.
    fn program_match(c: &Compiled, method: u8, host: u32, path: &[u8]) -> Option<u32> {
        let plan = lookup_plan(c.active_bits, c.method_bits, c.host_bits, method, host);
        let mut best: Option<RouteValue> = None;
        for (bit, m, h) in [
            (COMBO_METHOD_HOST, method, host),
            (COMBO_HOST, METHOD_ANY, host),
            (COMBO_METHOD, method, 0),
            (COMBO_ANY, METHOD_ANY, 0),
        ] {
            if plan & bit == 0 {
                continue;
            }
            let hit = c
                .entries
                .iter()
                .filter(|(d, _, v)| {
                    d[0] == m
                        && host_of(d) == h
                        && path.len() >= v.path_len as usize
                        && d[5..5 + v.path_len as usize] == path[..v.path_len as usize]
                })
                .max_by_key(|(_, _, v)| v.path_len)
                .map(|(_, _, v)| *v);
            if let Some(v) = hit
                && best.is_none_or(|b| v.path_len > b.path_len)
            {
                best = Some(v);
            }
        }
        best.map(|v| v.id)
    }

    /// The rule as documented: the longest path prefix among the routes whose
    /// method and host apply; then a host route; then a method route.
    fn rule_match(
        routes: &[RouteSpec],
        method: &str,
        host: Option<&str>,
        path: &str,
    ) -> Option<u32> {
        routes
            .iter()
            .enumerate()
            .filter(|(_, r)| {
                (r.method == "*" || r.method == method)
                    && r.host.as_deref().is_none_or(|h| Some(h) == host)
                    && path.starts_with(&r.path)
            })
            .max_by_key(|(i, r)| {
                (
                    r.path.len(),
                    r.host.is_some(),
                    r.method != "*",
                    usize::MAX - i,
                )
            })
            .map(|(i, _)| i as u32)
    }

    #[test]
    fn merging_copies_any_method_routes_under_each_method() {
        let routes = vec![
            spec("POST", None, "/login"),
            spec("*", None, "/"),
            spec("*", None, "/login"),
            spec("GET", Some("a.test"), "/x"),
        ];
        let c = compile(&routes, CAPACITY);
        assert_ne!(c.active_bits & ACTIVE_MERGED, 0);
        // 4 routes + "/" under POST and GET + "/login" under GET only
        // (POST /login exists).
        assert_eq!(c.entries.len(), 7);
        // Without room, routes are installed as written.
        let c = compile(&routes, 5);
        assert_eq!((c.entries.len(), c.active_bits & ACTIVE_MERGED), (4, 0));
    }

    proptest! {
        /// The program's lookups find the route the documented rule picks,
        /// merged or not, on random route sets and requests.
        #[test]
        fn the_program_matches_the_rule(
            routes in proptest::collection::vec(
                (
                    proptest::sample::select(vec!["*", "GET", "POST"]),
                    proptest::option::of(proptest::sample::select(vec!["a.test", "b.test"])),
                    "/[ab]{0,3}",
                ),
                1..12,
            ),
            requests in proptest::collection::vec(
                (
                    proptest::sample::select(vec!["GET", "POST", "PUT"]),
                    proptest::option::of(proptest::sample::select(vec!["a.test", "b.test", "c.test"])),
                    "/[ab]{0,4}",
                ),
                1..20,
            ),
            capacity in prop_oneof![Just(CAPACITY), Just(0usize)],
        ) {
            // One route per (method, host, path), as the config enforces.
            let mut seen = HashSet::new();
            let routes: Vec<RouteSpec> = routes
                .into_iter()
                .filter(|r| seen.insert(r.clone()))
                .map(|(m, h, p)| spec(m, h, &p))
                .collect();
            let c = compile(&routes, capacity.max(routes.len()));
            for (m, h, path) in &requests {
                let got = program_match(
                    &c,
                    method_id(m).unwrap(),
                    h.map_or(0, host_hash),
                    path.as_bytes(),
                );
                prop_assert_eq!(got, rule_match(&routes, m, *h, path), "{} {:?} {}", m, h, path);
            }
        }
    }
}
