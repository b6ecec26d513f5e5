//! PDF rendering with Typst used as a library: `.typ` templates from the templates
//! folder (`pdf/<name>.<lang>.typ`, a file there overriding the shipped one of the same
//! name) read their data from the virtual file `/data.json`.
//!
//! The output is deterministic: the same template and data give the same bytes (no
//! creation timestamp, a document identifier derived from the caller's reference), so
//! a document regenerated from the same facts has the same SHA-256.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use typst::diag::{FileError, FileResult, Severity, SourceDiagnostic};
use typst::foundations::{Bytes, Datetime, Smart};
use typst::syntax::{FileId, RootedPath, Source, VirtualPath, VirtualRoot};
use typst::text::{Font, FontBook};
use typst::utils::LazyHash;
use typst::{Library, LibraryExt, World};

use crate::domain::Locale;

/// The PDF templates relance ships, used when the folder has no file of that name.
const SHIPPED: &[(&str, &str)] = &[
    (
        "_letter.typ",
        include_str!("../../templates/pdf/_letter.typ"),
    ),
    (
        "formal_notice.fr.typ",
        include_str!("../../templates/pdf/formal_notice.fr.typ"),
    ),
    (
        "formal_notice.en.typ",
        include_str!("../../templates/pdf/formal_notice.en.typ"),
    ),
    (
        "statement.fr.typ",
        include_str!("../../templates/pdf/statement.fr.typ"),
    ),
    (
        "statement.en.typ",
        include_str!("../../templates/pdf/statement.en.typ"),
    ),
    (
        "_monthly.typ",
        include_str!("../../templates/pdf/_monthly.typ"),
    ),
    (
        "monthly_report.fr.typ",
        include_str!("../../templates/pdf/monthly_report.fr.typ"),
    ),
    (
        "monthly_report.en.typ",
        include_str!("../../templates/pdf/monthly_report.en.typ"),
    ),
];

/// The PDF templates relance ships: name (within `pdf/`) and text.
pub fn shipped() -> impl Iterator<Item = (&'static str, &'static str)> {
    SHIPPED.iter().copied()
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PdfError {
    #[error("PDF template pdf/{0} not found (neither in the templates folder nor shipped)")]
    Missing(String),
    #[error("PDF template pdf/{name}: {message}")]
    Render { name: String, message: String },
}

/// Renders PDF documents from the templates of one folder.
#[derive(Debug, Clone)]
pub struct PdfRenderer {
    /// `<templates_dir>/pdf`.
    dir: PathBuf,
}

struct Fonts {
    book: LazyHash<FontBook>,
    fonts: Vec<Font>,
}

/// The fonts embedded in the binary (Libertinus Serif, New Computer Modern, DejaVu Sans
/// Mono), loaded once.
fn fonts() -> &'static Fonts {
    static FONTS: OnceLock<Fonts> = OnceLock::new();
    FONTS.get_or_init(|| {
        let fonts: Vec<Font> = typst_assets::fonts()
            .flat_map(|data| Font::iter(Bytes::new(data)))
            .collect();
        Fonts {
            book: LazyHash::new(FontBook::from_fonts(&fonts)),
            fonts,
        }
    })
}

fn library() -> &'static LazyHash<Library> {
    static LIBRARY: OnceLock<LazyHash<Library>> = OnceLock::new();
    LIBRARY.get_or_init(|| LazyHash::new(Library::default()))
}

impl PdfRenderer {
    pub fn new(templates_dir: &Path) -> PdfRenderer {
        PdfRenderer {
            dir: templates_dir.join("pdf"),
        }
    }

    /// The file name of template `name` in `locale`, e.g. `formal_notice.fr.typ`.
    pub fn file_name(name: &str, locale: Locale) -> String {
        format!("{name}.{}.typ", locale.as_str())
    }

    /// Renders template `name` in `locale` with `data` as `/data.json`; `ident` is the
    /// document's stable identifier (e.g. the action's idempotency key).
    ///
    /// # Errors
    /// A missing template, a Typst error (with its line), or a template that produced
    /// no page.
    pub fn render(
        &self,
        name: &str,
        locale: Locale,
        data: &serde_json::Value,
        ident: &str,
        today: chrono::NaiveDate,
    ) -> Result<Vec<u8>, PdfError> {
        let file = Self::file_name(name, locale);
        if !Path::new(&file)
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
        {
            return Err(PdfError::Missing(file));
        }
        let main_text = self
            .read(&file)
            .map_err(|_| PdfError::Missing(file.clone()))?;
        let main = file_id(&file).ok_or_else(|| PdfError::Missing(file.clone()))?;
        let world = DocWorld {
            renderer: self,
            main,
            main_source: Source::new(main, main_text),
            data: Bytes::new(serde_json::to_vec(data).unwrap_or_default()),
            today,
        };
        let result = typst::compile::<typst_layout::PagedDocument>(&world);
        let render_err = |diags: &[SourceDiagnostic]| PdfError::Render {
            name: file.clone(),
            message: describe(&world, diags),
        };
        let doc = result.output.map_err(|d| render_err(&d))?;
        if doc.pages().is_empty() {
            return Err(PdfError::Render {
                name: file.clone(),
                message: "the template produced no page".into(),
            });
        }
        let options = typst_pdf::PdfOptions {
            ident: Smart::Custom(ident.to_string()),
            creator: Smart::Custom(Some(format!("relance {}", env!("CARGO_PKG_VERSION")))),
            timestamp: None,
            ..Default::default()
        };
        let pdf = typst_pdf::pdf(&doc, &options).map_err(|d| render_err(&d))?;
        // Typst memoizes across compilations; keep the cache from growing with every
        // document a long-running daemon renders.
        typst::comemo::evict(10);
        Ok(pdf)
    }

    /// A template file: the folder's copy, else the shipped one.
    fn read(&self, name: &str) -> std::io::Result<String> {
        match std::fs::read_to_string(self.dir.join(name)) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => SHIPPED
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, t)| (*t).to_string())
                .ok_or(e),
            other => other,
        }
    }

    /// Any other file a template reads (an image, a font-independent asset): the
    /// folder's only, or a shipped template.
    fn read_bytes(&self, name: &str) -> FileResult<Bytes> {
        match std::fs::read(self.dir.join(name)) {
            Ok(b) => Ok(Bytes::new(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => SHIPPED
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, t)| Bytes::from_string(*t))
                .ok_or_else(|| FileError::NotFound(self.dir.join(name))),
            Err(e) => Err(FileError::from_io(e, &self.dir.join(name))),
        }
    }
}

fn file_id(name: &str) -> Option<FileId> {
    let vpath = VirtualPath::new(format!("/{name}")).ok()?;
    Some(RootedPath::new(VirtualRoot::Project, vpath).intern())
}

/// The name of a file within the template folder (`None` for package files).
fn file_name(id: FileId) -> Option<String> {
    match id.root() {
        VirtualRoot::Project => Some(
            id.vpath()
                .get_with_slash()
                .trim_start_matches('/')
                .to_string(),
        ),
        VirtualRoot::Package(_) => None,
    }
}

/// Typst's errors as `line N: message` lines.
fn describe(world: &DocWorld<'_>, diags: &[SourceDiagnostic]) -> String {
    use typst::WorldExt;
    diags
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| {
            let place = d
                .span
                .id()
                .and_then(|id| {
                    let source = world.source(id).ok()?;
                    let range = world.range(d.span)?;
                    let line = source.lines().byte_to_line(range.start)? + 1;
                    Some(format!("{}:{line}: ", file_name(id)?))
                })
                .unwrap_or_default();
            let hints: String = d
                .hints
                .iter()
                .map(|h| format!(" (hint: {})", h.v))
                .collect();
            format!("{place}{}{hints}", d.message)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

struct DocWorld<'a> {
    renderer: &'a PdfRenderer,
    main: FileId,
    main_source: Source,
    data: Bytes,
    today: chrono::NaiveDate,
}

impl World for DocWorld<'_> {
    fn library(&self) -> &LazyHash<Library> {
        library()
    }

    fn book(&self) -> &LazyHash<FontBook> {
        &fonts().book
    }

    fn main(&self) -> FileId {
        self.main
    }

    fn source(&self, id: FileId) -> FileResult<Source> {
        if id == self.main {
            return Ok(self.main_source.clone());
        }
        let name = file_name(id).ok_or(FileError::AccessDenied)?;
        let bytes = self.renderer.read_bytes(&name)?;
        let text = std::str::from_utf8(&bytes).map_err(|_| FileError::InvalidUtf8)?;
        Ok(Source::new(id, text.to_string()))
    }

    fn file(&self, id: FileId) -> FileResult<Bytes> {
        let name = file_name(id).ok_or(FileError::AccessDenied)?;
        if name == "data.json" {
            return Ok(self.data.clone());
        }
        self.renderer.read_bytes(&name)
    }

    fn font(&self, index: usize) -> Option<Font> {
        fonts().fonts.get(index).cloned()
    }

    fn today(&self, _offset: Option<typst::foundations::Duration>) -> Option<Datetime> {
        use chrono::Datelike;
        Datetime::from_ymd(
            self.today.year(),
            u8::try_from(self.today.month()).ok()?,
            u8::try_from(self.today.day()).ok()?,
        )
    }
}
