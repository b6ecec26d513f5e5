//! Scheduling: each segment ticks on its cron schedule in the configured time zone, one
//! tick at a time per segment, on the one instance that holds the scheduler role; the
//! tick itself ([`tick`]) and the pass over the ledger it runs ([`pipeline`]); the
//! monthly report's schedule ([`reports`]).
//!
//! Catch-up: at start, if a schedule slot passed since the segment's last finished tick
//! (the service was down), one catch-up tick runs at once for the latest missed slot,
//! not one per missed slot; a segment that never ticked ticks once at start.

pub mod backtest;
pub mod diff;
pub mod pipeline;
pub mod reports;
pub mod tick;

pub use tick::{action_key, run_tick, TickReport};

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::scripting::RuleRegistry;
use crate::store::{Store, StoreError};

/// The latest schedule slot at or before `now` and after `since`, if any.
pub fn missed_slot(
    schedule: &cron::Schedule,
    tz: chrono_tz::Tz,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    schedule
        .after(&since.with_timezone(&tz))
        .take_while(|t| t.with_timezone(&Utc) <= now)
        .last()
        .map(|t| t.with_timezone(&Utc))
}

/// The next slot after `now`.
pub fn next_slot(
    schedule: &cron::Schedule,
    tz: chrono_tz::Tz,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    schedule
        .after(&now.with_timezone(&tz))
        .next()
        .map(|t| t.with_timezone(&Utc))
}

/// Ticks `segments` (due at the same slot) in one pass over the ledger.
async fn tick_segments(
    store: &Arc<dyn Store>,
    config: &Arc<Config>,
    registry: &RuleRegistry,
    segments: &[String],
    slot: DateTime<Utc>,
    trigger: &str,
    instance: &str,
) {
    if segments.is_empty() {
        return;
    }
    let as_of = slot
        .with_timezone(&config.timezone)
        .date_naive()
        .max(Utc::now().with_timezone(&config.timezone).date_naive());
    if let Err(e) = run_tick(
        store.clone(),
        config.clone(),
        registry.current(),
        segments,
        as_of,
        slot,
        trigger,
        instance,
        registry.metrics(),
    )
    .await
    {
        tracing::error!(segments = %segments.join(","), error = %e, "tick failed; the next slot will try again");
    }
}

/// The scheduler: catch-up once, then each segment on its schedule.
async fn scheduler(
    store: Arc<dyn Store>,
    config: Arc<Config>,
    registry: Arc<RuleRegistry>,
    instance: String,
    cancel: CancellationToken,
) -> Result<(), StoreError> {
    let tz = config.timezone;
    let now = Utc::now();
    // Only one instance schedules at a time: scheduled ticks another instance left
    // running were cut short when it stopped (or lost the role).
    let abandoned = store.abandon_ticks(&instance, now).await?;
    if abandoned > 0 {
        tracing::warn!(ticks = abandoned, "ticks left running by an instance that stopped are marked failed (abandoned); their segments catch up now");
    }
    // Segments catching up the same slot tick together, in one pass.
    let mut first_start = Vec::new();
    let mut missed: std::collections::BTreeMap<DateTime<Utc>, Vec<String>> = Default::default();
    for (name, seg) in &config.segments {
        match store.last_tick(name).await?.map(|t| t.scheduled_for) {
            // Never ticked (first start): tick once now rather than wait for the next slot.
            None => {
                tracing::info!(segment = %name, "first start for this segment: ticking now");
                first_start.push(name.clone());
            }
            Some(last) => {
                if let Some(slot) = missed_slot(&seg.schedule, tz, last, now) {
                    tracing::info!(segment = %name, slot = %slot, "catching up the tick missed while stopped");
                    missed.entry(slot).or_default().push(name.clone());
                }
            }
        }
    }
    tick_segments(
        &store,
        &config,
        &registry,
        &first_start,
        now,
        "catch-up",
        &instance,
    )
    .await;
    for (slot, segments) in &missed {
        if cancel.is_cancelled() {
            return Ok(());
        }
        tick_segments(
            &store, &config, &registry, segments, *slot, "catch-up", &instance,
        )
        .await;
    }
    loop {
        let now = Utc::now();
        let next = config
            .segments
            .iter()
            .filter_map(|(name, s)| next_slot(&s.schedule, tz, now).map(|t| (t, name.clone())))
            .min();
        let Some((at, segment)) = next else {
            cancel.cancelled().await;
            return Ok(());
        };
        let wait = (at - now).to_std().unwrap_or_default();
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            _ = tokio::time::sleep(wait) => {}
        }
        if cancel.is_cancelled() {
            return Ok(());
        }
        // Every segment due at this instant ticks, in one pass.
        let due: Vec<String> = config
            .segments
            .iter()
            .filter(|(name, s)| *name == &segment || next_slot(&s.schedule, tz, now) == Some(at))
            .map(|(name, _)| name.clone())
            .collect();
        tick_segments(&store, &config, &registry, &due, at, "schedule", &instance).await;
    }
}

/// Schedules while this instance leads; otherwise tries to take the role every few
/// seconds. Losing the role (its connection died) stops scheduling at once.
pub async fn leader_loop(
    store: Arc<dyn Store>,
    config: Arc<Config>,
    registry: Arc<RuleRegistry>,
    instance: String,
    cancel: CancellationToken,
) {
    let retry = Duration::from_secs(2);
    while !cancel.is_cancelled() {
        let lead = match store.try_lead().await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "cannot check the scheduler role");
                None
            }
        };
        let Some(mut lead) = lead else {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(retry) => continue,
            }
        };
        tracing::info!(instance = %instance, "this instance schedules the ticks");
        registry.metrics().set_leader(true);
        let stop = cancel.child_token();
        let watch = async {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(retry) => {}
                }
                if !lead.still_held().await {
                    tracing::warn!(instance = %instance, "scheduler role lost; another instance may take over");
                    return;
                }
            }
        };
        // The monthly report's schedule runs beside the ticks' for as long as the role
        // is held (it returns at once when no monthly report is configured).
        let monthly = async {
            reports::monthly_loop(store.clone(), config.clone(), stop.clone()).await;
            std::future::pending::<()>().await
        };
        tokio::select! {
            r = scheduler(store.clone(), config.clone(), registry.clone(), instance.clone(), stop.clone()) => {
                if let Err(e) = r {
                    tracing::error!(error = %e, "scheduler stopped");
                }
            }
            _ = monthly => {}
            _ = watch => {}
        }
        stop.cancel();
        registry.metrics().set_leader(false);
        drop(lead);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn missed_slots_are_caught_up_once_with_the_latest() {
        let s = cron::Schedule::from_str("0 0 9 * * Mon-Fri").unwrap();
        let tz = chrono_tz::Europe::Paris;
        let t = |x: &str| DateTime::parse_from_rfc3339(x).unwrap().with_timezone(&Utc);
        // Stopped from Friday evening to Tuesday noon: Monday 9:00 and Tuesday 9:00 were
        // missed; one catch-up, for Tuesday.
        let slot =
            missed_slot(&s, tz, t("2026-11-20T08:00:00Z"), t("2026-11-24T11:00:00Z")).unwrap();
        assert_eq!(slot, t("2026-11-24T08:00:00Z"));
        assert_eq!(
            missed_slot(&s, tz, t("2026-11-24T08:00:00Z"), t("2026-11-24T11:00:00Z")),
            None
        );
        assert_eq!(
            next_slot(&s, tz, t("2026-11-24T11:00:00Z")),
            Some(t("2026-11-25T08:00:00Z"))
        );
    }
}
