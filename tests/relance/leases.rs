//! Leases that outlive slow sends: a worker extends its lease while its channel is
//! still sending, so another worker never reclaims and resends a live delivery. Two
//! dispatchers on one ledger, a real SMTP server that takes its time.

use std::sync::Arc;
use std::time::Duration;

use relance::config::Config;
use relance::outbox::Step;

use crate::channels::SmtpSink;
use crate::helpers::{workspace_with_rules_and, Workspace};

fn slow_smtp_workspace(port: u16) -> Workspace {
    let config = format!(
        "dispatch:\n  backoff_base_seconds: 0\n  max_attempts: 5\nchannels:\n  email:\n    smtp: {{ host: 127.0.0.1, port: {port}, security: plain, timeout_seconds: 20 }}\n    from: \"Test SAS <relance@test.example>\"\n"
    );
    let w = workspace_with_rules_and(
        &[("smb", "email(\"reminder_1\", customer.dunnable.overdue(1))")],
        &config,
    );
    w.import_ledger(
        "external_id,name,segment,emails,locale\nC1,Un SARL,smb,compta@un.example,fr\n",
        "number,customer,issue_date,due_date,amount\nF1,C1,2026-01-01,2026-01-31,1234.56\n",
    );
    w.relance(&["tick", "--as-of", "2026-03-02"]).expect_code(0);
    w
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_slower_than_the_lease_is_not_reclaimed_and_sent_twice() {
    let mail = tempfile::tempdir().unwrap();
    // The server answers each message after 3 s; the lease is 1 s.
    let sink = SmtpSink::start(mail.path(), &["--delay", "3"]);
    let w = slow_smtp_workspace(sink.port);
    let config = Config::load(Some(&w.path("relance.yaml"))).unwrap();
    let store = relance::store::open(&config.database.url, 2).await.unwrap();
    let mut a = relance::runtime::dispatcher_for(&config, store.clone()).unwrap();
    let mut b = relance::runtime::dispatcher_for(&config, store.clone()).unwrap();
    a.owner = "worker-a".into();
    b.owner = "worker-b".into();
    a.lease = Duration::from_secs(1);
    b.lease = Duration::from_secs(1);
    let (a, b) = (Arc::new(a), Arc::new(b));

    let sending = tokio::spawn({
        let a = a.clone();
        async move { a.try_execute_once().await.unwrap() }
    });
    // The other worker keeps looking for expired leases while the first one sends (it
    // starts once the first one holds the action: the server is slow, not the claim).
    let started = std::time::Instant::now();
    tokio::time::sleep(Duration::from_millis(500)).await;
    while !sending.is_finished() {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the send never ended"
        );
        let step = b.try_execute_once().await.unwrap();
        assert_eq!(step, Step::Idle, "the second worker took the action over");
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let step = sending.await.unwrap();
    assert!(matches!(step, Step::Sent { .. }), "{step:?}");
    assert!(started.elapsed() >= Duration::from_secs(3));
    assert_eq!(sink.messages().len(), 1, "delivered exactly once");
    let list = w.relance(&["actions", "show", "1", "--format", "json"]);
    list.expect_code(0);
    assert!(list.stdout.contains("\"sent\""), "{}", list.stdout);
    assert!(!list.stdout.contains("lease expired"), "{}", list.stdout);
    store.close().await;
}
