//! Reading accounting CSV exports: encoding (UTF-8 or ISO-8859-15) and delimiter
//! (`;`, `,` or tab) are detected, header names are matched case-insensitively, and
//! every value is read with its line and column so errors can point at them.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use sha2::{Digest, Sha256};

/// The text encoding of a CSV file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoding {
    /// UTF-8 unless the first 64 KiB are not valid UTF-8, then ISO-8859-15.
    #[default]
    Auto,
    Utf8,
    /// ISO-8859-15 (Latin-9), common in French accounting exports.
    Latin9,
}

/// Told how far a long import has read, to show progress (the command line draws a
/// bar on a terminal; nothing by default).
pub trait Progress: Send + Sync {
    /// Reading starts: `total` bytes to read, of what `what` names.
    fn start(&self, what: &str, total: u64);
    /// `read` bytes read so far.
    fn advance(&self, read: u64);
    /// Reading is over.
    fn finish(&self);
}

/// A reader that hashes what passes through it, so the import record can carry the
/// file's SHA-256 without a second read.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
    progress: Option<std::sync::Arc<dyn Progress>>,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        if let Some(p) = &self.progress {
            p.advance(self.bytes);
        }
        Ok(n)
    }
}

/// A CSV file being read, record by record.
pub struct CsvSource {
    reader: csv::Reader<HashingReader<BufReader<File>>>,
    pub encoding: Encoding,
    pub delimiter: u8,
    /// Normalised header name → column index.
    columns: HashMap<String, usize>,
    pub headers: Vec<String>,
    record: csv::ByteRecord,
}

/// One record, with what is needed to report errors on it: a CSV line, or the fields
/// of one item of an API request (its position in the batch as `line`).
pub struct Row<'a> {
    pub line: u64,
    cells: Cells<'a>,
}

enum Cells<'a> {
    Csv {
        record: &'a csv::ByteRecord,
        columns: &'a HashMap<String, usize>,
        encoding: Encoding,
    },
    Fields(&'a HashMap<String, String>),
}

/// A value that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub column: Option<String>,
    pub message: String,
}

impl FieldError {
    pub fn new(column: &str, message: impl Into<String>) -> FieldError {
        FieldError {
            column: Some(column.to_string()),
            message: message.into(),
        }
    }
}

fn normalise_header(h: &str) -> String {
    h.trim()
        .trim_start_matches('\u{feff}')
        .trim()
        .to_ascii_lowercase()
        .replace([' ', '-'], "_")
}

fn detect_delimiter(first_line: &[u8], candidates: &[u8]) -> u8 {
    let count = |d: u8| first_line.iter().filter(|&&b| b == d).count();
    candidates
        .iter()
        .copied()
        .max_by_key(|d| count(*d))
        .filter(|d| count(*d) > 0)
        .unwrap_or(candidates[candidates.len() - 1])
}

/// How a file's fields are written.
#[derive(Debug, Clone, Copy)]
pub struct Dialect {
    /// The delimiters to detect among (on the header line), the last one by default.
    pub delimiters: &'static [u8],
    /// Whether `"` quotes fields (CSV); off for formats that never quote (FEC).
    pub quoting: bool,
}

impl Dialect {
    /// CSV exports: `;`, tab or `,`, quoted fields.
    pub const CSV: Dialect = Dialect {
        delimiters: b";\t,",
        quoting: true,
    };
    /// The FEC (Fichier des Écritures Comptables): tab or `|`, fields never quoted.
    pub const FEC: Dialect = Dialect {
        delimiters: b"|\t",
        quoting: false,
    };
}

impl CsvSource {
    /// Opens a CSV file and reads its header.
    ///
    /// # Errors
    /// When the file cannot be read or has no header line.
    pub fn open(
        path: &Path,
        encoding: Encoding,
        progress: Option<std::sync::Arc<dyn Progress>>,
    ) -> Result<CsvSource, String> {
        Self::open_as(path, encoding, progress, Dialect::CSV)
    }

    /// Opens a file written in `dialect` and reads its header.
    ///
    /// # Errors
    /// When the file cannot be read or has no header line.
    pub fn open_as(
        path: &Path,
        encoding: Encoding,
        progress: Option<std::sync::Arc<dyn Progress>>,
        dialect: Dialect,
    ) -> Result<CsvSource, String> {
        let mut head = Vec::with_capacity(64 * 1024);
        File::open(path)
            .and_then(|f| f.take(64 * 1024).read_to_end(&mut head))
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let encoding = match encoding {
            Encoding::Auto => match std::str::from_utf8(&head) {
                Ok(_) => Encoding::Utf8,
                // A multi-byte character cut by the 64 KiB boundary is still UTF-8.
                Err(e) if e.error_len().is_none() => Encoding::Utf8,
                Err(_) => Encoding::Latin9,
            },
            e => e,
        };
        let first_line = head.split(|&b| b == b'\n').next().unwrap_or(&[]);
        let delimiter = detect_delimiter(first_line, dialect.delimiters);
        let file = File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let hashing = HashingReader {
            inner: BufReader::with_capacity(256 * 1024, file),
            hasher: Sha256::new(),
            bytes: 0,
            progress,
        };
        // Records end at `\n` only: with the default (CRLF or LF), the reader counts a
        // CRLF's `\n` in the next record's line, so every line after the first of a
        // Windows file was named one too low. A trailing `\r` is whitespace, trimmed
        // from the last cell like any other.
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .terminator(csv::Terminator::Any(b'\n'))
            .quoting(dialect.quoting)
            .flexible(true)
            .has_headers(true)
            .from_reader(hashing);
        let raw_headers = reader
            .byte_headers()
            .map_err(|e| format!("cannot read the header line: {e}"))?
            .clone();
        if raw_headers.is_empty() || raw_headers.iter().all(<[u8]>::is_empty) {
            return Err("the file is empty: expected a header line naming the columns".into());
        }
        let headers: Vec<String> = raw_headers
            .iter()
            .map(|h| decode(h, encoding).map(|s| normalise_header(&s)))
            .collect::<Result<_, _>>()
            .map_err(|e| format!("header: {e}"))?;
        for (i, h) in headers.iter().enumerate() {
            crate::domain::ids::check_text(h, crate::domain::ids::TextKind::Name)
                .map_err(|e| format!("header: column {}: {e}", i + 1))?;
        }
        let mut columns = HashMap::new();
        for (i, h) in headers.iter().enumerate() {
            if columns.insert(h.clone(), i).is_some() {
                return Err(format!("column '{h}' appears twice in the header"));
            }
        }
        Ok(CsvSource {
            reader,
            encoding,
            delimiter,
            columns,
            headers,
            record: csv::ByteRecord::new(),
        })
    }

    pub fn has_column(&self, name: &str) -> bool {
        self.columns.contains_key(name)
    }

    /// The next record, or `None` at the end of the file.
    ///
    /// # Errors
    /// A malformed CSV record (e.g. an unterminated quote), with its line.
    pub fn next_row(&mut self) -> Option<Result<Row<'_>, (u64, String)>> {
        match self.reader.read_byte_record(&mut self.record) {
            Ok(false) => None,
            Ok(true) => {
                let line = self.record.position().map_or(0, csv::Position::line);
                if self.record.len() != self.headers.len() {
                    let blank = self
                        .record
                        .iter()
                        .all(|f| f.iter().all(u8::is_ascii_whitespace));
                    if blank {
                        return self.next_row();
                    }
                    return Some(Err((
                        line,
                        format!(
                            "{} fields where the header has {}",
                            self.record.len(),
                            self.headers.len()
                        ),
                    )));
                }
                Some(Ok(Row {
                    line,
                    cells: Cells::Csv {
                        record: &self.record,
                        columns: &self.columns,
                        encoding: self.encoding,
                    },
                }))
            }
            Err(e) => {
                let line = e.position().map_or(0, csv::Position::line);
                Some(Err((line, format!("malformed CSV: {e}"))))
            }
        }
    }

    /// The SHA-256 of everything read so far (the whole file once at its end).
    pub fn finish(self) -> String {
        let h = self.reader.into_inner().hasher.finalize();
        crate::digest::hex(&h)
    }
}

fn decode(bytes: &[u8], encoding: Encoding) -> Result<String, String> {
    match encoding {
        Encoding::Latin9 => Ok(encoding_rs::ISO_8859_15
            .decode_without_bom_handling(bytes)
            .0
            .into_owned()),
        _ => std::str::from_utf8(bytes).map(str::to_string).map_err(|_| {
            "invalid UTF-8 (if the file is ISO-8859-15, pass --encoding iso-8859-15)".to_string()
        }),
    }
}

impl<'a> Row<'a> {
    /// A record made of named text fields (multi-valued fields joined with `|`).
    pub fn from_fields(line: u64, fields: &'a HashMap<String, String>) -> Row<'a> {
        Row {
            line,
            cells: Cells::Fields(fields),
        }
    }

    /// The trimmed text of a column; `None` when the column is absent or the cell empty.
    ///
    /// # Errors
    /// When the cell is not valid text in the file's encoding.
    pub fn get(&self, column: &str) -> Result<Option<String>, FieldError> {
        let text = match &self.cells {
            Cells::Csv {
                record,
                columns,
                encoding,
            } => {
                let Some(&i) = columns.get(column) else {
                    return Ok(None);
                };
                let bytes = record.get(i).unwrap_or(&[]);
                std::borrow::Cow::Owned(
                    decode(bytes, *encoding).map_err(|m| FieldError::new(column, m))?,
                )
            }
            Cells::Fields(fields) => match fields.get(column) {
                None => return Ok(None),
                Some(t) => std::borrow::Cow::Borrowed(t.as_str()),
            },
        };
        let t = text.trim();
        if t.is_empty() {
            return Ok(None);
        }
        crate::domain::ids::check_text(t, column_kind(column))
            .map_err(|e| FieldError::new(column, e.0))?;
        Ok(Some(t.to_string()))
    }

    /// A column that must have a value.
    ///
    /// # Errors
    /// When the cell is empty.
    pub fn required(&self, column: &str) -> Result<String, FieldError> {
        self.get(column)?
            .ok_or_else(|| FieldError::new(column, "is empty"))
    }

    /// Parses an optional cell.
    ///
    /// # Errors
    /// The parser's message, naming the column.
    pub fn parse<T, E: std::fmt::Display>(
        &self,
        column: &str,
        f: impl Fn(&str) -> Result<T, E>,
    ) -> Result<Option<T>, FieldError> {
        match self.get(column)? {
            None => Ok(None),
            Some(t) => f(&t)
                .map(Some)
                .map_err(|e| FieldError::new(column, e.to_string())),
        }
    }

    /// Parses a required cell.
    ///
    /// # Errors
    /// Empty cell, or the parser's message, naming the column.
    pub fn parse_required<T, E: std::fmt::Display>(
        &self,
        column: &str,
        f: impl Fn(&str) -> Result<T, E>,
    ) -> Result<T, FieldError> {
        self.parse(column, f)?
            .ok_or_else(|| FieldError::new(column, "is empty"))
    }
}

/// The bounds of a column's text: identifiers, free text (and lists), or a name.
fn column_kind(column: &str) -> crate::domain::ids::TextKind {
    use crate::domain::ids::TextKind;
    match column {
        "external_id" | "number" | "customer" | "id" => TextKind::Id,
        "reference" | "emails" | "phones" | "tags" => TextKind::Text,
        _ => TextKind::Name,
    }
}

/// Parses yes/no answers as exports write them.
///
/// # Errors
/// For anything but the accepted words.
pub fn parse_bool(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "y" | "oui" | "o" | "x" => Ok(true),
        "0" | "false" | "no" | "n" | "non" => Ok(false),
        other => Err(format!(
            "'{other}' is not yes/no (expected true/false, yes/no, oui/non, 1/0)"
        )),
    }
}

/// Splits a multi-valued cell on `|`.
pub fn split_list(text: &str) -> Vec<String> {
    text.split('|')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delimiters_are_detected_from_the_header() {
        assert_eq!(detect_delimiter(b"a;b;c", Dialect::CSV.delimiters), b';');
        assert_eq!(detect_delimiter(b"a,b,c", Dialect::CSV.delimiters), b',');
        assert_eq!(detect_delimiter(b"a\tb\tc", Dialect::CSV.delimiters), b'\t');
        assert_eq!(detect_delimiter(b"a;b,c;d", Dialect::CSV.delimiters), b';');
        assert_eq!(detect_delimiter(b"single", Dialect::CSV.delimiters), b',');
    }

    #[test]
    fn headers_are_normalised() {
        assert_eq!(normalise_header("\u{feff} Due Date "), "due_date");
        assert_eq!(normalise_header("open-amount"), "open_amount");
    }

    #[test]
    fn latin9_decodes_the_euro_sign() {
        assert_eq!(decode(&[0xA4, b'1'], Encoding::Latin9).unwrap(), "€1");
        assert!(decode(&[0xE9], Encoding::Utf8).is_err());
    }
}
