//! The `relance` binary: parse the command line, run it, map the outcome to an exit code.
#![deny(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

// Rule evaluation and row decoding allocate many small, short-lived values: mimalloc
// serves them markedly faster than the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    relance::ffi::process::keep_transparent_huge_pages_off();
    relance::panics::install_hook();
    let cli = relance::cli::Cli::parse();
    // A command whose output is piped into `head` stops quietly when the reader goes
    // away, as Unix tools do. The service keeps ignoring SIGPIPE: a peer closing a
    // socket must never kill it.
    if !matches!(cli.command, relance::cli::Command::Serve(_)) {
        relance::ffi::process::restore_default_sigpipe();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("relance: cannot start the async runtime: {e}");
            return ExitCode::from(relance::cli::exit::FAILURE);
        }
    };
    let outcome = runtime.block_on(relance::cli::run(cli));
    // The traces still buffered, when they are exported (OTLP).
    relance::telemetry::shutdown();
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("relance: {}", e.message());
            ExitCode::from(e.exit_code())
        }
    }
}
