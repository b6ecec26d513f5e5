//! Generating, archiving and reusing the documents of actions, for the channels.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::NaiveDate;

use super::DeliveryError;
use crate::config::channels::FormalNoticeConfig;
use crate::config::{Company, Config, Insurer};
use crate::documents::archive::{Archive, ArchiveError, Document};
use crate::documents::pdf::PdfRenderer;
use crate::documents::{statement_data, Claim, FormalNotice};
use crate::domain::{Customer, Invoice, InvoiceStatus, Jurisdictions};
use crate::store::documents::StoredDocument;
use crate::store::{ClaimedAction, Store};

/// What the channels need to produce documents.
pub struct Documents {
    store: Arc<dyn Store>,
    pub archive: Archive,
    pub renderer: PdfRenderer,
    company: Company,
    terms: Jurisdictions,
    insurers: BTreeMap<String, Insurer>,
    timezone: chrono_tz::Tz,
    notice: FormalNoticeConfig,
}

fn archive_error(e: ArchiveError) -> DeliveryError {
    match e {
        // The evidence on file no longer matches the action log: an operator must look.
        ArchiveError::Altered { .. }
        | ArchiveError::NoContent { .. }
        | ArchiveError::Pruned { .. } => DeliveryError::Blocked {
            reason: e.to_string(),
        },
        other => DeliveryError::Temporary {
            message: other.to_string(),
            retry_after: None,
        },
    }
}

fn store_error(e: crate::store::StoreError) -> DeliveryError {
    DeliveryError::Temporary {
        message: format!("database: {e}"),
        retry_after: None,
    }
}

impl Documents {
    pub fn new(config: &Config, store: Arc<dyn Store>) -> Documents {
        Documents {
            archive: Archive::new(store.clone(), config.channels.documents.archive.clone()),
            store,
            renderer: PdfRenderer::new(&config.channels.templates_dir),
            company: config.company.clone(),
            terms: config.late_payment.clone(),
            insurers: config.insurers.clone(),
            timezone: config.timezone,
            notice: config.channels.formal_notice.clone(),
        }
    }

    /// The reference printed on a formal notice.
    pub fn notice_reference(action_id: i64) -> String {
        format!("MED-{action_id:06}")
    }

    /// The date a document of `a` bears: the day it is generated, in the configured time
    /// zone, or the decision's date when that is later (a tick run ahead with `--as-of`).
    pub fn date_for(&self, a: &ClaimedAction) -> NaiveDate {
        chrono::Utc::now()
            .with_timezone(&self.timezone)
            .date_naive()
            .max(a.decided_on)
    }

    /// The insurer covering a customer, if its policy is configured.
    pub fn insurer_of(&self, customer: &Customer) -> Option<&Insurer> {
        customer
            .insurance
            .policy
            .as_deref()
            .and_then(|p| self.insurers.get(p))
    }

    /// Interest and indemnities on `invoices` of `customer` as of `as_of`.
    ///
    /// # Errors
    /// [`DeliveryError::Blocked`] when a day has no reference rate.
    pub async fn claim(
        &self,
        customer: &Customer,
        invoices: &[Invoice],
        as_of: NaiveDate,
    ) -> Result<Claim, DeliveryError> {
        let payments = self
            .store
            .payments_of(&customer.external_id)
            .await
            .map_err(store_error)?;
        let terms = self.terms.for_country(customer.country);
        Claim::compute(invoices, &payments, terms, as_of).map_err(|e| DeliveryError::Blocked {
            reason: e.to_string(),
        })
    }

    async fn render(
        &self,
        template: &str,
        customer: &Customer,
        data: serde_json::Value,
        ident: &str,
        today: NaiveDate,
    ) -> Result<Vec<u8>, DeliveryError> {
        let renderer = self.renderer.clone();
        let (template, locale, ident) = (template.to_string(), customer.locale, ident.to_string());
        tokio::task::spawn_blocking(move || {
            renderer.render(&template, locale, &data, &ident, today)
        })
        .await
        .map_err(|e| DeliveryError::Temporary {
            message: format!("PDF rendering stopped: {e}"),
            retry_after: None,
        })?
        .map_err(|e| DeliveryError::Blocked {
            reason: e.to_string(),
        })
    }

    /// The formal notice of an action: the archived one when an earlier attempt made it,
    /// else generated as of today and archived before anything is sent.
    ///
    /// # Errors
    /// Blocked when it cannot be rendered (template, missing rate); temporary when the
    /// archive cannot be written.
    pub async fn formal_notice(
        &self,
        a: &ClaimedAction,
        registered: bool,
    ) -> Result<(StoredDocument, Vec<u8>), DeliveryError> {
        if let Some(found) = self
            .archive
            .find(a.id, "formal_notice")
            .await
            .map_err(archive_error)?
        {
            return Ok(found);
        }
        let today = self.date_for(a);
        let claim = self.claim(&a.customer, &a.invoices, today).await?;
        let deadline_days = a
            .options
            .get("deadline_days")
            .and_then(serde_json::Value::as_i64)
            .filter(|d| (1..=90).contains(d))
            .unwrap_or(self.notice.deadline_days);
        let reference = Self::notice_reference(a.id);
        let notice = FormalNotice {
            company: &self.company,
            customer: &a.customer,
            claim: &claim,
            terms: self.terms.for_country(a.customer.country),
            insurer: self.insurer_of(&a.customer),
            reference: reference.clone(),
            deadline_days,
            deadline: today + chrono::Duration::days(deadline_days),
            registered,
            reminded_before: a.reminded_before,
        };
        let template = a
            .template
            .clone()
            .unwrap_or_else(|| self.notice.template.clone());
        let mut data = notice.data();
        // The customer's portal link, printed as text and as a QR code.
        data["portal"] = match &a.portal_url {
            Some(url) => serde_json::json!({
                "url": url,
                "qr": crate::documents::qr::svg(url, "30mm").map_err(|e| DeliveryError::Blocked {
                    reason: e.to_string(),
                })?,
            }),
            None => serde_json::Value::Null,
        };
        let bytes = self
            .render(&template, &a.customer, data, &a.key, today)
            .await?;
        let doc = Document {
            kind: "formal_notice".into(),
            file_name: format!("{reference}.pdf"),
            reference,
            bytes,
            metadata: notice.metadata(),
        };
        self.archive.keep(a.id, doc).await.map_err(archive_error)
    }

    /// An account statement of the customer's open invoices, archived with the action.
    ///
    /// # Errors
    /// As [`Documents::formal_notice`].
    pub async fn statement(
        &self,
        a: &ClaimedAction,
    ) -> Result<(StoredDocument, Vec<u8>), DeliveryError> {
        if let Some(found) = self
            .archive
            .find(a.id, "statement")
            .await
            .map_err(archive_error)?
        {
            return Ok(found);
        }
        let today = self.date_for(a);
        let mut open: Vec<Invoice> = self
            .store
            .invoices_of(&a.customer.external_id)
            .await
            .map_err(store_error)?
            .into_iter()
            .filter(|i| i.status == InvoiceStatus::Open)
            .collect();
        open.sort_by(|x, y| (x.due_date, &x.number).cmp(&(y.due_date, &y.number)));
        let data = statement_data(&self.company, &a.customer, &open, today);
        let bytes = self
            .render(
                "statement",
                &a.customer,
                data,
                &format!("{}:statement", a.key),
                today,
            )
            .await?;
        let reference = format!("REL-{:06}", a.id);
        let doc = Document {
            kind: "statement".into(),
            file_name: format!("{reference}.pdf"),
            reference,
            bytes,
            metadata: serde_json::json!({ "date": today, "invoices": open.len() }),
        };
        self.archive.keep(a.id, doc).await.map_err(archive_error)
    }
}
