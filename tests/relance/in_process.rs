//! The service started in-process through the library's composition root
//! (`runtime::launch`): its own port 0 listener, stopped by a future, as an embedding
//! program or a test would run it.

use std::sync::Arc;
use std::time::Duration;

use relance::config::Config;

use crate::helpers::workspace_with_rules_and;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_runs_in_process_on_port_0_ticks_delivers_and_stops_on_its_shutdown_future() {
    let w = workspace_with_rules_and(
        &[("smb", "email(\"reminder_1\", customer.dunnable.overdue(1))")],
        "",
    );
    w.import_ledger(
        "external_id,name,segment,emails\nC1,Un SARL,smb,compta@un.example\n",
        "number,customer,issue_date,due_date,amount\nF1,C1,2026-01-01,2026-01-31,1234.56\n",
    );
    let token = w.relance(&["tokens", "create", "--name", "t", "--scope", "read"]);
    token.expect_code(0);
    let token = token.stdout.trim().to_string();
    let mut config = Config::load(Some(&w.path("relance.yaml"))).unwrap();
    // Relative paths (the outbox folder) are the workspace's.
    config.channels.outbox_dir = w.path("outbox");
    let config = Arc::new(config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let service = tokio::spawn(relance::runtime::launch(
        config,
        relance::runtime::ServeOptions::default(),
        Some(listener),
        async {
            let _ = stopped.await;
        },
    ));

    let client = reqwest::Client::new();
    let started = std::time::Instant::now();
    loop {
        let r = client
            .get(format!("{base}/v1/actions"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let body: serde_json::Value = r.json().await.unwrap();
        let sent = body["items"].as_array().is_some_and(|a| {
            a.iter()
                .any(|x| x["status"] == "sent" && x["customer"] == "C1")
        });
        if sent {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let health = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let described = std::fs::read_dir(w.path("outbox/email"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".json")
        })
        .count();
    assert_eq!(described, 1);

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(20), service)
        .await
        .expect("the service stops on its shutdown future")
        .unwrap()
        .unwrap();
    // Stopped: nothing listens any more.
    assert!(client.get(format!("{base}/healthz")).send().await.is_err());
}
