fn main() -> std::process::ExitCode {
    tinytown::cli::main(std::env::args_os())
}
