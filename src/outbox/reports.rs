//! Scheduled reports' deliveries (`reports.monthly`): each planned delivery — one per
//! report, period and recipient — is claimed with a lease, its report rendered (once per
//! period, whatever the number of recipients), sent through the report mailer, and its
//! outcome recorded: sent with the PDF's SHA-256, retried with the dispatch backoff, or
//! dead after the last attempt. A send interrupted by a crash is claimed again when its
//! lease expires and sent with the same Message-ID.

use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDate, Utc};
use serde::Serialize;

use crate::channels::report_mail::{ReportMail, ReportMailer};
use crate::channels::{Attachment, DeliveryError};
use crate::config::{Config, RetryPolicy};
use crate::domain::Locale;
use crate::store::report_deliveries::{ReportDelivery, ReportOutcome};
use crate::store::{Store, StoreError};

/// The shortest lease a report delivery is claimed with: rendering the monthly report
/// reads the whole ledger (about a minute for 100,000 customers).
pub const MIN_REPORT_LEASE: Duration = Duration::from_secs(15 * 60);

/// What one step did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ReportStep {
    Idle,
    Sent {
        id: i64,
        period: String,
        recipient: String,
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
    /// Another worker reclaimed the delivery while this one was sending it.
    LeaseLost {
        id: i64,
    },
}

pub struct ReportDispatcher {
    pub store: Arc<dyn Store>,
    pub config: Arc<Config>,
    pub mailer: Arc<ReportMailer>,
    pub owner: String,
    pub lease: Duration,
    pub retry: RetryPolicy,
    /// The last report rendered, sent to every recipient.
    rendered: tokio::sync::Mutex<Option<Rendered>>,
}

/// A report rendered for a period.
struct Rendered {
    report: String,
    period: String,
    pdf: Arc<Vec<u8>>,
}

/// The first day of a period `YYYY-MM`.
pub fn period_start(period: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(&format!("{period}-01"), "%Y-%m-%d").ok()
}

impl ReportDispatcher {
    pub fn new(
        store: Arc<dyn Store>,
        config: Arc<Config>,
        mailer: Arc<ReportMailer>,
        owner: String,
        lease: Duration,
        retry: RetryPolicy,
    ) -> ReportDispatcher {
        ReportDispatcher {
            store,
            config,
            mailer,
            owner,
            lease: lease.max(MIN_REPORT_LEASE),
            retry,
            rendered: tokio::sync::Mutex::new(None),
        }
    }

    /// Claims, renders, sends and records at most one due delivery.
    ///
    /// # Errors
    /// Database errors; delivery and rendering errors are outcomes, not errors.
    pub async fn try_send_once(&self) -> Result<ReportStep, StoreError> {
        let now = Utc::now();
        let lease_until = now
            + chrono::Duration::from_std(self.lease)
                .unwrap_or_else(|_| chrono::Duration::minutes(15));
        let Some(d) = self
            .store
            .claim_report_delivery(&self.owner, lease_until, now)
            .await?
        else {
            return Ok(ReportStep::Idle);
        };
        if d.attempts > 1 && d.status == "sending" {
            tracing::warn!(delivery = d.id, report = %d.report, period = %d.period, "report send interrupted (lease expired), sending again with the same Message-ID");
        }
        let (mail, sha) = match self.mail(&d).await {
            Ok(m) => m,
            Err(error) => {
                return self
                    .record(
                        &d,
                        Err(DeliveryError::Temporary {
                            message: error,
                            retry_after: None,
                        }),
                        String::new(),
                    )
                    .await
            }
        };
        let sent = self.mailer.send(&mail).await;
        self.record(&d, sent.map(|s| s.provider_ref), sha).await
    }

    /// Records an attempt's outcome.
    async fn record(
        &self,
        d: &ReportDelivery,
        sent: Result<String, DeliveryError>,
        sha: String,
    ) -> Result<ReportStep, StoreError> {
        let now = Utc::now();
        let (outcome, step) = match sent {
            Ok(provider_ref) => {
                tracing::info!(delivery = d.id, report = %d.report, period = %d.period, recipient = %d.recipient, provider_ref = %provider_ref, "report sent");
                (
                    ReportOutcome::Sent {
                        document_sha256: sha,
                    },
                    ReportStep::Sent {
                        id: d.id,
                        period: d.period.clone(),
                        recipient: d.recipient.clone(),
                        provider_ref,
                    },
                )
            }
            Err(DeliveryError::Temporary {
                message,
                retry_after,
            }) if d.attempts < self.retry.max_attempts => {
                let wait = retry_after
                    .unwrap_or_else(|| self.retry.delay(d.attempts, d.id.unsigned_abs()));
                let at = now
                    + chrono::Duration::from_std(wait)
                        .unwrap_or_else(|_| chrono::Duration::minutes(5));
                tracing::warn!(delivery = d.id, report = %d.report, period = %d.period, recipient = %d.recipient, attempt = d.attempts, error = %message, retry_at = %at, "report not sent; retrying");
                (
                    ReportOutcome::Retry {
                        error: message.clone(),
                        at,
                    },
                    ReportStep::Retrying {
                        id: d.id,
                        error: message,
                    },
                )
            }
            Err(e) => {
                let error = match &e {
                    DeliveryError::Temporary { message, .. } => {
                        format!("{message} (attempt {}, the last)", d.attempts)
                    }
                    other => other.to_string(),
                };
                tracing::error!(delivery = d.id, report = %d.report, period = %d.period, recipient = %d.recipient, error = %error, "report not sent; given up (dead letter)");
                (
                    ReportOutcome::Dead {
                        error: error.clone(),
                    },
                    ReportStep::Dead { id: d.id, error },
                )
            }
        };
        if self
            .store
            .finish_report_delivery(d.id, &self.owner, &outcome, now)
            .await?
        {
            Ok(step)
        } else {
            tracing::warn!(
                delivery = d.id,
                "report delivery taken over by another worker (lease expired)"
            );
            Ok(ReportStep::LeaseLost { id: d.id })
        }
    }

    /// The mail of a delivery and the SHA-256 of its PDF.
    async fn mail(&self, d: &ReportDelivery) -> Result<(ReportMail, String), String> {
        if d.report != "monthly" {
            return Err(format!("unknown report '{}'", d.report));
        }
        let start = period_start(&d.period)
            .ok_or_else(|| format!("period '{}' is not YYYY-MM", d.period))?;
        let as_of = crate::reports::last_of_month(start);
        let locale = self.config.reports.locale;
        let pdf = self.render(d, as_of, locale).await?;
        let sha = crate::digest::sha256_hex(&pdf);
        let month = month_name(start, locale);
        let company = &self.config.company.name;
        let (subject, text, file) = match locale {
            Locale::Fr => (
                format!("Rapport mensuel du poste clients — {month} — {company}"),
                format!(
                    "Bonjour,\n\nVoici le rapport mensuel du poste clients de {company} pour {month} (arrêté au {}) : balance âgée, DSO et CEI sur douze mois, ce qu'a rapporté chaque étape de relance, clients au-delà de leur encours autorisé ou de leur garantie, et les clients qui doivent le plus.\n\nCe message est envoyé par relance selon la planification reports.monthly.\n",
                    crate::domain::format::date(as_of, locale)
                ),
                format!("rapport-poste-clients-{}.pdf", d.period),
            ),
            Locale::En => (
                format!("Monthly receivables report — {month} — {company}"),
                format!(
                    "Hello,\n\nAttached is {company}'s monthly receivables report for {month} (as of {}): the aged balance, DSO and CEI over twelve months, what each dunning step earned, customers over their credit limit or insurer's cover, and the customers owing the most.\n\nThis message is sent by relance on the reports.monthly schedule.\n",
                    crate::domain::format::date(as_of, locale)
                ),
                format!("receivables-report-{}.pdf", d.period),
            ),
        };
        Ok((
            ReportMail {
                key: d.key.clone(),
                to: d.recipient.clone(),
                subject,
                text,
                attachment: Attachment {
                    file_name: file,
                    bytes: pdf.as_ref().clone(),
                },
            },
            sha,
        ))
    }

    /// The report's PDF, rendered once per report and period.
    async fn render(
        &self,
        d: &ReportDelivery,
        as_of: NaiveDate,
        locale: Locale,
    ) -> Result<Arc<Vec<u8>>, String> {
        let mut cached = self.rendered.lock().await;
        if let Some(r) = cached.as_ref() {
            if r.report == d.report && r.period == d.period {
                return Ok(r.pdf.clone());
            }
        }
        let today = Utc::now().with_timezone(&self.config.timezone).date_naive();
        let query = crate::reports::ReportQuery::build(
            &self.config,
            as_of,
            None,
            crate::store::reports::ReportFilter::default(),
            None,
            today,
        )
        .map_err(|e| e.to_string())?;
        let started = std::time::Instant::now();
        let pdf = crate::charts::monthly_pdf(self.store.as_ref(), &self.config, &query, locale)
            .await
            .map_err(|e| format!("cannot render the {} report: {e}", d.report))?;
        tracing::info!(report = %d.report, period = %d.period, bytes = pdf.len(), seconds = started.elapsed().as_secs_f64(), "report rendered");
        let pdf = Arc::new(pdf);
        *cached = Some(Rendered {
            report: d.report.clone(),
            period: d.period.clone(),
            pdf: pdf.clone(),
        });
        Ok(pdf)
    }
}

/// "novembre 2026", "November 2026".
fn month_name(d: NaiveDate, locale: Locale) -> String {
    use chrono::Datelike;
    const FR: [&str; 12] = [
        "janvier",
        "février",
        "mars",
        "avril",
        "mai",
        "juin",
        "juillet",
        "août",
        "septembre",
        "octobre",
        "novembre",
        "décembre",
    ];
    const EN: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let m = d.month0() as usize;
    match locale {
        Locale::Fr => format!("{} {}", FR[m], d.year()),
        Locale::En => format!("{} {}", EN[m], d.year()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_and_month_names() {
        let d = period_start("2026-11").unwrap();
        assert_eq!(d, NaiveDate::from_ymd_opt(2026, 11, 1).unwrap());
        assert_eq!(period_start("2026-13"), None);
        assert_eq!(period_start("nope"), None);
        assert_eq!(month_name(d, Locale::Fr), "novembre 2026");
        assert_eq!(month_name(d, Locale::En), "November 2026");
    }
}
