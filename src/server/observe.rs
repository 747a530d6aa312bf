//! `/healthz`, `/readyz`, `/metrics`, `/status`: what an operator and a monitoring system see.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::AppState;
use super::errors::error;
use crate::executor::state::InstanceState;
use crate::rules::RuleSet;

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
    HttpResponse::Ok().json(status_json(&state))
}

/// The contract's `/status` object.
pub fn status_json(state: &AppState) -> Value {
    let loaded = state.rules.snapshot();
    let last_reload = state
        .rules
        .last_reload()
        .map(|r| json!({ "at": r.at, "ok": r.ok, "errors": r.errors }));
    let now = state.clock.now();
    let instances: serde_json::Map<String, Value> = state
        .executor
        .book()
        .all()
        .into_iter()
        // Bounded however long it runs: an instance not seen within retention is gone.
        .filter(|(_, instance)| {
            let cutoff = crate::clock::sub(now, state.retention);
            instance.in_flight.is_some() || instance.last_seen().is_none_or(|at| at >= cutoff)
        })
        .map(|(id, instance)| {
            let id = id.to_string();
            let json = instance_json(&loaded.rules, &id, &instance, now);
            (id, json)
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

fn instance_json(
    rules: &RuleSet,
    id: &str,
    instance: &InstanceState,
    now: jiff::Timestamp,
) -> Value {
    let change = instance.in_flight.as_ref().map(|c| {
        json!({ "from": c.from, "to": c.to, "rule": c.rule, "direction": c.direction, "phase": c.phase, "started_at": c.started_at })
    });
    // With the rules in force now (a reload shows at once) and the cooldowns of the rules
    // that could act on the plan, as decisions weigh them, counted from the last upward
    // change only (a step down never delays a step up).
    let names = instance.names(id);
    let cooldown_until = instance.last_up.and_then(|finished| {
        let plan = instance
            .plan
            .as_deref()
            .or_else(|| instance.last_change.as_ref().map(|c| c.plan_left_on()))?;
        crate::decide::cooling_down_until(rules, plan, &names, finished, now)
    });
    let last_change = instance.last_change.as_ref().map(|c| {
        json!({
            "from": c.from, "to": c.to, "rule": c.rule, "direction": c.direction, "result": c.result,
            "finished_at": c.finished_at, "needs_attention": c.needs_attention, "dry_run": c.dry_run,
        })
    });
    let last_decision = instance
        .last_decision
        .as_ref()
        .map(|d| json!({ "at": d.at, "decision": d.decision, "reason": d.reason, "rule": d.rule, "detail": d.detail }));
    let floor = instance.baseline.as_ref().map(|baseline| {
        crate::scale_down::floor(
            rules,
            rules.scale_down().and_then(|s| s.min_plan.as_deref()),
            &baseline.plan,
            &names,
            now,
        )
        .plan
        .to_owned()
    });
    json!({
        "name": instance.name,
        "plan": instance.plan,
        "floor": floor,
        "change": change,
        "cooldown_until": cooldown_until,
        "last_change": last_change,
        "last_decision": last_decision,
        "scale_down": scale_down_json(rules, id, instance, now),
    })
}

/// `scale_down`: where the next step goes, when the time gates allow it, the last look;
/// null at the floor or when `[scale_down]` does not select the instance.
fn scale_down_json(
    rules: &RuleSet,
    id: &str,
    instance: &InstanceState,
    now: jiff::Timestamp,
) -> Value {
    let Some(view) = instance.down_view(id) else {
        return Value::Null;
    };
    let Ok((section, step)) = crate::scale_down::target(rules, &view, now) else {
        return Value::Null;
    };
    let last_look = instance.last_look.as_ref().map(|look| {
        json!({
            "at": look.at,
            "passed": look.passed,
            "reason": look.reason,
            "detail": look.detail,
            "projected_memory_percent": look.projected_memory_percent,
        })
    });
    json!({
        "to": step.to,
        "eligible_at": crate::scale_down::eligible_at(section, &view, now),
        "last_look": last_look,
    })
}
