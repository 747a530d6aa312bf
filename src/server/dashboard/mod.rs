//! The dashboard: `GET /` (every instance) and `GET /instances/{id}` (one, with its
//! history). Server-rendered HTML, read-only, guarded like `/status` off loopback. The
//! state is `/status`'s ([`crate::server::view`]); the charts and the history come from the
//! state store through its [`HistorySource`](crate::store::HistorySource).

mod chart;
mod page;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use jiff::{SignedDuration, Timestamp};
use maud::Markup;

use super::AppState;

use super::view::{self, InstanceView};
use crate::store::{HistoryEvent, HistoryQuery, PlanTimeline};

/// How far back the charts go.
pub const CHART_WINDOW: SignedDuration = SignedDuration::from_hours(7 * 24);
/// The events an instance's page lists (the newest; `/history` has the rest).
pub const PAGE_HISTORY: usize = 100;

pub async fn overview(request: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if let Some(response) = super::admin::read_refusal(&request, &state) {
        return response;
    }
    let now = state.clock.now();
    let from = chart_from(now);
    let views = view::instances(&state);
    let ids: Vec<u64> = views.iter().map(|v| v.id).collect();
    let timelines = state
        .store
        .history_source()
        .plan_timelines(ids, from)
        .await
        .map_err(|e| unreadable(&e));
    let cards: Vec<page::Card<'_>> = views
        .iter()
        .enumerate()
        .map(|(index, view)| page::Card {
            view,
            timeline: match &timelines {
                Ok(all) => Ok(&all[index]),
                Err(why) => Err(why.as_str()),
            },
            chart_from: from,
        })
        .collect();
    let loaded = state.rules.snapshot();
    let path = state.rules.path().display().to_string();
    let header = header(&state, &path, &loaded.rules.source().hash, now);
    html(StatusCode::OK, page::overview(&header, &cards))
}

pub async fn instance(
    request: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> HttpResponse {
    if let Some(response) = super::admin::read_refusal(&request, &state) {
        return response;
    }
    let now = state.clock.now();
    let loaded = state.rules.snapshot();
    let rules_path = state.rules.path().display().to_string();
    let header = header(&state, &rules_path, &loaded.rules.source().hash, now);
    let raw = path.into_inner();
    let Some(view) = raw.parse().ok().and_then(|id| view::instance(&state, id)) else {
        let shown = super::errors::truncate(&raw, 100);
        return html(StatusCode::NOT_FOUND, page::not_found(&header, &shown));
    };
    let from = chart_from(now);
    let id = view.id;
    let source = state.store.history_source();
    let read_back = async {
        let mut timeline = source.plan_timelines(vec![id], from).await?;
        let history = source
            .history(HistoryQuery {
                instance: Some(id),
                since: None,
                limit: PAGE_HISTORY,
            })
            .await?;
        Ok::<_, crate::store::StoreError>((timeline.remove(0), history))
    }
    .await
    .map_err(|e| unreadable(&e));
    html(
        StatusCode::OK,
        instance_page(&header, &view, &read_back, from),
    )
}

fn instance_page(
    header: &page::Header<'_>,
    view: &InstanceView,
    read_back: &Result<(PlanTimeline, Vec<HistoryEvent>), String>,
    from: Timestamp,
) -> Markup {
    let card = page::Card {
        view,
        timeline: match read_back {
            Ok((timeline, _)) => Ok(timeline),
            Err(why) => Err(why.as_str()),
        },
        chart_from: from,
    };
    let history = match read_back {
        Ok((_, events)) => Ok(events.as_slice()),
        Err(why) => Err(why.as_str()),
    };
    page::instance(header, &card, history)
}

fn header<'a>(
    state: &AppState,
    rules_path: &'a str,
    rules_hash: &'a str,
    now: Timestamp,
) -> page::Header<'a> {
    page::Header {
        mode: if state.executor.live() {
            "live"
        } else {
            "dry-run"
        },
        rules_path,
        rules_hash,
        now,
    }
}

fn chart_from(now: Timestamp) -> Timestamp {
    now.checked_sub(CHART_WINDOW)
        .unwrap_or(Timestamp::UNIX_EPOCH)
}

/// A page whose history could not be read still shows what the daemon knows; the reason
/// is logged, the page says only that.
fn unreadable(e: &crate::store::StoreError) -> String {
    tracing::error!(error = %e, "dashboard: cannot read the history from the state store");
    "the state store cannot be read".to_owned()
}

fn html(status: StatusCode, markup: Markup) -> HttpResponse {
    let mut response = HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(markup.into_string());
    // A page of state: never cached, never framed by another site.
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; img-src data:"),
    );
    response
}
