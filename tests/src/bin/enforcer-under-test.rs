//! The enforcer CLI and agent, built as part of the test crate so integration
//! tests always run the current code (cargo builds a package's own binaries
//! for its tests, not its dependencies' binaries).
fn main() -> std::process::ExitCode {
    enforcer::cli::main()
}
