//! `relance init [DIR]`: a working folder from the binary alone — the commented
//! configuration, the shipped rule scripts with their tests, the message and document
//! templates, and a small example portfolio.

use std::path::{Path, PathBuf};

use super::{exit, CliError};

/// The shipped rule scripts and their tests.
const RULES: &[(&str, &str)] = &[
    ("rules/smb.rhai", include_str!("../../rules/smb.rhai")),
    (
        "rules/smb.test.yaml",
        include_str!("../../rules/smb.test.yaml"),
    ),
    (
        "rules/smb_fast.rhai",
        include_str!("../../rules/smb_fast.rhai"),
    ),
    (
        "rules/smb_fast.test.yaml",
        include_str!("../../rules/smb_fast.test.yaml"),
    ),
    (
        "rules/key_accounts.rhai",
        include_str!("../../rules/key_accounts.rhai"),
    ),
    (
        "rules/key_accounts.test.yaml",
        include_str!("../../rules/key_accounts.test.yaml"),
    ),
    (
        "rules/public_sector.rhai",
        include_str!("../../rules/public_sector.rhai"),
    ),
    (
        "rules/public_sector.test.yaml",
        include_str!("../../rules/public_sector.test.yaml"),
    ),
];

/// The example portfolio.
const EXAMPLES: &[(&str, &str)] = &[
    (
        "examples/customers.csv",
        include_str!("../../examples/data/customers.csv"),
    ),
    (
        "examples/invoices.csv",
        include_str!("../../examples/data/invoices.csv"),
    ),
    (
        "examples/payments.csv",
        include_str!("../../examples/data/payments.csv"),
    ),
];

/// Writes the working folder; refuses to overwrite an existing `relance.yaml` unless
/// `force`.
pub(super) fn init(dir: &Path, force: bool) -> Result<u8, CliError> {
    let config = dir.join("relance.yaml");
    if config.exists() && !force {
        return Err(CliError::Input(format!(
            "{} exists: nothing written (--force overwrites the files relance ships)",
            config.display()
        )));
    }
    let mut files: Vec<(PathBuf, &str)> = vec![(config, crate::config::EMBEDDED_DEFAULT)];
    for (path, text) in RULES.iter().chain(EXAMPLES) {
        files.push((dir.join(path), text));
    }
    for (path, text) in crate::templates::shipped() {
        files.push((dir.join("templates").join(path), text));
    }
    for (name, text) in crate::documents::pdf::shipped() {
        files.push((dir.join("templates/pdf").join(name), text));
    }
    for (path, text) in &files {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| {
                CliError::Failure(format!("cannot create {}: {e}", parent.display()))
            })?;
        }
        std::fs::write(path, text)
            .map_err(|e| CliError::Failure(format!("cannot write {}: {e}", path.display())))?;
    }
    let shown = dir.display().to_string();
    println!("wrote {} files into {shown}: relance.yaml, rules/ (with their tests), templates/, examples/", files.len());
    println!();
    println!("Next:");
    println!("  cd {shown}");
    println!("  relance config check");
    println!("  relance import customers examples/customers.csv && relance import invoices examples/invoices.csv && relance import payments examples/payments.csv");
    println!("  relance serve    # nothing is sent for real until channels are configured (relance.yaml)");
    Ok(exit::OK)
}
