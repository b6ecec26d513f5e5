//! The keys of the rows an import has accepted so far, so that a second row with the
//! same key is refused with the line of the first: in memory while they are few, then
//! in a scratch file on disk ([`ScratchKeys`]) once there are more than a limit, so
//! that a file of ten million invoices does not hold ten million numbers in memory.

use std::collections::HashMap;

use crate::store::scratch::ScratchKeys;
use crate::store::Result;

/// Keys kept in memory before the book moves to disk (about 60 bytes each).
pub(super) const IN_MEMORY: usize = 500_000;

pub(super) struct SeenKeys {
    limit: usize,
    /// Every key met, while in memory; once on disk, those met since the last
    /// [`SeenKeys::settle`] only.
    memory: HashMap<Box<str>, u64>,
    disk: Option<ScratchKeys>,
}

impl SeenKeys {
    pub(super) fn new(limit: usize) -> SeenKeys {
        SeenKeys {
            limit,
            memory: HashMap::new(),
            disk: None,
        }
    }

    /// The line `key` was first met on, if it is among the keys in memory; otherwise
    /// records it as met on `line`.
    pub(super) fn check(&mut self, key: &str, line: u64) -> Option<u64> {
        if let Some(first) = self.memory.get(key) {
            return Some(*first);
        }
        self.memory.insert(key.into(), line);
        None
    }

    /// Called before a batch of rows is written. Once the keys are on disk: the lines
    /// of the batch whose key an earlier batch had, each with that earlier line; the
    /// batch's other keys join those on disk. In memory: nothing, and every key moves
    /// to disk once there are more than the limit.
    pub(super) async fn settle(&mut self) -> Result<HashMap<u64, u64>> {
        let mut repeated = HashMap::new();
        if let Some(disk) = &mut self.disk {
            let keys: Vec<&str> = self.memory.keys().map(|k| &**k).collect();
            for (key, first) in disk.lines_of(&keys).await? {
                if let Some(line) = self.memory.get(key.as_str()) {
                    repeated.insert(*line, first);
                }
            }
            let mut new: Vec<(&str, u64)> = self
                .memory
                .iter()
                .filter(|(_, line)| !repeated.contains_key(*line))
                .map(|(k, line)| (&**k, *line))
                .collect();
            new.sort_unstable();
            disk.add(&new).await?;
            self.memory.clear();
        } else if self.memory.len() > self.limit {
            let mut disk = ScratchKeys::create().await?;
            let mut all: Vec<(&str, u64)> = self.memory.iter().map(|(k, l)| (&**k, *l)).collect();
            // In key order, each insert appends to the file's index.
            all.sort_unstable();
            disk.add(&all).await?;
            tracing::debug!(
                keys = all.len(),
                "keys of the rows met so far moved to a scratch file"
            );
            self.memory = HashMap::new();
            self.disk = Some(disk);
        }
        Ok(repeated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_key_repeated_after_the_book_moved_to_disk_is_found_with_its_first_line() {
        let mut keys = SeenKeys::new(2);
        assert_eq!(keys.check("A", 2), None);
        assert_eq!(keys.check("B", 3), None);
        assert_eq!(keys.check("A", 4), Some(2));
        assert!(keys.settle().await.unwrap().is_empty());
        assert_eq!(keys.check("C", 5), None);
        // Three keys: over the limit, they move to disk.
        assert!(keys.settle().await.unwrap().is_empty());
        assert!(keys.disk.is_some() && keys.memory.is_empty());
        // A batch with an old key, a new one, and the new one twice.
        assert_eq!(keys.check("B", 6), None);
        assert_eq!(keys.check("D", 7), None);
        assert_eq!(keys.check("D", 8), Some(7));
        let repeated = keys.settle().await.unwrap();
        assert_eq!(repeated, HashMap::from([(6, 3)]));
        // The next batch sees D on disk with its first line.
        assert_eq!(keys.check("D", 9), None);
        assert_eq!(keys.check("E", 10), None);
        assert_eq!(keys.settle().await.unwrap(), HashMap::from([(9, 7)]));
    }
}
