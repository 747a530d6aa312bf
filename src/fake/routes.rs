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

use super::alarms::AlarmRefusal;
use super::faults::Fault;
use super::management::{self, Target};
use super::record::{Credentials, RecordedRequest, recorded_body, request_fields, requested_plan};
use super::state::{DiskRefusal, Refusal};
use super::{Shared, views};

const CHANGE_ACCEPTED: &str =
    "Your cluster is being reconfigured, this can take up to 10 minutes to complete. ";
const PLEASE_WAIT: &str =
    "Please wait for your cluster to be configured before trying to update it";
const DISK_SHARED: &str = "Disk resize is only available on dedicated plans";
const DISK_RESIZE_STARTED: &str = "Disk resize started.";
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
        Some(Fault::DropAfterHandling) => {
            // The effect stays; only the answer is lost (recorded with status 0 too).
            drop(normal());
            return dropped_connection();
        }
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
    /// `/api/instances/{id}/alarms`
    Alarms(Option<u64>),
    /// `/api/instances/{id}/alarms/{aid}`
    Alarm(Option<u64>, Option<u64>),
    /// `/api/instances/{id}/alarms/recipients`
    Recipients(Option<u64>),
    /// `/api/instances/{id}/alarms/recipients/{rid}`
    Recipient(Option<u64>, Option<u64>),
    /// `/api/instances/{id}/disk`
    Disk(Option<u64>),
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
            ["instances", instance, "alarms"] => Self::Alarms(id(instance)),
            ["instances", instance, "alarms", "recipients"] => Self::Recipients(id(instance)),
            ["instances", instance, "alarms", "recipients", rid] => {
                Self::Recipient(id(instance), id(rid))
            }
            ["instances", instance, "alarms", aid] => Self::Alarm(id(instance), id(aid)),
            ["instances", instance, "disk"] => Self::Disk(id(instance)),
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
            Self::Alarms(_) | Self::Recipients(_) => &["GET", "POST"],
            Self::Alarm(..) | Self::Recipient(..) => &["GET", "PUT", "DELETE"],
            Self::Disk(_) => &["PUT"],
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
        (Route::Disk(id), _) => {
            let Some(id) = id else {
                return invalid_id();
            };
            let fields = request_fields(body, req.headers());
            let field = |name: &str| fields.as_ref().and_then(|f| f.get(name));
            let size = field("extra_disk_size").and_then(super::alarms::unsigned);
            let allow_downtime = match field("allow_downtime") {
                None | Some(Value::Null) => Some(false),
                Some(value) => super::alarms::boolean(value),
            };
            match state.instances.request_disk(id, size, allow_downtime, now) {
                Ok(size) => {
                    state.disk_resizes.push((id, size));
                    HttpResponse::Ok().json(json!({"message": DISK_RESIZE_STARTED}))
                }
                Err(refusal) => disk_refused(&refusal),
            }
        }
        (
            Route::Alarms(id)
            | Route::Alarm(id, _)
            | Route::Recipients(id)
            | Route::Recipient(id, _),
            _,
        ) => {
            let Some(instance) = id.and_then(|id| state.instances.show(id, now)) else {
                return invalid_id();
            };
            let fields = request_fields(body, req.headers());
            alarms_answer(&mut state.alarms, route, method, &instance, fields.as_ref())
        }
        (Route::NotFound, _) => error(StatusCode::NOT_FOUND, "Not found"),
    }
}

/// The alarm and recipient endpoints of an instance that exists.
fn alarms_answer(
    alarms: &mut super::alarms::Alarms,
    route: Route,
    method: &str,
    instance: &super::state::InstanceSnapshot,
    fields: Option<&serde_json::Map<String, Value>>,
) -> HttpResponse {
    let id = instance.id;
    let result = match (route, method) {
        (Route::Alarms(_), "GET") => {
            let list: Vec<Value> = alarms.board(id).alarms.iter().map(|a| a.view()).collect();
            Ok(HttpResponse::Ok().json(list))
        }
        (Route::Alarms(_), _) => alarms
            .create_alarm(id, instance.dedicated, fields)
            .map(|alarm| HttpResponse::Created().json(alarm.view())),
        (Route::Alarm(_, None) | Route::Recipient(_, None), _) => Err(AlarmRefusal::NotFound),
        (Route::Alarm(_, Some(aid)), "GET") => alarms
            .board(id)
            .alarms
            .iter()
            .find(|a| a.id == aid)
            .map(|alarm| HttpResponse::Ok().json(alarm.view()))
            .ok_or(AlarmRefusal::NotFound),
        // Production answers an alarm update with 201, not 200.
        (Route::Alarm(_, Some(aid)), "PUT") => alarms
            .update_alarm(id, aid, fields)
            .map(|alarm| HttpResponse::Created().json(alarm.view())),
        (Route::Alarm(_, Some(aid)), _) => alarms
            .delete_alarm(id, aid)
            .map(|()| HttpResponse::NoContent().finish()),
        (Route::Recipients(_), "GET") => {
            let list: Vec<Value> = alarms
                .board(id)
                .recipients
                .iter()
                .map(|r| r.view())
                .collect();
            Ok(HttpResponse::Ok().json(list))
        }
        (Route::Recipients(_), _) => alarms
            .create_recipient(id, fields)
            .map(|recipient| HttpResponse::Created().json(recipient.created_view())),
        (Route::Recipient(_, Some(rid)), "GET") => alarms
            .board(id)
            .recipients
            .iter()
            .find(|r| r.id == rid)
            .map(|recipient| HttpResponse::Ok().json(recipient.view()))
            .ok_or(AlarmRefusal::NotFound),
        (Route::Recipient(_, Some(rid)), "PUT") => alarms
            .update_recipient(id, rid, fields)
            .map(|recipient| HttpResponse::Ok().json(recipient.view())),
        (Route::Recipient(_, Some(rid)), _) => alarms
            .delete_recipient(id, rid)
            .map(|()| HttpResponse::NoContent().finish()),
        _ => Err(AlarmRefusal::NotFound),
    };
    result.unwrap_or_else(|refusal| match refusal {
        AlarmRefusal::NotFound => invalid_id(),
        AlarmRefusal::Invalid(fields) => invalid_fields(&fields),
        AlarmRefusal::Refused(message) => error(StatusCode::UNPROCESSABLE_ENTITY, &message),
    })
}

/// 400 `{"errors":[{"field":"…"}, …]}`: CloudAMQP's validation error shape.
fn invalid_fields(fields: &[&str]) -> HttpResponse {
    let errors: Vec<Value> = fields.iter().map(|field| json!({"field": field})).collect();
    HttpResponse::BadRequest().json(json!({"errors": errors}))
}

fn disk_refused(refusal: &DiskRefusal) -> HttpResponse {
    let unprocessable = |message: &str| error(StatusCode::UNPROCESSABLE_ENTITY, message);
    match refusal {
        DiskRefusal::UnknownId => invalid_id(),
        DiskRefusal::Shared => unprocessable(DISK_SHARED),
        DiskRefusal::Busy => unprocessable(PLEASE_WAIT),
        DiskRefusal::Invalid(fields) => invalid_fields(fields),
        DiskRefusal::Shrink { current } => unprocessable(&format!(
            "The disk can only grow: it has {current} GB of extra disk"
        )),
        DiskRefusal::Same { current } => {
            unprocessable(&format!("The disk already has {current} GB of extra disk"))
        }
        DiskRefusal::TooSoon { interval } => unprocessable(&format!(
            "The disk can be resized once every {} hours",
            interval.as_secs().div_ceil(3600)
        )),
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
        Fault::Slow(_) | Fault::DropConnection | Fault::DropAfterHandling => dropped_connection(),
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
            Route::parse("/api/instances/7/alarms"),
            Route::Alarms(Some(7))
        );
        assert_eq!(
            Route::parse("/api/instances/7/alarms/680"),
            Route::Alarm(Some(7), Some(680))
        );
        assert_eq!(
            Route::parse("/api/instances/7/alarms/recipients"),
            Route::Recipients(Some(7))
        );
        assert_eq!(
            Route::parse("/api/instances/7/alarms/recipients/661"),
            Route::Recipient(Some(7), Some(661))
        );
        assert_eq!(Route::parse("/api/instances/7/disk"), Route::Disk(Some(7)));
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
