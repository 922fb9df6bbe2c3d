fn main() -> std::process::ExitCode {
    sfctl_cli::main()
}
