fn main() -> std::process::ExitCode {
    potter_cli::main()
}
