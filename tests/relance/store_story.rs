//! The storage story, run on SQLite and, when `RELANCE_TEST_POSTGRES_URL` is set, on
//! PostgreSQL: both backends must behave identically.

use std::str::FromStr;
use std::sync::Arc;

use chrono::{NaiveDate, TimeZone, Utc};
use rust_decimal::Decimal;

use relance::domain::*;
use relance::store::{AccountFilter, NewPromise, PaymentStatus, Store, UpsertCounts};

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
on_both_backends!(
    accounts_hold_what_the_rules_read_of_each_customer,
    accounts_story
);

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
                call_task: None,
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
                call_task: None,
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
                note: None,
                call_task: None,
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

/// Migration 0009 makes the action log's keys unique per customer, and snapshots keyed by
/// customer, rebuilding both tables on SQLite. A ledger upgraded from 0008 keeps every
/// action with its id and key, its events and its facts (a snapshot two customers
/// shared, and one stored inline by an older version), the foreign keys still hold, and a
/// decision recorded before the upgrade is still a duplicate after it.
#[tokio::test]
async fn upgrading_to_action_keys_by_customer_keeps_the_action_log() {
    let db = TestDb::sqlite();
    upgrade_story(&db.url).await;
    match postgres_admin_url() {
        Some(admin) => {
            let db = TestDb::postgres(&admin).await;
            upgrade_story(&db.url).await;
            db.cleanup().await;
        }
        None => say_postgres_skipped("upgrading_to_action_keys_by_customer_keeps_the_action_log"),
    }
}

/// Applies the shipped migrations up to `last` (a copy of the folder's first files).
async fn migrate_up_to(url: &str, last: u32) {
    let backend = if url.starts_with("postgres") {
        "postgres"
    } else {
        "sqlite"
    };
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(backend);
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&source).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let version: u32 = name[..4].parse().unwrap();
        if version <= last {
            std::fs::copy(&path, dir.path().join(&name)).unwrap();
        }
    }
    let migrator = sqlx::migrate::Migrator::new(dir.path()).await.unwrap();
    if backend == "postgres" {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        migrator.run(&pool).await.unwrap();
        pool.close().await;
    } else {
        let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)
            .unwrap()
            .create_if_missing(true);
        let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
        migrator.run(&pool).await.unwrap();
        pool.close().await;
    }
}

/// Runs `sql` statements on the database in order; the rows of the last query (a
/// statement starting with SELECT or PRAGMA), its columns as text.
pub(crate) async fn raw_sql(
    url: &str,
    statements: &[&str],
) -> Result<Vec<Vec<Option<String>>>, String> {
    use sqlx::Row;
    macro_rules! run {
        ($pool:expr) => {{
            let pool = $pool;
            let mut out = Vec::new();
            let mut result = Ok(());
            for sql in statements {
                if sql.starts_with("SELECT") || sql.starts_with("PRAGMA") {
                    match sqlx::query(sql).fetch_all(&pool).await {
                        Ok(rows) => {
                            out = rows
                                .iter()
                                .map(|r| {
                                    (0..r.len())
                                        .map(|i| r.try_get::<Option<String>, _>(i).unwrap())
                                        .collect()
                                })
                                .collect()
                        }
                        Err(e) => result = Err(format!("{sql}: {e}")),
                    }
                } else if let Err(e) = sqlx::query(sql).execute(&pool).await {
                    result = Err(format!("{sql}: {e}"));
                }
                if result.is_err() {
                    break;
                }
            }
            pool.close().await;
            result.map(|()| out)
        }};
    }
    if url.starts_with("postgres") {
        run!(sqlx::PgPool::connect(url).await.unwrap())
    } else {
        let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)
            .unwrap()
            .foreign_keys(true);
        run!(sqlx::SqlitePool::connect_with(options).await.unwrap())
    }
}

async fn upgrade_story(url: &str) {
    migrate_up_to(url, 8).await;
    let store = relance::store::open(&relance::config::DatabaseUrl::new(url), 2)
        .await
        .unwrap();
    let mut tx = store.begin().await.unwrap();
    tx.upsert_customers(&[customer("A"), customer("B")])
        .await
        .unwrap();
    let ids = tx.customer_ids(&["A", "B"]).await.unwrap();
    tx.upsert_invoices(&[
        (ids["A"], invoice("F-1", "A", "2026-02-28", "100.00")),
        (ids["B"], invoice("F-2", "B", "2026-02-28", "200.00")),
    ])
    .await
    .unwrap();
    tx.commit().await.unwrap();

    // The action log as version 0008 wrote it: keys unique on their own, one snapshot
    // shared by A's and B's actions, and an older action with its facts inline.
    let action = |key: &str, customer: &str, facts: &str, sha: &str, status: &str| {
        format!(
            "INSERT INTO actions (idempotency_key, customer_id, segment, kind, step, template, options, currency, amount_minor, rule_file, rule_hash, facts, facts_sha256, invoice_numbers, decided_on, status, created_at, updated_at) \
             SELECT '{key}', id, 'smb', 'email', 'reminder_1', 'reminder_1', '{{}}', 'EUR', 10000, 'rules/smb.rhai', 'h', '{facts}', {sha}, '[\"F-1\"]', '2026-03-05', '{status}', '2026-03-05T08:00:00Z', '2026-03-05T08:00:00Z' \
             FROM customers WHERE external_id = '{customer}'"
        )
    };
    let shared = r#"{"segment":"smb","shared":true}"#;
    raw_sql(
        url,
        &[
            &format!("INSERT INTO facts_snapshots (sha256, snapshot) VALUES ('s1', '{shared}')"),
            &action("planned:aaa", "A", "", "'s1'", "sent"),
            &action("planned:bbb", "B", "", "'s1'", "planned"),
            &action("planned:old", "A", r#"{"inline":true}"#, "NULL", "sent"),
            "INSERT INTO action_events (action_id, at, status, attempt, detail) VALUES (1, '2026-03-05T09:00:00Z', 'sent', 1, 'accepted')",
        ],
    )
    .await
    .unwrap();

    // Every migration from 0009 on.
    let shipped = std::fs::read_dir(crate::helpers::repo().join("migrations/sqlite"))
        .unwrap()
        .count();
    assert_eq!(
        store.migrate().await.unwrap(),
        shipped - 8,
        "0009 onwards applied"
    );
    // The dunning state folded from the log as it was (0021): the step of A's two
    // actions on its open invoice F-1, in their order (B's action naming A's invoice is
    // not A's), and the one delivery as a contact.
    let s = |v: &str| Some(v.to_string());
    assert_eq!(
        raw_sql(
            url,
            &["SELECT invoice, step, CAST(first_action AS TEXT), applied FROM invoice_steps"]
        )
        .await
        .unwrap(),
        [vec![
            s("F-1"),
            s("reminder_1"),
            s("1"),
            s("2026-03-05 2026-03-05")
        ]]
    );
    assert_eq!(
        raw_sql(url, &["SELECT CAST(action_id AS TEXT), kind FROM contacts"])
            .await
            .unwrap(),
        [vec![s("1"), s("email")]]
    );

    let all = store
        .list_actions(&relance::store::ActionFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    let kept: Vec<(i64, &str, &str)> = all
        .iter()
        .map(|a| (a.id, a.key.as_str(), a.customer.as_str()))
        .collect();
    assert_eq!(
        kept,
        [
            (1, "planned:aaa", "A"),
            (2, "planned:bbb", "B"),
            (3, "planned:old", "A")
        ]
    );
    let facts = |id: i64| {
        let store = store.clone();
        async move { store.action(id).await.unwrap().unwrap() }
    };
    let first = facts(1).await;
    assert_eq!(
        first.facts,
        serde_json::json!({"segment": "smb", "shared": true})
    );
    let sent: Vec<_> = first.events.iter().filter(|e| e.status == "sent").collect();
    assert_eq!(sent.len(), 1, "{:?}", first.events);
    assert_eq!(sent[0].detail.as_deref(), Some("accepted"));
    assert_eq!(
        facts(2).await.facts,
        serde_json::json!({"segment": "smb", "shared": true}),
        "the shared snapshot is kept for each customer"
    );
    assert_eq!(facts(3).await.facts, serde_json::json!({"inline": true}));
    let rows = raw_sql(
        url,
        &["SELECT c.external_id, f.sha256 FROM facts_snapshots f JOIN customers c ON c.id = f.customer_id ORDER BY c.external_id"],
    )
    .await
    .unwrap();
    let s1 = |c: &str| vec![Some(c.to_string()), Some("s1".to_string())];
    assert_eq!(rows, [s1("A"), s1("B")]);

    // The same decision again is a duplicate, not a second action.
    let again = relance::store::NewAction {
        key: "planned:aaa".into(),
        customer: "A".into(),
        segment: "smb".into(),
        kind: ActionKind::Email,
        step: "reminder_1".into(),
        template: Some("reminder_1".into()),
        options: "{}".into(),
        currency: "EUR".into(),
        amount_minor: 10000,
        rule_file: "rules/smb.rhai".into(),
        rule_hash: "h".into(),
        variant: None,
        facts: r#"{"segment":"smb"}"#.into(),
        facts_sha256: "s2".into(),
        decided_on: d("2026-03-06"),
        status: relance::store::ActionStatus::Planned,
        detail: None,
        invoices: vec!["F-1".into()],
    };
    let counts = store.record_actions(&[again], Utc::now()).await.unwrap();
    assert_eq!((counts.recorded, counts.duplicates), (0, 1));
    // The log says so on the action first recorded, with why nothing was recorded.
    let said = raw_sql(
        url,
        &[
            "SELECT e.detail FROM action_events e JOIN actions a ON a.id = e.action_id \
           WHERE a.idempotency_key = 'planned:aaa' AND e.status = 'duplicate'",
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        said,
        [vec![Some(
            "the same decision was taken again; not recorded twice".to_string()
        )]]
    );

    // The foreign keys to the rebuilt table still hold.
    let orphan = "INSERT INTO action_events (action_id, at, status, attempt) VALUES (99, '2026-03-06T09:00:00Z', 'sent', 1)";
    let refused = raw_sql(url, &[orphan]).await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.contains("FOREIGN KEY") || e.contains("foreign key")),
        "an event for no action is refused: {refused:?}"
    );
    if !url.starts_with("postgres") {
        assert_eq!(
            raw_sql(url, &["PRAGMA foreign_key_check"]).await.unwrap(),
            Vec::<Vec<Option<String>>>::new()
        );
    }
    store.close().await;
}

/// Reads every batch of accounts of `segments` (all when `None`), one customer a batch:
/// every statement of a batch runs with one id, and then again.
async fn all_accounts(store: &Arc<dyn Store>, segments: Option<&[&str]>) -> Vec<Account> {
    use futures_util::StreamExt;
    let filter = AccountFilter {
        segments: segments.map(|s| s.iter().map(|s| s.to_string()).collect()),
        customer: None,
    };
    let mut out = Vec::new();
    let mut stream = store.accounts(&filter, 1);
    while let Some(batch) = stream.next().await {
        out.extend(batch.unwrap());
    }
    out
}

/// The customers of the accounts, in order.
fn account_ids(accounts: &[Account]) -> Vec<&str> {
    accounts
        .iter()
        .map(|a| a.customer.external_id.as_str())
        .collect()
}

async fn accounts_story(store: Arc<dyn Store>) {
    let now = Utc::now();
    let mut key = customer("B");
    key.segment = "key_accounts".into();
    let mut tx = store.begin().await.unwrap();
    tx.upsert_customers(&[customer("A"), key, customer("C"), customer("D")])
        .await
        .unwrap();
    let ids = tx.customer_ids(&["A", "B", "C", "D"]).await.unwrap();
    tx.upsert_invoices(&[
        (ids["A"], invoice("F-1", "A", "2026-01-31", "1000.00")),
        (ids["A"], invoice("F-2", "A", "2026-02-28", "500.00")),
        (ids["B"], invoice("G-1", "B", "2026-02-15", "200.00")),
        (ids["C"], invoice("H-1", "C", "2026-02-15", "80.00")),
        (ids["D"], invoice("K-1", "D", "2026-02-15", "90.00")),
    ])
    .await
    .unwrap();
    // A pays part of its oldest invoice; C pays its only one; D pays its only one and
    // 30.00 more, then is invoiced again.
    tx.record_payment(ids["A"], &payment("P1", "A", "400.00", None))
        .await
        .unwrap();
    tx.record_payment(ids["C"], &payment("P2", "C", "80.00", None))
        .await
        .unwrap();
    tx.record_payment(ids["D"], &payment("P3", "D", "120.00", None))
        .await
        .unwrap();
    tx.upsert_invoices(&[(ids["D"], invoice("K-2", "D", "2026-03-31", "50.00"))])
        .await
        .unwrap();
    tx.add_promise(
        &NewPromise {
            customer: "A".into(),
            promised_date: d("2026-04-30"),
            amount: dec("500.00"),
            invoices: vec!["F-2".into()],
            note: None,
            call_task: None,
        },
        now,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let smb = all_accounts(&store, Some(&["smb"])).await;
    assert_eq!(
        account_ids(&smb),
        ["A", "D"],
        "C has nothing open and B is a key account"
    );
    let a = &smb[0];
    let numbers: Vec<&str> = a
        .invoices
        .iter()
        .map(|o| o.invoice.number.as_str())
        .collect();
    assert_eq!(numbers, ["F-1", "F-2"]);
    assert_eq!(a.invoices[0].invoice.open_amount, dec("600.00"));
    assert_eq!(
        a.invoices[0].payments,
        vec![(d("2026-03-10"), dec("400.00"))]
    );
    assert!(a.invoices[1].payments.is_empty());
    assert_eq!(a.unapplied_credit, Decimal::ZERO);
    assert_eq!(a.promises.len(), 1);
    assert_eq!(a.promises[0].invoices, vec!["F-2".to_string()]);
    assert!(a.history.is_empty());
    let d_account = &smb[1];
    assert_eq!(d_account.unapplied_credit, dec("30.00"));
    assert!(d_account.promises.is_empty());

    let all = all_accounts(&store, None).await;
    assert_eq!(account_ids(&all), ["A", "B", "D"]);
    assert_eq!(all[1].invoices[0].invoice.open_amount, dec("200.00"));

    // Every customer's segment named (the invoice statement leaves its segment test
    // out): the same accounts. One segment of two: its customers only.
    let named = all_accounts(&store, Some(&["key_accounts", "smb"])).await;
    assert_eq!(account_ids(&named), ["A", "B", "D"]);
    let key = all_accounts(&store, Some(&["key_accounts"])).await;
    assert_eq!(account_ids(&key), ["B"]);
}
