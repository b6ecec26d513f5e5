//! Script errors as a compiler prints them: `rules/smb.rhai:12:5: message`, then the
//! source line and a caret.

use rhai::{EvalAltResult, ParseError, Position};
use serde::Serialize;

use super::engine::TIME_BUDGET_EXCEEDED;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub file: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
    /// The offending source line, when known.
    #[serde(skip)]
    pub source_line: Option<String>,
}

impl Diagnostic {
    /// A message about the place `pos` of `source`.
    pub fn at(file: &str, source: &str, pos: Position, message: String) -> Diagnostic {
        let line = pos.line();
        Diagnostic {
            file: file.to_string(),
            line,
            column: pos.position(),
            source_line: line
                .and_then(|l| source.lines().nth(l - 1))
                .map(str::to_string),
            message,
        }
    }

    /// A compile error.
    pub fn parse(file: &str, source: &str, e: &ParseError) -> Diagnostic {
        Diagnostic::at(file, source, e.1, e.0.to_string())
    }

    /// A runtime error: the innermost error and position, with the limits explained.
    pub fn runtime(
        file: &str,
        source: &str,
        e: &EvalAltResult,
        limits: &super::Limits,
    ) -> Diagnostic {
        let inner = e.unwrap_inner();
        let pos = if inner.position().is_none() {
            e.position()
        } else {
            inner.position()
        };
        let message = match inner {
            EvalAltResult::ErrorTerminated(token, _)
                if token.to_string() == TIME_BUDGET_EXCEEDED =>
            {
                format!(
                    "the rule ran longer than its {} ms budget for one customer (an endless loop?)",
                    limits.time_budget.as_millis()
                )
            }
            EvalAltResult::ErrorTooManyOperations(_) => {
                format!(
                    "the rule exceeded {} operations for one customer (an endless loop?)",
                    limits.max_operations
                )
            }
            EvalAltResult::ErrorStackOverflow(_) => format!(
                "too many nested function calls (limit {})",
                limits.max_call_levels
            ),
            // A built-in function's own message: without Rhai's "Runtime error: " prefix.
            EvalAltResult::ErrorRuntime(v, _) if v.is_string() => v.to_string(),
            // The engine's words for a name the rule API does not have, in the rule API's.
            EvalAltResult::ErrorFunctionNotFound(signature, _) => {
                let (name, args) = signature.split_once(" (").unwrap_or((signature, ")"));
                let args = args
                    .trim_end_matches(')')
                    .replace("&str | ImmutableString | String", "text")
                    .replace("ImmutableString", "text")
                    .replace("decimal", "amount")
                    .replace("i64", "number");
                format!("no function '{name}' of the rule API takes ({args}) (the functions are listed in docs/rules.md)")
            }
            EvalAltResult::ErrorDotExpr(text, _) if text.starts_with("Unknown property '") => {
                let name = text
                    .trim_start_matches("Unknown property '")
                    .split('\'')
                    .next()
                    .unwrap_or("");
                let of = text
                    .rsplit("for type '")
                    .next()
                    .unwrap_or("")
                    .trim_end_matches('\'');
                format!(
                    "'{name}' is not a property of {} (the properties are listed in docs/rules.md)",
                    of.to_lowercase()
                )
            }
            EvalAltResult::ErrorPropertyNotFound(name, _) => {
                format!("the map has no field '{name}'")
            }
            other => {
                // The message without the " (line L, position C)" Display appends.
                let s = other.to_string();
                match s.rfind(" (line ") {
                    Some(i) if s.ends_with(')') => s[..i].to_string(),
                    _ => s,
                }
            }
        };
        Diagnostic::at(file, source, pos, message)
    }

    /// One line: `file:line:column: message`.
    pub fn short(&self) -> String {
        match (self.line, self.column) {
            (Some(l), Some(c)) => format!("{}:{l}:{c}: {}", self.file, self.message),
            (Some(l), None) => format!("{}:{l}: {}", self.file, self.message),
            _ => format!("{}: {}", self.file, self.message),
        }
    }

    /// The short form, then the source line with a caret under the column.
    pub fn long(&self) -> String {
        let mut out = self.short();
        if let (Some(l), Some(text)) = (self.line, &self.source_line) {
            let gutter = l.to_string().len();
            out.push_str(&format!("\n{:>gutter$} | {text}", l));
            if let Some(c) = self.column {
                out.push_str(&format!(
                    "\n{:>gutter$} | {}^",
                    "",
                    " ".repeat(c.saturating_sub(1))
                ));
            }
        }
        out
    }
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.short())
    }
}
