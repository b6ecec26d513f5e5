//! `relance config check` and configuration loading, through the binary.

use crate::helpers::{relance_in, repo, Workspace};

#[test]
fn every_problem_is_reported_at_once_with_its_line() {
    let w = Workspace::new();
    std::fs::create_dir(w.path("rules")).unwrap();
    w.write("rules/smb.rhai", "// rules\n");
    w.write(
        "relance.yaml",
        "database:\n\
         \x20 url: sqlite://ledger.db\n\
         company:\n\
         \x20 name: Test SAS\n\
         \x20 siren: \"123456789\"\n\
         \x20 bank:\n\
         \x20   iban: FR76 0000\n\
         timezone: Europe/Lyon\n\
         late_payment:\n\
         \x20 reference_rates:\n\
         \x20   - { from: 2026-07-01, rate: \"2.15\" }\n\
         \x20   - { from: 2026-01-01, rate: \"2.15\" }\n\
         segments:\n\
         \x20 smb:\n\
         \x20   rules: rules/smb.rhai\n\
         \x20   schedule: every morning\n\
         \x20 key_accounts:\n\
         \x20   rules: rules/missing.rhai\n\
         \x20   schedule: \"0 0 9 * * Mon-Fri\"\n",
    );
    let run = w.relance(&["config", "check"]);
    run.expect_code(3);
    let cfg = w.path("relance.yaml").display().to_string();
    for expected in [
        format!("{cfg}:5: company.siren: invalid SIREN '123456789'"),
        format!("{cfg}:7: company.bank.iban: invalid IBAN 'FR76 0000'"),
        format!("{cfg}:8: timezone: unknown time zone 'Europe/Lyon'"),
        format!("{cfg}:12: late_payment.reference_rates[1].from: 2026-01-01 is not after the previous entry 2026-07-01"),
        format!("{cfg}:16: segments.smb.schedule: invalid cron schedule 'every morning'"),
        format!("{cfg}:18: segments.key_accounts.rules: rule file"),
    ] {
        assert!(run.stderr.contains(&expected), "missing «{expected}» in\n{}", run.stderr);
    }
    assert!(
        run.stderr.contains("6 problems in the configuration"),
        "{}",
        run.stderr
    );
}

#[test]
fn type_errors_and_unknown_keys_point_at_their_line() {
    let w = Workspace::new();
    w.write("relance.yaml", "company:\n  name: Test\n  adress:\n    city: Lyon\ndatabase:\n  max_connections: many\nsmtp: {}\n");
    let run = w.relance(&["config", "check"]);
    run.expect_code(3);
    let cfg = w.path("relance.yaml").display().to_string();
    assert!(
        run.stderr
            .contains(&format!("{cfg}:3: company.adress: unknown field `adress`")),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains(&format!("{cfg}:6: database.max_connections: invalid type")),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains(&format!("{cfg}:7: smtp: unknown section 'smtp'")),
        "{}",
        run.stderr
    );
}

#[test]
fn broken_yaml_is_reported_with_its_line() {
    let w = Workspace::new();
    w.write("relance.yaml", "company:\n  name: Test\n   bad indent: [\n");
    let run = w.relance(&["config", "check"]);
    run.expect_code(3);
    assert!(
        run.stderr.contains("relance.yaml:3: not valid YAML"),
        "{}",
        run.stderr
    );
}

#[test]
fn secrets_come_from_the_environment_and_are_never_printed() {
    let w = Workspace::new();
    w.write(
        "relance.yaml",
        "database:\n  url_env: TEST_DB_URL\ncompany:\n  name: ${COMPANY_NAME:-Fallback SAS}\n",
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_relance"))
        .args([
            "--config",
            w.path("relance.yaml").to_str().unwrap(),
            "config",
            "check",
        ])
        .env(
            "TEST_DB_URL",
            "postgres://app:hunter2@db.internal:5432/relance",
        )
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("postgres://app:***@db.internal:5432/relance"),
        "{stdout}"
    );
    assert!(!stdout.contains("hunter2"));

    let run = w.relance(&["config", "check"]);
    run.expect_code(3);
    assert!(
        run.stderr
            .contains("database.url_env: environment variable TEST_DB_URL is not set"),
        "{}",
        run.stderr
    );
}

#[test]
fn the_embedded_default_is_valid_from_the_repository() {
    let run = relance_in(&repo(), &["config", "check"]);
    run.expect_code(0);
    assert!(
        run.stdout.starts_with("<embedded default>: OK (3 segments"),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr.is_empty(),
        "no warnings expected: {}",
        run.stderr
    );
    let default = relance_in(&repo(), &["config", "default"]);
    assert_eq!(
        default.stdout,
        std::fs::read_to_string(repo().join("examples/relance.yaml")).unwrap()
    );
}

#[test]
fn late_payment_jurisdictions_are_keyed_by_country_and_checked_like_the_default() {
    let w = Workspace::new();
    std::fs::create_dir(w.path("rules")).unwrap();
    w.write("rules/smb.rhai", "// rules\n");
    w.write(
        "relance.yaml",
        r#"database:
  url: sqlite://ledger.db
company:
  name: Test SAS
late_payment:
  reference_rates:
    - { from: 2026-07-01, rate: "2.15" }
  jurisdictions:
    DE:
      margin_points: -9
      reference_label: { de: Basiszinssatz }
    Germany:
      margin_points: 9
segments:
  smb:
    rules: rules/smb.rhai
    schedule: "0 0 9 * * Mon-Fri"
"#,
    );
    let run = w.relance(&["config", "check"]);
    run.expect_code(3);
    let cfg = w.path("relance.yaml").display().to_string();
    for expected in [
        format!("{cfg}:10: late_payment.jurisdictions.DE.margin_points: -9 is not a number of points between 0 and 100"),
        format!("{cfg}:11: late_payment.jurisdictions.DE.reference_label.de: unsupported locale 'de'"),
        format!("{cfg}:12: late_payment.jurisdictions.Germany: invalid country code 'Germany'"),
    ] {
        assert!(run.stderr.contains(&expected), "missing «{expected}» in\n{}", run.stderr);
    }
}
