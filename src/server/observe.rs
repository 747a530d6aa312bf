//! `/healthz`, `/readyz`, `/metrics`, `/status`: what an operator and a monitoring system see.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::AppState;
use super::errors::error;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// Ready when rules are loaded (always, once started: an invalid file refuses the start)
/// and the state store is open and writing.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    if state.store.healthy() {
        HttpResponse::Ok().json(json!({ "status": "ready" }))
    } else {
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the state store is not writable",
        )
    }
}

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    state
        .metrics
        .changes_in_flight(state.executor.book().in_flight_count());
    state
        .metrics
        .queue_depth(state.queue.max_capacity() - state.queue.capacity());
    state.metrics.store_healthy(state.store.healthy());
    state
        .metrics
        .pauses(state.executor.pauses().in_force(state.clock.now()).len());
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render())
}

pub async fn status(request: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if let Some(response) = super::admin::read_refusal(&request, &state) {
        return response;
    }
    let Some(replica) = state.store.replica() else {
        return HttpResponse::Ok().json(status_json(&state));
    };
    // Replicas: the shared state as the database has it now, whichever replica answers.
    if let Err(e) = state.executor.catch_up().await {
        tracing::warn!(error = %e, "/status: the shared state cannot be read");
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the state database cannot be read; try again later",
        );
    }
    let replicas = state.store.replicas().await.unwrap_or_default();
    let mut status = status_json(&state);
    status["replica"] = json!(replica.id);
    status["replicas"] = replicas
        .iter()
        .map(|row| {
            json!({
                "id": row.id,
                "started_at": row.started_at,
                "heartbeat": row.heartbeat,
                "live": row.live,
                "rules_hash": row.rules_hash,
            })
        })
        .collect();
    HttpResponse::Ok().json(status)
}

/// The contract's `/status` object.
pub fn status_json(state: &AppState) -> Value {
    let loaded = state.rules.snapshot();
    let last_reload = state
        .rules
        .last_reload()
        .map(|r| json!({ "at": r.at, "ok": r.ok, "errors": r.errors }));
    let instances: serde_json::Map<String, Value> = super::view::instances(state)
        .into_iter()
        .map(|view| {
            let json = serde_json::to_value(&view).unwrap_or(Value::Null);
            (view.id.to_string(), json)
        })
        .collect();
    json!({
        "mode": if state.executor.live() { "live" } else { "dry-run" },
        "rules": {
            "path": state.rules.path().display().to_string(),
            "hash": loaded.rules.source().hash,
            "loaded_at": loaded.loaded_at,
            "last_reload": last_reload,
        },
        "queue": { "waiting": state.queue.max_capacity() - state.queue.capacity(), "capacity": state.queue.max_capacity() },
        "store": { "healthy": state.store.healthy() },
        "instances": instances,
        "pauses": super::admin::pauses_json(state),
        "notify": {
            "pending": state.outbox.pending(),
            "dropped": state.outbox.dropped(),
        },
    })
}
