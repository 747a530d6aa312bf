//! The HTTP face: the webhook, health, readiness, metrics and status, the admin API
//! (pauses), the history and the dashboard, as the contract lists them. Handlers only authenticate, parse, record and enqueue; nothing here waits
//! on CloudAMQP.

pub mod admin;
mod auth;
mod dashboard;
mod errors;
pub mod history;
mod observe;
pub mod view;
mod webhook;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::dev::{Server, Service};
use actix_web::{App, HttpServer, web};
use tokio::sync::mpsc;

use crate::clock::SharedClock;
use crate::executor::{Executor, Job};
use crate::live_rules::LiveRules;
use crate::metrics::Metrics;
use crate::store::Store;
pub use auth::{AuthThrottle, TokenCheck};

/// Bodies over this are refused with 413 (the contract's limit).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// A sender has this long to deliver the request head ...
pub const REQUEST_HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// ... and this long for the body, so a slow sender cannot hold connections open.
pub const REQUEST_BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// What every handler shares.
#[derive(Debug)]
pub struct AppState {
    pub rules: Arc<LiveRules>,
    pub store: Store,
    pub executor: Executor,
    pub queue: mpsc::Sender<Job>,
    pub metrics: Metrics,
    pub clock: SharedClock,
    /// `None`: no token configured (allowed on loopback binds only).
    pub token: Option<TokenCheck>,
    pub throttle: AuthThrottle,
    /// `None`: no `server.admin_token`, the admin API answers 403.
    pub admin: Option<TokenCheck>,
    /// Wrong admin tokens, throttled like the webhook's (a budget of their own).
    pub admin_throttle: AuthThrottle,
    /// `/status` and `/pauses` need the admin token ([`admin::reads_need_token`]).
    pub reads_need_token: bool,
    /// `state.retention`: `/status` lists the instances seen within it.
    pub retention: std::time::Duration,
    /// The notification outbox's counts, for `/status`.
    pub outbox: Arc<crate::notify::OutboxCounts>,
}

/// Starts serving on `listener` until `stop` completes.
pub fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    workers: usize,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<Server> {
    let workers = match workers {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        n => n,
    };
    let data = web::Data::from(state);
    let server = HttpServer::new(move || {
        // Called on each worker thread: the store answers this thread's requests through
        // one mailbox, one wake-up per commit.
        crate::store::replies::serve_this_thread();
        let metrics = data.metrics.clone();
        App::new()
            .app_data(data.clone())
            .wrap_fn(move |request, service| {
                let started = Instant::now();
                let method = method_label(request.method());
                let route = route_label(request.path());
                let metrics = metrics.clone();
                let response = service.call(request);
                async move {
                    let response = response.await?;
                    let status = response.status().as_u16();
                    metrics.http_request(method, route, status, started.elapsed().as_secs_f64());
                    Ok(response)
                }
            })
            .service(endpoint(
                "/cloudamqp/alarm",
                web::post().to(webhook::receive),
            ))
            .service(endpoint("/healthz", web::get().to(observe::healthz)))
            .service(endpoint("/readyz", web::get().to(observe::readyz)))
            .service(endpoint("/metrics", web::get().to(observe::metrics)))
            .service(endpoint("/status", web::get().to(observe::status)))
            .service(endpoint("/pause", web::post().to(admin::create)))
            .service(endpoint("/pause/{pause_id}", web::delete().to(admin::end)))
            .service(endpoint("/pauses", web::get().to(admin::list)))
            .service(endpoint("/history", web::get().to(history::history)))
            .service(endpoint("/", web::get().to(dashboard::overview)))
            .service(endpoint(
                "/instances/{id}",
                web::get().to(dashboard::instance),
            ))
            .default_service(web::to(errors::not_found))
    })
    .workers(workers)
    .client_request_timeout(REQUEST_HEAD_TIMEOUT)
    .client_disconnect_timeout(Duration::from_secs(1))
    .shutdown_signal(stop)
    .shutdown_timeout(10)
    .listen(listener)?
    .run();
    Ok(server)
}

/// A path with one method; any other method answers 405.
fn endpoint(path: &'static str, route: actix_web::Route) -> actix_web::Resource {
    web::resource(path)
        .route(route)
        .default_service(web::to(errors::method_not_allowed))
}

/// A bounded label for request metrics: a client inventing methods makes one series, not
/// one each.
fn method_label(method: &actix_web::http::Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        "PATCH" => "PATCH",
        "TRACE" => "TRACE",
        "CONNECT" => "CONNECT",
        _ => "other",
    }
}

/// A bounded label for request metrics: unknown paths are one label, not one each.
fn route_label(path: &str) -> &'static str {
    match path {
        "/cloudamqp/alarm" => "/cloudamqp/alarm",
        "/healthz" => "/healthz",
        "/readyz" => "/readyz",
        "/metrics" => "/metrics",
        "/status" => "/status",
        "/pause" => "/pause",
        "/pauses" => "/pauses",
        "/history" => "/history",
        "/" => "/",
        path if path.starts_with("/instances/") => "/instances/{id}",
        path if path.starts_with("/pause/") => "/pause/{pause_id}",
        _ => "other",
    }
}
