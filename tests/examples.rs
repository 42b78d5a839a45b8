//! Every shipped example policy is valid, and the systemd unit verifies.

use std::{path::PathBuf, process::Command};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn every_example_policy_is_valid() {
    let mut n = 0;
    for e in std::fs::read_dir(root().join("examples")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            enforcer::config::Config::load(&p).unwrap_or_else(|e| panic!("{}:\n{e}", p.display()));
            n += 1;
        }
    }
    assert!(
        n >= 4,
        "expected the demo policy and three starting policies, found {n}"
    );
    let feed = std::fs::read_to_string(root().join("examples/demo-feed.netset")).unwrap();
    assert!(enforcer::net::parse_prefix_list(&feed).is_ok());
}

#[test]
fn the_systemd_unit_verifies() {
    let unit = root().join("contrib/systemd/enforcer.service");
    // systemd-analyze checks that ExecStart exists: point it at the test binary.
    let text = std::fs::read_to_string(&unit).unwrap();
    let dir = std::env::temp_dir().join(format!("enforcer-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join("enforcer.service");
    std::fs::write(
        &copy,
        text.replace(
            "/usr/local/sbin/enforcer",
            enforcer_tests::agent::binary().to_str().unwrap(),
        ),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success() && err.trim().is_empty(),
        "systemd-analyze verify:\n{err}"
    );
}
