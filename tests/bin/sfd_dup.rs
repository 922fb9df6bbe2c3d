//! `sfd` under another name, so the e2e tests find it through `CARGO_BIN_EXE_sfd-dup`.

fn main() -> std::process::ExitCode {
    sf_daemon::cli::main()
}
