fn main() -> std::process::ExitCode {
    sf_daemon::cli::main()
}
