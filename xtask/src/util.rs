//! Running commands with clear failures.

use std::process::Command;

use anyhow::{Context as _, bail};

/// rustup's cargo must win over Debian's `/usr/bin/cargo` (installed by
/// cargo-web for the eBPF toolchain): put `~/.cargo/bin` first for children.
pub fn fix_path() {
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let cargo_bin = format!("{home}/.cargo/bin");
    let path = std::env::var("PATH").unwrap_or_default();
    if path.split(':').next().is_none_or(|p| p != cargo_bin) {
        // SAFETY: single-threaded at this point (before any command runs).
        unsafe { std::env::set_var("PATH", format!("{cargo_bin}:{path}")) };
    }
}

/// Runs a command, inheriting stdio; fails if it fails.
pub fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let shown = format!("{cmd:?}");
    eprintln!("xtask: {shown}");
    let st = cmd.status().with_context(|| format!("spawning {shown}"))?;
    if !st.success() {
        bail!("{shown} failed: {st}");
    }
    Ok(())
}

/// Runs a command and returns its stdout, or None if it cannot run or fails.
pub fn output(program: &str, args: &[&str]) -> Option<String> {
    let o = Command::new(program).args(args).output().ok()?;
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
}

pub fn cargo(args: &[&str]) -> anyhow::Result<()> {
    run(Command::new("cargo").args(args))
}
