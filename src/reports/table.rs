//! Reports as tables: aligned text for the terminal, CSV for spreadsheets (with decimal
//! commas and `;` separators in French, as French spreadsheets open them).

use std::fmt::Write as _;

use chrono::NaiveDate;
use rust_decimal::Decimal;

use crate::domain::Locale;

/// One value of a table.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Text(String),
    Int(i64),
    /// An amount (its currency is in another column).
    Amount(Decimal),
    /// A number of days, a percentage, a ratio: empty when it cannot be computed.
    Number(Option<Decimal>),
    Date(Option<NaiveDate>),
}

impl Cell {
    pub fn text(s: impl Into<String>) -> Cell {
        Cell::Text(s.into())
    }

    fn is_numeric(&self) -> bool {
        matches!(self, Cell::Int(_) | Cell::Amount(_) | Cell::Number(_))
    }

    /// The value as written in `locale` (decimal comma in French), without grouping.
    pub fn display(&self, locale: Locale) -> String {
        let dec = |d: &Decimal| {
            let s = d.to_string();
            match locale {
                Locale::Fr => s.replace('.', ","),
                Locale::En => s,
            }
        };
        match self {
            Cell::Text(s) => s.clone(),
            Cell::Int(i) => i.to_string(),
            Cell::Amount(d) => dec(d),
            Cell::Number(Some(d)) => dec(d),
            Cell::Number(None) | Cell::Date(None) => String::new(),
            Cell::Date(Some(d)) => d.to_string(),
        }
    }
}

/// A titled table.
#[derive(Debug, Clone)]
pub struct Table {
    /// A short name (`customers`, `totals`), for `--table`.
    pub key: &'static str,
    pub title: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
}

impl Table {
    /// Aligned columns, numbers to the right; `-` for an empty value.
    pub fn to_text(&self, locale: Locale) -> String {
        let cells: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| {
                r.iter()
                    .map(|c| {
                        let s = c.display(locale);
                        if s.is_empty() {
                            "-".to_string()
                        } else {
                            s
                        }
                    })
                    .collect()
            })
            .collect();
        let mut widths: Vec<usize> = self.columns.iter().map(|c| c.chars().count()).collect();
        for r in &cells {
            for (i, c) in r.iter().enumerate() {
                if let Some(w) = widths.get_mut(i) {
                    *w = (*w).max(c.chars().count());
                }
            }
        }
        let numeric: Vec<bool> = (0..self.columns.len())
            .map(|i| {
                self.rows
                    .iter()
                    .any(|r| r.get(i).is_some_and(Cell::is_numeric))
            })
            .collect();
        let mut out = String::new();
        let _ = writeln!(out, "{}", self.title);
        let line = |out: &mut String, values: &[String]| {
            let mut l = String::new();
            for (i, v) in values.iter().enumerate() {
                let w = widths.get(i).copied().unwrap_or(0);
                let pad = w.saturating_sub(v.chars().count());
                if i > 0 {
                    l.push_str("  ");
                }
                if numeric.get(i).copied().unwrap_or(false) {
                    l.push_str(&" ".repeat(pad));
                    l.push_str(v);
                } else {
                    l.push_str(v);
                    l.push_str(&" ".repeat(pad));
                }
            }
            let _ = writeln!(out, "{}", l.trim_end());
        };
        let header: Vec<String> = self.columns.iter().map(|c| c.to_uppercase()).collect();
        line(&mut out, &header);
        for r in &cells {
            line(&mut out, r);
        }
        if self.rows.is_empty() {
            let _ = writeln!(out, "(none)");
        }
        out
    }

    /// CSV with a header row: `,` and decimal points in English, `;` and decimal commas
    /// in French.
    pub fn to_csv(&self, locale: Locale) -> String {
        let delimiter = match locale {
            Locale::Fr => b';',
            Locale::En => b',',
        };
        let mut w = csv::WriterBuilder::new()
            .delimiter(delimiter)
            .from_writer(Vec::new());
        let _ = w.write_record(&self.columns);
        for r in &self.rows {
            let _ = w.write_record(r.iter().map(|c| c.display(locale)));
        }
        let bytes = w.into_inner().unwrap_or_default();
        String::from_utf8(bytes).unwrap_or_default()
    }
}
