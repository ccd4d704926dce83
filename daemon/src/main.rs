//! The `tierd` binary: see [`tierd_daemon::cli`].

fn main() -> std::process::ExitCode {
    tierd_daemon::cli::main()
}
