//! `relance serve`: the scheduler ([`crate::scheduler`]), the dispatch workers and the
//! rule reloader in one process, every loop shutdown-aware (a `CancellationToken`
//! checked between units of work, a `TaskTracker` awaited within a grace period).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::outbox::{Dispatcher, Step};
use crate::scripting::RuleRegistry;
use crate::store::{Store, StoreError};

/// How the service runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub dispatch_workers: usize,
    /// Time given to in-flight work at shutdown.
    pub grace: Duration,
    /// How often rule files are checked for changes.
    pub reload_every: Duration,
    /// Idle dispatch workers poll the queue this often.
    pub poll_every: Duration,
    pub instance: String,
}

async fn dispatch_worker(dispatcher: Arc<Dispatcher>, poll: Duration, cancel: CancellationToken) {
    while !cancel.is_cancelled() {
        match dispatcher.try_execute_once().await {
            Ok(Step::Idle) => {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(poll) => {}
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "dispatch failed; retrying shortly");
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(poll * 5) => {}
                }
            }
        }
    }
}

async fn reloader(registry: Arc<RuleRegistry>, every: Duration, cancel: CancellationToken) {
    #[cfg(unix)]
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    loop {
        #[cfg(unix)]
        let hup_fut = async {
            match hup.as_mut() {
                Some(h) => {
                    h.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let hup_fut = std::future::pending::<()>();
        let asked = tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(every) => false,
            _ = hup_fut => {
                tracing::info!("SIGHUP: reloading rule scripts");
                true
            }
        };
        // Each refused file (not compiling, empty, unreadable, not UTF-8, deleted) is
        // logged by the registry once per version, and counted; the previous version
        // keeps running.
        let report = registry.reload();
        if asked {
            // An operator asked: say again what is still refused.
            for e in &report.rejected {
                tracing::warn!(segment = %e.segment, file = %e.diagnostic.file, reason = %e.diagnostic.short(), "rule script still refused; the previous version keeps running");
            }
        }
    }
}

/// Runs the service until `shutdown` completes, then stops claiming work and gives
/// in-flight work `grace` to finish.
///
/// # Errors
/// A database error at start.
pub async fn launch(
    config: Arc<Config>,
    store: Arc<dyn Store>,
    registry: Arc<RuleRegistry>,
    dispatcher: Arc<Dispatcher>,
    opts: ServeOptions,
    http: Option<(tokio::net::TcpListener, crate::api::AppState)>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), StoreError> {
    let cancel = CancellationToken::new();
    let tracker = TaskTracker::new();
    if let Some((listener, state)) = http {
        let cancel = cancel.clone();
        tracker.spawn(async move {
            if let Err(e) = crate::api::serve(listener, state, cancel).await {
                tracing::error!(error = %e, "the HTTP API stopped");
            }
        });
    }
    tracker.spawn(crate::scheduler::leader_loop(
        store.clone(),
        config.clone(),
        registry.clone(),
        opts.instance.clone(),
        cancel.clone(),
    ));
    for _ in 0..opts.dispatch_workers.max(1) {
        tracker.spawn(dispatch_worker(
            dispatcher.clone(),
            opts.poll_every,
            cancel.clone(),
        ));
    }
    tracker.spawn(reloader(
        registry.clone(),
        opts.reload_every,
        cancel.clone(),
    ));
    tracker.close();
    tracing::info!(instance = %opts.instance, segments = config.segments.len(), workers = opts.dispatch_workers, "relance is running");

    shutdown.await;
    tracing::info!(
        grace_seconds = opts.grace.as_secs(),
        "shutting down: no new work is claimed"
    );
    cancel.cancel();
    if tokio::time::timeout(opts.grace, tracker.wait())
        .await
        .is_err()
    {
        // Actions still sending keep their lease; another instance (or the next start)
        // reclaims them when it expires.
        tracing::warn!(
            "grace period over with work in flight; its leases will expire and be reclaimed"
        );
    }
    tracing::info!("stopped");
    Ok(())
}

/// A future completing on SIGTERM or SIGINT. The handlers are installed when this is
/// called, not when the future is first polled: a stop requested during start-up is
/// honoured too.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let term = signal(SignalKind::terminate()).ok();
        let int = signal(SignalKind::interrupt()).ok();
        async move {
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = wait(term) => {}
                _ = wait(int) => {}
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
