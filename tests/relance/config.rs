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

/// Regression: `config check` reported errors in waves (a file with 37 errors showed
/// 12, 11, 11, 2, 1 on successive runs): only the first type error of a section was
/// reported, and a section that did not type was not validated further. Every problem
/// of every section is now listed in one run.
#[test]
fn config_check_reports_every_error_at_once_not_in_waves() {
    let w = Workspace::new();
    std::fs::create_dir(w.path("rules")).unwrap();
    w.write(
        "rules/smb.rhai",
        "email(\"reminder_1\", customer.dunnable)\n",
    );
    w.write(
        "relance.yaml",
        r#"database:
  url: sqlite://ledger.db
  max_connections: lots
  pool: 3
company:
  siren: "123456789"
  currency: XXX
  adress: { city: Lyon }
  bank: { iban: FR76 0000 }
timezone: Europe/Lyon
calendar:
  weekend: [saturday, sunnday, 7]
  extra_holidays: [2026-01-01, someday]
late_payment:
  margin_points: -3
  fixed_indemnity: forty
  reference_rates:
    - { from: 2026-07-01, rate: "2.15" }
    - { from: 2026-01-01, rate: abc }
segments:
  smb:
    schedule: every morning
  other:
    rules: rules/missing.rhai
    schedule: "0 0 9 * * Mon-Fri"
    colour: blue
insurers:
  coface:
    name: Coface
    declaration_deadline_days: 9999
    retry_hours: many
dispatch:
  max_attempts: 0
  lease_seconds: soon
  quiet_hours:
    fax: { from: "09:00", to: "10:00" }
api:
  listen: nowhere
  max_batch_items: 0
  request_timeout_seconds: -1
channels:
  email:
    smtp: { host: "", port: 99999 }
    from: "not an address"
  sms:
    provider: pigeon
  formal_notice:
    deadline_days: 500
  documents:
    archive: cloud
"#,
    );
    let run = w.relance(&["config", "check"]);
    run.expect_code(3);
    let cfg = w.path("relance.yaml").display().to_string();
    let expected = [
        "3: database.max_connections: invalid type",
        "4: database.pool: unknown field `pool`",
        "5: company: missing field `name`",
        "6: company.siren: invalid SIREN '123456789'",
        "7: company.currency: unknown currency 'XXX'",
        "8: company.adress: unknown field `adress`",
        "9: company.bank.iban: invalid IBAN 'FR76 0000'",
        "10: timezone: unknown time zone 'Europe/Lyon'",
        "12: calendar.weekend[1]: 'sunnday' is not a day of the week",
        "12: calendar.weekend[2]: invalid type: integer `7`",
        "13: calendar.extra_holidays[1]: ",
        "15: late_payment.margin_points: -3 is not a number of points",
        "16: late_payment.fixed_indemnity: ",
        "19: late_payment.reference_rates[1].rate: invalid value",
        "19: late_payment.reference_rates[1].from: 2026-01-01 is not after the previous entry 2026-07-01",
        "21: segments.smb: missing field `rules`",
        "22: segments.smb.schedule: invalid cron schedule 'every morning'",
        "24: segments.other.rules: rule file",
        "26: segments.other.colour: unknown field `colour`",
        "30: insurers.coface.declaration_deadline_days: must be a number of days between 1 and 730",
        "31: insurers.coface.retry_hours: invalid type",
        "33: dispatch.max_attempts: must be between 1 and 100",
        "34: dispatch.lease_seconds: invalid type",
        "36: dispatch.quiet_hours.fax: 'fax' is not an action kind",
        "38: api.listen: 'nowhere' is not an address",
        "39: api.max_batch_items: must be between 1 and 100000",
        "40: api.request_timeout_seconds: invalid value",
        "43: channels.email.smtp.port: invalid value",
        "43: channels.email.smtp.host: must not be empty",
        "44: channels.email.from: 'not an address' is not an email address",
        "46: channels.sms.provider: unknown SMS provider 'pigeon'",
        "48: channels.formal_notice.deadline_days: must be between 1 and 90 days",
        "50: channels.documents.archive: 'cloud': expected directory or database",
    ];
    let mut missing = Vec::new();
    for e in expected {
        if !run.stderr.contains(&format!("{cfg}:{e}")) {
            missing.push(e);
        }
    }
    assert!(
        missing.is_empty(),
        "missing {missing:#?} in\n{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains(&format!("{} problems in the configuration", expected.len())),
        "{}",
        run.stderr
    );
    // Every line is FILE:LINE: path: message.
    for line in run.stderr.lines().skip(1) {
        if line.starts_with(&cfg) {
            let rest = &line[cfg.len()..];
            assert!(
                rest.starts_with(':')
                    && rest[1..]
                        .split(':')
                        .next()
                        .unwrap()
                        .parse::<usize>()
                        .is_ok(),
                "{line}"
            );
        }
    }
}

/// Regression: `notwhsec` passed `config check`. Webhook secrets follow the Standard
/// Webhooks format: `whsec_` then the base64 of 24 to 64 bytes; the error names the key,
/// never the value.
#[test]
fn webhook_secret_format_is_checked_without_showing_the_secret() {
    let w = Workspace::new();
    let long = format!("whsec_{}", "QUJD".repeat(30)); // 90 bytes
    w.write(
        "relance.yaml",
        format!(
            "{}insurers:\n  coface:\n    name: Coface\n    declaration_deadline_days: 90\n    endpoint:\n      url: https://claims.example/in\n      secrets: [notwhsec, \"whsec_c2hvcnQ=\", \"whsec_%%%notbase64%%%\", \"{long}\", \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"]\nchannels:\n  call_tasks:\n    notify:\n      url: https://crm.example/hooks\n      secret: whsec_dG9vIHNob3J0\n",
            crate::helpers::MINIMAL_CONFIG
        ),
    );
    let run = w.relance(&["config", "check"]);
    run.expect_code(3);
    for (key, why) in [
        (
            "insurers.coface.endpoint.secrets[0]",
            "does not start with 'whsec_'",
        ),
        ("insurers.coface.endpoint.secrets[1]", "5 bytes long"),
        ("insurers.coface.endpoint.secrets[2]", "is not base64"),
        ("insurers.coface.endpoint.secrets[3]", "90 bytes long"),
        ("channels.call_tasks.notify.secret", "9 bytes long"),
    ] {
        let line = run
            .stderr
            .lines()
            .find(|l| l.contains(&format!(": {key}: ")))
            .unwrap_or_else(|| panic!("no error for {key} in\n{}", run.stderr));
        assert!(line.contains(why), "{line}");
        assert!(line.contains("24 to 64"), "{line}");
    }
    assert!(!run.stderr.contains("secrets[4]"), "{}", run.stderr);
    assert!(run.stderr.contains("5 problems"), "{}", run.stderr);
    for value in [
        "notwhsec",
        "c2hvcnQ",
        "notbase64",
        "QUJDQUJD",
        "dG9vIHNob3J0",
    ] {
        assert!(
            !run.stderr.contains(value),
            "«{value}» shown:\n{}",
            run.stderr
        );
    }
}

/// Regression: a `dispatch.lease_seconds` shorter than a live send was accepted: another
/// worker reclaimed the action while it was still being sent, and sent it twice. The
/// lease must exceed the longest channel timeout plus a margin.
#[test]
fn a_lease_shorter_than_a_live_send_is_refused() {
    let w = Workspace::new();
    let smtp = "channels:\n  email:\n    smtp: { host: smtp.example.com, timeout_seconds: 30 }\n    from: \"Test SAS <relance@test.example>\"\n  sms:\n    provider: http\n    timeout_seconds: 20\n    http: { url: \"https://sms.example/send\", body: \"{{ text }}\" }\n";
    w.write(
        "relance.yaml",
        format!(
            "{}dispatch:\n  lease_seconds: 30\n{smtp}",
            crate::helpers::MINIMAL_CONFIG
        ),
    );
    let run = w.relance(&["config", "check"]);
    run.expect_code(3);
    let line = run
        .stderr
        .lines()
        .find(|l| l.contains(": dispatch.lease_seconds: "))
        .unwrap_or_else(|| panic!("{}", run.stderr));
    assert!(line.contains("30 s is shorter"), "{line}");
    assert!(
        line.contains("channels.email.smtp.timeout_seconds"),
        "{line}"
    );
    assert!(line.contains("at least 36 s"), "{line}");

    // An insurer endpoint with a longer timeout is the one that counts.
    w.write(
        "relance.yaml",
        format!("{}insurers:\n  coface:\n    name: Coface\n    declaration_deadline_days: 90\n    endpoint: {{ url: \"https://claims.example/in\", secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw, timeout_seconds: 100 }}\ndispatch:\n  lease_seconds: 60\n{smtp}", crate::helpers::MINIMAL_CONFIG),
    );
    let run = w.relance(&["config", "check"]);
    run.expect_code(3);
    assert!(
        run.stderr
            .contains("dispatch.lease_seconds: 60 s is shorter")
            && run
                .stderr
                .contains("insurers.coface.endpoint.timeout_seconds) is 100 s")
            && run.stderr.contains("at least 120 s"),
        "{}",
        run.stderr
    );

    // Long enough: accepted; left out: the default grows to cover the longest send.
    w.write(
        "relance.yaml",
        format!(
            "{}dispatch:\n  lease_seconds: 36\n{smtp}",
            crate::helpers::MINIMAL_CONFIG
        ),
    );
    w.relance(&["config", "check"]).expect_code(0);
    let text = format!(
        "{}channels:\n  formal_notice:\n    registered_mail: {{ url: \"https://letters.example/send\", timeout_seconds: 90 }}\n",
        crate::helpers::MINIMAL_CONFIG
    );
    let config = relance::config::Config::from_yaml(
        relance::config::Source::File(w.path("relance.yaml")),
        &text,
        &|_| None,
    )
    .unwrap();
    assert_eq!(config.dispatch.lease, std::time::Duration::from_secs(108));
    let config = relance::config::Config::from_yaml(
        relance::config::Source::File(w.path("relance.yaml")),
        crate::helpers::MINIMAL_CONFIG,
        &|_| None,
    )
    .unwrap();
    assert_eq!(config.dispatch.lease, std::time::Duration::from_secs(60));
}

#[test]
fn a_collectors_list_must_be_a_list_of_names() {
    let w = Workspace::new();
    let base = std::fs::read_to_string(w.path("relance.yaml")).unwrap();
    w.write("relance.yaml", format!("{base}collectors: claire\n"));
    let run = w.relance(&["config", "check"]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("collectors: expected a list of the collectors customers may be assigned to"),
        "{}",
        run.stderr
    );
    w.write(
        "relance.yaml",
        format!("{base}collectors: [claire, \"\"]\n"),
    );
    let run = w.relance(&["config", "check"]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("collectors[1]: expected a collector's name or email address"),
        "{}",
        run.stderr
    );
    w.write(
        "relance.yaml",
        format!("{base}collectors: [claire, paul]\n"),
    );
    w.relance(&["config", "check"]).expect_code(0);
}
