//! Retention: removing what is past its time (`retention:` in the configuration) from
//! the database, the document archive and the outbox folder, and erasing a customer's
//! personal data on request. Used by `relance prune`, `relance erase` and the
//! scheduled pruning of `relance serve`.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::config::Config;
use crate::store::retention::{ErasureCounts, PruneCounts, PruneCutoffs};
use crate::store::{Store, StoreError};

/// What a prune removed (or, dry, would remove).
#[derive(Debug, Clone, Default, Serialize)]
pub struct PruneReport {
    pub dry_run: bool,
    /// Instants before which each kind of record went.
    pub facts_before: DateTime<Utc>,
    pub messages_before: DateTime<Utc>,
    pub formal_notices_before: DateTime<Utc>,
    #[serde(flatten)]
    pub database: PruneCounts,
    /// Files of the document archive removed.
    pub archive_files: u64,
    /// Files of the outbox folder removed.
    pub outbox_files: u64,
}

/// What erasing a customer changed.
#[derive(Debug, Clone, Serialize)]
pub struct ErasureReport {
    pub customer: String,
    #[serde(flatten)]
    pub database: ErasureCounts,
    pub archive_files: u64,
    pub outbox_files: u64,
}

/// The cutoffs the configuration gives at `now`.
pub fn cutoffs(config: &Config, now: DateTime<Utc>) -> PruneCutoffs {
    let r = &config.retention;
    PruneCutoffs {
        now,
        facts_before: now - Duration::days(r.facts_days),
        messages_before: now - Duration::days(r.messages_days),
        formal_notices_before: now - Duration::days(r.formal_notices_days),
    }
}

/// Removes what is past its retention; with `dry_run`, counts it and removes nothing.
///
/// # Errors
/// Database errors (nothing is removed then). Files that cannot be removed are logged
/// and left.
pub async fn prune(
    config: &Config,
    store: &dyn Store,
    now: DateTime<Utc>,
    dry_run: bool,
) -> Result<PruneReport, StoreError> {
    let c = cutoffs(config, now);
    let mut database = store.prune(&c, dry_run).await?;
    let files = std::mem::take(&mut database.document_files);
    let outbox = config.channels.outbox_dir.clone();
    let (archive_files, outbox_files) = tokio::task::spawn_blocking(move || {
        let archive = if dry_run {
            files.len() as u64
        } else {
            files.iter().filter(|f| remove(Path::new(f))).count() as u64
        };
        let outbox = prune_outbox(&outbox, &c, dry_run);
        (archive, outbox)
    })
    .await
    .unwrap_or((0, 0));
    Ok(PruneReport {
        dry_run,
        facts_before: c.facts_before,
        messages_before: c.messages_before,
        formal_notices_before: c.formal_notices_before,
        database,
        archive_files,
        outbox_files,
    })
}

/// Erases the personal data of the customer `external_id` (see
/// [`crate::store::RetentionStore::erase_customer`]), and the copies of its messages in
/// the document archive and the outbox folder; its formal notices are kept (evidence
/// of a formal demand). `None`: no such customer.
///
/// # Errors
/// Database errors (nothing is changed then).
pub async fn erase(
    config: &Config,
    store: &dyn Store,
    external_id: &str,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Option<ErasureReport>, StoreError> {
    let Some(mut database) = store.erase_customer(external_id, actor, now).await? else {
        return Ok(None);
    };
    let files = std::mem::take(&mut database.document_files);
    let ids = database.action_ids.clone();
    let outbox = config.channels.outbox_dir.clone();
    let (archive_files, outbox_files) = tokio::task::spawn_blocking(move || {
        let archive = files.iter().filter(|f| remove(Path::new(f))).count() as u64;
        let prefixes: Vec<String> = ids.iter().map(|id| format!("{id:08}-")).collect();
        let mut outbox_files = 0;
        for (kind, path) in outbox_files_of(&outbox) {
            if kind == "formal_notice" {
                continue;
            }
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if prefixes.iter().any(|p| name.starts_with(p)) && remove(&path) {
                outbox_files += 1;
            }
        }
        (archive, outbox_files)
    })
    .await
    .unwrap_or((0, 0));
    Ok(Some(ErasureReport {
        customer: external_id.to_string(),
        database,
        archive_files,
        outbox_files,
    }))
}

/// Removes a file; a file already gone counts as removed.
fn remove(path: &Path) -> bool {
    match std::fs::remove_file(path) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "cannot remove a file past its retention; it is left");
            false
        }
    }
}

/// The outbox folder's files, with the action kind (the folder) each is under.
fn outbox_files_of(outbox: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let Ok(kinds) = std::fs::read_dir(outbox) else {
        return out;
    };
    for kind in kinds.flatten() {
        let Ok(meta) = kind.metadata() else { continue };
        if !meta.is_dir() {
            continue;
        }
        let name = kind.file_name().to_string_lossy().to_string();
        let Ok(files) = std::fs::read_dir(kind.path()) else {
            continue;
        };
        for f in files.flatten() {
            if f.metadata().is_ok_and(|m| m.is_file()) {
                out.push((name.clone(), f.path()));
            }
        }
    }
    out
}

/// Removes (or counts) the outbox folder's files older than their kind's cutoff.
fn prune_outbox(outbox: &Path, c: &PruneCutoffs, dry_run: bool) -> u64 {
    let mut n = 0;
    for (kind, path) in outbox_files_of(outbox) {
        let before = if kind == "formal_notice" {
            c.formal_notices_before
        } else {
            c.messages_before
        };
        let modified: Option<DateTime<Utc>> = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .ok()
            .map(DateTime::<Utc>::from);
        if modified.is_some_and(|m| m < before) && (dry_run || remove(&path)) {
            n += 1;
        }
    }
    n
}
