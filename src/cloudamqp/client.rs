//! The one way out to the CloudAMQP Customer API.
//!
//! Every call goes through the same path: wait for the client-side rate limit, send with
//! Basic auth (empty user, key as password), classify the answer, retry transient failures
//! inside `cloudamqp.retry_deadline`. The key is exposed only while building the
//! `Authorization` header and is scrubbed from every error text.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;

use super::error::{ApiError, classify, sanitize};
use super::model::{Instance, InstanceSummary, Node, Plan, decode_list};
use super::rate::RateLimit;
use super::retry::with_retries;
use crate::clock::SharedClock;
use crate::settings::CloudAmqpSettings;

/// Told about every request sent: which call (`list_instances`, `get_instance`,
/// `get_nodes`, `list_plans`, `change_plan`) and its HTTP status (`None`: no answer).
pub type CallObserver = Arc<dyn Fn(&'static str, Option<u16>) + Send + Sync>;

/// What we tell CloudAMQP we are.
pub const USER_AGENT: &str = concat!("cloudamqp-autoscaler/", env!("CARGO_PKG_VERSION"));

/// A CloudAMQP API client. Cheap to clone: clones share the connection pool and the rate
/// limit.
#[derive(Clone)]
pub struct CloudAmqpClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    /// `api_url` without a trailing slash; paths are appended to it.
    base: String,
    key: SecretString,
    clock: SharedClock,
    limit: RateLimit,
    request_timeout: Duration,
    retry_deadline: Duration,
    management_url: String,
    management_timeout: Duration,
    observer: std::sync::OnceLock<CallObserver>,
}

impl fmt::Debug for CloudAmqpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloudAmqpClient")
            .field("api_url", &self.inner.base)
            .finish_non_exhaustive()
    }
}

impl CloudAmqpClient {
    /// A client for `settings.api_url` with its timeouts, rate limit and retry deadline.
    pub fn new(settings: &CloudAmqpSettings, clock: SharedClock) -> Result<Self, ApiError> {
        let key = settings
            .api_key
            .clone()
            .filter(|k| !k.expose_secret().trim().is_empty())
            .ok_or(ApiError::MissingApiKey)?;
        let http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.request_timeout)
            // Our retries are the only ones: a hidden layer would break the deadline and
            // the request counts tests rely on.
            .retry(reqwest::retry::never())
            // A redirect could carry the key to another host; the API has none to follow.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ApiError::Setup {
                what: sanitize(&e.without_url().to_string(), ""),
            })?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                base: settings.api_url.trim_end_matches('/').to_owned(),
                key,
                limit: RateLimit::new(settings.requests_per_second, clock.clone()),
                clock,
                request_timeout: settings.request_timeout,
                retry_deadline: settings.retry_deadline,
                management_url: settings.management_url.clone(),
                management_timeout: settings.management_timeout,
                observer: std::sync::OnceLock::new(),
            }),
        })
    }

    /// Tells `observer` about every request from now on (for metrics); set once, later
    /// calls are ignored. Clones share it.
    pub fn observe_with(&self, observer: CallObserver) {
        let _ = self.inner.observer.set(observer);
    }

    /// The clock this client sleeps on (tracking polls on the same one).
    pub fn clock(&self) -> &SharedClock {
        &self.inner.clock
    }

    /// `cloudamqp.management_url`, the template of instances' management API addresses.
    pub fn management_url(&self) -> &str {
        &self.inner.management_url
    }

    /// One request to an instance's management API, after the shared rate limit, within
    /// the management timeout; the observer hears it as `call`. Basic auth as given: the
    /// password is exposed only here.
    pub(super) async fn send_management(
        &self,
        url: &str,
        user: &str,
        password: &SecretString,
        call: &'static str,
    ) -> Result<(reqwest::StatusCode, Vec<u8>), reqwest::Error> {
        let inner = &self.inner;
        inner.limit.until_ready().await;
        let observe = |status: Option<u16>| {
            if let Some(observer) = inner.observer.get() {
                observer(call, status);
            }
        };
        let response = match inner
            .http
            .get(url)
            .timeout(inner.management_timeout)
            .basic_auth(user, Some(password.expose_secret()))
            .send()
            .await
        {
            Ok(response) => response,
            Err(error) => {
                observe(None);
                return Err(error);
            }
        };
        let status = response.status();
        observe(Some(status.as_u16()));
        Ok((status, response.bytes().await?.to_vec()))
    }

    /// `cloudamqp.retry_deadline`: how long transient failures are retried.
    pub(super) fn retry_deadline(&self) -> Duration {
        self.inner.retry_deadline
    }

    /// The management timeout, for messages.
    pub(super) fn management_timeout(&self) -> Duration {
        self.inner.management_timeout
    }

    /// `GET /instances`: every instance of the account.
    pub async fn list_instances(&self) -> Result<Vec<InstanceSummary>, ApiError> {
        self.get_list("/instances", self.inner.retry_deadline).await
    }

    /// `GET /instances/{id}`.
    pub async fn instance(&self, id: u64) -> Result<Instance, ApiError> {
        self.instance_within(id, self.inner.retry_deadline).await
    }

    /// `GET /instances/{id}`, retried for at most `patience` (never longer than
    /// `cloudamqp.retry_deadline`); the first attempt is always made.
    pub async fn instance_within(&self, id: u64, patience: Duration) -> Result<Instance, ApiError> {
        self.get_json(&format!("/instances/{id}"), patience).await
    }

    /// `GET /instances/{id}/nodes`.
    pub async fn nodes(&self, id: u64) -> Result<Vec<Node>, ApiError> {
        self.nodes_within(id, self.inner.retry_deadline).await
    }

    /// `GET /instances/{id}/nodes`, retried for at most `patience` (as
    /// [`instance_within`](Self::instance_within)).
    pub async fn nodes_within(&self, id: u64, patience: Duration) -> Result<Vec<Node>, ApiError> {
        self.get_list(&format!("/instances/{id}/nodes"), patience)
            .await
    }

    /// `GET /plans`, broker plans only (`vpc`/`vpn` entries dropped), in API order
    /// (cheapest first).
    pub async fn plans(&self) -> Result<Vec<Plan>, ApiError> {
        let plans: Vec<Plan> = self.get_list("/plans", self.inner.retry_deadline).await?;
        Ok(plans.into_iter().filter(Plan::is_broker).collect())
    }

    /// `PUT /instances/{id}` with `{"plan": plan}`: starts the (asynchronous) plan change.
    /// `Ok` means CloudAMQP accepted it; follow it with
    /// [`track_change`](super::tracking::track_change).
    ///
    /// An attempt that may have reached CloudAMQP but got no answer (no answer within
    /// `request_timeout`, the connection lost after sending) is never sent again: had it got
    /// through, a second PUT could change the plan twice (or start a second change once the
    /// first has finished). It ends the call with its `Transient` error, and the caller
    /// watches the instance to learn whether the change started. Only a clear answer (429,
    /// 503, 423, 502, 504, backend timeout) or a connection that was never made is retried.
    ///
    /// A retry after a 502, a 504 or a backend timeout (answers after which the request may
    /// have been passed on and applied) that answers 422 "Please wait…" means that attempt
    /// did get through and the change is running: that counts as accepted, not as busy. After
    /// a 423 (locked) or a 503 nothing was applied, so a 422 "Please wait…" then is another
    /// change's, and the instance is busy. Tracking then confirms where it lands. Conversely, a
    /// `DeadlineExceeded` whose attempts included such a failure does not prove the change
    /// was not started: read the instance before deciding it was refused. When every attempt
    /// was refused outright, the deadline comes as `ChangeRefused`: nothing was started.
    pub async fn change_plan(&self, id: u64, plan: &str) -> Result<(), ApiError> {
        self.change_plan_reporting(id, plan, &PutProgress::default())
            .await
    }

    /// [`change_plan`](Self::change_plan), telling `progress` as it goes whether CloudAMQP
    /// may have the change yet, for a caller that may have to stop before the end.
    pub async fn change_plan_reporting(
        &self,
        id: u64,
        plan: &str,
        progress: &PutProgress,
    ) -> Result<(), ApiError> {
        let body = serde_json::json!({ "plan": plan });
        self.put_change(id, &format!("/instances/{id}"), &body, plan, progress)
            .await
    }

    /// `PUT /instances/{id}/disk` with `{"extra_disk_size": gb, "allow_downtime": false}`:
    /// starts growing the extra disk, node by node, without downtime. Sent at most once
    /// exactly as [`change_plan`](Self::change_plan) is (an attempt that may have reached
    /// CloudAMQP is never repeated); follow it with
    /// [`track_disk_change`](super::tracking::track_disk_change).
    pub async fn change_disk_reporting(
        &self,
        id: u64,
        gb: u32,
        progress: &PutProgress,
    ) -> Result<(), ApiError> {
        let body = serde_json::json!({ "extra_disk_size": gb, "allow_downtime": false });
        let target = format!("extra disk {gb} GB");
        self.put_change(
            id,
            &format!("/instances/{id}/disk"),
            &body,
            &target,
            progress,
        )
        .await
    }

    /// One asynchronous change (`target` says what, for logs), sent with the rules above.
    async fn put_change(
        &self,
        id: u64,
        path: &str,
        body: &serde_json::Value,
        target: &str,
        progress: &PutProgress,
    ) -> Result<(), ApiError> {
        let fate_unknown = AtomicBool::new(false);
        let what = format!("PUT {path}");
        let inner = &self.inner;
        // The outer result is the retry loop's; the inner one ends the call at once, retries
        // or not, with an attempt that must not be repeated.
        let outcome = with_retries(&inner.clock, inner.retry_deadline, &what, || async {
            // The turn first, then the gate: a replica's lease must cover the request from
            // when it can leave, not from before a wait for the rate limit.
            inner.limit.until_ready().await;
            if let Some(gate) = &progress.gate
                && let Err(why) = gate().await
            {
                tracing::warn!(instance = id, target, %why, "not sending the change");
                return Ok(Err(ApiError::NotHeld { why }));
            }
            match self
                .exchange_now(Method::PUT, path, Some(body), Some(&progress.reached))
                .await
            {
                Ok(answer) => {
                    let message = serde_json::from_slice::<serde_json::Value>(&answer)
                        .ok()
                        .and_then(|v| v.get("message")?.as_str().map(str::to_owned))
                        .unwrap_or_default();
                    tracing::info!(
                        instance = id,
                        target,
                        answer = %sanitize(&message, inner.key.expose_secret()),
                        "CloudAMQP accepted the change"
                    );
                    Ok(Ok(()))
                }
                Err(Failed {
                    error,
                    fate: Fate::Unanswered,
                }) => {
                    tracing::warn!(
                        instance = id,
                        target,
                        %error,
                        "the change may have reached CloudAMQP without an answer: not sending it again"
                    );
                    Ok(Err(error))
                }
                Err(Failed {
                    error: ApiError::InstanceBusy { message },
                    ..
                }) if fate_unknown.load(Ordering::Relaxed) => {
                    tracing::warn!(
                        instance = id,
                        target,
                        answer = %message,
                        "instance busy after an earlier attempt of unknown fate: taking the change as accepted"
                    );
                    Ok(Ok(()))
                }
                Err(Failed { error, fate }) => {
                    if fate == Fate::MaybeApplied {
                        fate_unknown.store(true, Ordering::Relaxed);
                    }
                    // Refused outright, and no earlier attempt may have got through:
                    // CloudAMQP does not have the change.
                    progress
                        .reached
                        .store(fate_unknown.load(Ordering::Relaxed), Ordering::Relaxed);
                    Err(error)
                }
            }
        })
        .await;
        progress.ended.store(true, Ordering::Relaxed);
        outcome
            .map_err(|error| match error {
                ApiError::DeadlineExceeded { .. } if !fate_unknown.load(Ordering::Relaxed) => {
                    ApiError::ChangeRefused(Box::new(error))
                }
                other => other,
            })
            .and_then(|attempt| attempt)
    }

    /// A GET retried for `patience`, capped at `retry_deadline`.
    async fn get_json<T: DeserializeOwned>(
        &self,
        path: &str,
        patience: Duration,
    ) -> Result<T, ApiError> {
        let what = format!("GET {path}");
        with_retries(
            &self.inner.clock,
            patience.min(self.inner.retry_deadline),
            &what,
            || async {
                let body = self.attempt(Method::GET, path, None).await?;
                serde_json::from_slice(&body).map_err(|e| self.malformed(path, &e))
            },
        )
        .await
    }

    pub(super) async fn get_list<T: DeserializeOwned>(
        &self,
        path: &str,
        patience: Duration,
    ) -> Result<Vec<T>, ApiError> {
        let what = format!("GET {path}");
        with_retries(
            &self.inner.clock,
            patience.min(self.inner.retry_deadline),
            &what,
            || async {
                let body = self.attempt(Method::GET, path, None).await?;
                let (items, skipped) = decode_list(&body).map_err(|e| self.malformed(path, &e))?;
                if skipped > 0 {
                    // Only the count: the entries may hold credentials.
                    tracing::warn!(path, skipped, "skipped list entries that could not be read");
                }
                Ok(items)
            },
        )
        .await
    }

    fn malformed(&self, path: &str, error: &serde_json::Error) -> ApiError {
        ApiError::Malformed {
            what: sanitize(&format!("{path}: {error}"), self.inner.key.expose_secret()),
        }
    }

    /// One request, after the rate limit; the body of a success, else the classified error.
    pub(super) async fn attempt(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Vec<u8>, ApiError> {
        self.exchange(method, path, body, None)
            .await
            .map_err(|failed| failed.error)
    }

    /// [`Self::attempt`], telling apart the failures after which the request may have taken
    /// effect without our learning it. `sending` is set once the rate limit lets the
    /// request go (a stop while it waits for its turn has sent nothing).
    pub(super) async fn exchange(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
        sending: Option<&AtomicBool>,
    ) -> Result<Vec<u8>, Failed> {
        self.inner.limit.until_ready().await;
        self.exchange_now(method, path, body, sending).await
    }

    /// [`Self::exchange`] once the rate limit let the request go.
    async fn exchange_now(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
        sending: Option<&AtomicBool>,
    ) -> Result<Vec<u8>, Failed> {
        let inner = &self.inner;
        if let Some(sending) = sending {
            // From here until a refusal comes back, the request may reach CloudAMQP.
            sending.store(true, Ordering::Relaxed);
        }
        let mut request = inner
            .http
            .request(method.clone(), format!("{}{path}", inner.base))
            // The one place the key is exposed; reqwest marks the header sensitive.
            .basic_auth("", Some(inner.key.expose_secret()));
        if let Some(body) = body {
            request = request.json(body);
        }
        let observe = |status: Option<u16>| {
            if let Some(observer) = inner.observer.get() {
                observer(call_name(&method, path), status);
            }
        };
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => {
                observe(None);
                // A connection that was never made carried nothing; any other failure (a
                // timeout, a connection lost) may come after the request was received.
                let fate = if e.is_connect() {
                    Fate::NotApplied
                } else {
                    Fate::Unanswered
                };
                return Err(Failed {
                    error: self.transport_error(e),
                    fate,
                });
            }
        };
        let status = response.status();
        observe(Some(status.as_u16()));
        let headers = response.headers().clone();
        let bytes = response.bytes().await.map_err(|e| Failed {
            error: self.transport_error(e),
            fate: Fate::Unanswered,
        })?;
        tracing::debug!(%method, path, status = status.as_u16(), "CloudAMQP answered");
        if status.is_success() {
            return Ok(bytes.to_vec());
        }
        let error = classify(
            status,
            &headers,
            &bytes,
            inner.clock.now(),
            inner.key.expose_secret(),
        );
        // A gateway's 502/504, or CloudAMQP's own backend timeout (a 400 classed transient),
        // may come after the request was passed on; a 423 (locked) or a 503 refused it before
        // anything began. Every other answer is taken as a refusal (not retried; the change is
        // recorded failed with `needs_attention`, for a human to look).
        let fate = if matches!(status.as_u16(), 502 | 504)
            || (status.as_u16() == 400 && matches!(error, ApiError::Transient { .. }))
        {
            Fate::MaybeApplied
        } else {
            Fate::NotApplied
        };
        Err(Failed { error, fate })
    }

    /// A failure below HTTP: always transient, described without the URL.
    fn transport_error(&self, error: reqwest::Error) -> ApiError {
        let error = error.without_url();
        let what = if error.is_timeout() {
            format!(
                "no answer within {}",
                crate::duration::display(self.inner.request_timeout)
            )
        } else {
            let mut text = error.to_string();
            let mut source = std::error::Error::source(&error);
            while let Some(cause) = source {
                text.push_str(": ");
                text.push_str(&cause.to_string());
                source = cause.source();
            }
            if error.is_connect() {
                format!("cannot connect: {text}")
            } else {
                format!("connection failed: {text}")
            }
        };
        ApiError::Transient {
            what: sanitize(&what, self.inner.key.expose_secret()),
        }
    }
}

/// A failed attempt.
pub(super) struct Failed {
    pub(super) error: ApiError,
    pub(super) fate: Fate,
}

/// What is known of a plan change while [`CloudAmqpClient::change_plan_reporting`] runs.
#[derive(Default)]
pub struct PutProgress {
    reached: AtomicBool,
    ended: AtomicBool,
    /// Asked before every attempt (a replica's lease): `Err` ends the call unsent.
    gate: Option<AttemptGate>,
}

/// A check before each attempt of a PUT; `Err(why)` stops it before anything is sent.
pub type AttemptGate = std::sync::Arc<
    dyn Fn() -> std::pin::Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync,
>;

impl std::fmt::Debug for PutProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PutProgress")
            .field("reached", &self.reached)
            .field("ended", &self.ended)
            .field("gated", &self.gate.is_some())
            .finish()
    }
}

impl PutProgress {
    /// Progress of a PUT whose every attempt first passes `gate`.
    pub fn gated(gate: AttemptGate) -> Self {
        Self {
            gate: Some(gate),
            ..Self::default()
        }
    }

    /// Whether the call was interrupted before anything could reach CloudAMQP: it has not
    /// ended (an ended call's outcome is its caller's to record) and
    /// [`may_have_reached`](Self::may_have_reached) is `false`.
    pub fn never_sent(&self) -> bool {
        !self.ended.load(Ordering::Relaxed) && !self.may_have_reached()
    }

    /// Whether CloudAMQP may have the change: an attempt is out and unanswered, one got no
    /// answer or an answer that does not say, or it was accepted. `false` while nothing was
    /// sent or every attempt so far was refused outright (a 423, 503, 429, a connection
    /// never made): then the change can be sent again without doing it twice.
    pub fn may_have_reached(&self) -> bool {
        self.reached.load(Ordering::Relaxed)
    }
}

/// Whether a failed attempt may have taken effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fate {
    /// Refused, or never sent (a connection that was never made): nothing happened.
    NotApplied,
    /// An answer that comes after the request may have been passed on (a gateway's 502 or
    /// 504, CloudAMQP's backend timeout).
    MaybeApplied,
    /// The request may have reached CloudAMQP, and no answer came back.
    Unanswered,
}

/// The metric name of a request.
fn call_name(method: &Method, path: &str) -> &'static str {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method.as_str(), segments.as_slice()) {
        ("PUT", ["instances", _]) => "change_plan",
        ("GET", ["instances"]) => "list_instances",
        ("GET", ["instances", _]) => "get_instance",
        ("GET", ["instances", _, "nodes"]) => "get_nodes",
        ("GET", ["plans"]) => "list_plans",
        _ => "other",
    }
}
