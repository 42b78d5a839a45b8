use std::path::Path;

use super::*;

fn parse(text: &str) -> Result<Config, ConfigErrors> {
    Config::parse(Path::new("/etc/enforcer/enforcer.toml"), text)
}

fn one_error(text: &str) -> String {
    let errs = parse(text).unwrap_err();
    assert_eq!(errs.0.len(), 1, "{errs}");
    errs.0[0].to_string()
}

#[test]
fn a_full_valid_file() {
    let c = parse(
        r#"
[agent]
interfaces = ["veth0", "eth1"]
xdp_mode = "auto"
socket = "/run/x.sock"
state_dir = "/var/lib/x"
bpffs = "/sys/fs/bpf/x"
admin_group = "sre"

[maps]
blocklist_v4 = 1000
allowlist = 10

[allowlist]
prefixes = ["198.18.0.1"]

[blocklist]
reason = "known bad"
prefixes = ["198.18.66.0/24", { prefix = "2001:2:66::/48", reason = "scanner" }]
"#,
    )
    .unwrap();
    assert_eq!(c.interfaces, ["veth0", "eth1"]);
    assert_eq!(c.xdp_mode, XdpModeChoice::Auto);
    assert_eq!(c.capacity_block_v4, 1000);
    assert_eq!(c.capacity_block_v6, m::DEFAULT_BLOCK_V6_ENTRIES);
    assert_eq!(c.allow[0].0.to_string(), "198.18.0.1/32");
    assert_eq!(c.block[0].1, "known bad");
    assert_eq!(c.block[1].1, "scanner");
    let mut empty = parse("").unwrap();
    empty.files.clear();
    assert_eq!(empty, Config::default());
}

#[test]
fn bad_prefix_is_located() {
    let e = one_error("[blocklist]\nprefixes = [\"198.18.0.0/24\",\n  \"198.18.0.0/40\"]\n");
    assert_eq!(
        e,
        "/etc/enforcer/enforcer.toml:3:3: `blocklist.prefixes[1]`: found \"198.18.0.0/40\"; \
         expected an IPv4 or IPv6 address or CIDR prefix (e.g. \"198.18.0.0/15\", \
         \"2001:2::/48\"), or { prefix = \"...\", reason = \"...\" }"
    );
}

#[test]
fn unknown_key_is_located() {
    let e = one_error("[agent]\ninterfaces = [\"eth0\"]\nintefaces = [\"eth1\"]\n");
    assert!(
        e.starts_with(
            "/etc/enforcer/enforcer.toml:3:1: `agent.intefaces`: unknown field `intefaces`"
        ),
        "{e}"
    );
    assert!(e.contains("expected one of"), "{e}");
    let e = one_error("[blocklst]\nprefixes = []\n");
    assert!(
        e.contains(":1:") && e.contains("unknown field `blocklst`"),
        "{e}"
    );
}

#[test]
fn wrong_types_and_values_are_located() {
    let e = one_error("[agent]\nxdp_mode = \"fast\"\n");
    assert_eq!(
        e,
        "/etc/enforcer/enforcer.toml:2:12: `agent.xdp_mode`: found \"fast\"; expected \"native\", \
         \"generic\" or \"auto\""
    );
    let e = one_error("[maps]\nblocklist_v4 = 0\n");
    assert!(
        e.contains(":2:16: `maps.blocklist_v4`: found 0; expected a number of entries"),
        "{e}"
    );
    let e = one_error("[agent]\nsocket = 5\n");
    assert!(
        e.contains(":2:10: `agent.socket`: invalid type: integer `5`, expected a string"),
        "{e}"
    );
    let e = one_error("[agent]\nstate_dir = \"relative/dir\"\n");
    assert!(e.contains("expected an absolute path"), "{e}");
}

#[test]
fn every_problem_is_reported_at_once() {
    let errs = parse(
        "[agent]\nxdp_mode = \"x\"\ninterfaces = [\"\"]\n[allowlist]\nprefixes = [\"nope\"]\n",
    )
    .unwrap_err();
    assert_eq!(errs.0.len(), 3, "{errs}");
}

#[test]
fn syntax_errors_are_located() {
    let e = one_error("[agent]\ninterfaces = [\"eth0\"\n");
    assert!(e.starts_with("/etc/enforcer/enforcer.toml:"), "{e}");
}

#[test]
fn rate_limits_with_tiers() {
    let c = parse(
        r#"
[ratelimit]
report_interval = "500ms"

[[ratelimit.limits]]
name = "packets"
rate = 1000
burst = 2000
[[ratelimit.limits.tiers]]
ipv4_prefix = 24
ipv6_prefix = 48
rate = 5000

[[ratelimit.limits]]
name = "new-connections"
kind = "syn"
rate = 20
mode = "monitor"

[ratelimit.ban]
after = 3
within = "30s"
ban_time = "2m"
factor = 3.0
max_ban_time = "1h"
"#,
    )
    .unwrap();
    let r = &c.ratelimit;
    assert_eq!(r.rules.len(), 3);
    assert_eq!(
        (
            r.rules[0].ipv4_prefix,
            r.rules[0].ipv6_prefix,
            r.rules[0].burst
        ),
        (32, 64, 2000)
    );
    assert_eq!((r.rules[1].ipv4_prefix, r.rules[1].burst), (24, 5000));
    assert!(r.rules[2].monitor && r.rules[2].kind == "syn");
    assert_eq!(r.report_interval, std::time::Duration::from_millis(500));
    assert_eq!(r.ban.ban_length(1).as_secs(), 120);
    assert_eq!(r.ban.ban_length(2).as_secs(), 360);
    assert_eq!(r.ban.ban_length(9).as_secs(), 3600);
}

#[test]
fn bad_rate_limits_are_located() {
    let cases = [
        (
            "rate = -5",
            "found -5; expected a rate in events per second",
        ),
        ("rate = 0", "found 0; expected a rate in events per second"),
        (
            "rate = 10\nburst = 0",
            "found 0; expected a burst of at least 1",
        ),
        (
            "rate = 10\nipv4_prefix = 33",
            "found 33; expected an IPv4 prefix length from 1 to 32",
        ),
        (
            "rate = 10\nipv6_prefix = 0",
            "found 0; expected an IPv6 prefix length from 1 to 128",
        ),
        (
            "rate = 10\nkind = \"udp\"",
            "found \"udp\"; expected \"packets\" or \"syn\"",
        ),
        (
            "rate = 10\nmode = \"dry\"",
            "found \"dry\"; expected \"enforce\" or \"monitor\"",
        ),
        ("rate = 10\nburts = 5", "unknown field `burts`"),
    ];
    for (body, want) in cases {
        let text = format!("[[ratelimit.limits]]\nname = \"x\"\n{body}\n");
        let e = one_error(&text);
        assert!(e.contains(want), "{body}: {e}");
        assert!(e.starts_with("/etc/enforcer/enforcer.toml:"), "{e}");
        let line: usize = e.split(':').nth(1).unwrap().parse().unwrap();
        assert!(line >= 3, "{body}: points at line {line}: {e}");
    }
    let e = one_error("[ratelimit.ban]\nwithin = \"soon\"\n");
    assert!(
        e.contains(":2:10: `ratelimit.ban.within`: found \"soon\"; expected a duration"),
        "{e}"
    );
}

fn dir_with(files: &[(&str, &str)]) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "enforcer-cfg-{}-{}",
        std::process::id(),
        files.len() * 1000 + files.first().map_or(0, |f| f.1.len())
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("conf.d")).unwrap();
    for (name, text) in files {
        std::fs::write(d.join(name), text).unwrap();
    }
    d
}

#[test]
fn drop_ins_merge_in_name_order() {
    let d = dir_with(&[
        (
            "enforcer.toml",
            "[agent]\ninterfaces = [\"eth0\"]\nxdp_mode = \"native\"\n[blocklist]\nprefixes = [\"198.18.1.0/24\"]\n",
        ),
        (
            "conf.d/20-later.toml",
            "[agent]\nxdp_mode = \"generic\"\n[blocklist]\nprefixes = [\"198.18.3.0/24\"]\n",
        ),
        (
            "conf.d/10-first.toml",
            "[agent]\nxdp_mode = \"auto\"\n[blocklist]\nprefixes = [\"198.18.2.0/24\"]\n[[ratelimit.limits]]\nname = \"a\"\nrate = 5\n",
        ),
        ("conf.d/notes.txt", "not a policy file"),
    ]);
    let c = Config::load(&d.join("enforcer.toml")).unwrap();
    // Scalars: the last file that sets one wins; lists: appended in order.
    assert_eq!(c.xdp_mode, XdpModeChoice::Generic);
    assert_eq!(c.interfaces, ["eth0"]);
    let blocks: Vec<String> = c.block.iter().map(|b| b.0.to_string()).collect();
    assert_eq!(blocks, ["198.18.1.0/24", "198.18.2.0/24", "198.18.3.0/24"]);
    assert_eq!(c.ratelimit.rules.len(), 1);
    assert_eq!(c.files.len(), 3);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_name_defined_in_two_files_is_a_conflict_naming_both() {
    let d = dir_with(&[
        (
            "enforcer.toml",
            "[[ratelimit.limits]]\nname = \"pps\"\nrate = 5\n",
        ),
        (
            "conf.d/10-x.toml",
            "\n[[ratelimit.limits]]\nname = \"pps\"\nrate = 9\n",
        ),
    ]);
    let errs = Config::load(&d.join("enforcer.toml")).unwrap_err();
    assert_eq!(errs.0.len(), 1, "{errs}");
    let e = errs.0[0].to_string();
    assert!(
        e.starts_with(&format!(
            "{}:3:8: `ratelimit.limits[0].name`",
            d.join("conf.d/10-x.toml").display()
        )),
        "{e}"
    );
    assert!(
        e.contains(&format!(
            "already defined at {}:2:8",
            d.join("enforcer.toml").display()
        )),
        "{e}"
    );
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn errors_of_every_file_are_reported_together() {
    let d = dir_with(&[
        ("enforcer.toml", "[agent]\nxdp_mode = \"turbo\"\n"),
        ("conf.d/10-x.toml", "[blocklist]\nprefixes = [\"nope\"]\n"),
    ]);
    let errs = Config::load(&d.join("enforcer.toml")).unwrap_err();
    assert_eq!(errs.0.len(), 2, "{errs}");
    assert!(errs.0[0].file.ends_with("enforcer.toml") && errs.0[1].file.ends_with("10-x.toml"));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn feeds_and_crowdsec() {
    let c = parse(
        "[[feeds]]\nname = \"drop\"\npath = \"/var/lib/enforcer/drop.txt\"\nformat = \"spamhaus\"\n\n[crowdsec]\nurl = \"http://127.0.0.1:8080/\"\napi_key = \"k\"\npoll_interval = \"2s\"\n",
    )
    .unwrap();
    assert_eq!(c.feeds[0].format, FeedFormat::Spamhaus);
    assert_eq!(c.feeds[0].reason, "feed drop");
    let cs = c.crowdsec.unwrap();
    assert_eq!(
        (cs.url.as_str(), cs.poll_interval.as_secs()),
        ("http://127.0.0.1:8080", 2)
    );
    let e = one_error("[[feeds]]\nname = \"x\"\npath = \"relative.txt\"\n");
    assert!(
        e.contains(":3:8: `feeds[0].path`: found \"relative.txt\"; expected an absolute path"),
        "{e}"
    );
    let e = one_error("[[feeds]]\nname = \"x\"\npath = \"/x\"\nformat = \"csv\"\n");
    assert!(e.contains("`feeds[0].format`: found \"csv\""), "{e}");
    let e = one_error("[crowdsec]\nurl = \"http://127.0.0.1:8080\"\n");
    assert!(
        e.contains("found neither or both of api_key and api_key_file"),
        "{e}"
    );
}
