//! The cookbook of docs/rules.md: each recipe in docs/cookbook passes its rule tests
//! and `relance rules check`, and the document shows each script as it is.

use std::path::PathBuf;

use crate::helpers::{repo, workspace_with_rules_and};

/// The recipes, `docs/cookbook/NN-name.rhai`, in order.
fn recipes() -> Vec<PathBuf> {
    let dir = repo().join("docs/cookbook");
    let mut scripts: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().and_then(|x| x.to_str()) == Some("rhai"))
        .collect();
    scripts.sort();
    scripts
}

fn file_name(p: &std::path::Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[test]
fn there_are_ten_recipes_each_with_its_test_file() {
    let scripts = recipes();
    let names: Vec<String> = scripts.iter().map(|p| file_name(p.as_path())).collect();
    assert_eq!(scripts.len(), 10, "{names:?}");
    for (n, script) in scripts.iter().enumerate() {
        let name = file_name(script);
        assert!(
            name.starts_with(&format!("{:02}-", n + 1)),
            "recipe {name} should be numbered {:02}: {names:?}",
            n + 1
        );
        let test = script.with_extension("test.yaml");
        assert!(test.is_file(), "{name} has no test file {}", test.display());
    }
}

#[test]
fn every_recipe_passes_its_rule_tests_and_rules_check() {
    let scripts = recipes();
    assert_eq!(scripts.len(), 10);
    for script in &scripts {
        let name = file_name(script);
        let source = std::fs::read_to_string(script).unwrap();
        let test = std::fs::read_to_string(script.with_extension("test.yaml"))
            .unwrap_or_else(|e| panic!("{name}: no test file: {e}"));
        let w = workspace_with_rules_and(&[("demo", source.as_str())], "");
        w.write("rules/demo.test.yaml", test);
        // Says which recipe an `expect_code` failure below is about.
        eprintln!("recipe {name}");
        let run = w.relance(&["rules", "test"]);
        run.expect_code(0);
        let passed = run
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("rule tests: "))
            .and_then(|l| l.strip_suffix(" passed, 0 failed"))
            .and_then(|n| n.parse::<usize>().ok());
        assert!(
            passed.is_some_and(|n| n >= 2),
            "{name}: at least two passing cases expected\n{}",
            run.stdout
        );
        let check = w.relance(&["rules", "check"]);
        check.expect_code(0);
        assert!(
            check.stdout.contains("rules/demo.rhai: OK (segment demo, "),
            "{name}\n{}",
            check.stdout
        );
    }
}

#[test]
fn rules_md_shows_each_recipe_as_it_is() {
    let doc = std::fs::read_to_string(repo().join("docs/rules.md")).unwrap();
    for script in recipes() {
        let name = file_name(&script);
        let source = std::fs::read_to_string(&script).unwrap();
        assert!(
            doc.contains(&format!("```rhai\n{source}```")),
            "docs/rules.md does not show docs/cookbook/{name} as it is"
        );
        let test = file_name(&script.with_extension("test.yaml"));
        assert!(
            doc.contains(&format!("(cookbook/{test})")),
            "docs/rules.md does not link to docs/cookbook/{test}"
        );
    }
}
