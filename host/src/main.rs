fn main() -> std::process::ExitCode {
    potter_config::cli::main()
}
