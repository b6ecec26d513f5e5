//! `POST /v1/rules/diff`: what a proposed version of a segment's script would change,
//! compared with the version the service runs (see `scheduler::diff`). Reads only.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::NaiveDate;
use serde::Deserialize;

use super::error::{ApiError, ApiResult};
use super::extract::{typed, Caller, JsonBody};
use super::scope::Scope;
use super::{json, AppState};
use crate::scheduler::diff::{self, DiffError, DiffOptions, RuleVersion, SegmentChange};

/// The largest script accepted (the shipped ones are a few kilobytes).
const MAX_SCRIPT_BYTES: usize = 256 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DiffBody {
    segment: String,
    /// The proposed script's source.
    script: String,
    /// Compared with this script's source [default: the version the service runs].
    from_script: Option<String>,
    as_of: Option<NaiveDate>,
    examples: Option<u16>,
    /// For a segment with variants and no `from_script`: the variant whose running
    /// script is compared with.
    variant: Option<String>,
}

pub(super) async fn diff(
    State(state): State<AppState>,
    caller: Caller,
    body: JsonBody,
) -> ApiResult<Response> {
    caller.require(Scope::Admin)?;
    let b: DiffBody = typed(body.value)?;
    if let Some(why) = state.config.unknown_segment(&b.segment) {
        return Err(ApiError::invalid("segment", why));
    }
    for (field, s) in [
        ("script", Some(&b.script)),
        ("from_script", b.from_script.as_ref()),
    ] {
        if s.is_some_and(|s| s.len() > MAX_SCRIPT_BYTES) {
            return Err(ApiError::invalid(
                field,
                format!("at most {MAX_SCRIPT_BYTES} bytes"),
            ));
        }
    }
    let examples = b.examples.unwrap_or(5);
    if examples > 100 {
        return Err(ApiError::invalid("examples", "from 0 to 100"));
    }
    let old = match b.from_script {
        Some(source) => RuleVersion {
            label: "from_script".into(),
            file: format!("{}.rhai (from_script)", b.segment),
            source,
        },
        None => {
            let running = state.registry.current();
            let seg = state.config.segments.get(&b.segment);
            let variants: Vec<&str> = seg
                .map(|s| {
                    s.scripts
                        .iter()
                        .filter_map(|x| x.variant.as_deref())
                        .collect()
                })
                .unwrap_or_default();
            match (&b.variant, variants.is_empty()) {
                (None, false) => {
                    return Err(ApiError::invalid(
                        "variant",
                        format!(
                            "segment '{}' runs an experiment: name the variant to compare with ({}), or give from_script",
                            b.segment,
                            variants.join(", ")
                        ),
                    ))
                }
                (Some(v), _) if !variants.contains(&v.as_str()) => {
                    return Err(ApiError::invalid(
                        "variant",
                        format!("segment '{}' has no variant '{v}'", b.segment),
                    ))
                }
                _ => {}
            }
            let Some(rule) = running.script(&b.segment, b.variant.as_deref()) else {
                return Err(ApiError::conflict(format!(
                    "segment '{}' has no script running (it does not compile): give the version to compare with in from_script",
                    b.segment
                )));
            };
            RuleVersion {
                label: b
                    .variant
                    .as_ref()
                    .map_or_else(|| "live".to_string(), |v| format!("live:{v}")),
                file: rule.file.clone(),
                source: rule.source.to_string(),
            }
        }
    };
    let change = SegmentChange {
        segment: b.segment.clone(),
        new: RuleVersion {
            label: "script".into(),
            file: format!("{}.rhai (script)", b.segment),
            source: b.script,
        },
        old,
    };
    let opts = DiffOptions {
        as_of: b.as_of.unwrap_or_else(|| state.today()),
        examples: usize::from(examples),
        workers: 2,
    };
    match diff::diff(state.store.clone(), state.config.clone(), &[change], &opts).await {
        Ok(d) => Ok(json(StatusCode::OK, &d)),
        Err(DiffError::Store(e)) => Err(e.into()),
        Err(DiffError::Rule { which, message, .. }) => Err(ApiError::invalid(
            if which == "new" {
                "script"
            } else {
                "from_script"
            },
            message,
        )),
    }
}
