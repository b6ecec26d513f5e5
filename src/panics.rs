//! Panics contained to one unit of work. A defect met while evaluating one customer
//! (or delivering one action) must not stop the work of the others: [`contain`] runs a
//! unit of work and turns a panic into an error message, and the process-wide hook
//! ([`install_hook`]) stays quiet for panics a caller contains, so nothing but the
//! caller's own report (a rule error, a failed tick) reaches the user.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};

thread_local! {
    /// Set while [`contain`] runs a unit of work on this thread.
    static CONTAINED: Cell<bool> = const { Cell::new(false) };
}

/// The message a panic was raised with.
fn message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown cause".into())
}

/// Runs `work`; a panic inside it becomes `Err` with the panic's message.
///
/// # Errors
/// `internal error: MESSAGE` when `work` panicked.
pub fn contain<T>(work: impl FnOnce() -> T) -> Result<T, String> {
    let outer = CONTAINED.with(|c| c.replace(true));
    let result = catch_unwind(AssertUnwindSafe(work));
    CONTAINED.with(|c| c.set(outer));
    result.map_err(|p| format!("internal error: {}", message(p.as_ref())))
}

/// Installs the process's panic hook: a panic that [`contain`] catches is reported by
/// its caller, so the hook says nothing; any other one is logged and printed as one
/// line (never a backtrace) asking for a report.
pub fn install_hook() {
    std::panic::set_hook(Box::new(|info| {
        if CONTAINED.with(Cell::get) {
            return;
        }
        let msg = message(info.payload());
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        tracing::error!(error = %format!("{msg}{at}"), "internal error");
        eprintln!("relance: internal error: {msg}{at}; this is a bug, please report it");
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_contained_panic_is_an_error_and_the_thread_goes_on() {
        let r: Result<(), String> = contain(|| panic!("boom {}", 1));
        assert_eq!(r, Err("internal error: boom 1".into()));
        assert_eq!(contain(|| 2 + 2), Ok(4));
        assert!(!CONTAINED.with(Cell::get));
    }
}
