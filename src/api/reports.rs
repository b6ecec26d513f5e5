//! Reports over HTTP: the figures `relance report` prints, as JSON, CSV, SVG or PNG.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;

use super::error::{ApiError, ApiResult};
use super::extract::{Caller, QueryParams};
use super::scope::Scope;
use super::{json, AppState};
use crate::domain::Locale;
use crate::reports::{ReportError, ReportKind, ReportQuery};
use crate::store::reports::ReportFilter;

fn date(v: &str) -> Result<NaiveDate, String> {
    crate::domain::parse_date(v)
}

/// `GET /v1/reports/{name}`: `as_of` (point reports) or `from`/`to` (period reports),
/// `segment`, `collector`, `currency`, `top`, `format` (json, csv, svg, png), `table`
/// (csv), `locale` (fr, en).
pub(super) async fn report(
    State(state): State<AppState>,
    Path(name): Path<String>,
    caller: Caller,
    q: QueryParams,
) -> ApiResult<Response> {
    caller.require(Scope::Read)?;
    let kind: ReportKind = name.parse().map_err(ApiError::not_found)?;
    let mut known = vec![
        "segment",
        "collector",
        "currency",
        "top",
        "format",
        "table",
        "locale",
    ];
    known.extend(if kind.has_period() {
        ["from", "to"]
    } else {
        ["as_of", "as_of"]
    });
    let q = q.only(&known)?;
    let today = state.today();
    let (as_of, from) = if kind.has_period() {
        (
            q.parse("to", date)?.unwrap_or(today),
            q.parse("from", date)?,
        )
    } else {
        (q.parse("as_of", date)?.unwrap_or(today), None)
    };
    let top = q.parse("top", |v| {
        v.parse::<usize>()
            .ok()
            .filter(|n| (1..=10_000).contains(n))
            .ok_or_else(|| format!("'{v}' is not a number from 1 to 10000"))
    })?;
    let locale = q
        .parse("locale", |v| Locale::parse(v).map_err(|e| e.to_string()))?
        .unwrap_or(state.config.reports.locale);
    let format = q.get("format").unwrap_or("json").to_string();
    if !["json", "csv", "svg", "png"].contains(&format.as_str()) {
        return Err(ApiError::invalid(
            "format",
            format!("'{format}' is not json, csv, svg or png"),
        ));
    }
    let filter = ReportFilter {
        segment: q.get("segment").map(str::to_string),
        collector: q.get("collector").map(str::to_string),
        currency: q.get("currency").map(str::to_string),
        customer: None,
    };
    let field_of = |m: &str| {
        if m.starts_with("unknown segment")
            || m.starts_with("segment '")
            || m.starts_with("the experiment report needs a segment")
        {
            "segment"
        } else if m.starts_with("currency") {
            "currency"
        } else if m.starts_with("aging") {
            "buckets"
        } else {
            "from"
        }
    };
    let query = ReportQuery::build(&state.config, as_of, from, filter, top, today)
        .map_err(|e| ApiError::invalid(field_of(&e.to_string()), e.to_string()))?;
    let report = crate::reports::run(state.store.as_ref(), &state.config, kind, &query)
        .await
        .map_err(|e| match e {
            ReportError::Invalid(m) => ApiError::invalid(field_of(&m), m),
            ReportError::Store(s) => s.into(),
        })?;
    let file = format!("{}-{}", kind.as_str(), query.as_of);
    let attachment = |ext: &str| format!("inline; filename=\"{file}.{ext}\"");
    Ok(match format.as_str() {
        "csv" => {
            let tables = report.tables(kind);
            let table = match q.get("table") {
                None => tables.first(),
                Some(k) => tables.iter().find(|t| t.key == k),
            };
            let Some(table) = table else {
                let keys: Vec<&str> = tables.iter().map(|t| t.key).collect();
                return Err(ApiError::invalid(
                    "table",
                    format!(
                        "the {} report has no such table (it has {})",
                        kind.as_str(),
                        keys.join(", ")
                    ),
                ));
            };
            (
                StatusCode::OK,
                [
                    (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
                    (header::CONTENT_DISPOSITION, attachment("csv")),
                ],
                table.to_csv(locale),
            )
                .into_response()
        }
        "svg" | "png" => {
            let picture = if format == "svg" {
                crate::charts::svg(&report, kind, locale).map(String::into_bytes)
            } else {
                crate::charts::png(&report, kind, locale)
            };
            let bytes = picture.map_err(|e| match e {
                crate::charts::ChartError::NoChart(_) => ApiError::invalid("format", e.to_string()),
                other => ApiError::internal(other.to_string()),
            })?;
            let mime = if format == "svg" {
                "image/svg+xml"
            } else {
                "image/png"
            };
            (
                StatusCode::OK,
                [
                    (header::CONTENT_TYPE, mime.to_string()),
                    (header::CONTENT_DISPOSITION, attachment(&format)),
                ],
                bytes,
            )
                .into_response()
        }
        _ => json(StatusCode::OK, &report),
    })
}
