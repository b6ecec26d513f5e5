//! The storage story, run on SQLite and, when `RELANCE_TEST_POSTGRES_URL` is set, on
//! PostgreSQL: both backends must behave identically.

use std::str::FromStr;
use std::sync::Arc;

use chrono::{NaiveDate, TimeZone, Utc};
use rust_decimal::Decimal;

use relance::domain::*;
use relance::store::{NewPromise, PaymentStatus, Store, UpsertCounts};

use crate::helpers::{postgres_admin_url, say_postgres_skipped, TestDb};

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn customer(id: &str) -> Customer {
    Customer {
        external_id: id.into(),
        name: format!("Client {id}"),
        legal_name: Some(format!("Client {id} SAS")),
        siren: Some(Siren::parse("732829320").unwrap()),
        siret: None,
        vat_number: Some(VatNumber::parse("FR44732829320").unwrap()),
        country: CountryCode::FR,
        segment: "smb".into(),
        locale: Locale::Fr,
        emails: vec![EmailAddress::parse("compta@client.example").unwrap()],
        phones: vec![PhoneNumber::parse("+33612345678").unwrap()],
        address: PostalAddress {
            line1: Some("1 rue de la Paix".into()),
            line2: None,
            postal_code: Some("75002".into()),
            city: Some("Paris".into()),
            country: Some(CountryCode::FR),
        },
        currency: Currency::EUR,
        credit_limit: Some(dec("25000.00")),
        insurance: Insurance {
            insured: true,
            policy: Some("coface-fr".into()),
            buyer_ref: Some("CF1".into()),
            cover_amount: Some(dec("20000")),
        },
        collector: Some("alice".into()),
        tags: vec!["vip".into()],
        pause: None,
    }
}

fn invoice(number: &str, customer: &str, due: &str, amount: &str) -> InvoiceRecord {
    InvoiceRecord {
        number: number.into(),
        customer: customer.into(),
        issue_date: d(due) - chrono::Duration::days(30),
        due_date: d(due),
        currency: Currency::EUR,
        amount: dec(amount),
        open_amount: None,
        status: None,
    }
}

fn payment(id: &str, customer: &str, amount: &str, reference: Option<&str>) -> Payment {
    Payment {
        external_id: id.into(),
        customer: customer.into(),
        kind: PaymentKind::Payment,
        date: d("2026-03-10"),
        currency: Currency::EUR,
        amount: dec(amount),
        reference: reference.map(str::to_string),
    }
}

async fn open_amounts(
    store: &Arc<dyn Store>,
    customer: &str,
) -> Vec<(String, Decimal, InvoiceStatus)> {
    store
        .invoices_of(customer)
        .await
        .unwrap()
        .into_iter()
        .map(|i| (i.number, i.open_amount, i.status))
        .collect()
}

/// Runs `story` on SQLite, then on PostgreSQL when configured.
macro_rules! on_both_backends {
    ($name:ident, $story:ident) => {
        #[tokio::test]
        async fn $name() {
            let db = TestDb::sqlite();
            $story(db.open().await).await;
            match postgres_admin_url() {
                Some(admin) => {
                    let db = TestDb::postgres(&admin).await;
                    let store = db.open().await;
                    $story(store.clone()).await;
                    store.close().await;
                    db.cleanup().await;
                }
                None => say_postgres_skipped(stringify!($name)),
            }
        }
    };
}

on_both_backends!(
    customers_round_trip_and_upsert_idempotently,
    customers_story
);
on_both_backends!(payments_allocate_as_specified, payments_story);
on_both_backends!(pauses_disputes_and_promises, collector_story);
on_both_backends!(an_uncommitted_unit_of_work_writes_nothing, rollback_story);

async fn customers_story(store: Arc<dyn Store>) {
    assert_eq!(
        store.migrate().await.unwrap(),
        0,
        "migrations are applied once"
    );
    let mut tx = store.begin().await.unwrap();
    let counts = tx
        .upsert_customers(&[customer("A"), customer("B")])
        .await
        .unwrap();
    assert_eq!(
        counts,
        UpsertCounts {
            inserted: 2,
            updated: 0,
            unchanged: 0
        }
    );
    tx.commit().await.unwrap();

    assert_eq!(
        store.customer("A").await.unwrap(),
        Some(customer("A")),
        "every field survives storage"
    );
    assert_eq!(store.customer("nobody").await.unwrap(), None);

    let mut changed = customer("B");
    changed
        .emails
        .push(EmailAddress::parse("dg@client.example").unwrap());
    changed.insurance.insured = false;
    let mut tx = store.begin().await.unwrap();
    let counts = tx
        .upsert_customers(&[customer("A"), changed.clone(), customer("C")])
        .await
        .unwrap();
    assert_eq!(
        counts,
        UpsertCounts {
            inserted: 1,
            updated: 1,
            unchanged: 1
        }
    );
    tx.commit().await.unwrap();
    assert_eq!(store.customer("B").await.unwrap(), Some(changed));

    let page = store.customers(Some("smb"), 2, None).await.unwrap();
    assert_eq!(
        page.iter()
            .map(|c| c.external_id.as_str())
            .collect::<Vec<_>>(),
        ["A", "B"]
    );
    let next = store.customers(Some("smb"), 2, Some("B")).await.unwrap();
    assert_eq!(next.len(), 1);
    assert!(store
        .customers(Some("public_sector"), 10, None)
        .await
        .unwrap()
        .is_empty());
}

async fn payments_story(store: Arc<dyn Store>) {
    let mut tx = store.begin().await.unwrap();
    tx.upsert_customers(&[customer("A")]).await.unwrap();
    let ids = tx.customer_ids(&["A", "missing"]).await.unwrap();
    assert_eq!(ids.len(), 1);
    let a = ids["A"];
    let invoices = vec![
        (a, invoice("F-1", "A", "2026-01-31", "1000.00")),
        (a, invoice("F-2", "A", "2026-02-28", "500.00")),
        (a, invoice("F-3", "A", "2026-03-31", "250.00")),
        (a, invoice("F-4", "A", "2026-04-30", "300.00")),
    ];
    assert_eq!(tx.upsert_invoices(&invoices).await.unwrap().inserted, 4);

    // A partial payment without reference goes to the oldest due invoice.
    let out = tx
        .record_payment(a, &payment("P1", "A", "400.00", Some("VIREMENT CLIENT A")))
        .await
        .unwrap();
    assert_eq!(out.status, PaymentStatus::Inserted);
    assert_eq!(out.allocations, vec![("F-1".to_string(), dec("400.00"))]);
    assert!(!out.by_reference);

    // A reference naming two invoices pays those, in the order named.
    let out = tx
        .record_payment(a, &payment("P2", "A", "550.00", Some("Fact. F-3 + F-2")))
        .await
        .unwrap();
    assert_eq!(
        out.allocations,
        vec![
            ("F-3".to_string(), dec("250.00")),
            ("F-2".to_string(), dec("300.00"))
        ]
    );
    assert!(out.by_reference);
    assert_eq!(out.unapplied, dec("0.00"));

    // An overpayment settles everything and leaves unapplied credit.
    let out = tx
        .record_payment(a, &payment("P3", "A", "1200.00", None))
        .await
        .unwrap();
    assert_eq!(
        out.allocations,
        vec![
            ("F-1".to_string(), dec("600.00")),
            ("F-2".to_string(), dec("200.00")),
            ("F-4".to_string(), dec("300.00"))
        ]
    );
    assert_eq!(out.unapplied, dec("100.00"));

    // The same payment again is a no-op.
    let again = tx
        .record_payment(a, &payment("P3", "A", "1200.00", None))
        .await
        .unwrap();
    assert_eq!(again.status, PaymentStatus::Unchanged);
    assert_eq!(again.allocations, out.allocations);
    tx.commit().await.unwrap();

    let open = open_amounts(&store, "A").await;
    assert!(
        open.iter()
            .all(|(_, o, s)| *o == Decimal::ZERO && *s == InvoiceStatus::Paid),
        "{open:?}"
    );

    // A corrected payment amount is re-allocated from scratch.
    let mut tx = store.begin().await.unwrap();
    let out = tx
        .record_payment(a, &payment("P3", "A", "700.00", None))
        .await
        .unwrap();
    assert_eq!(out.status, PaymentStatus::Updated);
    assert_eq!(
        out.allocations,
        vec![
            ("F-1".to_string(), dec("600.00")),
            ("F-2".to_string(), dec("100.00"))
        ]
    );
    assert_eq!(out.unapplied, dec("0.00"));
    tx.commit().await.unwrap();
    let open = open_amounts(&store, "A").await;
    assert_eq!(open[1], ("F-2".into(), dec("100.00"), InvoiceStatus::Open));
    assert_eq!(open[3], ("F-4".into(), dec("300.00"), InvoiceStatus::Open));

    // Re-importing an invoice keeps what payments settled; a new amount is taken into account.
    let mut tx = store.begin().await.unwrap();
    let c = tx
        .upsert_invoices(&[(a, invoice("F-2", "A", "2026-02-28", "500.00"))])
        .await
        .unwrap();
    assert_eq!(
        c,
        UpsertCounts {
            inserted: 0,
            updated: 0,
            unchanged: 1
        }
    );
    let c = tx
        .upsert_invoices(&[(a, invoice("F-2", "A", "2026-02-28", "450.00"))])
        .await
        .unwrap();
    assert_eq!(c.updated, 1);
    // The ERP's open amount, when given, is authoritative.
    let mut erp = invoice("F-4", "A", "2026-04-30", "300.00");
    erp.open_amount = Some(dec("0"));
    tx.upsert_invoices(&[(a, erp)]).await.unwrap();
    tx.commit().await.unwrap();
    let open = open_amounts(&store, "A").await;
    assert_eq!(open[1], ("F-2".into(), dec("50.00"), InvoiceStatus::Open));
    assert_eq!(open[3], ("F-4".into(), dec("0.00"), InvoiceStatus::Paid));

    let views = store.payments_of("A").await.unwrap();
    assert_eq!(views.len(), 3);
    assert_eq!(views[1].allocations.len(), 2);

    let s = store.summary(d("2026-03-15")).await.unwrap();
    assert_eq!((s.customers, s.invoices, s.payments), (1, 4, 3));
    assert_eq!(s.by_currency.len(), 1);
    assert_eq!(s.by_currency[0].open, dec("50.00"));
    assert_eq!(s.by_currency[0].overdue, dec("50.00"));
}

async fn collector_story(store: Arc<dyn Store>) {
    let mut tx = store.begin().await.unwrap();
    tx.upsert_customers(&[customer("A")]).await.unwrap();
    let a = tx.customer_ids(&["A"]).await.unwrap()["A"];
    tx.upsert_invoices(&[
        (a, invoice("F-1", "A", "2026-01-31", "1000.00")),
        (a, invoice("F-2", "A", "2026-02-28", "500.00")),
    ])
    .await
    .unwrap();
    let pause = Pause {
        reason: "negotiating a payment plan".into(),
        until: Some(d("2026-04-15")),
    };
    tx.set_customer_pause("A", Some(&pause)).await.unwrap();
    tx.set_invoice_pause(
        "F-2",
        Some(&Pause {
            reason: "autopay".into(),
            until: None,
        }),
    )
    .await
    .unwrap();
    let opened = Utc.with_ymd_and_hms(2026, 3, 1, 10, 0, 0).unwrap();
    tx.set_invoice_dispute(
        "F-1",
        Some(&Dispute {
            reason: "goods damaged".into(),
            opened_at: opened,
        }),
    )
    .await
    .unwrap();
    assert!(
        tx.set_invoice_dispute("F-404", None).await.is_err(),
        "unknown invoice"
    );
    tx.commit().await.unwrap();

    // An upsert from the ERP does not lift a collector's pause.
    let mut tx = store.begin().await.unwrap();
    tx.upsert_customers(&[customer("A")]).await.unwrap();
    tx.upsert_invoices(&[(a, invoice("F-1", "A", "2026-01-31", "1000.00"))])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        store.customer("A").await.unwrap().unwrap().pause,
        Some(pause.clone())
    );
    assert!(pause.active_on(d("2026-04-15")) && !pause.active_on(d("2026-04-16")));
    let f1 = store.invoice("F-1").await.unwrap().unwrap();
    assert_eq!(
        f1.dispute,
        Some(Dispute {
            reason: "goods damaged".into(),
            opened_at: opened
        })
    );
    assert_eq!(
        store
            .invoice("F-2")
            .await
            .unwrap()
            .unwrap()
            .pause
            .unwrap()
            .until,
        None
    );

    // Promises: one kept by a payment, one broken after its date.
    let now = Utc::now();
    let mut tx = store.begin().await.unwrap();
    tx.set_customer_pause("A", None).await.unwrap();
    let kept = tx
        .add_promise(
            &NewPromise {
                customer: "A".into(),
                promised_date: d("2026-03-20"),
                amount: dec("500.00"),
                invoices: vec!["F-2".into()],
                note: Some("by phone".into()),
            },
            now,
        )
        .await
        .unwrap();
    let broken = tx
        .add_promise(
            &NewPromise {
                customer: "A".into(),
                promised_date: d("2026-03-25"),
                amount: dec("1000.00"),
                invoices: vec!["F-1".into()],
                note: None,
            },
            now,
        )
        .await
        .unwrap();
    assert!(tx
        .add_promise(
            &NewPromise {
                customer: "A".into(),
                promised_date: d("2026-03-25"),
                amount: dec("1"),
                invoices: vec!["F-9".into()],
                note: None
            },
            now
        )
        .await
        .is_err());
    assert_eq!(tx.refresh_promises(d("2026-03-19"), now).await.unwrap(), 0);
    tx.record_payment(a, &payment("P1", "A", "500.00", Some("F-2")))
        .await
        .unwrap();
    assert_eq!(tx.refresh_promises(d("2026-03-26"), now).await.unwrap(), 2);
    tx.commit().await.unwrap();
    assert!(store.customer("A").await.unwrap().unwrap().pause.is_none());
    let promises = store.promises_of("A").await.unwrap();
    let status = |id| promises.iter().find(|p| p.id == id).unwrap().status;
    assert_eq!(status(kept), PromiseStatus::Kept);
    assert_eq!(status(broken), PromiseStatus::Broken);
    assert_eq!(
        promises.iter().find(|p| p.id == kept).unwrap().invoices,
        vec!["F-2".to_string()]
    );
}

async fn rollback_story(store: Arc<dyn Store>) {
    let mut tx = store.begin().await.unwrap();
    tx.upsert_customers(&[customer("A")]).await.unwrap();
    tx.rollback().await.unwrap();
    let mut tx = store.begin().await.unwrap();
    tx.upsert_customers(&[customer("B")]).await.unwrap();
    drop(tx);
    assert_eq!(store.customer("A").await.unwrap(), None);
    assert_eq!(store.customer("B").await.unwrap(), None);
    assert_eq!(store.summary(d("2026-01-01")).await.unwrap().customers, 0);
}
