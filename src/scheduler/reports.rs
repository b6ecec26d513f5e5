//! The monthly report's schedule (`reports.monthly`): at each slot the leader plans one
//! delivery per recipient of the last complete calendar month before the slot; the
//! outbox sends them ([`crate::outbox::reports`]). Planning is idempotent — one
//! delivery per report, period and recipient — so a slot seen twice (a restart, a
//! schedule firing more than once a month, a new leader) sends nothing twice.
//!
//! Catch-up: at start, the latest slot of the last 35 days is planned (nothing happens
//! when it already was), so a service stopped over the first of the month sends the
//! report when it comes back.

use std::sync::Arc;

use chrono::{DateTime, Datelike, Utc};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::store::{Store, StoreError};

/// How far back, at start, a missed slot is still caught up.
const CATCH_UP_DAYS: i64 = 35;

/// The period (`YYYY-MM`) a slot's report covers: the calendar month before the slot's
/// (in the configured time zone).
pub fn period_of(slot: DateTime<Utc>, tz: chrono_tz::Tz) -> String {
    let day = slot.with_timezone(&tz).date_naive();
    let previous = crate::reports::first_of_month(day)
        .pred_opt()
        .unwrap_or(day);
    format!("{:04}-{:02}", previous.year(), previous.month())
}

/// The key of a delivery: the Message-ID's left part, stable across attempts.
pub fn delivery_key(report: &str, period: &str, recipient: &str) -> String {
    let who = crate::digest::sha256_hex(recipient.to_lowercase().as_bytes());
    format!("report-{report}-{period}-{}", &who[..16])
}

/// Plans the monthly report of `slot` to every configured recipient; returns how many
/// deliveries were new.
///
/// # Errors
/// Database errors.
pub async fn plan_monthly(
    store: &dyn Store,
    config: &Config,
    slot: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let Some(monthly) = &config.reports.monthly else {
        return Ok(0);
    };
    let period = period_of(slot, config.timezone);
    let recipients: Vec<(String, String)> = monthly
        .recipients
        .iter()
        .map(|r| {
            let r = r.to_string();
            let key = delivery_key("monthly", &period, &r);
            (r, key)
        })
        .collect();
    let planned = store
        .plan_report_deliveries("monthly", &period, slot, &recipients, Utc::now())
        .await?;
    if planned > 0 {
        tracing::info!(report = "monthly", period = %period, slot = %slot, recipients = planned, "monthly report planned");
    }
    Ok(planned)
}

/// Plans the monthly report at each slot of its schedule (after catching up the latest
/// missed one) until `cancel`. Returns at once when no monthly report is configured.
pub async fn monthly_loop(store: Arc<dyn Store>, config: Arc<Config>, cancel: CancellationToken) {
    let Some(monthly) = &config.reports.monthly else {
        return;
    };
    let tz = config.timezone;
    let now = Utc::now();
    if let Some(slot) = super::missed_slot(
        &monthly.schedule,
        tz,
        now - chrono::Duration::days(CATCH_UP_DAYS),
        now,
    ) {
        if let Err(e) = plan_monthly(store.as_ref(), &config, slot).await {
            tracing::error!(error = %e, "cannot plan the monthly report; the next slot will try again");
        }
    }
    loop {
        let now = Utc::now();
        let Some(at) = super::next_slot(&monthly.schedule, tz, now) else {
            return;
        };
        let wait = (at - now).to_std().unwrap_or_default();
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        if let Err(e) = plan_monthly(store.as_ref(), &config, at).await {
            tracing::error!(error = %e, "cannot plan the monthly report; the next slot will try again");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_reports_on_the_month_before_it_in_the_configured_time_zone() {
        let t = |x: &str| DateTime::parse_from_rfc3339(x).unwrap().with_timezone(&Utc);
        let paris = chrono_tz::Europe::Paris;
        assert_eq!(period_of(t("2026-12-01T06:00:00Z"), paris), "2026-11");
        // 23:30 UTC on 30 November is already 1 December in Paris: November's report.
        assert_eq!(period_of(t("2026-11-30T23:30:00Z"), paris), "2026-11");
        assert_eq!(
            period_of(t("2026-11-30T23:30:00Z"), chrono_tz::UTC),
            "2026-10"
        );
        assert_eq!(period_of(t("2027-01-01T07:00:00Z"), paris), "2026-12");
        assert_eq!(period_of(t("2026-11-15T07:00:00Z"), paris), "2026-10");
    }

    #[test]
    fn delivery_keys_are_stable_and_ignore_the_case_of_the_address() {
        let a = delivery_key("monthly", "2026-11", "Credit@Example.com");
        assert_eq!(a, delivery_key("monthly", "2026-11", "credit@example.com"));
        assert_ne!(a, delivery_key("monthly", "2026-10", "credit@example.com"));
        assert!(a.starts_with("report-monthly-2026-11-"), "{a}");
    }
}
