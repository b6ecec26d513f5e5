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
    slow_smtp_workspace_of(port, 1)
}

/// `customers` customers with one overdue invoice each, ticked: one reminder each.
fn slow_smtp_workspace_of(port: u16, customers: usize) -> Workspace {
    let config = format!(
        "dispatch:\n  backoff_base_seconds: 0\n  max_attempts: 5\nchannels:\n  email:\n    smtp: {{ host: 127.0.0.1, port: {port}, security: plain, timeout_seconds: 20 }}\n    from: \"Test SAS <relance@test.example>\"\n"
    );
    let w = workspace_with_rules_and(
        &[("smb", "email(\"reminder_1\", customer.dunnable.overdue(1))")],
        &config,
    );
    let mut people = String::from("external_id,name,segment,emails,locale\n");
    let mut invoices = String::from("number,customer,issue_date,due_date,amount\n");
    for i in 1..=customers {
        people.push_str(&format!(
            "C{i},Client {i} SARL,smb,compta@c{i}.example,fr\n"
        ));
        invoices.push_str(&format!("F{i},C{i},2026-01-01,2026-01-31,1234.56\n"));
    }
    w.import_ledger(&people, &invoices);
    w.relance(&["tick", "--as-of", "2026-03-02"]).expect_code(0);
    w
}

/// Two dispatchers on the workspace's ledger (two instances, `worker-a` claiming up to
/// `a_claims` at once), leases of 1 s.
async fn two_dispatchers(
    w: &Workspace,
    a_claims: usize,
) -> (
    Arc<dyn relance::store::Store>,
    Arc<relance::outbox::Dispatcher>,
    Arc<relance::outbox::Dispatcher>,
) {
    let config = Config::load(Some(&w.path("relance.yaml"))).unwrap();
    let store = relance::store::open(&config.database.url, 4).await.unwrap();
    let dispatcher = |owner: &str| {
        let mut d = relance::runtime::dispatcher_for(&config, store.clone()).unwrap();
        d.owner = owner.into();
        d.lease = Duration::from_secs(1);
        d
    };
    let mut a = dispatcher("worker-a");
    a.claim_batch = a_claims;
    let b = dispatcher("worker-b");
    (store.clone(), Arc::new(a), Arc::new(b))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_slower_than_the_lease_is_not_reclaimed_and_sent_twice() {
    let mail = tempfile::tempdir().unwrap();
    // The server answers each message after 3 s; the lease is 1 s.
    let sink = SmtpSink::start(mail.path(), &["--delay", "3"]);
    let w = slow_smtp_workspace(sink.port);
    let (store, a, b) = two_dispatchers(&w, 1).await;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_claimed_ahead_whose_lease_expired_meanwhile_are_not_sent_by_the_first_claimer() {
    let mail = tempfile::tempdir().unwrap();
    // Each message takes the server 2 s; leases last 1 s.
    let sink = SmtpSink::start(mail.path(), &["--delay", "2"]);
    let w = slow_smtp_workspace_of(sink.port, 3);
    // The first instance claims all three at once and sends the first; the leases of
    // the two waiting expire, and the second instance takes them over.
    let (store, a, b) = two_dispatchers(&w, 3).await;
    let first = tokio::spawn({
        let a = a.clone();
        async move { a.try_execute_once().await.unwrap() }
    });
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let other = tokio::spawn({
        let (b, done) = (b.clone(), done.clone());
        async move {
            // Once the first instance holds the three actions.
            tokio::time::sleep(Duration::from_millis(500)).await;
            let mut steps = Vec::new();
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                match b.try_execute_once().await.unwrap() {
                    Step::Idle => tokio::time::sleep(Duration::from_millis(100)).await,
                    s => steps.push(s),
                }
            }
            steps
        }
    });
    assert!(matches!(first.await.unwrap(), Step::Sent { id: 1, .. }));
    // The first instance's next two: taken over meanwhile, so not sent by it.
    let second = a.try_execute_once().await.unwrap();
    assert_eq!(second, Step::LeaseLost { id: 2 });
    let third = a.try_execute_once().await.unwrap();
    assert!(
        matches!(third, Step::LeaseLost { id: 3 } | Step::Sent { id: 3, .. }),
        "{third:?}"
    );
    let started = std::time::Instant::now();
    while sink.messages().len() < 3 {
        assert!(started.elapsed() < Duration::from_secs(20), "not all sent");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let taken_over = other.await.unwrap();
    assert!(
        taken_over
            .iter()
            .any(|s| matches!(s, Step::Sent { id: 2, .. })),
        "{taken_over:?}"
    );
    assert_eq!(
        sink.messages().len(),
        3,
        "each reminder delivered exactly once"
    );
    for id in ["1", "2", "3"] {
        let show = w.relance(&["actions", "show", id, "--format", "json"]);
        let d: serde_json::Value = serde_json::from_str(&show.stdout).unwrap();
        assert_eq!(d["status"], "sent", "{}", show.stdout);
    }
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_claimed_ahead_and_not_started_go_back_to_the_queue_when_the_instance_stops() {
    let mail = tempfile::tempdir().unwrap();
    let sink = SmtpSink::start(mail.path(), &[]);
    let w = slow_smtp_workspace_of(sink.port, 3);
    let config = Config::load(Some(&w.path("relance.yaml"))).unwrap();
    let store = relance::store::open(&config.database.url, 2).await.unwrap();
    let mut a = relance::runtime::dispatcher_for(&config, store.clone()).unwrap();
    a.claim_batch = 3;
    let step = a.try_execute_once().await.unwrap();
    assert!(matches!(step, Step::Sent { id: 1, .. }), "{step:?}");
    assert_eq!(a.give_back().await.unwrap(), 2);
    let list = w.relance(&["actions", "list", "--format", "json"]);
    let statuses: Vec<String> = list
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["status"].to_string())
        .collect();
    assert_eq!(statuses, ["\"sent\"", "\"planned\"", "\"planned\""]);
    let show = w.relance(&["actions", "show", "2", "--format", "json"]);
    assert!(
        show.stdout
            .contains("claimed but not delivered before the instance stopped"),
        "{}",
        show.stdout
    );
    // Delivered by the next one, once each, on their first attempt.
    let b = relance::runtime::dispatcher_for(&config, store.clone()).unwrap();
    let steps = b.drain().await.unwrap();
    assert_eq!(steps.len(), 2, "{steps:?}");
    assert_eq!(sink.messages().len(), 3);
    let d: serde_json::Value = serde_json::from_str(
        &w.relance(&["actions", "show", "3", "--format", "json"])
            .stdout,
    )
    .unwrap();
    assert_eq!(d["status"], "sent");
    assert_eq!(d["attempts"], 1);
    store.close().await;
}
