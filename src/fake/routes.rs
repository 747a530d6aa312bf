//! The one HTTP handler: record, maybe fail on purpose, authenticate, route, answer.
//!
//! Routing is done by hand in a single default service rather than with actix's router so
//! that every request (unknown paths, wrong methods, unauthenticated ones) goes through the
//! same record-then-fault steps, and so 404/405 bodies are production-like JSON. Paths under
//! `/management/` are instances' own management APIs: same steps, their own credentials,
//! answered by `management`.

use std::io;

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::faults::Fault;
use super::management::{self, Target};
use super::record::{Credentials, RecordedRequest, recorded_body, requested_plan};
use super::state::Refusal;
use super::{Shared, views};

const CHANGE_ACCEPTED: &str =
    "Your cluster is being reconfigured, this can take up to 10 minutes to complete. ";
const PLEASE_WAIT: &str =
    "Please wait for your cluster to be configured before trying to update it";
const TO_SHARED: &str =
    "Sorry, you can't move to a shared plan automatically. Please create a new instance.";

/// Handles every request the fake receives.
pub(crate) async fn handle(
    req: HttpRequest,
    body: web::Bytes,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let method = req.method().as_str().to_owned();
    let path = req.path().to_owned();
    let management = Target::parse(&path);
    let (index, fault, authorized) = {
        let mut state = shared.lock();
        let credentials = match management {
            Some(target) => target.credentials(req.headers(), &state.instances),
            None => Credentials::check(req.headers(), &shared.api_key),
        };
        let authorized = credentials.authorized;
        if method == "PUT" {
            state.put_attempts += 1;
        }
        state.requests.push(RecordedRequest {
            method: method.clone(),
            path: path.clone(),
            query: Some(req.query_string().to_owned()).filter(|q| !q.is_empty()),
            authorized,
            auth_scheme: credentials.scheme,
            user_agent: req
                .headers()
                .get(header::USER_AGENT)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned),
            body: recorded_body(&body, req.headers()),
            status: 0,
            at: shared.clock.now(),
        });
        let index = state.requests.len() - 1;
        (index, state.faults.take(&method, &path), authorized)
    };
    let normal = || match management {
        Some(target) => management::answer(&shared, target, &method, authorized),
        None => answer(&shared, &req, &body, authorized),
    };
    let (response, delay) = match fault {
        None => (normal(), None),
        Some(Fault::Slow(delay)) => (normal(), Some(delay)),
        // Recorded with status 0: no HTTP answer goes out.
        Some(Fault::DropConnection) => return dropped_connection(),
        Some(fault) => (fault_response(fault), None),
    };
    if let Some(record) = shared.lock().requests.get_mut(index) {
        record.status = response.status().as_u16();
    }
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    response
}

/// The paths the fake knows, with the instance id as given (`None`: not an integer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Instances,
    Instance(Option<u64>),
    Nodes(Option<u64>),
    Plans,
    NotFound,
}

impl Route {
    fn parse(path: &str) -> Self {
        let Some(rest) = path.strip_prefix("/api/") else {
            return Self::NotFound;
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let segments: Vec<&str> = rest.split('/').collect();
        let id = |text: &str| text.parse::<u64>().ok();
        match segments.as_slice() {
            ["instances"] => Self::Instances,
            ["instances", instance] => Self::Instance(id(instance)),
            ["instances", instance, "nodes"] => Self::Nodes(id(instance)),
            ["plans"] => Self::Plans,
            // Notably `/api/instances/{id}/actions/…`: those restart nodes or upgrade
            // versions in production; there is no plan change there, and none here.
            _ => Self::NotFound,
        }
    }

    /// The methods the route answers, for 405's `Allow`.
    fn allowed(self) -> &'static [&'static str] {
        match self {
            Self::Instance(_) => &["GET", "PUT"],
            Self::NotFound => &[],
            _ => &["GET"],
        }
    }
}

/// The normal answer, once faults are out of the way.
fn answer(shared: &Shared, req: &HttpRequest, body: &[u8], authorized: bool) -> HttpResponse {
    if !authorized {
        return unauthorized();
    }
    let route = Route::parse(req.path());
    let method = req.method().as_str();
    if route == Route::NotFound {
        return error(StatusCode::NOT_FOUND, "Not found");
    }
    if !route.allowed().contains(&method) {
        return HttpResponse::MethodNotAllowed()
            .insert_header((header::ALLOW, route.allowed().join(", ")))
            .json(json!({"error": "Method not allowed"}));
    }
    let now = shared.clock.now();
    let mut state = shared.lock();
    match (route, method) {
        (Route::Instances, _) => {
            let list: Vec<Value> = state
                .instances
                .list(now)
                .iter()
                .map(views::list_entry)
                .collect();
            HttpResponse::Ok().json(list)
        }
        (Route::Instance(None), _) => invalid_id(),
        (Route::Instance(Some(id)), "PUT") => {
            let plan = requested_plan(body, req.headers());
            match state.instances.request_change(id, plan.as_deref(), now) {
                Ok(accepted) => {
                    state.plan_changes.push((id, accepted));
                    state.faults.put_accepted();
                    HttpResponse::Ok().json(json!({"message": CHANGE_ACCEPTED}))
                }
                Err(refusal) => refused(&refusal),
            }
        }
        (Route::Instance(Some(id)), _) => match state.instances.show(id, now) {
            Some(instance) => HttpResponse::Ok().json(views::full(&instance)),
            None => invalid_id(),
        },
        (Route::Nodes(id), _) => match id.and_then(|id| state.instances.broker(id, now)) {
            Some(broker) => {
                HttpResponse::Ok().json(views::nodes(&broker.instance, broker.figures.running))
            }
            None => invalid_id(),
        },
        (Route::Plans, _) => {
            let backend = backend_filter(req.query_string());
            let plans: Vec<_> = state
                .instances
                .plans()
                .iter()
                .filter(|plan| backend.as_deref().is_none_or(|b| plan.backend == b))
                .cloned()
                .collect();
            HttpResponse::Ok().json(plans)
        }
        (Route::NotFound, _) => error(StatusCode::NOT_FOUND, "Not found"),
    }
}

/// `?backend=rabbitmq`; an unreadable query string filters nothing.
fn backend_filter(query: &str) -> Option<String> {
    let pairs = web::Query::<Vec<(String, String)>>::from_query(query).ok()?;
    pairs
        .into_inner()
        .into_iter()
        .find_map(|(key, value)| (key == "backend").then_some(value))
}

fn refused(refusal: &Refusal) -> HttpResponse {
    match refusal {
        Refusal::UnknownId => invalid_id(),
        Refusal::Busy => error(StatusCode::UNPROCESSABLE_ENTITY, PLEASE_WAIT),
        Refusal::MissingPlan => error(
            StatusCode::BAD_REQUEST,
            "Missing parameter: plan (send {\"plan\":\"…\"} as JSON or plan=… as a form)",
        ),
        Refusal::UnknownPlan(plan) => {
            error(StatusCode::BAD_REQUEST, &format!("Invalid plan: {plan}"))
        }
        Refusal::ToShared => error(StatusCode::UNPROCESSABLE_ENTITY, TO_SHARED),
        Refusal::SharedToDedicated => error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Sorry, you can't move from a shared plan to a dedicated plan automatically. \
             Please create a new instance.",
        ),
        Refusal::BackendChange { from, to } => error(
            StatusCode::UNPROCESSABLE_ENTITY,
            &format!("Sorry, you can't move from {from} to {to}. Please create a new instance."),
        ),
    }
}

fn error(status: StatusCode, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({"error": message}))
}

fn invalid_id() -> HttpResponse {
    error(StatusCode::NOT_FOUND, "Invalid ID")
}

fn unauthorized() -> HttpResponse {
    HttpResponse::Unauthorized()
        .insert_header((header::WWW_AUTHENTICATE, r#"Basic realm="Customer API""#))
        .json(json!({"error": "Not authorized"}))
}

fn fault_response(fault: Fault) -> HttpResponse {
    match fault {
        Fault::TooManyRequests { retry_after } => {
            let mut response = HttpResponse::TooManyRequests();
            if let Some(seconds) = retry_after {
                response.insert_header((header::RETRY_AFTER, seconds.to_string()));
            }
            // Production's 429 body is unknown: plain text makes clients cope with non-JSON.
            response
                .content_type("text/plain; charset=utf-8")
                .body("Too Many Requests")
        }
        Fault::ServiceUnavailable => HttpResponse::ServiceUnavailable()
            .content_type("text/html; charset=utf-8")
            .body("<html><body><h1>503 Service Unavailable</h1></body></html>"),
        Fault::Locked => HttpResponse::build(StatusCode::LOCKED)
            .json(json!({"message": "Instance is locked while it is being configured"})),
        Fault::BackendTimeout => HttpResponse::BadRequest()
            .json(json!({"error": "Timeout talking to backend", "error_code": 40099})),
        Fault::Unauthorized => unauthorized(),
        Fault::MalformedBody => HttpResponse::Ok()
            .content_type("application/json")
            .body("<html><body>Bad Gateway</body></html>"),
        Fault::Respond { status, body } => {
            HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY))
                .json(body)
        }
        // Handled by the caller; kept total so a new variant cannot be forgotten silently.
        Fault::Slow(_) | Fault::DropConnection => dropped_connection(),
    }
}

/// A response whose body fails before its first byte. actix-http then abandons the
/// connection without flushing the already-encoded head, so the client sees the connection
/// close with no HTTP answer at all (a connection-level error, not a status).
fn dropped_connection() -> HttpResponse {
    let failing = futures_util::stream::once(async {
        Err::<web::Bytes, _>(io::Error::other("fake CloudAMQP: dropping the connection"))
    });
    HttpResponse::Ok().streaming(failing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(Route::parse("/api/instances"), Route::Instances);
        assert_eq!(Route::parse("/api/instances/"), Route::Instances);
        assert_eq!(Route::parse("/api/instances/7"), Route::Instance(Some(7)));
        assert_eq!(Route::parse("/api/instances/x"), Route::Instance(None));
        assert_eq!(
            Route::parse("/api/instances/7/nodes"),
            Route::Nodes(Some(7))
        );
        assert_eq!(Route::parse("/api/plans"), Route::Plans);
        assert_eq!(
            Route::parse("/api/instances/7/actions/upgrade"),
            Route::NotFound
        );
        assert_eq!(Route::parse("/instances"), Route::NotFound);
    }

    #[test]
    fn backend_filter_reads_the_query() {
        assert_eq!(
            backend_filter("backend=rabbitmq").as_deref(),
            Some("rabbitmq")
        );
        assert_eq!(backend_filter(""), None);
    }
}
