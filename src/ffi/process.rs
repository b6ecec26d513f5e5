//! Settings of the process that only C interfaces reach.

/// Keeps the allocator's memory in normal pages: mimalloc asks Linux for transparent
/// huge pages on its arenas, and a huge page counts in full in the resident set as soon
/// as one byte of it is touched (some 50 MB more in a tick, for no measurable gain in
/// speed). Call it before the runtime starts its threads; later faults follow it.
pub fn keep_transparent_huge_pages_off() {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl with PR_SET_THP_DISABLE only sets a flag of this process.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

/// Restores the default action of SIGPIPE (the Rust runtime ignores it): a command whose
/// output is piped into `head` then stops quietly when the reader goes away, as Unix
/// tools do. Call it before any other thread exists. The service must not: a peer
/// closing a socket must never kill it.
pub fn restore_default_sigpipe() {
    #[cfg(unix)]
    // SAFETY: called before any other thread exists; restores the default action.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
