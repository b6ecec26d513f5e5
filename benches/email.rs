//! Email benchmark: emails per second through relance's SMTP channel (template
//! rendering, message building, pooled SMTP connections) to an SMTP sink on loopback,
//! for several pool sizes and numbers of sends in flight (dispatch workers).
//!
//! ```sh
//! cargo bench --bench email
//! BENCH_EMAILS=20000 cargo bench --bench email
//! ```
//! The sink is a minimal SMTP server in this file: it accepts every message and counts
//! it. What is measured is relance's side of the conversation.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use futures_util::stream::{self, StreamExt};
use relance::channels::{Channel, EmailChannel};
use relance::config::channels::{EmailConfig, SmtpConfig, SmtpSecurity};
use relance::config::Config;
use relance::store::ClaimedAction;
use relance::templates::Templates;

mod common;

use common::smtp_sink as sink;

fn action(n: usize) -> ClaimedAction {
    let customer: relance::domain::Customer = serde_json::from_value(serde_json::json!({
        "external_id": format!("C{n:06}"), "name": format!("Client {n}"), "legal_name": null,
        "siren": null, "siret": null, "vat_number": null, "country": "FR", "segment": "smb",
        "locale": if n.is_multiple_of(3) { "en" } else { "fr" },
        "emails": [format!("compta{n}@client.example")], "phones": [],
        "address": {"line1": null, "line2": null, "postal_code": null, "city": null, "country": null},
        "currency": "EUR", "credit_limit": null,
        "insurance": {"insured": false, "policy": null, "buyer_ref": null, "cover_amount": null},
        "collector": null, "tags": [], "pause": null,
    }))
    .expect("customer");
    let invoices = (0..3)
        .map(|i| {
            serde_json::from_value(serde_json::json!({
                "number": format!("F{n:06}-{i}"), "customer": customer.external_id,
                "issue_date": "2026-09-01", "due_date": "2026-10-01", "currency": "EUR",
                "amount": "1234.56", "open_amount": "1234.56", "status": "open",
                "dispute": null, "pause": null,
            }))
            .expect("invoice")
        })
        .collect();
    ClaimedAction {
        id: n as i64,
        key: format!("planned:{n:040}"),
        customer,
        kind: relance::domain::ActionKind::Email,
        step: "reminder_1".into(),
        template: Some("reminder_1".into()),
        options: serde_json::json!({}),
        invoices,
        promised: Vec::new(),
        currency: "EUR".into(),
        amount: rust_decimal::Decimal::new(370368, 2),
        attempt: 1,
        decided_on: chrono::NaiveDate::from_ymd_opt(2026, 11, 2).unwrap(),
        reminded_before: false,
        portal_url: None,
    }
}

fn main() {
    let emails: usize = std::env::var("BENCH_EMAILS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        // The embedded default configuration (its company), as `relance serve` runs it.
        std::env::set_current_dir(env!("CARGO_MANIFEST_DIR")).unwrap();
        let config = Config::load(None).expect("the embedded default configuration");
        let templates = Arc::new(Templates::new(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates"),
        ));
        let actions: Vec<ClaimedAction> = (0..emails).map(action).collect();
        println!("relance email benchmark: {emails} emails (3 invoices each, French and English), SMTP sink on loopback");
        for (pool_size, in_flight) in [(1u32, 1usize), (4, 16), (16, 64)] {
            if pool_size == 1 {
                let (port, _) = sink().await;
                let email = EmailConfig {
                    smtp: SmtpConfig { host: "127.0.0.1".into(), port, security: SmtpSecurity::Plain, username: None, password: None, timeout: std::time::Duration::from_secs(10), pool_size, ca_file: None, accept_invalid_certs: false },
                    from: "Ateliers Durand <recouvrement@ateliers-durand.example>".into(), reply_to: None, bcc: vec![],
                };
                let channel = EmailChannel::new(&email, &config.company, templates.clone()).unwrap();
                let t = Instant::now();
                for a in &actions { let _ = channel.message(a).unwrap().formatted(); }
                println!("  rendering and building only: {:.0} messages/s", actions.len() as f64 / t.elapsed().as_secs_f64());
            }
            let (port, count) = sink().await;
            let email = EmailConfig {
                smtp: SmtpConfig {
                    host: "127.0.0.1".into(),
                    port,
                    security: SmtpSecurity::Plain,
                    username: None,
                    password: None,
                    timeout: std::time::Duration::from_secs(10),
                    pool_size,
                    ca_file: None,
                    accept_invalid_certs: false,
                },
                from: "Ateliers Durand <recouvrement@ateliers-durand.example>".into(),
                reply_to: None,
                bcc: vec!["archive@ateliers-durand.example".into()],
            };
            let channel = EmailChannel::new(&email, &config.company, templates.clone()).unwrap();
            let start = Instant::now();
            // One at a time is slow: a sample of it is enough.
            let n = if in_flight == 1 { actions.len().min(500) } else { actions.len() };
            let failures: usize = stream::iter(actions[..n].iter())
                .map(|a| channel.deliver(a))
                .buffer_unordered(in_flight)
                .filter(|r| std::future::ready(r.is_err()))
                .count()
                .await;
            let secs = start.elapsed().as_secs_f64();
            let got = count.load(Ordering::Relaxed);
            println!(
                "  pool of {pool_size:>2}, {in_flight:>2} in flight: {:>6.0} emails/s  ({got} accepted, {failures} failed, {secs:.2} s)",
                got as f64 / secs
            );
        }
    });
}
