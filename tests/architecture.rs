//! The layering of the crate, kept true (the idea of ArchUnit, in plain Rust).
//!
//! Every `.rs` file under `src/` but the binary's `main.rs` is read; each reference it
//! makes to another top-level module of the crate — `use crate::x…`, `crate::x::…`
//! anywhere in code, the members of `use crate::{x, y::{z, w}}` groups, `$crate::x` in
//! macros, and `super::super::x` paths that climb out of their module — is checked
//! against [`RANKS`] and [`FORBIDDEN`]. Comments and string literals are not code and
//! are skipped. Every breach is collected and the test fails once, listing them all as
//! `src/FILE:LINE: module A imports B (reason)`. A top-level module with no rank fails
//! the test too, so every new module is placed. `docs/architecture.md` explains the
//! table.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level modules by rank, lowest first. A module may import modules of a LOWER rank
/// only; modules of the same rank may not import each other.
const RANKS: &[(u8, &[&str])] = &[
    // 0: leaf utilities — SHA-256 in hex, panics contained to one unit of work, counters
    // for /metrics, logs, every call into C, the debtor portal's sealed links. They
    // import no other module of the crate.
    (
        0,
        &[
            "digest",
            "panics",
            "metrics",
            "telemetry",
            "ffi",
            "link_seal",
        ],
    ),
    // 1: the receivables domain — money, customers, invoices, payments, promises, the
    // calendar, locale formatting. Pure, no I/O.
    (1, &["domain"]),
    // 2: relance.yaml read and validated at once; retry and interrupted-send policies.
    (2, &["config"]),
    // 3: the ledger's storage — the Store trait, SQLite and PostgreSQL, the action log.
    (3, &["store"]),
    // 4: what works on the ledger — CSV imports, rule scripts (pure), formal notices and
    // the evidence archive, message templates, reports, call outcomes, collectors' facts,
    // the debtor portal's links.
    (
        4,
        &[
            "import",
            "scripting",
            "documents",
            "templates",
            "reports",
            "call_outcomes",
            "collect",
            "portal_links",
        ],
    ),
    // 5: generated sample portfolios (written through the import); the reports' charts
    // and the monthly PDF report (reports drawn, rendered by the documents' engine);
    // retention (pruning past its time, erasing a customer's personal data: the
    // database, the document archive and the outbox folder).
    (5, &["sample", "charts", "retention"]),
    // 6: delivery transports behind one trait, and the documents they send.
    (6, &["channels"]),
    // 7: delivering planned actions (claim, deliver, retry, record); scheduling ticks
    // and the pass over the ledger that writes decisions to the action log.
    (7, &["outbox", "scheduler"]),
    // 8: the HTTP API of `relance serve`, its web console, and the debtor portal.
    (8, &["api", "console", "portal"]),
    // 9: the composition root: builds the service from its configuration and runs it.
    (9, &["runtime"]),
    // 10: the command line.
    (10, &["cli"]),
];

/// Imports refused whatever the ranks say, with the reason printed: (from, to, why).
/// The `templates` entries are refused by rank as well; they are listed for their reason.
const FORBIDDEN: &[(&str, &str, &str)] = &[
    (
        "scripting",
        "store",
        "rules are pure: facts in, decisions out",
    ),
    (
        "api",
        "channels",
        "the API reaches channels only through the outbox",
    ),
    (
        "console",
        "channels",
        "the console reaches channels only through the outbox",
    ),
    (
        "portal",
        "channels",
        "the portal reaches channels only through the outbox: a confirmation is an action in the log",
    ),
    (
        "portal",
        "scripting",
        "the portal records what the customer did; the rules decide at the next tick",
    ),
    (
        "templates",
        "sample",
        "templates render the context they are given; checking them against a sample ledger is the command line's job",
    ),
    (
        "templates",
        "import",
        "templates render the context they are given; checking them against a sample ledger is the command line's job",
    ),
    (
        "templates",
        "scripting",
        "templates render the context they are given; checking them against the rules is the command line's job",
    ),
];

fn rank_of(module: &str) -> Option<u8> {
    RANKS
        .iter()
        .find(|(_, modules)| modules.contains(&module))
        .map(|(rank, _)| *rank)
}

/// Why `from` may not import `to`, if it may not (both ranked).
fn breach(from: &str, to: &str) -> Option<String> {
    if let Some((_, _, why)) = FORBIDDEN.iter().find(|(f, t, _)| *f == from && *t == to) {
        return Some((*why).to_string());
    }
    let (a, b) = (rank_of(from)?, rank_of(to)?);
    if a == 0 {
        Some("rank 0 is for leaf utilities: they import no other module of the crate".to_string())
    } else if a == b {
        Some(format!(
            "same rank {a}: modules of one rank do not import each other"
        ))
    } else if b > a {
        Some(format!(
            "rank {a} may only import lower ranks; {to} is rank {b}"
        ))
    } else {
        None
    }
}

// ---------------------------------------------------------------------------------------
// The scanner.
// ---------------------------------------------------------------------------------------

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// `text` with comments and the contents of string and character literals blanked out.
/// Line breaks are kept, so line numbers stay right.
fn code_only(text: &str) -> String {
    let b: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    let mut i = 0;
    while i < b.len() {
        let at = |k: usize| b.get(k).copied();
        match b[i] {
            // Line comments, doc comments included.
            '/' if at(i + 1) == Some('/') => {
                while i < b.len() && b[i] != '\n' {
                    out.push(' ');
                    i += 1;
                }
            }
            // Block comments, which nest.
            '/' if at(i + 1) == Some('*') => {
                let mut depth = 0;
                while i < b.len() {
                    if b[i] == '/' && at(i + 1) == Some('*') {
                        depth += 1;
                        out.push_str("  ");
                        i += 2;
                    } else if b[i] == '*' && at(i + 1) == Some('/') {
                        depth -= 1;
                        out.push_str("  ");
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
            // Raw strings: r"…", r#"…"#, br"…", cr#"…"#.
            'r' if matches!(at(i + 1), Some('"' | '#')) && {
                let prefix_start = if i > 0 && matches!(b[i - 1], 'b' | 'c') {
                    i - 1
                } else {
                    i
                };
                prefix_start == 0 || !is_ident_char(b[prefix_start - 1])
            } =>
            {
                let mut j = i + 1;
                let mut hashes = 0;
                while at(j) == Some('#') {
                    hashes += 1;
                    j += 1;
                }
                if at(j) != Some('"') {
                    // A raw identifier (r#type), not a string.
                    out.push('r');
                    i += 1;
                    continue;
                }
                for _ in i..=j {
                    out.push(' ');
                }
                i = j + 1;
                loop {
                    if i >= b.len() {
                        break;
                    }
                    if b[i] == '"' && (1..=hashes).all(|h| at(i + h) == Some('#')) {
                        for _ in 0..=hashes {
                            out.push(' ');
                        }
                        i += hashes + 1;
                        break;
                    }
                    out.push(blank(b[i]));
                    i += 1;
                }
            }
            // Strings, byte strings and C strings (their prefix is left as is).
            '"' => {
                out.push(' ');
                i += 1;
                while i < b.len() && b[i] != '"' {
                    if b[i] == '\\' && i + 1 < b.len() {
                        out.push(' ');
                        i += 1;
                    }
                    out.push(blank(b[i]));
                    i += 1;
                }
                out.push(' ');
                i += 1;
            }
            // Character literals ('x', '\n', '\'', '\u{1b}'), not lifetimes ('a).
            '\'' => {
                let end = if at(i + 1) == Some('\\') {
                    (i + 3..b.len().min(i + 16)).find(|&k| b[k] == '\'')
                } else if at(i + 2) == Some('\'') {
                    Some(i + 2)
                } else {
                    None
                };
                match end {
                    Some(e) => {
                        for _ in i..=e {
                            out.push(' ');
                        }
                        i = e + 1;
                    }
                    None => {
                        out.push('\'');
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
    out
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    /// `::`
    Path,
    Punct(char),
}

/// The tokens of comment- and string-free code, each with its line.
fn tokens(code: &str) -> Vec<(usize, Tok)> {
    let c: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    while i < c.len() {
        if c[i] == '\n' {
            line += 1;
            i += 1;
        } else if c[i].is_whitespace() {
            i += 1;
        } else if is_ident_char(c[i]) {
            let start = i;
            while i < c.len() && is_ident_char(c[i]) {
                i += 1;
            }
            out.push((line, Tok::Ident(c[start..i].iter().collect())));
        } else if c[i] == ':' && c.get(i + 1) == Some(&':') {
            out.push((line, Tok::Path));
            i += 2;
        } else {
            out.push((line, Tok::Punct(c[i])));
            i += 1;
        }
    }
    out
}

fn ident(t: Option<&(usize, Tok)>) -> Option<&str> {
    match t {
        Some((_, Tok::Ident(s))) => Some(s),
        _ => None,
    }
}

/// The names `crate::{…}` (or `super::…::{…}` reaching the root) brings in: the first
/// segment of each top-level member of the group that starts at `toks[open]` (`{`).
fn group_members(toks: &[(usize, Tok)], open: usize, out: &mut Vec<(usize, String)>) {
    let mut depth = 0;
    let mut member_start = true;
    for (line, t) in &toks[open..] {
        match t {
            Tok::Punct('{') => {
                depth += 1;
                if depth == 1 {
                    member_start = true;
                    continue;
                }
            }
            Tok::Punct('}') => {
                depth -= 1;
                if depth == 0 {
                    return;
                }
            }
            Tok::Punct(',') if depth == 1 => {
                member_start = true;
                continue;
            }
            _ => {}
        }
        if member_start && depth == 1 {
            match t {
                Tok::Ident(name) => out.push((*line, name.clone())),
                Tok::Punct('*') => out.push((*line, "*".to_string())),
                _ => {}
            }
        }
        member_start = false;
    }
}

/// Every top-level module the code refers to, with the line of the reference:
/// `crate::x`, `$crate::x`, the members of `crate::{x, y::z}` groups, and `super::…::x`
/// paths that climb to the crate root. `depth` is how deep the file's module lies
/// (`src/store/mod.rs`: 1, `src/store/sql.rs`: 2); modules declared inline
/// (`mod tests { … }`) add to it where they enclose the path. A glob at the root
/// (`crate::*`) is returned as `*`.
fn references(code: &str, depth: usize) -> Vec<(usize, String)> {
    let toks = tokens(code);
    let mut out = Vec::new();
    // For each open brace, whether it opened an inline module.
    let mut braces: Vec<bool> = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let prev = i.checked_sub(1).map(|p| &toks[p].1);
        match &toks[i].1 {
            Tok::Punct('{') => {
                let is_mod = i >= 2
                    && ident(toks.get(i - 2)) == Some("mod")
                    && ident(toks.get(i - 1)).is_some();
                braces.push(is_mod);
            }
            Tok::Punct('}') => {
                braces.pop();
            }
            Tok::Ident(word)
                if (word == "crate" || word == "super") && prev != Some(&Tok::Path) =>
            {
                // The path's root segment; count the `super`s.
                let mut j = i;
                let mut supers = 0;
                if word == "crate" {
                    j += 1;
                } else {
                    while ident(toks.get(j)) == Some("super") {
                        supers += 1;
                        j += 1;
                        if toks.get(j).map(|t| &t.1) != Some(&Tok::Path) {
                            break;
                        }
                        j += 1;
                    }
                    j -= 1;
                }
                let here = depth + braces.iter().filter(|m| **m).count();
                let at_root = word == "crate" || supers == here;
                if at_root && toks.get(j).map(|t| &t.1) == Some(&Tok::Path) {
                    match toks.get(j + 1) {
                        Some((line, Tok::Ident(name))) => out.push((*line, name.clone())),
                        Some((_, Tok::Punct('{'))) => group_members(&toks, j + 1, &mut out),
                        Some((line, Tok::Punct('*'))) => out.push((*line, "*".to_string())),
                        _ => {}
                    }
                }
                i = j.max(i + 1);
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// The top-level modules `src/lib.rs` declares, with their lines.
fn declared_modules(lib_rs: &str) -> Vec<(usize, String)> {
    let toks = tokens(&code_only(lib_rs));
    let mut out = Vec::new();
    for (k, (line, t)) in toks.iter().enumerate() {
        if *t == Tok::Ident("mod".into()) {
            if let Some(name) = ident(toks.get(k + 1)) {
                out.push((*line, name.to_string()));
            }
        }
    }
    out
}

/// For a file of `src/`: its top-level module and how deep its own module lies
/// (`store/mod.rs`: store, 1; `store/sql.rs`: store, 2; `digest.rs`: digest, 1). `None`
/// for the crate roots.
fn module_of(src: &Path, file: &Path) -> Option<(String, usize)> {
    let rel = file.strip_prefix(src).ok()?;
    let parts: Vec<&str> = rel.iter().filter_map(|p| p.to_str()).collect();
    match parts.as_slice() {
        ["lib.rs"] | ["main.rs"] | [] => None,
        [first, ..] => {
            let depth = if parts.last() == Some(&"mod.rs") {
                parts.len() - 1
            } else {
                parts.len()
            };
            Some((first.trim_end_matches(".rs").to_string(), depth))
        }
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

/// Every breach of the layering under `src` (a crate's source folder), one line each.
fn breaches(src: &Path) -> Vec<String> {
    let shown = |file: &Path| {
        Path::new("src")
            .join(file.strip_prefix(src).unwrap_or(file))
            .display()
            .to_string()
    };
    let mut problems = Vec::new();

    // Every top-level module has a rank: those src/lib.rs declares, and those with a file.
    let lib_rs = src.join("lib.rs");
    let lib_text = std::fs::read_to_string(&lib_rs)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", lib_rs.display()));
    let mut modules: BTreeMap<String, String> = BTreeMap::new();
    for (line, name) in declared_modules(&lib_text) {
        modules
            .entry(name)
            .or_insert_with(|| format!("{}:{line}", shown(&lib_rs)));
    }
    let mut files = Vec::new();
    rust_files(src, &mut files);
    for file in &files {
        if let Some((module, _)) = module_of(src, file) {
            modules.entry(module).or_insert_with(|| shown(file));
        }
    }
    for (module, place) in &modules {
        if rank_of(module).is_none() {
            problems.push(format!(
                "{place}: module {module} has no rank: place it in RANKS (tests/architecture.rs) and in docs/architecture.md"
            ));
        }
    }

    for file in &files {
        let Some((module, depth)) = module_of(src, file) else {
            continue;
        };
        if rank_of(&module).is_none() {
            continue;
        }
        let text = std::fs::read_to_string(file)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
        let mut seen = BTreeSet::new();
        for (line, to) in references(&code_only(&text), depth) {
            if to == "*" {
                problems.push(format!(
                    "{}:{line}: module {module} imports * from the crate root (name the modules it uses)",
                    shown(file)
                ));
                continue;
            }
            // Not a module: `self`, or an item of the crate root (a macro, say).
            if to == module || !modules.contains_key(&to) || !seen.insert((line, to.clone())) {
                continue;
            }
            if let Some(why) = breach(&module, &to) {
                problems.push(format!(
                    "{}:{line}: module {module} imports {to} ({why})",
                    shown(file)
                ));
            }
        }
    }
    problems
}

#[test]
fn every_module_imports_only_the_ranks_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let problems = breaches(&src);
    assert!(
        problems.is_empty(),
        "\n{} breach(es) of the layering (docs/architecture.md):\n{}\n",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn every_ranked_module_exists() {
    let lib_rs = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs");
    let declared: BTreeSet<String> = declared_modules(&std::fs::read_to_string(lib_rs).unwrap())
        .into_iter()
        .map(|(_, name)| name)
        .collect();
    let stale: Vec<&str> = RANKS
        .iter()
        .flat_map(|(_, modules)| modules.iter().copied())
        .filter(|m| !declared.contains(*m))
        .collect();
    assert!(
        stale.is_empty(),
        "RANKS names modules src/lib.rs does not declare (renamed or removed?): {stale:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Tests of the scanner and the table themselves.
// ---------------------------------------------------------------------------------------

fn found(code: &str, depth: usize) -> Vec<(usize, String)> {
    references(&code_only(code), depth)
}

fn refs(list: &[(usize, &str)]) -> Vec<(usize, String)> {
    list.iter().map(|(l, n)| (*l, n.to_string())).collect()
}

#[test]
fn the_table_places_each_module_once_in_rising_ranks() {
    let mut seen = BTreeSet::new();
    let mut last = None;
    for (rank, modules) in RANKS {
        assert!(last < Some(*rank), "ranks out of order at {rank}");
        last = Some(*rank);
        for m in *modules {
            assert!(seen.insert(*m), "{m} is placed twice");
        }
    }
    for (from, to, _) in FORBIDDEN {
        let (a, b) = (rank_of(from), rank_of(to));
        assert!(a.is_some() && b.is_some(), "{from} → {to}: unranked");
    }
}

#[test]
fn a_group_over_several_lines_gives_each_member_on_its_line() {
    let code = "use crate::{\n    a,\n    b::{c, d},\n    e::{\n        f::{g, h},\n    },\n};\n";
    assert_eq!(found(code, 1), refs(&[(2, "a"), (3, "b"), (4, "e")]));
    // On one line, with a self-import and a nested brace right after `crate::`.
    assert_eq!(
        found("use crate::{a, b::{c, d}};", 1),
        refs(&[(1, "a"), (1, "b")])
    );
}

#[test]
fn paths_anywhere_in_code_count_including_dollar_crate() {
    let code = "fn f() -> crate::a::T {\n    let x = $crate::b::c!();\n    <crate::c::S as crate :: d::Tr>::m()\n}\n";
    assert_eq!(
        found(code, 1),
        refs(&[(1, "a"), (2, "b"), (3, "c"), (3, "d")])
    );
    // `pub(crate)` and `my_crate::x` are not paths into the crate.
    assert_eq!(found("pub(crate) fn f() { my_crate::a::f() }", 1), vec![]);
}

#[test]
fn comments_and_strings_are_not_code() {
    let code = r##"
// use crate::a;
/// crate::b in a doc comment
//! crate::c
/* crate::d /* nested crate::e */ crate::f */
let s = "crate::g \" crate::h";
let r = r#"crate::i "quoted" crate::j"#;
let q = br"crate::k";
let c = '"'; let e = '\''; let l: &'static str = crate::l::NAME;
"##;
    assert_eq!(found(code, 1), refs(&[(9, "l")]));
}

#[test]
fn super_paths_count_once_they_climb_to_the_root() {
    // In src/store/sql.rs (depth 2), super::super:: is the crate root.
    let code = "use super::super::a::X;\nuse super::rows;\nuse super::super::{b, c::D};\n";
    assert_eq!(found(code, 2), refs(&[(1, "a"), (3, "b"), (3, "c")]));
    // In src/digest.rs (depth 1), super:: already is; inside `mod tests { }` it is not.
    let code = "use super::a;\nmod tests {\n    use super::*;\n    use super::super::b;\n}\nuse super::c;\n";
    assert_eq!(found(code, 1), refs(&[(1, "a"), (4, "b"), (6, "c")]));
}

#[test]
fn a_forbidden_import_is_reported_with_its_file_line_and_reason() {
    let dir = std::env::temp_dir().join(format!("relance-architecture-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let write = |path: &str, text: &str| {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    write(
        "lib.rs",
        "pub mod api;\npub mod config;\npub mod digest;\npub mod domain;\npub mod scripting;\npub mod store;\npub mod templates;\nmod extra {}\n",
    );
    write(
        "main.rs",
        "use relance::cli; fn main() { crate::cli::run(); }\n",
    );
    write("digest.rs", "pub fn f() { crate::domain::g() }\n");
    write(
        "scripting/mod.rs",
        "//! crate::api is only named here.\nuse crate::domain::Account;\nuse crate::{\n    config::Config,\n    store::Store,\n};\n",
    );
    write(
        "store/sql.rs",
        "fn f() { let s = \"crate::cli\"; super::super::api::routes(); super::rows(); }\n",
    );
    write(
        "templates/mod.rs",
        "use crate::{scripting, store::Store};\n",
    );
    write("orphan/mod.rs", "\n");
    let problems = breaches(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        problems,
        vec![
            "src/lib.rs:8: module extra has no rank: place it in RANKS (tests/architecture.rs) and in docs/architecture.md",
            "src/orphan/mod.rs: module orphan has no rank: place it in RANKS (tests/architecture.rs) and in docs/architecture.md",
            "src/digest.rs:1: module digest imports domain (rank 0 is for leaf utilities: they import no other module of the crate)",
            "src/scripting/mod.rs:5: module scripting imports store (rules are pure: facts in, decisions out)",
            "src/store/sql.rs:1: module store imports api (rank 3 may only import lower ranks; api is rank 8)",
            "src/templates/mod.rs:1: module templates imports scripting (templates render the context they are given; checking them against the rules is the command line's job)",
        ]
    );
}
