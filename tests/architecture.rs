//! The layering of the crate, kept true: every file under `src/` is read, each reference
//! to another top-level module (`use crate::x`, `crate::x::…`, `$crate::x` in macros) is
//! checked against the table below, and every breach is reported with its file and line.
//! `docs/architecture.md` explains the table.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Top-level modules by rank, lowest first. A module may use modules of a lower rank
/// only; modules of the same rank do not use each other.
const RANKS: &[(u8, &[&str])] = &[
    // Utilities: they use no other module of the crate.
    (0, &["digest", "panics", "metrics", "telemetry", "ffi"]),
    // Money, customers, invoices, the calendar: pure, no I/O.
    (1, &["domain"]),
    // relance.yaml, validated.
    (2, &["config"]),
    // The ledger's storage.
    (3, &["store"]),
    // What works on the ledger: imports, rules, documents, messages, reports.
    (
        4,
        &[
            "import",
            "scripting",
            "documents",
            "templates",
            "reports",
            "call_outcomes",
        ],
    ),
    // Generated portfolios (through the import).
    (5, &["sample"]),
    // Delivery transports.
    (6, &["channels"]),
    // Delivering planned actions; scheduling ticks.
    (7, &["outbox", "scheduler"]),
    // The HTTP API.
    (8, &["api"]),
    // The composition root.
    (9, &["runtime"]),
    // The command line.
    (10, &["cli"]),
];

/// Uses the ranks would allow but the design does not, and why.
const FORBIDDEN: &[(&str, &str, &str)] = &[
    (
        "scripting",
        "store",
        "rules are pure: facts in, decisions out (the scheduler reads the store)",
    ),
    (
        "api",
        "channels",
        "the API reaches channels only through the outbox",
    ),
];

fn rank_of(module: &str) -> Option<u8> {
    RANKS
        .iter()
        .find(|(_, ms)| ms.contains(&module))
        .map(|(r, _)| *r)
}

/// Why `from` may not use `to`, if it may not.
fn breach(from: &str, to: &str) -> Option<String> {
    if let Some((_, _, why)) = FORBIDDEN.iter().find(|(f, t, _)| *f == from && *t == to) {
        return Some((*why).to_string());
    }
    match (rank_of(from), rank_of(to)) {
        (Some(a), Some(b)) if b == a => Some(format!(
            "{from} and {to} are of the same rank ({a}): neither uses the other"
        )),
        (Some(a), Some(b)) if b > a => Some(format!(
            "{from} (rank {a}) may not use {to} (rank {b}), which is above it"
        )),
        _ => None,
    }
}

/// `text` with comments and the contents of string and character literals blanked out
/// (line breaks kept, so line numbers stay right).
fn code_only(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    let blank = |c: u8| if c == b'\n' { b'\n' } else { b' ' };
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    out.push(b' ');
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let mut depth = 0;
                while i < b.len() {
                    if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                        depth += 1;
                        out.extend_from_slice(b"  ");
                        i += 2;
                    } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                        depth -= 1;
                        out.extend_from_slice(b"  ");
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        out.push(blank(b[i]));
                        i += 1;
                    }
                }
            }
            b'r' if matches!(b.get(i + 1), Some(b'"') | Some(b'#'))
                && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')) =>
            {
                // A raw string: r"…", r#"…"#.
                let mut j = i + 1;
                let mut hashes = 0;
                while b.get(j) == Some(&b'#') {
                    hashes += 1;
                    j += 1;
                }
                if b.get(j) != Some(&b'"') {
                    out.push(b[i]);
                    i += 1;
                    continue;
                }
                let close: Vec<u8> = std::iter::once(b'"')
                    .chain(std::iter::repeat_n(b'#', hashes))
                    .collect();
                out.extend(std::iter::repeat_n(b' ', j + 1 - i));
                i = j + 1;
                while i < b.len() && !b[i..].starts_with(&close) {
                    out.push(blank(b[i]));
                    i += 1;
                }
                out.extend(std::iter::repeat_n(b' ', close.len().min(b.len() - i)));
                i += close.len();
            }
            b'"' => {
                out.push(b' ');
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' && i + 1 < b.len() {
                        out.push(b' ');
                        i += 1;
                    }
                    out.push(blank(b[i]));
                    i += 1;
                }
                out.push(b' ');
                i += 1;
            }
            b'\'' => {
                // A character literal ('x', '\n', '\''), not a lifetime ('a).
                let end = if b.get(i + 1) == Some(&b'\\') {
                    b[i + 2..]
                        .iter()
                        .position(|&c| c == b'\'')
                        .map(|p| i + 2 + p)
                } else if b.get(i + 2) == Some(&b'\'') {
                    Some(i + 2)
                } else {
                    None
                };
                match end {
                    Some(e) => {
                        out.extend(std::iter::repeat_n(b' ', e + 1 - i));
                        i = e + 1;
                    }
                    None => {
                        out.push(b'\'');
                        i += 1;
                    }
                }
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Every top-level module `code` refers to, with the line of the reference:
/// `crate::x`, `$crate::x`, and the members of `use crate::{x, y::z}` groups.
fn references(code: &str) -> Vec<(usize, String)> {
    let line_of = |pos: usize| code[..pos].bytes().filter(|&c| c == b'\n').count() + 1;
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(p) = code[from..].find("crate::") {
        let at = from + p;
        from = at + "crate::".len();
        // Not `foo_crate::` or `relance_crate::`.
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &code[from..];
        let trimmed = rest.trim_start();
        if let Some(group) = trimmed.strip_prefix('{') {
            // `crate::{a, b::{c, d}, e}`: the first segment of each top-level member.
            let mut depth = 1;
            let mut member_start = true;
            let base = from + (rest.len() - trimmed.len()) + 1;
            for (k, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    ',' if depth == 1 => member_start = true,
                    c if member_start && depth == 1 && (c.is_ascii_alphabetic() || c == '_') => {
                        member_start = false;
                        let name = ident(&group[k..]);
                        out.push((line_of(base + k), name));
                    }
                    c if member_start && !c.is_whitespace() => member_start = false,
                    _ => {}
                }
            }
        } else {
            let name = ident(rest);
            if !name.is_empty() {
                out.push((line_of(at), name));
            }
        }
    }
    out
}

/// The top-level module a file of `src/` belongs to (`None` for the crate roots).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    match first {
        "lib.rs" | "main.rs" => None,
        f => Some(f.trim_end_matches(".rs").to_string()),
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// Every breach of the layering under `src`, as `src/FILE:LINE: …` lines.
fn breaches(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut problems = Vec::new();
    let mut unplaced: BTreeMap<String, PathBuf> = BTreeMap::new();
    for file in &files {
        let Some(module) = module_of(src, file) else {
            continue;
        };
        if rank_of(&module).is_none() {
            unplaced
                .entry(module.clone())
                .or_insert_with(|| file.clone());
            continue;
        }
        let text = std::fs::read_to_string(file).unwrap();
        let shown = Path::new("src").join(file.strip_prefix(src).unwrap());
        for (line, to) in references(&code_only(&text)) {
            if to == module || to == "self" || to == "super" {
                continue;
            }
            if rank_of(&to).is_none() {
                // `crate::SomeType` re-exported at the root, or a module not placed:
                // the latter is reported once, below.
                continue;
            }
            if let Some(why) = breach(&module, &to) {
                problems.push(format!(
                    "{}:{line}: {module} uses {to}: {why}",
                    shown.display()
                ));
            }
        }
    }
    for (module, file) in unplaced {
        problems.push(format!(
            "{}: module {module} has no rank in tests/architecture.rs (RANKS): place it in a layer",
            file.display()
        ));
    }
    problems
}

#[test]
fn every_module_uses_only_the_layers_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let problems = breaches(&src);
    assert!(
        problems.is_empty(),
        "{} import(s) break the layering (docs/architecture.md):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn a_forbidden_import_is_reported_with_its_file_and_line() {
    let dir = std::env::temp_dir().join(format!("relance-arch-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("scripting")).unwrap();
    std::fs::create_dir_all(dir.join("store")).unwrap();
    std::fs::write(dir.join("lib.rs"), "pub mod scripting;\n").unwrap();
    std::fs::write(
        dir.join("scripting/mod.rs"),
        "//! Rules.\n\nuse crate::domain::Account;\n// crate::api is only named in a comment\nuse crate::{\n    config::Config,\n    store::Store,\n};\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("store/mod.rs"),
        "fn f() { let s = \"crate::cli\"; let _ = crate::api::routes(); }\n",
    )
    .unwrap();
    std::fs::write(dir.join("extra.rs"), "\n").unwrap();
    let problems = breaches(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        problems,
        vec![
            "src/scripting/mod.rs:7: scripting uses store: rules are pure: facts in, decisions out (the scheduler reads the store)".to_string(),
            "src/store/mod.rs:1: store uses api: store (rank 3) may not use api (rank 8), which is above it".to_string(),
            format!("{}: module extra has no rank in tests/architecture.rs (RANKS): place it in a layer", dir.join("extra.rs").display()),
        ]
    );
}

#[test]
fn references_are_found_in_groups_macros_and_paths_but_not_in_comments_or_strings() {
    let code = code_only(
        "use crate::{a, b::{c, d},\n  e::f};\nlet x = $crate::g::h;\n/* crate::i */ let s = \"crate::j\";\nlet r = r#\"crate::k\"#; let c = '\"'; crate::l::m();\n",
    );
    let found: Vec<(usize, String)> = references(&code);
    let names: Vec<(usize, &str)> = found.iter().map(|(l, n)| (*l, n.as_str())).collect();
    assert_eq!(
        names,
        vec![(1, "a"), (1, "b"), (2, "e"), (3, "g"), (5, "l")]
    );
}
