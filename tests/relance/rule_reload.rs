//! Rule reloading through the library: a refused rule file keeps the previous version
//! running, says why, and shows in the metrics.

use relance::config::{Config, Source};
use relance::scripting::{Limits, RuleRegistry};

fn registry(config: &Config) -> RuleRegistry {
    let engine = relance::scripting::engine::build(
        std::sync::Arc::new(config.calendar.clone()),
        &Limits::default(),
    );
    let (registry, errors) = RuleRegistry::load(config, engine);
    assert!(errors.is_empty(), "{errors:?}");
    registry
}

fn metrics(registry: &RuleRegistry) -> String {
    let mut out = String::new();
    registry.metrics().render(&mut out);
    out
}

/// Regression: with the embedded default configuration, deleting a customised
/// `rules/smb.rhai` silently switched the segment to the script shipped with relance.
#[test]
fn deleting_a_customised_rule_under_the_embedded_default_keeps_it_running() {
    let dir = tempfile::tempdir().unwrap();
    let custom = "email(\"custom_reminder\", customer.dunnable.overdue(1))";
    let file = dir.path().join("smb.rhai");
    std::fs::write(&file, custom).unwrap();
    // The embedded default's shape, with the rule file at a path of this test.
    // (Segment renamed so that no other test touches its metrics.)
    let yaml = relance::config::EMBEDDED_DEFAULT.replace(
        "  smb:\n    rules: rules/smb.rhai",
        &format!("  embedded_probe:\n    rules: \"{}\"", file.display()),
    );
    assert_ne!(yaml, relance::config::EMBEDDED_DEFAULT);
    let config = Config::from_yaml(Source::Embedded, &yaml, &|_| None).unwrap();
    let registry = registry(&config);
    let custom_hash = relance::digest::sha256_hex(custom.as_bytes());
    assert_eq!(
        registry.current().get("embedded_probe").unwrap().hash,
        custom_hash
    );

    std::fs::remove_file(&file).unwrap();
    let report = registry.reload();
    assert!(report.reloaded.is_empty(), "{:?}", report.reloaded);
    assert_eq!(report.rejected.len(), 1);
    assert_eq!(report.rejected[0].segment, "embedded_probe");
    let why = report.rejected[0].diagnostic.short();
    assert!(why.contains("smb.rhai") && why.contains("deleted"), "{why}");
    assert_eq!(
        registry.current().get("embedded_probe").unwrap().hash,
        custom_hash,
        "the customised script keeps running, not the shipped one"
    );
    assert!(metrics(&registry).contains("relance_rule_script_stale{segment=\"embedded_probe\"} 1"));

    // Restored: in force again, nothing stale.
    std::fs::write(&file, custom).unwrap();
    let report = registry.reload();
    assert!(report.rejected.is_empty() && report.reloaded.is_empty());
}

/// Regression: with a `relance.yaml`, a deleted or non-UTF-8 rule file kept the previous
/// version without a word, and an empty one was accepted (the segment did nothing).
#[test]
fn a_deleted_non_utf8_or_empty_rule_file_is_refused_and_counted() {
    let w = crate::helpers::workspace_with_rules_and(
        &[("reload_probe", "email(\"v1\", customer.invoices)")],
        "",
    );
    let config = Config::load(Some(&w.path("relance.yaml"))).unwrap();
    let registry = registry(&config);
    let v1 = registry.current().get("reload_probe").unwrap().hash.clone();
    let failures =
        |n: u64| format!("relance_rule_reload_failures_total{{segment=\"reload_probe\"}} {n}");

    let cases: [(&str, &[u8], &str); 4] = [
        ("deleted", b"", "does not exist"),
        (
            "not UTF-8",
            b"email(\"v2\", \xc3\x28 customer.invoices)",
            "not valid UTF-8",
        ),
        ("empty", b"", "empty"),
        (
            "comments only",
            b"// v2, to do\n/* nothing /* nested */ yet */\n\n",
            "empty",
        ),
    ];
    for (n, (what, content, reason)) in cases.iter().enumerate() {
        if *what == "deleted" {
            std::fs::remove_file(w.path("rules/reload_probe.rhai")).unwrap();
        } else {
            w.write("rules/reload_probe.rhai", content);
        }
        let report = registry.reload();
        assert!(report.reloaded.is_empty(), "{what}");
        assert_eq!(report.rejected.len(), 1, "{what}");
        let why = report.rejected[0].diagnostic.short();
        assert!(
            why.contains("reload_probe.rhai") && why.contains(reason),
            "{what}: {why}"
        );
        assert_eq!(
            registry.current().get("reload_probe").unwrap().hash,
            v1,
            "{what}: the previous version keeps running"
        );
        // What the console's rules page shows: the refusal and its reason.
        let (_, refused) = registry.last_check();
        assert!(
            refused
                .get("reload_probe")
                .is_some_and(|r| r.contains(reason)),
            "{what}: {refused:?}"
        );
        let text = metrics(&registry);
        assert!(text.contains(&failures(n as u64 + 1)), "{what}:\n{text}");
        assert!(
            text.contains("relance_rule_script_stale{segment=\"reload_probe\"} 1"),
            "{what}:\n{text}"
        );
        // Checked again, the same refusal is not counted twice.
        registry.reload();
        assert!(
            metrics(&registry).contains(&failures(n as u64 + 1)),
            "{what}"
        );
    }

    w.write(
        "rules/reload_probe.rhai",
        "email(\"v3\", customer.invoices)",
    );
    let report = registry.reload();
    assert_eq!(report.reloaded, ["reload_probe"]);
    assert!(metrics(&registry).contains("relance_rule_script_stale{segment=\"reload_probe\"} 0"));
    assert!(registry.last_check().1.is_empty());
}
