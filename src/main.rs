//! The `kiln` command line: a thin layer over the library (see `kiln::cli`).

fn main() -> std::process::ExitCode {
    kiln::cli::main()
}
