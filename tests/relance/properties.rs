//! Invariants of money, interest and payment allocation, over generated inputs: the
//! library's public functions, and the CSV import through a real SQLite ledger.

use chrono::{Duration, NaiveDate};
use proptest::prelude::*;
use relance::domain::interest::LatePayment;
use relance::domain::money::Currency;
use relance::domain::payment::{allocate, OpenItem};
use rust_decimal::Decimal;

fn day(n: i64) -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 1, 1).unwrap() + Duration::days(n)
}

fn terms(rates: &[(i64, i64)], margin: i64) -> LatePayment {
    let mut reference_rates: Vec<(NaiveDate, Decimal)> = rates
        .iter()
        .map(|(d, bp)| (day(*d), Decimal::new(*bp, 2)))
        .collect();
    // The first period starts before any due date the cases use.
    reference_rates.push((day(-400), Decimal::new(215, 2)));
    reference_rates.sort();
    reference_rates.dedup_by_key(|(d, _)| *d);
    LatePayment {
        currency: Currency::EUR,
        fixed_indemnity: Decimal::new(40, 0),
        margin_points: Decimal::new(margin, 0),
        reference_rates,
        reference_label: Default::default(),
        legal_basis: Default::default(),
    }
}

fn open_items() -> impl Strategy<Value = Vec<OpenItem>> {
    prop::collection::vec((0i64..400, 0i64..5_000_000, any::<bool>()), 0..12).prop_map(|v| {
        v.into_iter()
            .enumerate()
            .map(|(i, (due, open, disputed))| OpenItem {
                invoice_id: i as i64 + 1,
                number: format!("F-{}", 100 + i),
                issue_date: day(due - 30),
                due_date: day(due),
                open_minor: open,
                disputed,
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// A payment is spread over open invoices without ever taking more than an invoice
    /// has open, nor more than the payment: what is left is unapplied credit.
    #[test]
    fn allocations_never_exceed_the_payment_or_what_each_invoice_has_open(
        amount in 0i64..30_000_000,
        open in open_items(),
        reference in prop::option::of("[ A-Za-z0-9/-]{0,24}"),
    ) {
        let a = allocate(amount, reference.as_deref(), &open);
        let applied: i64 = a.lines.iter().map(|(_, m)| m).sum();
        prop_assert!(a.unapplied_minor >= 0);
        prop_assert_eq!(applied + a.unapplied_minor, amount);
        let mut seen = std::collections::BTreeSet::new();
        for (id, m) in &a.lines {
            prop_assert!(*m > 0);
            prop_assert!(seen.insert(*id), "invoice {} allocated twice", id);
            let item = open.iter().find(|i| i.invoice_id == *id).unwrap();
            prop_assert!(*m <= item.open_minor);
        }
        // Without a reference naming invoices, credit is left only once all is paid.
        if !a.by_reference && a.unapplied_minor > 0 {
            prop_assert_eq!(applied, open.iter().map(|i| i.open_minor).sum::<i64>());
        }
    }

    /// Late interest is never negative, never grows when payments come earlier or
    /// larger, and never shrinks as time passes.
    #[test]
    fn late_interest_is_never_negative_and_grows_with_time(
        principal in 0i64..100_000_000,
        due in 0i64..300,
        payments in prop::collection::vec((0i64..700, 0i64..60_000_000), 0..6),
        rates in prop::collection::vec((0i64..700, 0i64..900), 0..4),
        margin in 0i64..12,
        as_of in 0i64..700,
        later in 0i64..200,
    ) {
        let t = terms(&rates, margin);
        let principal = Decimal::new(principal, 2);
        let payments: Vec<(NaiveDate, Decimal)> =
            payments.iter().map(|(d, m)| (day(*d), Decimal::new(*m, 2))).collect();
        let at = |n: i64| t.interest(principal, day(due), &payments, day(n), Currency::EUR).unwrap();
        let now = at(as_of);
        prop_assert!(now >= Decimal::ZERO, "{now}");
        prop_assert!(at(as_of + later) >= now);
        prop_assert!(now.scale() <= 2);
        // Without payments, no more than principal × (highest rate) × days / 365.
        let unpaid = t.interest(principal, day(due), &[], day(as_of), Currency::EUR).unwrap();
        prop_assert!(unpaid >= now);
        let top = t.reference_rates.iter().map(|(_, r)| *r).max().unwrap() + t.margin_points;
        let days = Decimal::from((as_of - due).max(0));
        prop_assert!(unpaid <= (principal * top * days / Decimal::from(36_500)).round_dp(2) + Decimal::new(1, 2));
    }

    /// Amounts go to minor units and back unchanged, in currencies of 0, 2 and 3 decimals.
    #[test]
    fn amounts_survive_minor_units(
        minor in -1_000_000_000_000i64..1_000_000_000_000,
        code in prop::sample::select(vec!["EUR", "JPY", "KWD", "GBP"]),
    ) {
        let c = Currency::parse(code).unwrap();
        let amount = c.from_minor(minor);
        prop_assert_eq!(c.to_minor(amount).unwrap(), minor);
        let text = amount.to_string();
        prop_assert_eq!(relance::domain::money::parse_amount(&text).unwrap(), amount);
    }
}

proptest! {
    // Each case imports into a real ledger: fewer cases.
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Importing the same files again changes nothing; payments are recorded once.
    #[test]
    fn importing_the_same_files_again_changes_nothing(
        invoices in prop::collection::vec((0usize..4, 0i64..200, 1i64..2_000_000), 1..15),
        payments in prop::collection::vec((0usize..4, 1i64..3_000_000), 0..8),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let mut c = String::from("external_id,name,segment\n");
            for n in 0..4 {
                c.push_str(&format!("C{n},Client {n},smb\n"));
            }
            let mut i = String::from("number,customer,issue_date,due_date,amount\n");
            for (k, (cust, due, amount)) in invoices.iter().enumerate() {
                let due = day(*due);
                i.push_str(&format!("F{k},C{cust},{},{due},{}\n", due - Duration::days(30), Decimal::new(*amount, 2)));
            }
            let mut p = String::from("id,customer,date,amount,reference\n");
            for (k, (cust, amount)) in payments.iter().enumerate() {
                p.push_str(&format!("P{k},C{cust},2024-12-01,{},VIR F{k}\n", Decimal::new(*amount, 2)));
            }
            let files = [("customers", c), ("invoices", i), ("payments", p)];
            for (name, text) in &files {
                std::fs::write(dir.path().join(format!("{name}.csv")), text).unwrap();
            }
            let url = relance::config::DatabaseUrl::new(format!("sqlite://{}", dir.path().join("l.db").display()));
            let store = relance::store::open(&url, 2).await.unwrap();
            store.migrate().await.unwrap();
            let opts = relance::import::ImportOptions::default();
            let mut summaries = Vec::new();
            for round in 0..2 {
                for (name, _) in &files {
                    let kind = match *name {
                        "customers" => relance::import::ImportKind::Customers,
                        "invoices" => relance::import::ImportKind::Invoices,
                        _ => relance::import::ImportKind::Payments,
                    };
                    let r = relance::import::import_file(store.as_ref(), kind, &dir.path().join(format!("{name}.csv")), &opts)
                        .await
                        .unwrap();
                    assert!(r.committed && r.rejected.is_empty(), "{name}: {:?}", r.rejected);
                    if round == 1 {
                        assert_eq!((r.written.inserted, r.written.updated), (0, 0), "{name} imported again");
                    }
                }
                summaries.push(format!("{:?}", store.summary(day(700)).await.unwrap()));
            }
            assert_eq!(summaries[0], summaries[1]);
            store.close().await;
        });
    }
}
