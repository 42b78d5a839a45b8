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
    assert_eq!(parse("").unwrap(), Config::default());
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
