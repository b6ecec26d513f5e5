//! Command-line behaviour: help, exit codes, errors without panics.

use crate::helpers::{relance_in, Workspace};

const COMMANDS: &[&[&str]] = &[
    &[],
    &["migrate"],
    &["config", "check"],
    &["config", "default"],
    &["import"],
    &["ledger"],
    &["customer"],
    &["sample"],
    &["config"],
    &["rules"],
    &["actions"],
    &["rules", "check"],
    &["rules", "test"],
    &["simulate"],
    &["serve"],
    &["tick"],
    &["dispatch"],
    &["actions", "list"],
    &["actions", "show"],
    &["actions", "retry"],
    &["actions", "cancel"],
    &["tasks"],
    &["tasks", "list"],
    &["tasks", "complete"],
    &["report"],
    &["report", "deadlines"],
    &["report", "experiment"],
    &["rules", "diff"],
    &["rules", "backtest"],
    &["users"],
    &["users", "add"],
    &["users", "list"],
    &["users", "disable"],
    &["users", "reset-password"],
];

#[test]
fn every_command_has_help_with_an_example() {
    let dir = tempfile::tempdir().unwrap();
    for cmd in COMMANDS {
        let mut args = cmd.to_vec();
        args.push("--help");
        let run = relance_in(dir.path(), &args);
        run.expect_code(0);
        assert!(
            run.stdout.contains("Example"),
            "`relance {}` has no example:\n{}",
            args.join(" "),
            run.stdout
        );
    }
}

#[test]
fn usage_errors_exit_with_2() {
    let dir = tempfile::tempdir().unwrap();
    relance_in(dir.path(), &["frobnicate"]).expect_code(2);
    relance_in(dir.path(), &["import", "widgets", "x.csv"]).expect_code(2);
    relance_in(dir.path(), &["ledger", "--as-of", "yesterday"]).expect_code(2);
}

#[test]
fn an_unreachable_database_is_a_clear_failure() {
    let w = Workspace::new();
    let run = w.relance(&[
        "--database-url",
        "postgres://nobody@127.0.0.1:9/none",
        "migrate",
    ]);
    run.expect_code(1);
    assert!(
        run.stderr
            .starts_with("relance: cannot open the database postgres://nobody@127.0.0.1:9/none"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("panicked") && !run.stderr.contains("backtrace"),
        "{}",
        run.stderr
    );
}

#[test]
fn an_unknown_customer_is_an_input_error() {
    let w = Workspace::new();
    let run = w.relance(&["customer", "C404"]);
    run.expect_code(4);
    assert!(
        run.stderr.contains("no customer with external id 'C404'"),
        "{}",
        run.stderr
    );
}

#[test]
fn sample_generation_is_reproducible() {
    let w = Workspace::new();
    for out in ["a", "b"] {
        w.relance(&[
            "sample",
            "--customers",
            "20",
            "--invoices",
            "100",
            "--seed",
            "9",
            "--as-of",
            "2026-06-30",
            "--out",
            out,
        ])
        .expect_code(0);
    }
    for f in ["customers.csv", "invoices.csv", "payments.csv"] {
        assert_eq!(
            std::fs::read(w.path("a").join(f)).unwrap(),
            std::fs::read(w.path("b").join(f)).unwrap(),
            "{f}"
        );
    }
    // What the generator writes, the importer reads.
    for k in ["customers", "invoices", "payments"] {
        w.relance(&["import", k, &format!("a/{k}.csv")])
            .expect_code(0);
    }
}

#[test]
fn json_logs_are_one_object_per_line_on_stderr() {
    let w = Workspace::new();
    w.write("customers.csv", "external_id,name,segment\nC1,Un,smb\n");
    let run = w.relance(&[
        "--log-format",
        "json",
        "--log-level",
        "info",
        "import",
        "customers",
        "customers.csv",
    ]);
    run.expect_code(0);
    assert!(
        run.stdout.contains("1 rows read, 1 new"),
        "command output stays on stdout: {}",
        run.stdout
    );
    let lines: Vec<serde_json::Value> = run
        .stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "import finished" && l["level"] == "INFO"),
        "{}",
        run.stderr
    );
}

/// `relance ... | head` stops quietly when the reader goes away, as Unix tools do.
#[test]
fn output_piped_into_a_reader_that_stops_ends_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_relance"))
        .args(["config", "default"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The reader goes away before relance writes.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("internal error"), "{stderr}");
    assert!(
        out.status.success() || out.status.signal() == Some(13),
        "{:?} {stderr}",
        out.status
    );
}

#[test]
fn shell_completions_and_manual_pages_are_generated_from_the_commands() {
    let w = crate::helpers::Workspace::new();
    for (shell, expected) in [
        ("bash", "_relance()"),
        ("zsh", "#compdef relance"),
        ("fish", "complete -c relance"),
    ] {
        let run = w.relance(&["completions", shell]);
        run.expect_code(0);
        assert!(
            run.stdout.contains(expected),
            "{shell}: {}",
            &run.stdout[..run.stdout.len().min(200)]
        );
        assert!(
            run.stdout.contains("portal"),
            "{shell}: the subcommands are completed"
        );
    }
    let run = w.relance(&["completions", "tcsh"]);
    run.expect_code(2);
    let run = w.relance(&["man"]);
    run.expect_code(0);
    assert!(
        run.stdout.starts_with(".ie") || run.stdout.contains(".TH RELANCE 1"),
        "{}",
        &run.stdout[..200]
    );
    assert!(run.stdout.contains(".TH RELANCE 1"));
    let dir = w.path("man1");
    let run = w.relance(&["man", "--out", dir.to_str().unwrap()]);
    run.expect_code(0);
    for page in [
        "relance.1",
        "relance-import.1",
        "relance-portal-link.1",
        "relance-bank-credits.1",
    ] {
        let text =
            std::fs::read_to_string(dir.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.contains(".SH NAME"), "{page}");
    }
    let import = std::fs::read_to_string(dir.join("relance-import.1")).unwrap();
    assert!(
        import.contains("relance\\-import") && import.contains("fec"),
        "{import}"
    );
}

#[test]
fn init_writes_a_folder_that_checks_and_runs_from_the_binary_alone() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("fresh");
    let run = crate::helpers::relance_in(dir.path(), &["init", folder.to_str().unwrap()]);
    run.expect_code(0);
    assert!(
        run.stdout.contains("relance config check"),
        "{}",
        run.stdout
    );
    for f in [
        "relance.yaml",
        "rules/smb.rhai",
        "rules/smb.test.yaml",
        "templates/email/reminder_1.fr.txt",
        "templates/pdf/formal_notice.fr.typ",
        "examples/invoices.csv",
    ] {
        assert!(folder.join(f).exists(), "{f}");
    }
    // In the new folder, with nothing of the source tree: the configuration checks, the
    // rule tests pass, the example imports.
    crate::helpers::relance_in(&folder, &["config", "check"]).expect_code(0);
    crate::helpers::relance_in(&folder, &["rules", "test"]).expect_code(0);
    for kind in ["customers", "invoices", "payments"] {
        crate::helpers::relance_in(&folder, &["import", kind, &format!("examples/{kind}.csv")])
            .expect_code(0);
    }
    crate::helpers::relance_in(&folder, &["tick"]).expect_code(0);
    // An existing configuration is not overwritten without --force.
    let run = crate::helpers::relance_in(dir.path(), &["init", folder.to_str().unwrap()]);
    run.expect_code(4);
    assert!(run.stderr.contains("relance.yaml exists"), "{}", run.stderr);
    crate::helpers::relance_in(dir.path(), &["init", folder.to_str().unwrap(), "--force"])
        .expect_code(0);
}
