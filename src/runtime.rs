//! `relance serve`: the scheduler ([`crate::scheduler`]), the dispatch workers and the
//! rule reloader in one process, every loop shutdown-aware (a `CancellationToken`
//! checked between units of work, a `TaskTracker` awaited within a grace period).

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::channels::{Channels, OutboxDir};
use crate::config::Config;
use crate::outbox::{instance_name, Dispatcher, RetryPolicy, Step};
use crate::scripting::RuleRegistry;
use crate::store::{Store, StoreError};

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("{0}")]
    Store(#[from] StoreError),
    /// The database cannot be opened or migrated.
    #[error("{0}")]
    Database(String),
    /// A transport cannot be set up (TLS parameters for the SMTP host).
    #[error("{0}")]
    Channel(String),
    /// The sample portfolio could not be loaded.
    #[error("{0}")]
    Sample(#[from] crate::import::ImportError),
    /// A listener cannot be opened (the portal's `portal.listen`).
    #[error("{0}")]
    Listen(String),
}

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

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            dispatch_workers: 2,
            grace: Duration::from_secs(30),
            reload_every: Duration::from_secs(2),
            poll_every: Duration::from_millis(500),
            instance: instance_name(),
        }
    }
}

/// The channels a configuration sets up: the configured transports, and the `outbox/`
/// folder for every kind without one.
///
/// # Errors
/// When a transport cannot be set up (TLS parameters for the SMTP host).
pub fn channels_for(config: &Config, store: Arc<dyn Store>) -> Result<Channels, LaunchError> {
    use crate::channels::{
        CallTaskChannel, EmailChannel, FormalNoticeChannel, InsurerChannel, SmsChannel,
    };
    use crate::domain::ActionKind;
    let templates = Arc::new(crate::templates::Templates::new(
        &config.channels.templates_dir,
    ));
    let documents = Arc::new(crate::channels::documents::Documents::new(
        config,
        store.clone(),
    ));
    let composer = composer_for(config, templates.clone())?;
    let rendering = Arc::new(crate::channels::outbox_dir::Rendering {
        composer,
        company: config.company.clone(),
        templates: templates.clone(),
        documents: Some(documents.clone()),
    });
    let outbox = || OutboxDir::rendering(config.channels.outbox_dir.clone(), rendering.clone());
    let mut channels = Channels::all(Arc::new(outbox()));
    let mut email_channel = None;
    if let Some(email) = &config.channels.email {
        let channel = EmailChannel::new(email, &config.company, templates.clone())
            .map_err(|e| LaunchError::Channel(format!("channels.email: {e}")))?
            .with_documents(documents.clone());
        let channel = Arc::new(channel);
        email_channel = Some(channel.clone());
        channels.set(ActionKind::Email, channel);
    }
    channels.set(
        ActionKind::FormalNotice,
        Arc::new(FormalNoticeChannel::new(
            store.clone(),
            documents.clone(),
            email_channel,
            config.channels.formal_notice.email_template.clone(),
            config.channels.formal_notice.registered_mail.clone(),
            outbox(),
            config.company.clone(),
        )),
    );
    channels.set(
        ActionKind::InsurerHandover,
        Arc::new(InsurerChannel::new(
            store.clone(),
            documents,
            config.insurers.clone(),
            config.company.clone(),
            outbox(),
        )),
    );
    if let Some(sms) = &config.channels.sms {
        channels.set(
            ActionKind::Sms,
            Arc::new(SmsChannel::new(sms, &config.company, templates.clone())),
        );
    }
    channels.set(
        ActionKind::CallTask,
        Arc::new(CallTaskChannel::new(
            store,
            &config.channels.call_tasks,
            &config.calendar,
        )),
    );
    for (kind, policy) in &config.channels.on_interrupted {
        channels.set_on_interrupted(*kind, *policy);
    }
    Ok(channels)
}

/// How emails are composed: from the configured sender, else the company's address
/// (what the outbox folder and `relance preview` write when no SMTP server is set).
///
/// # Errors
/// An address that does not parse.
pub fn composer_for(
    config: &Config,
    templates: Arc<crate::templates::Templates>,
) -> Result<crate::channels::email::Composer, LaunchError> {
    let email = config.channels.email.as_ref();
    let from = email.map(|e| e.from.clone()).unwrap_or_else(|| {
        config
            .company
            .email
            .as_ref()
            .map_or_else(|| "relance@localhost".to_string(), |e| e.to_string())
    });
    crate::channels::email::Composer::new(
        &from,
        email.map_or(&[][..], |e| &e.bcc),
        email.and_then(|e| e.reply_to.as_deref()),
        &config.company,
        templates,
    )
    .map_err(|e| LaunchError::Channel(format!("email sender: {e}")))
}

/// # Errors
/// See [`channels_for`].
pub fn dispatcher_for(config: &Config, store: Arc<dyn Store>) -> Result<Dispatcher, LaunchError> {
    let channels = channels_for(config, store.clone())?;
    Ok(Dispatcher {
        store,
        windows: config.dispatch.quiet_hours.clone(),
        budget: config.dispatch.contact_budget.clone(),
        calendar: config.calendar.clone(),
        rate_limits: config.dispatch.rate_limits.clone(),
        recent: Default::default(),
        last_reclaim: Default::default(),
        claimed: Default::default(),
        claim_batch: 1,
        channels,
        portal: config.portal.clone(),
        owner: instance_name(),
        lease: config.dispatch.lease,
        retry: RetryPolicy {
            max_attempts: config.dispatch.max_attempts,
            base: config.dispatch.backoff_base,
            max_delay: config.dispatch.backoff_max,
        },
        timezone: config.timezone,
        metrics: Arc::new(crate::metrics::Metrics::new()),
    })
}

/// The scheduled reports' dispatcher: report mails through the configured SMTP server,
/// else into the `outbox/` folder, with the dispatch settings' lease and retries.
///
/// # Errors
/// The SMTP transport or the sender's address cannot be set up.
pub fn report_dispatcher_for(
    config: &Arc<Config>,
    store: Arc<dyn Store>,
) -> Result<crate::outbox::reports::ReportDispatcher, LaunchError> {
    use crate::channels::report_mail::ReportMailer;
    let templates = Arc::new(crate::templates::Templates::new(
        &config.channels.templates_dir,
    ));
    let mailer = match &config.channels.email {
        Some(email) => ReportMailer::Smtp(Arc::new(
            crate::channels::EmailChannel::new(email, &config.company, templates)
                .map_err(|e| LaunchError::Channel(format!("channels.email: {e}")))?,
        )),
        None => ReportMailer::Folder {
            dir: config.channels.outbox_dir.clone(),
            composer: Box::new(composer_for(config, templates)?),
        },
    };
    Ok(crate::outbox::reports::ReportDispatcher::new(
        store,
        config.clone(),
        Arc::new(mailer),
        instance_name(),
        config.dispatch.lease,
        RetryPolicy {
            max_attempts: config.dispatch.max_attempts,
            base: config.dispatch.backoff_base,
            max_delay: config.dispatch.backoff_max,
        },
    ))
}

/// How often the customers new scripts are tried on are read again.
const PROBE_REFRESH: Duration = Duration::from_secs(3600);

/// Real customers per segment a new script is tried on, besides the sample portfolio.
pub const PROBE_REAL_CUSTOMERS: usize = 50;

/// The customers new scripts are tried on: the generated sample portfolio, and the
/// first [`PROBE_REAL_CUSTOMERS`] customers of each segment in `store`, when given.
/// Reads only.
///
/// # Errors
/// The sample portfolio cannot be generated, or the store cannot be read.
pub async fn probe_for(
    config: &Config,
    store: Option<&dyn Store>,
    today: chrono::NaiveDate,
) -> Result<crate::scripting::probe::Probe, crate::sample::SampleError> {
    use futures_util::StreamExt;
    let samples = crate::sample::accounts(
        crate::sample::CHECK_CUSTOMERS,
        crate::sample::CHECK_INVOICES,
        today,
    )
    .await?;
    let mut real = std::collections::HashMap::new();
    if let Some(store) = store {
        for segment in config.segments.keys() {
            let filter = crate::store::AccountFilter {
                segments: Some(vec![segment.clone()]),
                customer: None,
            };
            let mut stream = store.accounts(&filter, PROBE_REAL_CUSTOMERS);
            if let Some(batch) = stream.next().await {
                real.insert(segment.clone(), batch?);
            }
        }
    }
    Ok(crate::scripting::probe::Probe { samples, real })
}

/// Warns about customers whose segment has no script: they are never evaluated.
pub async fn report_unscripted(
    store: &dyn Store,
    config: &Config,
) -> Result<Vec<(String, i64)>, StoreError> {
    let scripted: Vec<String> = config.segments.keys().cloned().collect();
    let orphans = store.segments_with_open_invoices(&scripted).await?;
    for (segment, customers) in &orphans {
        tracing::warn!(segment = %segment, customers, "customers with open invoices are in a segment with no rule script in the configuration: they are not dunned");
    }
    Ok(orphans)
}

/// Prunes what is past its retention at each slot of `retention.schedule`, on the
/// instance that schedules the ticks (one per database).
async fn prune_worker(
    config: Arc<Config>,
    store: Arc<dyn Store>,
    metrics: Arc<crate::metrics::Metrics>,
    cancel: CancellationToken,
) {
    let Some(schedule) = config.retention.schedule.clone() else {
        return;
    };
    loop {
        let now = chrono::Utc::now().with_timezone(&config.timezone);
        let Some(next) = schedule.after(&now).next() else {
            return;
        };
        let wait = (next - now).to_std().unwrap_or(Duration::from_secs(60));
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        if !metrics.is_leader() {
            continue;
        }
        match crate::retention::prune(&config, store.as_ref(), chrono::Utc::now(), false).await {
            Ok(r) => tracing::info!(
                facts_snapshots = r.database.facts_snapshots,
                documents = r.database.documents,
                formal_notices = r.database.formal_notices,
                outbox_files = r.outbox_files,
                archive_files = r.archive_files,
                "pruned what is past its retention"
            ),
            Err(e) => tracing::error!(error = %e, "pruning failed; the next slot will try again"),
        }
    }
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

async fn report_worker(
    reports: Arc<crate::outbox::reports::ReportDispatcher>,
    poll: Duration,
    cancel: CancellationToken,
) {
    use crate::outbox::reports::ReportStep;
    while !cancel.is_cancelled() {
        let wait = match reports.try_send_once().await {
            Ok(ReportStep::Idle) => poll,
            Ok(_) => continue,
            Err(e) => {
                tracing::error!(error = %e, "report dispatch failed; retrying shortly");
                poll * 5
            }
        };
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
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

/// The service, built from its configuration: opens (and migrates) the database,
/// loads the sample portfolio into an empty ledger under the embedded default
/// configuration, loads the rule scripts, sets up the channels and the dispatcher, and
/// serves the HTTP API on `listener` when one is given; runs until `shutdown`
/// completes, then stops claiming work and gives in-flight work `opts.grace` to
/// finish. Tests start it in-process on port 0.
///
/// # Errors
/// The database cannot be opened or migrated, or a transport cannot be set up.
pub async fn launch(
    config: Arc<Config>,
    opts: ServeOptions,
    listener: Option<tokio::net::TcpListener>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), LaunchError> {
    for w in &config.warnings {
        tracing::warn!("{}", crate::config::format_issue(&config.source, w));
    }
    let url = &config.database.url;
    let store = crate::store::open(url, config.database.max_connections)
        .await
        .map_err(|e| LaunchError::Database(format!("cannot open the database {url}: {e}")))?;
    let applied = store
        .migrate()
        .await
        .map_err(|e| LaunchError::Database(format!("cannot migrate the database {url}: {e}")))?;
    if applied > 0 {
        tracing::info!(applied, database = %url, "migrations applied");
    }
    let today = Utc::now().with_timezone(&config.timezone).date_naive();
    if config.source == crate::config::Source::Embedded
        && store.summary(today).await?.customers == 0
    {
        crate::sample::seed(store.as_ref(), 60, 900, today, 365).await?;
        tracing::info!("empty ledger: loaded the sample portfolio (60 customers, 900 invoices, a year of history) for the embedded default configuration");
    }
    let engine = crate::scripting::engine::build(
        Arc::new(config.calendar.clone()),
        &crate::scripting::Limits::default(),
    );
    // This service's metrics: the registry, scheduler, dispatcher and API count in them.
    let metrics = Arc::new(crate::metrics::Metrics::new());
    let (registry, errors) = RuleRegistry::load_counted(&config, engine, metrics.clone());
    for e in &errors {
        tracing::error!(segment = %e.segment, error = %e.diagnostic.short(), "rule script refused (see the error); its customers get an error until it is fixed");
    }
    report_unscripted(store.as_ref(), &config).await?;
    let mut dispatcher = dispatcher_for(&config, store.clone())?;
    dispatcher.metrics = metrics;
    // One claim feeds every worker of the instance.
    dispatcher.claim_batch = opts.dispatch_workers.max(1);
    let dispatcher = Arc::new(dispatcher);
    let mut reports = report_dispatcher_for(&config, store.clone())?;
    reports.owner = opts.instance.clone();
    let reports = Arc::new(reports);
    let registry = Arc::new(registry);
    // The customers new versions of the scripts are tried on before a reload swaps
    // them in; built in the background, so that the service starts at once, and read
    // again every hour, so that the real customers among them stay current.
    let probing = {
        let (config, store, registry) = (config.clone(), store.clone(), registry.clone());
        tokio::spawn(async move {
            let mut first = true;
            loop {
                let today = Utc::now().with_timezone(&config.timezone).date_naive();
                match probe_for(&config, Some(store.as_ref()), today).await {
                    Ok(probe) => {
                        if first {
                            let real: usize = probe.real.values().map(Vec::len).sum();
                            tracing::info!(samples = probe.samples.len(), real, "a new version of a rule script is tried on these customers before it is swapped in");
                        }
                        registry.set_probe(probe);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot build the sample customers rule reloads are tried on; a new version is only compiled and checked before it runs")
                    }
                }
                first = false;
                tokio::time::sleep(PROBE_REFRESH).await;
            }
        })
    };
    let http = listener.map(|listener| {
        if let Ok(bound) = listener.local_addr() {
            tracing::info!(address = %bound, "HTTP API listening on {bound}");
        }
        let state = crate::api::AppState::new(config.clone(), store.clone(), registry.clone());
        let console_state =
            crate::console::ConsoleState::new(config.clone(), store.clone(), registry.clone());
        // The dashboard and the reports are computed in the background from the start.
        drop(crate::console::warm_up(&console_state));
        let console = crate::console::router(console_state);
        (listener, state, console)
    });
    // The debtor portal, on its own listener: exposed to the internet without the API
    // or the console.
    let portal = match config.portal.listen {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
                LaunchError::Listen(format!("cannot listen on {addr} (portal.listen): {e}"))
            })?;
            Some((
                listener,
                crate::portal::PortalState::new(config.clone(), store.clone()),
            ))
        }
        None => None,
    };
    run(
        config,
        store.clone(),
        registry,
        (dispatcher, reports),
        opts,
        (http, portal),
        shutdown,
    )
    .await?;
    probing.abort();
    store.close().await;
    Ok(())
}

/// The API and the console on one listener.
type HttpService = (tokio::net::TcpListener, crate::api::AppState, axum::Router);
/// The debtor portal on its own listener.
type PortalService = (tokio::net::TcpListener, crate::portal::PortalState);

/// Runs the service's loops until `shutdown` completes, then stops claiming work and
/// gives in-flight work `grace` to finish.
///
/// # Errors
/// A database error at start.
async fn run(
    config: Arc<Config>,
    store: Arc<dyn Store>,
    registry: Arc<RuleRegistry>,
    (dispatcher, reports): (
        Arc<Dispatcher>,
        Arc<crate::outbox::reports::ReportDispatcher>,
    ),
    opts: ServeOptions,
    (http, portal): (Option<HttpService>, Option<PortalService>),
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), StoreError> {
    let cancel = CancellationToken::new();
    let tracker = TaskTracker::new();
    if let Some((listener, state)) = portal {
        let cancel = cancel.clone();
        tracker.spawn(async move {
            if let Err(e) = crate::portal::serve(listener, state, cancel).await {
                tracing::error!(error = %e, "the debtor portal stopped");
            }
        });
    }
    if let Some((listener, state, console)) = http {
        let cancel = cancel.clone();
        tracker.spawn(async move {
            if let Err(e) = crate::api::serve(listener, state, Some(console), cancel).await {
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
    // Scheduled reports are rare: their queue is looked at less often than the actions',
    // and only where a monthly report is configured (`relance report send` delivers
    // by hand).
    if config.reports.monthly.is_some() {
        tracker.spawn(report_worker(reports, opts.poll_every * 4, cancel.clone()));
    }
    tracker.spawn(reloader(
        registry.clone(),
        opts.reload_every,
        cancel.clone(),
    ));
    if config.retention.schedule.is_some() {
        tracker.spawn(prune_worker(
            config.clone(),
            store.clone(),
            registry.metrics().clone(),
            cancel.clone(),
        ));
    }
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
    // Claimed ahead and not started: back in the queue for the next instance.
    match dispatcher.give_back().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            actions = n,
            "actions claimed but not delivered put back in the queue"
        ),
        Err(e) => {
            tracing::warn!(error = %e, "cannot put back the actions claimed but not delivered; their leases will expire and be reclaimed")
        }
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
