//! The `demls` command (see the `demls` library).

fn main() -> std::process::ExitCode {
    demls::main()
}
