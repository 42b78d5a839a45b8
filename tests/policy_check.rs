//! `enforcer policy check`: every class of error, with its message.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use enforcer_tests::agent::binary;

struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Self {
        let d = std::env::temp_dir().join(format!("enforcer-check-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("conf.d")).unwrap();
        Self(d)
    }
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `enforcer policy check FILE`.
fn policy_check(f: &Path) -> Output {
    Command::new(binary())
        .args(["policy", "check"])
        .arg(f)
        .output()
        .unwrap()
}

/// Runs `policy check` on a one-file policy; returns (exit code, stderr).
fn check(tag: &str, text: &str) -> (i32, String, PathBuf) {
    let d = Dir::new(tag);
    let f = d.write("enforcer.toml", text);
    let out = policy_check(&f);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        f,
    )
}

fn assert_error(tag: &str, text: &str, want: &str) {
    let (code, err, f) = check(tag, text);
    assert_eq!(code, 1, "{tag}: exit code; stderr: {err}");
    let want = want.replace("FILE", &f.display().to_string());
    assert!(err.contains(&want), "{tag}: expected\n  {want}\nin\n{err}");
}

#[test]
fn a_valid_policy_passes_with_exit_0() {
    let d = Dir::new("valid");
    let f = d.write(
        "enforcer.toml",
        "[agent]\ninterfaces = [\"eth0\"]\n[blocklist]\nprefixes = [\"198.18.0.0/24\"]\n",
    );
    d.write(
        "conf.d/10-limits.toml",
        "[[ratelimit.limits]]\nname = \"pps\"\nrate = 100\n",
    );
    let out = policy_check(&f);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        s.contains("valid (2 file(s)") && s.contains("1 rate-limit tier(s)"),
        "{s}"
    );
}

#[test]
fn syntax_errors() {
    assert_error(
        "syntax",
        "[agent\ninterfaces = []\n",
        "FILE:1:7: `agent`: unclosed table, expected `]`",
    );
    assert_error(
        "syntax-value",
        "[agent]\ninterfaces = [\"eth0\"\n",
        "FILE:2:21: `agent.interfaces`: unclosed array, expected `]`",
    );
}

#[test]
fn unknown_keys() {
    assert_error(
        "unknown",
        "[agent]\nintefaces = [\"eth0\"]\n",
        "FILE:2:1: `agent.intefaces`: unknown field `intefaces`, expected one of `interfaces`",
    );
    assert_error(
        "unknown-table",
        "[blocklst]\n",
        "FILE:1:2: `blocklst`: unknown field `blocklst`",
    );
}

#[test]
fn wrong_types() {
    assert_error(
        "type",
        "[agent]\nsocket = 5\n",
        "FILE:2:10: `agent.socket`: invalid type: integer `5`, expected a string",
    );
}

#[test]
fn missing_required_keys() {
    assert_error(
        "missing",
        "[[ratelimit.limits]]\nname = \"pps\"\n",
        "FILE:1:1: `ratelimit.limits`: missing field `rate`",
    );
}

#[test]
fn bad_values() {
    let cases = [
        (
            "route-empty-prefix",
            "[[routes]]\nname = \"login\"\npath = \"\"\nrate = 5\n",
            "FILE:3:8: `routes[0].path`: found \"\"; expected a path prefix starting with '/' (e.g. \"/login\", \"/api/\"), or \"*\"",
        ),
        (
            "route-no-slash",
            "[[routes]]\nname = \"login\"\npath = \"login\"\nrate = 5\n",
            "FILE:3:8: `routes[0].path`: found \"login\"; expected a path prefix starting with '/'",
        ),
        (
            "route-method",
            "[[routes]]\nname = \"login\"\nmethod = \"post\"\npath = \"/login\"\nrate = 5\n",
            "FILE:3:10: `routes[0].method`: found \"post\"; expected one of GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE, PATCH (uppercase, as on the wire) or \"any\"",
        ),
        (
            "route-action",
            "[[routes]]\nname = \"login\"\npath = \"/login\"\nrate = 5\naction = \"block\"\n",
            "FILE:5:10: `routes[0].action`: found \"block\"; expected \"drop\", \"reject\" (TCP reset) or \"monitor\"",
        ),
        (
            "response-status",
            "[[detect.responses]]\nname = \"x\"\nstatus = 200\nmore_than = 5\nwithin = \"1m\"\nban_time = \"1h\"\n",
            "FILE:3:10: `detect.responses[0].status`",
        ),
        (
            "prefix",
            "[blocklist]\nprefixes = [\"198.18.0.0/33\"]\n",
            "FILE:2:13: `blocklist.prefixes[0]`: found \"198.18.0.0/33\"; expected an IPv4 or IPv6 address or CIDR prefix",
        ),
        (
            "enum",
            "[agent]\nxdp_mode = \"fast\"\n",
            "FILE:2:12: `agent.xdp_mode`: found \"fast\"; expected \"native\", \"generic\" or \"auto\"",
        ),
        (
            "range",
            "[maps]\nblocklist_v4 = 0\n",
            "FILE:2:16: `maps.blocklist_v4`: found 0; expected a number of entries from 1 to 100000000",
        ),
        (
            "rate",
            "[[ratelimit.limits]]\nname = \"p\"\nrate = -5\n",
            "FILE:3:8: `ratelimit.limits[0].rate`: found -5; expected a rate in events per second",
        ),
        (
            "burst",
            "[[ratelimit.limits]]\nname = \"p\"\nrate = 5\nburst = 0\n",
            "FILE:4:9: `ratelimit.limits[0].burst`: found 0; expected a burst of at least 1",
        ),
        (
            "tier",
            "[[ratelimit.limits]]\nname = \"p\"\nrate = 5\nipv6_prefix = 129\n",
            "FILE:4:15: `ratelimit.limits[0].ipv6_prefix`: found 129; expected an IPv6 prefix length from 1 to 128",
        ),
        (
            "duration",
            "[ratelimit.ban]\nban_time = \"a while\"\n",
            "FILE:2:12: `ratelimit.ban.ban_time`: found \"a while\"; expected a duration",
        ),
        (
            "path",
            "[agent]\nstate_dir = \"var/lib\"\n",
            "FILE:2:13: `agent.state_dir`: found \"var/lib\"; expected an absolute path",
        ),
        (
            "listen",
            "[metrics]\nlisten = \"localhost\"\n",
            "FILE:2:10: `metrics.listen`: found \"localhost\"; expected an address and port",
        ),
        (
            "feed",
            "[[feeds]]\nname = \"f\"\npath = \"/x\"\nformat = \"csv\"\n",
            "FILE:4:10: `feeds[0].format`: found \"csv\"; expected \"auto\", \"netset\", \"plain\", \"spamhaus\" or \"spamhaus-json\"",
        ),
        (
            "crowdsec",
            "[crowdsec]\nurl = \"ftp://x\"\napi_key = \"k\"\n",
            "FILE:2:7: `crowdsec.url`: found \"ftp://x\"; expected the Local API's URL",
        ),
    ];
    for (tag, text, want) in cases {
        assert_error(tag, text, want);
    }
}

#[test]
fn too_many_tiers() {
    let mut t = String::new();
    for i in 0..9 {
        t.push_str(&format!(
            "[[ratelimit.limits]]\nname = \"l{i}\"\nrate = 5\n"
        ));
    }
    assert_error(
        "tiers",
        &t,
        "`ratelimit.limits`: 9 limit tiers in all; expected at most 8",
    );
}

#[test]
fn conflicts_between_files_name_both() {
    let d = Dir::new("conflict");
    let f = d.write(
        "enforcer.toml",
        "[[feeds]]\nname = \"drop\"\npath = \"/a\"\n",
    );
    let g = d.write(
        "conf.d/50-more.toml",
        "[[feeds]]\nname = \"drop\"\npath = \"/b\"\n",
    );
    let out = policy_check(&f);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let want = format!(
        "{}:2:8: `feeds[0].name`: feed \"drop\" is already defined at {}:2:8",
        g.display(),
        f.display()
    );
    assert!(err.contains(&want), "{err}");
    // --no-drop-ins checks the main file alone.
    let out = Command::new(binary())
        .args(["policy", "check", "--no-drop-ins"])
        .arg(&f)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn unreadable_files() {
    let d = Dir::new("missing");
    let f = d.0.join("absent.toml");
    let out = policy_check(&f);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "{}:0:0: cannot read the file: No such file or directory",
            f.display()
        )),
        "{err}"
    );
}

#[test]
fn every_error_is_reported_with_a_count() {
    let (code, err, _) = check(
        "many",
        "[agent]\nxdp_mode = \"x\"\n[blocklist]\nprefixes = [\"a\", \"b\"]\n",
    );
    assert_eq!(code, 1);
    assert!(err.contains("3 error(s); the policy is not valid"), "{err}");
}
