//! Imports and the API check the names a customer refers to against the
//! configuration: a misspelt segment, insurer policy or collector is an error naming
//! the file, line, column, the value and the known ones, and nothing is written.

use serde_json::json;

use crate::helpers::workspace_with_rules_and;

const EXTRA: &str = "collectors: [claire, paul@ateliers.example]\n";

#[test]
fn an_import_naming_an_unknown_segment_policy_or_collector_is_refused_with_the_known_names() {
    let w = workspace_with_rules_and(&[("smb", "[]"), ("key_accounts", "[]")], EXTRA);
    let cases = [
        (
            "C1,Un,bpt,,",
            "c.csv:2: column 'segment': unknown segment 'bpt': the segments in relance.yaml are key_accounts, smb",
        ),
        (
            "C1,Un,smb,cofase-fr,",
            "c.csv:2: column 'insurer_policy': unknown insurer policy 'cofase-fr': the insurers in relance.yaml are coface-fr; did you mean 'coface-fr'?",
        ),
        (
            "C1,Un,smb,,clare",
            "c.csv:2: column 'collector': unknown collector 'clare': the collectors in relance.yaml are claire, paul@ateliers.example; did you mean 'claire'?",
        ),
    ];
    for (row, want) in cases {
        w.write(
            "c.csv",
            format!("external_id,name,segment,insurer_policy,collector\n{row}\n"),
        );
        let run = w.relance(&["import", "customers", "c.csv"]);
        assert_eq!(run.code, 4, "{row}: {}\n{}", run.stdout, run.stderr);
        assert!(run.stderr.contains(want), "{row}: {}", run.stderr);
        assert!(run.stdout.contains("nothing written"), "{}", run.stdout);
    }
    // --skip-invalid keeps its meaning: the others are imported.
    w.write(
        "c.csv",
        "external_id,name,segment,insurer_policy,collector\nC1,Un,smb,coface-fr,claire\nC2,Deux,bpt,,\n",
    );
    let run = w.relance(&["import", "customers", "c.csv", "--skip-invalid"]);
    assert!(
        run.stderr.contains("unknown segment 'bpt'"),
        "{}",
        run.stderr
    );
    let ledger = w.relance(&["ledger", "--format", "json"]);
    let ledger: serde_json::Value = serde_json::from_str(&ledger.stdout).unwrap();
    assert_eq!(ledger["customers"], 1, "{ledger}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_refuses_an_unknown_segment_with_the_known_names() {
    let w = workspace_with_rules_and(&[("smb", "[]")], EXTRA);
    let token = w.token("erp", "ingest");
    let service = w.launch();
    let r = reqwest::Client::new()
        .put(format!("{}/v1/customers/C1", service.base))
        .bearer_auth(&token)
        .json(&json!({"name": "Un", "segment": "smbb"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let body: serde_json::Value = r.json().await.unwrap();
    let text = body.to_string();
    assert!(
        text.contains(
            "unknown segment 'smbb': the segments in relance.yaml are smb; did you mean 'smb'?"
        ),
        "{text}"
    );
    service.stop();
}
