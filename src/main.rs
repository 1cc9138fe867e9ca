//! `cargo-spec-exec`: parse the arguments, call the library, exit with its code.

fn main() {
    let code = cargo_spec_exec::main_with_args(std::env::args_os().collect());
    std::process::exit(code);
}
