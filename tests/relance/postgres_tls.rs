//! PostgreSQL over TLS, as managed PostgreSQL services require it: the machine's server
//! with TLS turned on by `tests/peers/postgres_tls.sh` (a certificate authority made by
//! the test setup; the role `relance_tls` may only connect over TLS, `relance_cert` only
//! with a client certificate). `.ci/run` runs the script and sets
//! `RELANCE_TEST_POSTGRES_TLS` to the folder of its certificates.

use sqlx::Connection;

use crate::helpers::{postgres_admin_url, Workspace, MINIMAL_CONFIG};

/// The folder of the certificates the setup script made, when TLS was turned on.
fn tls_dir() -> Option<String> {
    std::env::var("RELANCE_TEST_POSTGRES_TLS")
        .ok()
        .filter(|s| !s.is_empty())
}

/// A new database owned by `role`, made over the administrator's connection.
async fn database_for(admin: &str, role: &str) -> String {
    let name = format!(
        "relance_t_tls_{}_{}",
        std::process::id(),
        chrono::Utc::now().timestamp_subsec_nanos()
    );
    let mut conn = sqlx::PgConnection::connect(admin).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name} OWNER {role}"))
        .execute(&mut conn)
        .await
        .unwrap();
    let _ = conn.close().await;
    name
}

async fn drop_database(admin: &str, name: &str) {
    if let Ok(mut conn) = sqlx::PgConnection::connect(admin).await {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut conn)
            .await;
    }
}

/// A workspace whose configuration names this database URL.
fn workspace_on(url: &str) -> Workspace {
    let w = Workspace::new();
    w.write(
        "relance.yaml",
        MINIMAL_CONFIG.replace("url: sqlite://ledger.db", &format!("url: \"{url}\"")),
    );
    w
}

#[tokio::test]
async fn postgresql_requiring_tls_is_reached_verified_and_refused_when_the_authority_is_wrong() {
    let (Some(dir), Some(admin)) = (tls_dir(), postgres_admin_url()) else {
        eprintln!("SKIPPED postgresql over TLS: RELANCE_TEST_POSTGRES_TLS and RELANCE_TEST_POSTGRES_URL are needed (.ci/run sets them up)");
        return;
    };
    let db = database_for(&admin, "relance_tls").await;
    let ca = format!("{dir}/ca.crt");
    let other = format!("{dir}/other-ca.crt");

    // The server's certificate checked against the authority, its name against the host.
    let verified =
        format!("postgres://relance_tls@localhost:5432/{db}?sslmode=verify-full&sslrootcert={ca}");
    let w = workspace_on(&verified);
    w.relance(&["migrate"]).expect_code(0);
    w.import_ledger(
        "external_id,name,segment,emails\nC1,Client 1,smb,c1@client.example\n",
        "number,customer,issue_date,due_date,amount\nF1,C1,2026-10-01,2026-10-31,1200.00\n",
    );
    let ledger = w.relance(&["ledger"]);
    ledger.expect_code(0);
    assert!(ledger.stdout.contains("open 1200.00"), "{}", ledger.stdout);
    // By address: the certificate names 127.0.0.1 too.
    let by_address =
        format!("postgres://relance_tls@127.0.0.1:5432/{db}?sslmode=verify-full&sslrootcert={ca}");
    workspace_on(&by_address)
        .relance(&["ledger"])
        .expect_code(0);
    // sslmode=require encrypts without checking the certificate.
    let required = format!("postgres://relance_tls@127.0.0.1:5432/{db}?sslmode=require");
    workspace_on(&required).relance(&["ledger"]).expect_code(0);

    // Without TLS the server refuses: said plainly, no panic.
    let plain = format!("postgres://relance_tls@127.0.0.1:5432/{db}?sslmode=disable");
    let run = workspace_on(&plain).relance(&["ledger"]);
    run.expect_code(1);
    assert!(
        run.stderr.starts_with("relance: cannot open the database")
            && run.stderr.contains("no encryption"),
        "{}",
        run.stderr
    );
    // A certificate from another authority is refused before anything is sent.
    let wrong = format!(
        "postgres://relance_tls@localhost:5432/{db}?sslmode=verify-full&sslrootcert={other}"
    );
    let run = workspace_on(&wrong).relance(&["ledger"]);
    run.expect_code(1);
    assert!(
        run.stderr.starts_with("relance: cannot open the database")
            && run.stderr.contains("certificate"),
        "{}",
        run.stderr
    );
    // A root certificate file that does not exist is named.
    let missing = format!(
        "postgres://relance_tls@localhost:5432/{db}?sslmode=verify-full&sslrootcert={dir}/nowhere.crt"
    );
    let run = workspace_on(&missing).relance(&["ledger"]);
    run.expect_code(1);
    assert!(run.stderr.contains("nowhere.crt"), "{}", run.stderr);
    assert!(
        !run.stderr.contains("panicked") && !run.stderr.contains("backtrace"),
        "{}",
        run.stderr
    );
    drop_database(&admin, &db).await;
}

#[tokio::test]
async fn a_client_certificate_signs_in_where_the_server_asks_for_one() {
    let (Some(dir), Some(admin)) = (tls_dir(), postgres_admin_url()) else {
        eprintln!("SKIPPED postgresql client certificates: RELANCE_TEST_POSTGRES_TLS and RELANCE_TEST_POSTGRES_URL are needed (.ci/run sets them up)");
        return;
    };
    let db = database_for(&admin, "relance_cert").await;
    let with_cert = format!(
        "postgres://relance_cert@localhost:5432/{db}?sslmode=verify-full&sslrootcert={dir}/ca.crt&sslcert={dir}/client.crt&sslkey={dir}/client.key"
    );
    let w = workspace_on(&with_cert);
    w.relance(&["migrate"]).expect_code(0);
    w.relance(&["ledger"]).expect_code(0);

    let without = format!(
        "postgres://relance_cert@localhost:5432/{db}?sslmode=verify-full&sslrootcert={dir}/ca.crt"
    );
    let run = workspace_on(&without).relance(&["ledger"]);
    run.expect_code(1);
    assert!(
        run.stderr.starts_with("relance: cannot open the database")
            && run.stderr.contains("certificate"),
        "{}",
        run.stderr
    );
    drop_database(&admin, &db).await;
}
