//! Parsing the prefixes operators type.
//!
//! A plain address means the host prefix (/32 or /128). Host bits after the
//! prefix length are cleared, as `ipset` and `nft` do, so `198.18.7.9/24` and
//! `198.18.7.0/24` name the same entry.

use std::net::IpAddr;

pub use ipnet::IpNet;

/// A token that is not an address or CIDR prefix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{token}` is not an IPv4/IPv6 address or CIDR prefix (e.g. 198.18.0.0/15, 2001:2::/48)")]
pub struct BadPrefix {
    pub token: String,
}

/// Parses an address or CIDR prefix.
pub fn parse_prefix(token: &str) -> Result<IpNet, BadPrefix> {
    let t = token.trim();
    let bad = || BadPrefix {
        token: token.to_owned(),
    };
    if t.is_empty() {
        return Err(bad());
    }
    if t.contains('/') {
        t.parse::<IpNet>().map(|n| n.trunc()).map_err(|_| bad())
    } else {
        t.parse::<IpAddr>().map(IpNet::from).map_err(|_| bad())
    }
}

/// Parses every token, or names every bad one.
pub fn parse_prefixes<S: AsRef<str>>(tokens: &[S]) -> Result<Vec<IpNet>, Vec<BadPrefix>> {
    let mut good = Vec::with_capacity(tokens.len());
    let mut bad = Vec::new();
    for t in tokens {
        match parse_prefix(t.as_ref()) {
            Ok(p) => good.push(p),
            Err(e) => bad.push(e),
        }
    }
    if bad.is_empty() { Ok(good) } else { Err(bad) }
}

/// Parses a prefix list: the first token of each line that is not blank or a
/// comment (`#` or `;` to the end of the line). Returns the prefixes, or every
/// bad line as (line number, error).
pub fn parse_prefix_list(text: &str) -> Result<Vec<IpNet>, Vec<(usize, BadPrefix)>> {
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.split(['#', ';']).next().unwrap_or("").trim();
        let Some(tok) = t.split_whitespace().next() else {
            continue;
        };
        match parse_prefix(tok) {
            Ok(p) => good.push(p),
            Err(e) => bad.push((i + 1, e)),
        }
    }
    if bad.is_empty() { Ok(good) } else { Err(bad) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_addresses_are_host_prefixes() {
        assert_eq!(
            parse_prefix("198.18.0.1").unwrap().to_string(),
            "198.18.0.1/32"
        );
        assert_eq!(
            parse_prefix("2001:2::1").unwrap().to_string(),
            "2001:2::1/128"
        );
    }

    #[test]
    fn host_bits_are_cleared() {
        assert_eq!(
            parse_prefix("198.18.7.9/24").unwrap().to_string(),
            "198.18.7.0/24"
        );
        assert_eq!(
            parse_prefix(" 2001:2::9/48 ").unwrap().to_string(),
            "2001:2::/48"
        );
    }

    #[test]
    fn prefix_lists_skip_comments_and_name_bad_lines() {
        let text = "# header\n198.18.0.0/24 ; SBL123\n\n2001:2::/48 # note\n  198.18.1.1\nnope\n";
        let good = parse_prefix_list(text.trim_end_matches("nope\n")).unwrap();
        assert_eq!(good.len(), 3);
        let bad = parse_prefix_list(text).unwrap_err();
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].0, 6);
    }

    #[test]
    fn bad_tokens_are_named() {
        for t in [
            "",
            "198.18.0.0/33",
            "198.18.0",
            "x",
            "2001:2::/129",
            "198.18.0.0/",
        ] {
            let e = parse_prefix(t).unwrap_err();
            assert_eq!(e.token, t);
            assert!(e.to_string().contains(&format!("`{t}`")));
        }
        let errs = parse_prefixes(&["198.18.0.1", "nope", "1.2.3.4/99"]).unwrap_err();
        assert_eq!(errs.len(), 2);
    }
}
