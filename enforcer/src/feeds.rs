//! Reading blocklist feed files: FireHOL netsets, Spamhaus DROP (text and
//! JSON lines), plain prefix lists.

use ipnet::IpNet;

use crate::{config::FeedFormat, net::parse_prefix};

/// What a feed file held.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// Prefixes, aggregated: overlapping and adjacent ones merged.
    pub prefixes: Vec<IpNet>,
    /// Prefixes as listed, before aggregation.
    pub listed: usize,
    /// Lines that could not be read: (line number, why).
    pub bad: Vec<(usize, String)>,
}

fn looks_like_json(text: &str) -> bool {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
        .is_some_and(|l| l.starts_with('{'))
}

/// Parses a feed's text.
pub fn parse(text: &str, format: FeedFormat) -> Parsed {
    let json = match format {
        FeedFormat::SpamhausJson => true,
        FeedFormat::Auto => looks_like_json(text),
        _ => false,
    };
    let mut out = Parsed::default();
    let mut v = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if json {
            let l = line.trim();
            if l.is_empty() {
                continue;
            }
            match serde_json::from_str::<serde_json::Value>(l) {
                Ok(obj) => match obj.get("cidr").and_then(|c| c.as_str()) {
                    Some(c) => match parse_prefix(c) {
                        Ok(p) => v.push(p),
                        Err(e) => out.bad.push((n, e.to_string())),
                    },
                    // Spamhaus ends with a metadata record: not a prefix.
                    None if obj.get("type").and_then(|t| t.as_str()) == Some("metadata") => {}
                    None => out.bad.push((n, "a JSON record without \"cidr\"".into())),
                },
                Err(e) => out.bad.push((n, format!("not JSON: {e}"))),
            }
            continue;
        }
        let t = line.split(['#', ';']).next().unwrap_or("").trim();
        let Some(tok) = t.split_whitespace().next() else {
            continue;
        };
        match parse_prefix(tok) {
            Ok(p) => v.push(p),
            Err(e) => out.bad.push((n, e.to_string())),
        }
    }
    out.listed = v.len();
    out.prefixes = IpNet::aggregate(&v);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn firehol_netset() {
        let t = "#\n# firehol_level1\n#\n198.18.0.0/24\n198.18.1.0/24\n198.18.5.5\n2001:2::/48\n";
        let p = parse(t, FeedFormat::Auto);
        // The two /24s are adjacent: one /23.
        let s: Vec<String> = p.prefixes.iter().map(ToString::to_string).collect();
        assert_eq!(s, ["198.18.0.0/23", "198.18.5.5/32", "2001:2::/48"]);
        assert_eq!(p.listed, 4);
        assert!(p.bad.is_empty());
    }

    #[test]
    fn spamhaus_text_and_json() {
        let t =
            "; Spamhaus DROP List 2026/12/04\n198.18.16.0/20 ; SBL256894\n198.18.20.0/24 ; SBL1\n";
        let p = parse(t, FeedFormat::Spamhaus);
        assert_eq!(p.prefixes.len(), 1, "the /24 lies inside the /20");
        let j = "{\"cidr\":\"198.18.16.0/20\",\"sblid\":\"SBL256894\",\"rir\":\"apnic\"}\n{\"cidr\":\"2001:2:8::/48\",\"sblid\":\"SBL2\"}\n{\"type\":\"metadata\",\"timestamp\":1733300000,\"size\":2,\"records\":2}\n";
        let p = parse(j, FeedFormat::Auto);
        assert_eq!(p.prefixes.len(), 2);
        assert!(p.bad.is_empty(), "{:?}", p.bad);
    }

    #[test]
    fn bad_lines_are_reported_and_skipped() {
        let p = parse(
            "198.18.0.1\nnot-an-address\n198.18.0.3\n",
            FeedFormat::Plain,
        );
        assert_eq!(p.prefixes.len(), 2);
        assert_eq!(p.bad[0].0, 2);
        let p = parse("{\"cidr\":\"x\"}\n{}\n{oops\n", FeedFormat::SpamhausJson);
        assert_eq!(p.bad.iter().map(|b| b.0).collect::<Vec<_>>(), [1, 2, 3]);
    }
}
