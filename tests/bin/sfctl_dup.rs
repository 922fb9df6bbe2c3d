//! `sfctl` under another name, so the e2e tests find it through `CARGO_BIN_EXE_sfctl-dup`.

fn main() -> std::process::ExitCode {
    sfctl_cli::main()
}
