//! `cargo xtask setup`: idempotent installation of what builds and tests need.
//!
//! Follows ../shared/notes/TOOLCHAIN.md: Debian's rustc ships a prebuilt `core`
//! for bpfel-unknown-none (libstd-rust-web-dev-bpf), bpf-linker is built
//! against LLVM 22, and the Debian toolchain is linked into rustup as
//! `debian-bpf`. Each step checks first and does nothing when already done.

use std::{path::Path, process::Command};

use anyhow::Context as _;

use crate::util::{output, run as exec};

/// Packages the build needs.
const BUILD_PKGS: &[&str] = &[
    "rustc-web",
    "cargo-web",
    "libstd-rust-web-dev-bpf",
    "llvm-22-dev",
    "libpolly-22-dev",
    "bpftool",
    "iproute2",
];

/// Packages the tests need (real clients and tools in namespaces).
/// (curl and util-linux's nsenter/setpriv drive namespaces and clients; tmux
/// drives `enforcer top` in a terminal; prometheus brings promtool.)
const TEST_PKGS: &[&str] = &[
    "curl",
    "util-linux",
    "tmux",
    "prometheus",
    "systemd",
    "wrk",
    "ethtool",
];

const BPF_LINKER_VERSION: &str = "0.13.0";

pub fn run_apt(pkgs: &[&str]) -> anyhow::Result<()> {
    let missing: Vec<&str> = pkgs
        .iter()
        .copied()
        .filter(|p| {
            !output("dpkg-query", &["-W", "-f=${Status}", p])
                .is_some_and(|s| s.contains("install ok installed"))
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("xtask: installing {}", missing.join(" "));
    exec(Command::new("apt-get").args(["update", "-qq"]))?;
    exec(
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args([
                "install",
                "-y",
                "-qq",
                "--no-install-recommends",
                "-o",
                "DPkg::Lock::Timeout=600",
            ])
            .args(&missing),
    )
}

fn bpf_linker() -> anyhow::Result<()> {
    let want = format!("bpf-linker {BPF_LINKER_VERSION}");
    if output("bpf-linker", &["--version"]).is_some_and(|v| v.trim() == want) {
        return Ok(());
    }
    exec(
        Command::new("cargo")
            .env("LLVM_PREFIX", "/usr/lib/llvm-22")
            .env("LLVM_SYS_221_PREFIX", "/usr/lib/llvm-22")
            .args([
                "install",
                "--locked",
                "bpf-linker",
                "--version",
                BPF_LINKER_VERSION,
                "--no-default-features",
                "--features",
                "llvm-22",
            ]),
    )
}

fn toolchain() -> anyhow::Result<()> {
    let linked = output("rustup", &["toolchain", "list"])
        .is_some_and(|l| l.lines().any(|t| t.starts_with("debian-bpf")));
    if linked {
        return Ok(());
    }
    exec(Command::new("rustup").args(["toolchain", "link", "debian-bpf", "/usr"]))
}

fn bpffs() -> anyhow::Result<()> {
    let mounted = std::fs::read_to_string("/proc/mounts")
        .context("reading /proc/mounts")?
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some("/sys/fs/bpf") && l.contains(" bpf "));
    if mounted || !Path::new("/sys/fs/bpf").exists() {
        return Ok(());
    }
    exec(Command::new("mount").args(["-t", "bpf", "bpf", "/sys/fs/bpf"]))
}

/// CrowdSec's LAPI for the bouncer tests. Its Debian package registers with
/// CrowdSec's online service in its post-install script, which fails offline
/// and leaves dpkg half-configured, so it is unpacked, never installed.
fn crowdsec() -> anyhow::Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/peers/crowdsec");
    if root.join("root/usr/bin/crowdsec").exists() {
        return Ok(());
    }
    run_apt(&["libsqlite3-0", "ca-certificates"])?;
    std::fs::create_dir_all(&root)?;
    let got = Command::new("apt-get")
        .args(["download", "crowdsec"])
        .current_dir(&root)
        .status();
    if !got.is_ok_and(|s| s.success()) {
        exec(Command::new("apt-get").args(["update", "-qq"]))?;
        exec(
            Command::new("apt-get")
                .args(["download", "crowdsec"])
                .current_dir(&root),
        )?;
    }
    let deb = std::fs::read_dir(&root)?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .context("apt-get download crowdsec left no .deb")?;
    exec(
        Command::new("dpkg-deb")
            .arg("-x")
            .arg(&deb)
            .arg(root.join("root")),
    )
}

pub fn run() -> anyhow::Result<()> {
    let mut pkgs = BUILD_PKGS.to_vec();
    pkgs.extend_from_slice(TEST_PKGS);
    run_apt(&pkgs)?;
    bpf_linker()?;
    toolchain()?;
    bpffs()?;
    crowdsec()?;
    eprintln!("xtask: setup complete");
    Ok(())
}
