//! The `relance` binary: parse the command line, run it, map the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser;

// Rule evaluation and row decoding allocate many small, short-lived values: mimalloc
// serves them markedly faster than the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Keeps the allocator's memory in normal pages: mimalloc asks Linux for transparent
/// huge pages on its arenas, and a huge page counts in full in the resident set as soon
/// as one byte of it is touched (some 50 MB more in a tick, for no measurable gain in
/// speed). Set before the runtime starts its threads; later faults follow it.
fn tune_allocator() {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl with PR_SET_THP_DISABLE only sets a flag of this process.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

fn main() -> ExitCode {
    tune_allocator();
    relance::panics::install_hook();
    let cli = relance::cli::Cli::parse();
    // A command whose output is piped into `head` stops quietly when the reader goes
    // away, as Unix tools do. The service keeps ignoring SIGPIPE: a peer closing a
    // socket must never kill it.
    #[cfg(unix)]
    if !matches!(cli.command, relance::cli::Command::Serve(_)) {
        // SAFETY: called before any other thread exists; restores the default action.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
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
    match runtime.block_on(relance::cli::run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("relance: {}", e.message());
            ExitCode::from(e.exit_code())
        }
    }
}
