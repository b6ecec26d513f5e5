//! The dunning state kept beside the action log: the steps applied to each invoice
//! (`invoice_steps`) and the messages delivered to each customer (`contacts`). Both are
//! maintained when actions are recorded or change status, so that what a tick needs
//! from history costs the same after a day or after years of log.

use chrono::NaiveDate;

/// Whether an action in this status applied its step: `Live` and `Lapsed` ones did
/// (a failed reminder was still the reminder step of its invoice), `None` did not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Applied {
    /// Planned, being sent, sent, retrying, held, or a rule error.
    Live,
    /// Failed or dead: applied, but an insurer handover that failed did not hand over.
    Lapsed,
    /// Cancelled or blocked: not an application of its step.
    None,
}

impl Applied {
    pub(crate) fn of(status: &str) -> Applied {
        match status {
            "cancelled" | "blocked" | "duplicate" => Applied::None,
            "failed" | "dead" => Applied::Lapsed,
            _ => Applied::Live,
        }
    }
}

/// One action as the state is folded from: its id (the log's order), customer,
/// invoices, kind, step, day decided and status.
pub(crate) struct StepSource<'a> {
    pub id: i64,
    pub customer_id: i64,
    pub invoices: &'a [String],
    pub kind: &'a str,
    pub step: &'a str,
    pub day: NaiveDate,
    pub status: &'a str,
}

/// A row of `invoice_steps` to write: new, or appended to the row of the same customer,
/// invoice and step (its days are added after the ones stored; its kind and first
/// action are the stored ones).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StepRow {
    pub invoice: String,
    pub step: String,
    pub customer_id: i64,
    pub kind: String,
    pub first_action: i64,
    pub applied: String,
}

/// The rows the applications of `sources` make, one per customer, invoice and step, in
/// key order (the order the table is written in).
///
/// A first tick folds some 1.5 million applications on the writer's path: they are
/// sorted by key and log order and merged run by run (no map of the rows, dates written
/// without a format parser).
pub(crate) fn fold<'a>(sources: impl IntoIterator<Item = StepSource<'a>>) -> Vec<StepRow> {
    // One entry per application of a step to an invoice.
    struct Entry<'a> {
        customer_id: i64,
        invoice: &'a str,
        step: &'a str,
        id: i64,
        source: usize,
    }
    let sources: Vec<StepSource<'a>> = sources
        .into_iter()
        .filter(|s| Applied::of(s.status) != Applied::None && !s.invoices.is_empty())
        .collect();
    let mut entries: Vec<Entry<'_>> = sources
        .iter()
        .enumerate()
        .flat_map(|(n, s)| {
            s.invoices.iter().map(move |invoice| Entry {
                customer_id: s.customer_id,
                invoice: invoice.as_str(),
                step: s.step,
                id: s.id,
                source: n,
            })
        })
        .collect();
    let order = |a: &Entry<'_>, b: &Entry<'_>| {
        (a.customer_id, a.invoice, a.step, a.id).cmp(&(b.customer_id, b.invoice, b.step, b.id))
    };
    // A tick's actions come customer by customer: each customer's few entries are
    // sorted among themselves rather than all of them together.
    if entries.is_sorted_by_key(|e| e.customer_id) {
        for run in entries.chunk_by_mut(|a, b| a.customer_id == b.customer_id) {
            run.sort_unstable_by(order);
        }
    } else {
        entries.sort_unstable_by(order);
    }
    let mut rows: Vec<StepRow> = Vec::new();
    let mut last: Option<(i64, &str, &str)> = None;
    for e in &entries {
        let s = &sources[e.source];
        let key = (e.customer_id, e.invoice, e.step);
        if last == Some(key) {
            if let Some(r) = rows.last_mut() {
                r.applied.push(' ');
            }
        } else {
            last = Some(key);
            rows.push(StepRow {
                invoice: e.invoice.to_string(),
                step: e.step.to_string(),
                customer_id: e.customer_id,
                kind: s.kind.to_string(),
                first_action: e.id,
                applied: String::with_capacity(11),
            });
        }
        let Some(StepRow { applied, .. }) = rows.last_mut() else {
            continue;
        };
        if Applied::of(s.status) == Applied::Lapsed {
            applied.push('!');
        }
        crate::store::rows::push_iso_date(applied, s.day);
    }
    rows
}

/// The applications a row's `applied` lists: each day, and whether it lapsed.
///
/// # Errors
/// A day that is not a date (the text is the store's own: a corrupt row).
pub(crate) fn parse_applied(applied: &str) -> Result<Vec<(NaiveDate, bool)>, String> {
    applied
        .split_ascii_whitespace()
        .map(|t| {
            let (lapsed, day) = match t.strip_prefix('!') {
                Some(d) => (true, d),
                None => (false, t),
            };
            crate::store::rows::iso_date(day)
                .map(|d| (d, lapsed))
                .ok_or_else(|| format!("invoice step applied on '{t}': not a date"))
        })
        .collect()
}

/// The statement that writes [`StepRow`]s, after its `VALUES`: a row already there
/// gets the new days appended.
pub(crate) const UPSERT_TAIL: &str = "ON CONFLICT (customer_id, invoice, step) DO UPDATE SET applied = invoice_steps.applied || ' ' || excluded.applied";
pub(crate) const UPSERT_HEAD: &str =
    "INSERT INTO invoice_steps (customer_id, invoice, step, kind, first_action, applied)";

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn applications_not_in_customer_order_fold_into_the_same_rows_in_key_order() {
        let a = vec!["F9".to_string()];
        let b = vec!["F1".to_string(), "F2".to_string()];
        let source = |id, customer_id, invoices, day| StepSource {
            id,
            customer_id,
            invoices,
            kind: "email",
            step: "r1",
            day: d(day),
            status: "sent",
        };
        // Customer 2, then 1, then 2 again (as the log's order gives them, not a tick's).
        let rows = fold([
            source(5, 2, &a, "2026-11-02"),
            source(6, 1, &b, "2026-11-02"),
            source(7, 2, &a, "2026-11-03"),
        ]);
        let got: Vec<(i64, &str, i64, &str)> = rows
            .iter()
            .map(|r| {
                (
                    r.customer_id,
                    r.invoice.as_str(),
                    r.first_action,
                    r.applied.as_str(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (1, "F1", 6, "2026-11-02"),
                (1, "F2", 6, "2026-11-02"),
                (2, "F9", 5, "2026-11-02 2026-11-03"),
            ]
        );
    }

    #[test]
    fn dates_are_written_as_sqlx_writes_them_whatever_the_year() {
        for text in [
            "2026-11-02",
            "0001-01-09",
            "0999-12-31",
            "9999-12-31",
            "2024-02-29",
        ] {
            let date = d(text);
            assert_eq!(crate::store::rows::iso_date_text(date), text);
            assert_eq!(
                crate::store::rows::iso_date_text(date),
                date.format("%F").to_string()
            );
        }
        for date in [
            NaiveDate::from_ymd_opt(10_000, 1, 1).unwrap(),
            NaiveDate::from_ymd_opt(-5, 3, 4).unwrap(),
        ] {
            assert_eq!(
                crate::store::rows::iso_date_text(date),
                date.format("%F").to_string()
            );
        }
    }

    #[test]
    fn applications_fold_per_invoice_and_step_in_the_logs_order() {
        let a = vec!["F1".to_string(), "F2".to_string()];
        let b = vec!["F1".to_string()];
        let rows = fold([
            StepSource {
                id: 7,
                customer_id: 1,
                invoices: &b,
                kind: "email",
                step: "r1",
                day: d("2026-11-09"),
                status: "failed",
            },
            StepSource {
                id: 3,
                customer_id: 1,
                invoices: &a,
                kind: "email",
                step: "r1",
                day: d("2026-11-02"),
                status: "sent",
            },
            StepSource {
                id: 9,
                customer_id: 1,
                invoices: &b,
                kind: "sms",
                step: "r2",
                day: d("2026-11-10"),
                status: "cancelled",
            },
        ]);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].invoice, "F1");
        assert_eq!(rows[0].first_action, 3);
        assert_eq!(rows[0].applied, "2026-11-02 !2026-11-09");
        assert_eq!(rows[1].invoice, "F2");
        assert_eq!(rows[1].applied, "2026-11-02");
        assert_eq!(
            parse_applied(&rows[0].applied).unwrap(),
            vec![(d("2026-11-02"), false), (d("2026-11-09"), true)]
        );
        assert!(parse_applied("2026-13-01").is_err());
    }
}
