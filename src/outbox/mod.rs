//! The outbox: planned actions are claimed with a lease, re-checked against the ledger,
//! delivered through their channel outside any transaction, and their outcome recorded.
//! Failures are retried with exponential backoff and jitter, then dead-lettered.
//!
//! The window no system can close — a crash after the channel accepted a message and
//! before the outcome was recorded — is made visible and safe: the action is marked
//! `sending` (with an event) before the send, an expired lease is reclaimed, and the
//! resend carries the same idempotency key; channels that must not resend blindly
//! (formal notices, insurer handovers) hold such actions for an operator instead.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tracing::Instrument;

use crate::channels::{with_transmit_log, Channels, Delivered, DeliveryError, TransmitLog};
use crate::store::{Completion, Store, StoreError};

pub mod reports;

pub use crate::config::RetryPolicy;

/// What one step of the dispatcher did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Step {
    /// Nothing due.
    Idle,
    /// Not now (delivery hours, contact budget): back in the queue for later.
    Deferred {
        id: i64,
        reason: String,
    },
    Sent {
        id: i64,
        provider_ref: String,
    },
    Retrying {
        id: i64,
        error: String,
    },
    Dead {
        id: i64,
        error: String,
    },
    /// Refused for good by the channel.
    Failed {
        id: i64,
        error: String,
    },
    /// Cannot be sent as it stands (no address, no mobile number, no template).
    Blocked {
        id: i64,
        reason: String,
    },
    Cancelled {
        id: i64,
        reason: String,
    },
    /// Another worker took the action over (our lease expired mid-send).
    LeaseLost {
        id: i64,
    },
}

impl Step {
    /// What recording `completion` for action `id` reports.
    fn of(id: i64, completion: &Completion) -> Step {
        match completion.clone() {
            Completion::Sent { provider_ref } => Step::Sent { id, provider_ref },
            Completion::Retry { error, .. } => Step::Retrying { id, error },
            Completion::Dead { error } => Step::Dead { id, error },
            Completion::Failed { error } => Step::Failed { id, error },
            Completion::Blocked { reason } => Step::Blocked { id, reason },
            Completion::Cancelled { reason } => Step::Cancelled { id, reason },
            Completion::Deferred { reason, .. } => Step::Deferred { id, reason },
        }
    }
}

/// How long an action claimed ahead is delivered on what its claim read; after that
/// its invoices are read again before the stale check.
const CLAIM_FRESH: Duration = Duration::from_secs(1);

pub struct Dispatcher {
    pub store: Arc<dyn Store>,
    /// When each kind may be delivered (absent: any time).
    pub windows:
        std::collections::BTreeMap<crate::domain::ActionKind, crate::config::DeliveryWindow>,
    pub budget: Option<crate::config::ContactBudget>,
    pub calendar: crate::domain::BusinessCalendar,
    /// Deliveries per minute by kind, and when this instance's last ones went out.
    pub rate_limits: std::collections::BTreeMap<crate::domain::ActionKind, u32>,
    pub recent: std::sync::Mutex<
        std::collections::HashMap<
            crate::domain::ActionKind,
            std::collections::VecDeque<DateTime<Utc>>,
        >,
    >,
    /// Actions this instance claimed ahead, with when: a claim takes up to
    /// `claim_batch` at once, in one transaction, and the workers deliver them in turn.
    pub claimed: std::sync::Mutex<
        std::collections::VecDeque<(std::time::Instant, crate::store::ClaimedAction)>,
    >,
    /// How many actions a claim takes at most (`relance serve`: one per worker).
    pub claim_batch: usize,
    /// When this instance last looked for expired leases (see `reclaim_due`).
    pub last_reclaim: std::sync::Mutex<Option<std::time::Instant>>,
    pub channels: Channels,
    /// The debtor portal: each message gets the customer's link (`{{ portal_url }}`).
    pub portal: crate::config::PortalConfig,
    /// Who holds leases: host and process, so a log line says which instance sent.
    pub owner: String,
    pub lease: Duration,
    pub retry: RetryPolicy,
    pub timezone: chrono_tz::Tz,
    /// Where deliveries and transport health are counted.
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl Dispatcher {
    /// Reclaims expired leases, then claims, checks and delivers at most one action.
    ///
    /// # Errors
    /// Database errors; delivery errors are outcomes, not errors.
    pub async fn try_execute_once(&self) -> Result<Step, StoreError> {
        let now = Utc::now();
        if self.reclaim_due() {
            for (id, status) in self
                .store
                .reclaim_expired(now, &self.channels.held_kinds())
                .await?
            {
                tracing::warn!(action = id, status = %status, "send interrupted (lease expired), reclaimed");
            }
        }
        let lease_until = now
            + chrono::Duration::from_std(self.lease)
                .unwrap_or_else(|_| chrono::Duration::seconds(60));
        let Some((claimed_at, mut action)) = self.next_claimed(lease_until, now).await? else {
            return Ok(Step::Idle);
        };
        let id = action.id;
        // Claimed ahead a while ago (the deliveries before it were slow): its lease is
        // extended, one lost meanwhile is not delivered, and its invoices are read
        // again for the checks below.
        if claimed_at.elapsed() > CLAIM_FRESH.min(self.lease / 3) {
            if !self
                .store
                .extend_lease(id, &self.owner, lease_until)
                .await?
            {
                tracing::warn!(
                    action = id,
                    "lease lost before delivery; another worker owns the action"
                );
                return Ok(Step::LeaseLost { id });
            }
            match self.store.action_message(id).await? {
                Some(fresh) => action = fresh,
                None => return Ok(Step::LeaseLost { id }),
            }
        }
        match std::env::var("RELANCE_FAILPOINT").as_deref() {
            // Crash injection for tests of lease recovery: die holding the lease, or
            // hang holding it until the test kills the process.
            Ok("dispatch-after-claim") => std::process::abort(),
            Ok("pause-after-claim") => {
                tokio::time::sleep(std::time::Duration::from_secs(3600)).await
            }
            _ => {}
        }
        let today = now.with_timezone(&self.timezone).date_naive();
        // A call a user scheduled is made whatever happened to the invoices since
        // (a promise, a dispute): the user asked for it knowing the account.
        if !crate::call_outcomes::scheduled_by_hand(&action.step) {
            if let Some(reason) = stale_reason(&action, today) {
                return self.finish(id, Completion::Cancelled { reason }).await;
            }
        }
        let rules = DeliveryRules {
            windows: &self.windows,
            budget: self.budget.as_ref(),
            calendar: &self.calendar,
            timezone: self.timezone,
        };
        // What a customer asked for on the portal (a confirmation) answers at once: no
        // quiet hours, no contact budget.
        let answer = action.step == crate::portal_links::STEP;
        let deferred = if answer {
            None
        } else {
            rules
                .not_before(
                    self.store.as_ref(),
                    action.kind,
                    &action.customer.external_id,
                    now,
                )
                .await?
        };
        if let Some((until, reason)) = deferred {
            return self.defer(id, until, reason).await;
        }
        if let Some(&per_minute) = self.rate_limits.get(&action.kind) {
            if let Some(until) = self.rate_limited(action.kind, per_minute, now) {
                let reason = format!("rate limit: {per_minute} {} per minute", action.kind);
                return self.defer(id, until, reason).await;
            }
        }
        let Some(channel) = self.channels.get(action.kind) else {
            let error = format!("no channel configured for {}", action.kind);
            return self.finish(id, Completion::Dead { error }).await;
        };
        // The customer's portal link, made for this message (its visits are shown on
        // the action); never stored.
        if self.portal.enabled()
            && matches!(
                action.kind,
                crate::domain::ActionKind::Email
                    | crate::domain::ActionKind::Sms
                    | crate::domain::ActionKind::FormalNotice
            )
        {
            action.portal_url = crate::portal_links::link_for(
                &self.portal,
                self.store.as_ref(),
                &action.customer.external_id,
                Some(id),
                today,
            )
            .await?;
        }
        let span = tracing::info_span!("deliver", action = id, kind = %action.kind, customer = %action.customer.external_id, attempt = action.attempt);
        // Entered for the delivery and its outcome only: a guard held across awaits
        // would tag other tasks' logs with this action.
        // Held kinds record when their request is about to leave, so that an interrupted
        // send that provably never left is sent again rather than held.
        let log: Arc<dyn TransmitLog> = Arc::new(StoreTransmitLog {
            store: self.store.clone(),
            action_id: id,
            attempt: action.attempt,
            record: self.channels.held_kinds().contains(&action.kind),
        });
        async {
            let started = std::time::Instant::now();
            let delivered = self
                .with_heartbeat(id, with_transmit_log(log, channel.deliver(&action)))
                .await;
            self.transport_state(channel.name(), &delivered);
            let outcome = match &delivered {
                Ok(_) => "sent",
                Err(DeliveryError::Permanent { .. }) => "failed",
                Err(DeliveryError::DeadLetter { .. }) => "dead",
                Err(DeliveryError::Blocked { .. }) => "blocked",
                Err(_) => "retry",
            };
            self.metrics.delivery(action.kind.as_str(), outcome, started.elapsed());
            if delivered.is_ok()
                && std::env::var("RELANCE_FAILPOINT").as_deref() == Ok("dispatch-after-send")
            {
                // Crash injection: the channel accepted the message, the outcome is not
                // recorded (the one window no system can close).
                std::process::abort();
            }
            match delivered {
                Ok(d) => {
                    tracing::info!(channel = channel.name(), provider_ref = %d.provider_ref, "sent");
                    self.finish(
                        id,
                        Completion::Sent {
                            provider_ref: d.provider_ref,
                        },
                    )
                    .await
                }
                Err(DeliveryError::Permanent { message }) => {
                    tracing::warn!(channel = channel.name(), error = %message, "permanent failure, not retried");
                    self.finish(
                        id,
                        Completion::Failed {
                            error: message,
                        },
                    )
                    .await
                }
                Err(DeliveryError::DeadLetter { message }) => {
                    tracing::warn!(channel = channel.name(), error = %message, "dead-lettered");
                    self.finish(id, Completion::Dead { error: message }).await
                }
                Err(DeliveryError::Blocked { reason }) => {
                    tracing::warn!(channel = channel.name(), reason = %reason, "blocked");
                    self.finish(
                        id,
                        Completion::Blocked {
                            reason,
                        },
                    )
                    .await
                }
                Err(DeliveryError::Temporary {
                    message,
                    retry_after,
                }) => {
                    let retry = channel.retry_policy().unwrap_or(self.retry);
                    if action.attempt >= retry.max_attempts {
                        let error = format!("{message} (gave up after {} attempts)", action.attempt);
                        tracing::warn!(channel = channel.name(), error = %error, "dead-lettered");
                        return self
                            .finish(
                                id,
                                Completion::Dead {
                                    error,
                                },
                            )
                            .await;
                    }
                    let delay = retry_after.unwrap_or_else(|| {
                        retry.delay(action.attempt, id as u64 ^ action.attempt as u64)
                    });
                    let at: DateTime<Utc> =
                        Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
                    tracing::info!(channel = channel.name(), error = %message, retry_at = %at, "temporary failure, will retry");
                    self.finish(
                        id,
                        Completion::Retry {
                            at,
                            error: message,
                        },
                    )
                    .await
                }
            }
        }
        .instrument(span)
        .await
    }

    /// The next action to deliver: one this instance claimed ahead, else the first of
    /// a new claim of up to `claim_batch` (the others wait for this instance's next
    /// workers), with when it was claimed.
    async fn next_claimed(
        &self,
        lease_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Option<(std::time::Instant, crate::store::ClaimedAction)>, StoreError> {
        if let Some(next) = self.claimed.lock().ok().and_then(|mut q| q.pop_front()) {
            return Ok(Some(next));
        }
        let mut batch = self
            .store
            .claim_actions(&self.owner, lease_until, now, self.claim_batch.max(1))
            .await?
            .into_iter();
        let at = std::time::Instant::now();
        let first = batch.next();
        if let Ok(mut q) = self.claimed.lock() {
            q.extend(batch.map(|a| (at, a)));
        }
        Ok(first.map(|a| (at, a)))
    }

    /// Puts the actions claimed ahead and not delivered back in the queue (a stopping
    /// instance), rather than leaving them to their leases' expiry.
    ///
    /// # Errors
    /// Database errors.
    pub async fn give_back(&self) -> Result<usize, StoreError> {
        let left: Vec<_> = self
            .claimed
            .lock()
            .map(|mut q| q.drain(..).collect())
            .unwrap_or_default();
        let mut given = 0;
        for (_, a) in left {
            let back = Completion::Deferred {
                until: Utc::now(),
                reason: "claimed but not delivered before the instance stopped".into(),
            };
            if self
                .store
                .complete_action(a.id, &self.owner, &back, Utc::now())
                .await?
            {
                given += 1;
            }
        }
        Ok(given)
    }

    /// Whether to look for expired leases before this claim: on the first one, then at
    /// most twice a lease (and at least every second), not before every action.
    fn reclaim_due(&self) -> bool {
        let every = (self.lease / 2).min(Duration::from_secs(1));
        let Ok(mut last) = self.last_reclaim.lock() else {
            return true;
        };
        let now = std::time::Instant::now();
        if last.is_some_and(|t| now.duration_since(t) < every) {
            return false;
        }
        *last = Some(now);
        true
    }

    /// Runs a delivery while extending the action's lease every third of its length, so
    /// that a send slower than the lease (a slow SMTP server, a registered-mail provider
    /// taking its time) is not reclaimed and sent a second time by another worker.
    async fn with_heartbeat<F>(&self, id: i64, delivery: F) -> F::Output
    where
        F: std::future::Future,
    {
        let lease = chrono::Duration::from_std(self.lease)
            .unwrap_or_else(|_| chrono::Duration::seconds(60));
        let every = (self.lease / 3).max(Duration::from_millis(100));
        tokio::pin!(delivery);
        let mut lost = false;
        loop {
            tokio::select! {
                out = &mut delivery => return out,
                _ = tokio::time::sleep(every), if !lost => {
                    match self.store.extend_lease(id, &self.owner, Utc::now() + lease).await {
                        Ok(true) => {}
                        Ok(false) => {
                            lost = true;
                            tracing::warn!(action = id, "lease lost while sending: another worker reclaimed the action");
                        }
                        Err(e) => tracing::warn!(action = id, error = %e, "cannot extend the lease while sending; retrying"),
                    }
                }
            }
        }
    }

    /// Logs a transport's first failure as a warning and its recovery once, and keeps
    /// the `relance_transport_up` gauge: a long outage is one WARN line, not a stream
    /// of INFO ones.
    fn transport_state(&self, channel: &str, delivered: &Result<Delivered, DeliveryError>) {
        let failing = match delivered {
            Ok(_) => false,
            Err(DeliveryError::Temporary { .. }) => true,
            // Not sent (no address, no template): says nothing of the transport.
            Err(DeliveryError::Blocked { .. }) => return,
            // The transport answered: whatever it refused, it is up.
            Err(DeliveryError::Permanent { .. } | DeliveryError::DeadLetter { .. }) => false,
        };
        let was_failing = self.metrics.transport(channel, !failing);
        match (was_failing, delivered) {
            (false, Err(e)) if failing => {
                tracing::warn!(channel, error = %e, "transport failing: deliveries through it are retried until it recovers");
            }
            (true, _) if !failing => tracing::info!(channel, "transport recovered"),
            _ => {}
        }
    }

    /// When the next delivery of `kind` is allowed, if the last minute's are used up;
    /// otherwise counts this one in.
    fn rate_limited(
        &self,
        kind: crate::domain::ActionKind,
        per_minute: u32,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let mut recent = self.recent.lock().ok()?;
        let sent = recent.entry(kind).or_default();
        let minute = chrono::Duration::seconds(60);
        while sent.front().is_some_and(|t| *t <= now - minute) {
            sent.pop_front();
        }
        if sent.len() >= per_minute as usize {
            return sent.front().map(|t| *t + minute);
        }
        sent.push_back(now);
        None
    }

    /// Back in the queue, not before `until`, with the reason logged.
    async fn defer(
        &self,
        id: i64,
        until: DateTime<Utc>,
        reason: String,
    ) -> Result<Step, StoreError> {
        self.finish(id, Completion::Deferred { until, reason })
            .await
    }

    async fn finish(&self, id: i64, completion: Completion) -> Result<Step, StoreError> {
        let step = Step::of(id, &completion);
        if self
            .store
            .complete_action(id, &self.owner, &completion, Utc::now())
            .await?
        {
            Ok(step)
        } else {
            tracing::warn!(
                action = id,
                "lease lost before the outcome was recorded; another worker owns the action"
            );
            Ok(Step::LeaseLost { id })
        }
    }

    /// Runs steps until nothing is due; returns what was done.
    ///
    /// # Errors
    /// Database errors.
    pub async fn drain(&self) -> Result<Vec<Step>, StoreError> {
        let mut done = Vec::new();
        loop {
            match self.try_execute_once().await? {
                Step::Idle => return Ok(done),
                s => done.push(s),
            }
        }
    }
}

/// Records in the action log that a delivery's request is about to leave.
struct StoreTransmitLog {
    store: Arc<dyn Store>,
    action_id: i64,
    attempt: i64,
    /// Whether to record at all: only kinds whose interrupted sends are held need it.
    record: bool,
}

#[async_trait::async_trait]
impl TransmitLog for StoreTransmitLog {
    async fn transmitting(&self, part: &str) -> Result<(), String> {
        if !self.record {
            return Ok(());
        }
        self.store
            .mark_transmitting(self.action_id, self.attempt, part, Utc::now())
            .await
            .map_err(|e| e.to_string())
    }
}

/// When a delivery may go: the delivery hours of each kind and the contact budget.
pub struct DeliveryRules<'a> {
    pub windows:
        &'a std::collections::BTreeMap<crate::domain::ActionKind, crate::config::DeliveryWindow>,
    pub budget: Option<&'a crate::config::ContactBudget>,
    pub calendar: &'a crate::domain::BusinessCalendar,
    pub timezone: chrono_tz::Tz,
}

impl<'a> DeliveryRules<'a> {
    /// The rules of a configuration.
    pub fn of(config: &'a crate::config::Config) -> DeliveryRules<'a> {
        DeliveryRules {
            windows: &config.dispatch.quiet_hours,
            budget: config.dispatch.contact_budget.as_ref(),
            calendar: &config.calendar,
            timezone: config.timezone,
        }
    }

    /// Whether an action of `kind` for `customer` must wait at `now`, and until when
    /// and why: outside its delivery hours, or over the customer's contact budget.
    /// (Rate limits depend on the instance's own pace, not on the action.)
    ///
    /// # Errors
    /// The store's.
    pub async fn not_before(
        &self,
        store: &dyn Store,
        kind: crate::domain::ActionKind,
        customer: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<(DateTime<Utc>, String)>, StoreError> {
        if let Some(w) = self.windows.get(&kind) {
            if let Some(until) = next_allowed(now, self.timezone, w, self.calendar) {
                let reason = format!(
                    "outside the delivery hours for {kind} ({}–{}{})",
                    w.from.format("%H:%M"),
                    w.to.format("%H:%M"),
                    if w.business_days_only {
                        " on business days"
                    } else {
                        ""
                    }
                );
                return Ok(Some((until, reason)));
            }
        }
        if let Some(b) = self.budget.filter(|b| b.kinds.contains(&kind)) {
            let window = chrono::Duration::days(i64::from(b.per_days));
            let sent = store
                .recent_contacts(customer, &b.kinds, now - window)
                .await?;
            if sent.len() >= b.max_contacts as usize {
                // Room again when the oldest contact that fills the budget leaves the window.
                let until = sent[sent.len() - b.max_contacts as usize] + window;
                let reason = format!(
                    "contact budget reached: {} contacts in the last {} days",
                    sent.len(),
                    b.per_days
                );
                return Ok(Some((until, reason)));
            }
        }
        Ok(None)
    }
}

/// Fills in the deferrals of an explanation: each planned action's wait, if it were
/// delivered at `now`.
///
/// # Errors
/// The store's.
pub async fn explain_deferrals(
    store: &dyn Store,
    config: &crate::config::Config,
    x: &mut crate::scripting::explain::Explanation,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let rules = DeliveryRules::of(config);
    for d in &x.decisions {
        let (Some(kind), crate::scripting::DecisionStatus::Planned) = (d.kind, d.status) else {
            continue;
        };
        if let Some((until, reason)) = rules.not_before(store, kind, &x.customer, now).await? {
            x.deferrals.push(crate::scripting::explain::Deferral {
                kind,
                step: d.step.as_deref().unwrap_or("").to_string(),
                until,
                reason,
            });
        }
    }
    Ok(())
}

/// The next start of the delivery window after `now`, or `None` when `now` is inside it.
pub fn next_allowed(
    now: DateTime<Utc>,
    tz: chrono_tz::Tz,
    w: &crate::config::DeliveryWindow,
    cal: &crate::domain::BusinessCalendar,
) -> Option<DateTime<Utc>> {
    use chrono::TimeZone;
    let local = now.with_timezone(&tz);
    let day_ok = |d: chrono::NaiveDate| !w.business_days_only || cal.is_business_day(d);
    let (date, time) = (local.date_naive(), local.time());
    if day_ok(date) && w.from <= time && time < w.to {
        return None;
    }
    let mut d = if day_ok(date) && time < w.from {
        date
    } else {
        date + chrono::Duration::days(1)
    };
    for _ in 0..370 {
        if day_ok(d) {
            if let Some(t) = tz.from_local_datetime(&d.and_time(w.from)).earliest() {
                return Some(t.with_timezone(&Utc));
            }
        }
        d += chrono::Duration::days(1);
    }
    None
}

/// An owner name for leases: host and process id.
pub fn instance_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    format!("{host}:{}", std::process::id())
}

/// Why a claimed action must not be sent any more, as of `today`, if so: the customer
/// or an invoice paused, an invoice paid, cancelled or disputed, or a promise to pay on
/// one of its invoices not yet due (all as they stood when the action was claimed).
pub fn stale_reason(
    action: &crate::store::ClaimedAction,
    today: chrono::NaiveDate,
) -> Option<String> {
    let customer_pause = action
        .customer
        .pause
        .as_ref()
        .filter(|p| p.active_on(today));
    for i in &action.invoices {
        if let Some(p) = customer_pause {
            return Some(format!("customer paused: {}", p.reason));
        }
        if i.status != crate::domain::InvoiceStatus::Open
            || i.open_amount <= rust_decimal::Decimal::ZERO
        {
            let status = if i.status == crate::domain::InvoiceStatus::Open {
                "paid"
            } else {
                i.status.as_str()
            };
            return Some(format!("invoice {} is {status}", i.number));
        }
        if let Some(d) = &i.dispute {
            return Some(format!("invoice {} disputed: {}", i.number, d.reason));
        }
        if let Some(p) = i.pause.as_ref().filter(|p| p.active_on(today)) {
            return Some(format!("invoice {} paused: {}", i.number, p.reason));
        }
    }
    action
        .promised
        .iter()
        .find(|(_, d)| *d >= today)
        .map(|(n, d)| format!("invoice {n} promised to be paid by {d}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deliveries_outside_the_window_wait_for_the_next_business_day_slot() {
        let w = crate::config::DeliveryWindow {
            from: chrono::NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
            to: chrono::NaiveTime::from_hms_opt(19, 0, 0).unwrap(),
            business_days_only: true,
        };
        let cal = crate::domain::BusinessCalendar::default();
        let tz = chrono_tz::Europe::Paris;
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        // Monday 23 Nov 2026, 10:00 in Paris: inside.
        assert_eq!(next_allowed(t("2026-11-23T09:00:00Z"), tz, &w, &cal), None);
        // 20:00 Monday → Tuesday 09:00.
        assert_eq!(
            next_allowed(t("2026-11-23T19:00:00Z"), tz, &w, &cal),
            Some(t("2026-11-24T08:00:00Z"))
        );
        // 07:00 Tuesday → the same day at 09:00.
        assert_eq!(
            next_allowed(t("2026-11-24T06:00:00Z"), tz, &w, &cal),
            Some(t("2026-11-24T08:00:00Z"))
        );
        // Friday evening → Monday; and 24 Dec 2026 evening skips Christmas and the weekend.
        assert_eq!(
            next_allowed(t("2026-11-27T19:00:00Z"), tz, &w, &cal),
            Some(t("2026-11-30T08:00:00Z"))
        );
        assert_eq!(
            next_allowed(t("2026-12-24T19:00:00Z"), tz, &w, &cal),
            Some(t("2026-12-28T08:00:00Z"))
        );
    }
}
