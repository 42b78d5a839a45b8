//! `enforcer uninstall`: remove the pins, which stops enforcement.

use std::path::{Path, PathBuf};

use clap::Args;

use super::{EXIT_OK, fail};
use crate::config::DEFAULT_BPFFS;

#[derive(Debug, Args)]
pub struct UninstallArgs {
    /// Pin directory of the agent.
    #[arg(long, default_value = DEFAULT_BPFFS)]
    bpffs: PathBuf,
}

pub fn uninstall(socket: &Path, a: &UninstallArgs) -> u8 {
    if std::os::unix::net::UnixStream::connect(socket).is_ok() {
        return fail(format!(
            "an agent is running on {}; stop it first (its links would stay attached while it runs)",
            socket.display()
        ));
    }
    match crate::kernel::remove_pins(&a.bpffs) {
        Ok(n) => {
            println!(
                "removed {n} pin(s) under {}; enforcement is off",
                a.bpffs.display()
            );
            EXIT_OK
        }
        Err(e) => fail(format!("removing pins under {}: {e}", a.bpffs.display())),
    }
}
