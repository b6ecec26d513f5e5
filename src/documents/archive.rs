//! The evidence archive: every generated document is kept, with its SHA-256 in the
//! action log, before it is sent. A retry reuses the archived bytes rather than
//! generating new ones, so what was sent and what is archived are the same file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{Datelike, Utc};

use crate::config::channels::DocumentArchive;
use crate::digest::sha256_hex;
use crate::store::documents::{NewDocument, StoredDocument};
use crate::store::Store;

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("document {id} of action {action_id} has no content in the database")]
    NoContent { id: i64, action_id: i64 },
    #[error("document {id} ({location}) does not match its recorded SHA-256: recorded {recorded}, found {found}")]
    Altered {
        id: i64,
        location: String,
        recorded: String,
        found: String,
    },
    #[error("document {id} of action {action_id} was removed on {at} (retention or a customer's erasure); its SHA-256 and size are kept")]
    Pruned {
        id: i64,
        action_id: i64,
        at: chrono::DateTime<chrono::Utc>,
    },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// A document to archive: what it is and its bytes.
#[derive(Debug, Clone)]
pub struct Document {
    pub kind: String,
    pub reference: String,
    pub file_name: String,
    pub bytes: Vec<u8>,
    pub metadata: serde_json::Value,
}

#[derive(Clone)]
pub struct Archive {
    store: Arc<dyn Store>,
    place: DocumentArchive,
}

impl Archive {
    pub fn new(store: Arc<dyn Store>, place: DocumentArchive) -> Archive {
        Archive { store, place }
    }

    /// The archived document of `kind` for an action, with its bytes (checked against the
    /// recorded SHA-256), if there is one.
    ///
    /// # Errors
    /// The file is missing, unreadable or altered; database errors.
    pub async fn find(
        &self,
        action_id: i64,
        kind: &str,
    ) -> Result<Option<(StoredDocument, Vec<u8>)>, ArchiveError> {
        let Some(doc) = self
            .store
            .documents(action_id)
            .await?
            .into_iter()
            .find(|d| d.kind == kind)
        else {
            return Ok(None);
        };
        let bytes = self.content(&doc).await?;
        Ok(Some((doc, bytes)))
    }

    /// The bytes of an archived document, checked against its SHA-256.
    ///
    /// # Errors
    /// See [`Archive::find`].
    pub async fn content(&self, doc: &StoredDocument) -> Result<Vec<u8>, ArchiveError> {
        if let Some(at) = doc.pruned_at {
            return Err(ArchiveError::Pruned {
                id: doc.id,
                action_id: doc.action_id,
                at,
            });
        }
        let (bytes, location) = match &doc.location {
            Some(path) => {
                let p = PathBuf::from(path);
                let bytes = tokio::fs::read(&p)
                    .await
                    .map_err(|source| ArchiveError::Read { path: p, source })?;
                (bytes, path.clone())
            }
            None => (
                self.store
                    .document_content(doc.id)
                    .await?
                    .ok_or(ArchiveError::NoContent {
                        id: doc.id,
                        action_id: doc.action_id,
                    })?,
                "database".to_string(),
            ),
        };
        let found = sha256_hex(&bytes);
        if found != doc.sha256 {
            return Err(ArchiveError::Altered {
                id: doc.id,
                location,
                recorded: doc.sha256.clone(),
                found,
            });
        }
        Ok(bytes)
    }

    /// Archives a document for an action and records it. When the action already has a
    /// document of that kind (an earlier attempt, another worker), that one is kept and
    /// returned with its bytes instead.
    ///
    /// # Errors
    /// Writing the file; database errors.
    pub async fn keep(
        &self,
        action_id: i64,
        doc: Document,
    ) -> Result<(StoredDocument, Vec<u8>), ArchiveError> {
        if let Some(found) = self.find(action_id, &doc.kind).await? {
            return Ok(found);
        }
        let sha256 = sha256_hex(&doc.bytes);
        let now = Utc::now();
        let (location, content) = match &self.place {
            DocumentArchive::Directory(dir) => {
                let sub = dir
                    .join(format!("{:04}", now.year()))
                    .join(format!("{:02}", now.month()));
                let path = sub.join(format!("{}-{}", &sha256[..12], doc.file_name));
                write_durably(&sub, &path, &doc.bytes).await?;
                (Some(path.display().to_string()), None)
            }
            DocumentArchive::Database => (None, Some(doc.bytes.clone())),
        };
        let stored = self
            .store
            .save_document(
                &NewDocument {
                    action_id,
                    kind: doc.kind.clone(),
                    reference: doc.reference,
                    file_name: doc.file_name,
                    sha256: sha256.clone(),
                    size: i64::try_from(doc.bytes.len()).unwrap_or(i64::MAX),
                    location,
                    content,
                    metadata: doc.metadata,
                },
                now,
            )
            .await?;
        if stored.sha256 == sha256 {
            Ok((stored, doc.bytes))
        } else {
            // Another worker archived first: send what it archived.
            let bytes = self.content(&stored).await?;
            Ok((stored, bytes))
        }
    }
}

/// Writes `bytes` to `path` through a temporary file, synced, then renamed: the archive
/// never holds a half-written document.
async fn write_durably(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), ArchiveError> {
    let err = |source| ArchiveError::Write {
        path: path.to_path_buf(),
        source,
    };
    tokio::fs::create_dir_all(dir).await.map_err(err)?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let bytes = bytes.to_vec();
    let (tmp2, path2, dir2) = (tmp.clone(), path.to_path_buf(), dir.to_path_buf());
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp2)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp2, &path2)?;
        std::fs::File::open(&dir2)?.sync_all()
    })
    .await
    .map_err(|e| err(std::io::Error::other(e)))?
    .map_err(err)
}
