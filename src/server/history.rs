//! `GET /history?instance=ID&since=RFC3339&limit=N`: what happened, newest first, read
//! from the state store (SQLite: a read-only connection, off the async threads;
//! PostgreSQL: a pooled one).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::AppState;
use super::errors::{error, truncate};
use crate::store::read::{DEFAULT_HISTORY_LIMIT, MAX_HISTORY_LIMIT};
use crate::store::{HistoryEvent, HistoryQuery, StoreError};

pub async fn history(request: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if let Some(response) = super::admin::read_refusal(&request, &state) {
        return response;
    }
    let query = match parse_query(request.query_string()) {
        Ok(query) => query,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    match state.store.history_source().history(query).await {
        Ok(events) => HttpResponse::Ok().json(json!({ "events": events })),
        Err(e) => unreadable(&e),
    }
}

/// 503: the store cannot be read now (the reason is logged, not answered).
pub(super) fn unreadable(e: &StoreError) -> HttpResponse {
    tracing::error!(error = %e, "cannot read the history from the state store");
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "the history cannot be read from the state store now",
    )
}

/// The query string's `instance`, `since` and `limit`; an error names the parameter.
pub fn parse_query(query: &str) -> Result<HistoryQuery, String> {
    let pairs = web::Query::<Vec<(String, String)>>::from_query(query)
        .map_err(|e| format!("the query string does not parse: {e}"))?
        .into_inner();
    let mut parsed = HistoryQuery::default();
    let mut seen = Vec::new();
    for (name, value) in pairs {
        if seen.contains(&name) {
            return Err(format!("{} is given twice", truncate(&name, 40)));
        }
        let value = value.trim();
        match name.as_str() {
            "instance" => {
                parsed.instance = Some(value.parse().map_err(|_| {
                    format!(
                        "instance must be an integer instance id, not {:?}",
                        truncate(value, 40)
                    )
                })?);
            }
            "since" => {
                parsed.since = Some(value.parse().map_err(|_| {
                    format!(
                        "since must be an RFC 3339 time such as 2026-11-26T17:00:00Z, not {:?}",
                        truncate(value, 40)
                    )
                })?);
            }
            "limit" => {
                parsed.limit = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_HISTORY_LIMIT).contains(n))
                    .ok_or_else(|| {
                        format!(
                            "limit must be an integer from 1 to {MAX_HISTORY_LIMIT} (default \
                             {DEFAULT_HISTORY_LIMIT}), not {:?}",
                            truncate(value, 40)
                        )
                    })?;
            }
            other => {
                return Err(format!(
                    "unknown parameter {:?}: use instance, since and limit",
                    truncate(other, 40)
                ));
            }
        }
        seen.push(name);
    }
    Ok(parsed)
}

/// Events as `/history` answers them (for tests and the `history` command).
pub fn events_json(events: &[HistoryEvent]) -> serde_json::Value {
    json!({ "events": events })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parameters_parse_and_a_bad_one_is_named() {
        assert_eq!(parse_query("").unwrap(), HistoryQuery::default());
        let query = parse_query("instance=7&since=2026-11-26T17:00:00%2B01:00&limit=5").unwrap();
        assert_eq!(query.instance, Some(7));
        assert_eq!(query.since, Some("2026-11-26T16:00:00Z".parse().unwrap()));
        assert_eq!(query.limit, 5);
        for (bad, named) in [
            ("instance=prod", "instance"),
            ("instance=-1", "instance"),
            ("since=yesterday", "since"),
            ("limit=0", "limit"),
            ("limit=1001", "limit"),
            ("limit=ten", "limit"),
            ("limt=10", "limt"),
            ("limit=1&limit=2", "limit"),
        ] {
            let message = parse_query(bad).unwrap_err();
            assert!(
                message.starts_with(named) || message.contains(named),
                "{bad}: {message}"
            );
        }
        assert_eq!(parse_query("limit=1000").unwrap().limit, 1000);
    }
}
