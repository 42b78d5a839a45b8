//! The `enforcer` binary: a thin shell over the library's CLI.
fn main() -> std::process::ExitCode {
    enforcer::cli::main()
}
