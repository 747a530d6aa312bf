//! Prometheus metrics, one registry per application.
//!
//! The recorder is owned by the application rather than installed globally, so several
//! applications (tests start many in one process) never mix their numbers.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use metrics::{Key, Label, Metadata, Recorder};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

const METADATA: Metadata<'static> = Metadata::new(module_path!(), metrics::Level::INFO, None);
/// Request-duration buckets, seconds: the webhook answers in well under a millisecond
/// unless the disk is slow.
const DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];
/// How often histogram samples are folded into their buckets between scrapes.
pub const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The application's metrics.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    /// Handles of the series whose labels are static (every webhook request touches some):
    /// a lookup here builds no key and allocates nothing.
    counters: Handles<(&'static str, StaticLabels), metrics::Counter>,
    gauges: Handles<&'static str, metrics::Gauge>,
    http_requests: Handles<(&'static str, &'static str, u16), metrics::Histogram>,
}

/// The label names and values of a series with at most two static labels, `""` for none.
type StaticLabels = [&'static str; 4];

/// Registered handles by label values.
struct Handles<K, H>(RwLock<HashMap<K, H>>);

impl<K: Eq + Hash + Copy, H: Clone> Handles<K, H> {
    fn new() -> Self {
        Self(RwLock::new(HashMap::new()))
    }

    /// The handle for `labels`, registered with `register` the first time.
    fn get(&self, labels: K, register: impl FnOnce() -> H) -> H {
        let read = self.0.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(handle) = read.get(&labels) {
            return handle.clone();
        }
        drop(read);
        self.0
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(labels)
            .or_insert_with(register)
            .clone()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Full(
                    "autoscaler_http_request_duration_seconds".into(),
                ),
                DURATION_BUCKETS,
            )
            .expect("the bucket list is not empty")
            .build_recorder();
        let handle = recorder.handle();
        let metrics = Self {
            inner: Arc::new(Inner {
                recorder,
                handle,
                counters: Handles::new(),
                gauges: Handles::new(),
                http_requests: Handles::new(),
            }),
        };
        metrics.describe();
        metrics
    }

    fn describe(&self) {
        let r = &self.inner.recorder;
        for (name, help) in [
            (
                "autoscaler_alarms_received_total",
                "Webhook requests, by alarm type and outcome.",
            ),
            (
                "autoscaler_decisions_total",
                "Decisions taken, by decision and reason.",
            ),
            (
                "autoscaler_plan_changes_total",
                "Plan changes finished, by direction and result.",
            ),
            (
                "autoscaler_disk_changes_total",
                "Extra disk resizes finished, by result.",
            ),
            (
                "autoscaler_scale_down_looks_total",
                "Looks at instances above their floor, by result and reason.",
            ),
            (
                "autoscaler_api_calls_total",
                "CloudAMQP API requests, by call and HTTP status.",
            ),
            (
                "autoscaler_rules_reloads_total",
                "Rules reloads, by result.",
            ),
            (
                "autoscaler_notifications_total",
                "Notification delivery attempts, by sink and result (sent, failed: tried again, dropped: given up).",
            ),
        ] {
            r.describe_counter(name.into(), None, help.into());
        }
        for (name, help) in [
            (
                "autoscaler_changes_in_flight",
                "Plan changes sent and not finished.",
            ),
            (
                "autoscaler_rules_reload_success",
                "1 if the last rules reload succeeded, else 0.",
            ),
            (
                "autoscaler_rules_reload_timestamp_seconds",
                "Unix time of the last rules reload attempt.",
            ),
            (
                "autoscaler_rules_loaded_timestamp_seconds",
                "Unix time the rules in force were loaded.",
            ),
            (
                "autoscaler_alarm_queue_depth",
                "Alarms recorded and waiting for a decision.",
            ),
            (
                "autoscaler_store_healthy",
                "1 if the last write to the state store succeeded.",
            ),
            (
                "autoscaler_schedule_next_opening_timestamp_seconds",
                "Unix time of each schedule's next window opening, by schedule.",
            ),
            (
                "autoscaler_managed_monthly_price",
                "The sum of the catalogue prices of every instance the daemon manages.",
            ),
            (
                "autoscaler_pauses",
                "Pauses in force (set through POST /pause, not yet ended or expired).",
            ),
        ] {
            r.describe_gauge(name.into(), None, help.into());
        }
        r.describe_histogram(
            "autoscaler_http_request_duration_seconds".into(),
            Some(metrics::Unit::Seconds),
            "HTTP request durations, by method, route and status.".into(),
        );
    }

    fn counter(&self, name: &'static str, labels: Vec<Label>) -> metrics::Counter {
        self.inner
            .recorder
            .register_counter(&Key::from_parts(name, labels), &METADATA)
    }

    /// A counter whose labels are all static (at most two): its handle is kept.
    fn static_counter(
        &self,
        name: &'static str,
        labels: &[(&'static str, &'static str)],
    ) -> metrics::Counter {
        let mut key = [""; 4];
        for (slot, (label, value)) in key.chunks_exact_mut(2).zip(labels) {
            slot.copy_from_slice(&[*label, *value]);
        }
        self.inner.counters.get((name, key), || {
            let labels = labels
                .iter()
                .map(|(label, value)| Label::new(*label, *value))
                .collect();
            self.counter(name, labels)
        })
    }

    fn gauge(&self, name: &'static str) -> metrics::Gauge {
        self.inner.gauges.get(name, || {
            self.inner
                .recorder
                .register_gauge(&Key::from_name(name), &METADATA)
        })
    }

    /// A webhook request ended with `outcome` (`accepted`, `invalid`, `unauthorized`, …).
    pub fn alarm_received(&self, kind: &str, outcome: &'static str) {
        let kind = crate::rules::ALARM_TYPES
            .iter()
            .find(|known| **known == kind)
            .map_or("other", |known| *known);
        self.static_counter(
            "autoscaler_alarms_received_total",
            &[("type", kind), ("outcome", outcome)],
        )
        .increment(1);
    }

    /// A decision was taken: `decision` is `change`, `would_change` or `skip`.
    pub fn decision(&self, decision: &'static str, reason: &'static str) {
        self.static_counter(
            "autoscaler_decisions_total",
            &[("decision", decision), ("reason", reason)],
        )
        .increment(1);
    }

    /// A plan change finished with `result` (`completed`, `failed`, `timed_out`, `dry_run`).
    pub fn plan_change(&self, direction: crate::decide::Direction, result: &'static str) {
        self.static_counter(
            "autoscaler_plan_changes_total",
            &[("direction", direction.as_str()), ("result", result)],
        )
        .increment(1);
    }

    /// A disk change finished with `result` (as [`Self::plan_change`]).
    pub fn disk_change(&self, result: &'static str) {
        self.static_counter("autoscaler_disk_changes_total", &[("result", result)])
            .increment(1);
    }

    /// A look at an instance above its floor: `passed` or `failed`, with the reason
    /// (`stabilizing` for a passed look still waiting, `change` for one that stepped down).
    pub fn scale_down_look(&self, passed: bool, reason: &'static str) {
        self.static_counter(
            "autoscaler_scale_down_looks_total",
            &[
                ("result", if passed { "passed" } else { "failed" }),
                ("reason", reason),
            ],
        )
        .increment(1);
    }

    /// One request to CloudAMQP; `status` is the HTTP status, or `error` without one.
    pub fn api_call(&self, call: &'static str, status: Option<u16>) {
        let status = status.map_or_else(|| "error".to_owned(), |s| s.to_string());
        self.counter(
            "autoscaler_api_calls_total",
            vec![Label::new("call", call), Label::new("status", status)],
        )
        .increment(1);
    }

    /// An attempt to deliver a notification to `sink`: `sent`, `failed` (tried again) or
    /// `dropped` (given up).
    pub fn notification(&self, sink: &str, result: &'static str) {
        self.counter(
            "autoscaler_notifications_total",
            vec![
                Label::new("sink", sink.to_owned()),
                Label::new("result", result),
            ],
        )
        .increment(1);
    }

    /// When schedule `name` next opens (Unix seconds).
    pub fn schedule_next_opening(&self, name: &str, at: i64) {
        self.inner
            .recorder
            .register_gauge(
                &Key::from_parts(
                    "autoscaler_schedule_next_opening_timestamp_seconds",
                    vec![Label::new("schedule", name.to_owned())],
                ),
                &METADATA,
            )
            .set(at as f64);
    }

    /// The monthly catalogue price of every instance the daemon manages, summed.
    pub fn managed_monthly_price(&self, total: f64) {
        self.gauge("autoscaler_managed_monthly_price").set(total);
    }

    pub fn changes_in_flight(&self, count: usize) {
        self.gauge("autoscaler_changes_in_flight").set(count as f64);
    }

    pub fn queue_depth(&self, depth: usize) {
        self.gauge("autoscaler_alarm_queue_depth").set(depth as f64);
    }

    pub fn store_healthy(&self, healthy: bool) {
        self.gauge("autoscaler_store_healthy")
            .set(if healthy { 1.0 } else { 0.0 });
    }

    /// How many pauses are in force.
    pub fn pauses(&self, count: usize) {
        self.gauge("autoscaler_pauses").set(count as f64);
    }

    /// A rules reload was attempted at `at`.
    pub fn rules_reload(&self, ok: bool, at: jiff::Timestamp) {
        let result = if ok { "success" } else { "failure" };
        self.static_counter("autoscaler_rules_reloads_total", &[("result", result)])
            .increment(1);
        self.gauge("autoscaler_rules_reload_success")
            .set(if ok { 1.0 } else { 0.0 });
        self.gauge("autoscaler_rules_reload_timestamp_seconds")
            .set(at.as_millisecond() as f64 / 1000.0);
    }

    /// The rules in force were loaded at `at`.
    pub fn rules_loaded(&self, at: jiff::Timestamp) {
        self.gauge("autoscaler_rules_loaded_timestamp_seconds")
            .set(at.as_millisecond() as f64 / 1000.0);
    }

    /// One HTTP request answered; `method` and `route` are bounded labels
    /// (`server::method_label`, `server::route_label`).
    pub fn http_request(
        &self,
        method: &'static str,
        route: &'static str,
        status: u16,
        seconds: f64,
    ) {
        self.inner
            .http_requests
            .get((method, route, status), || {
                self.inner.recorder.register_histogram(
                    &Key::from_parts(
                        "autoscaler_http_request_duration_seconds",
                        vec![
                            Label::new("method", method),
                            Label::new("route", route),
                            Label::new("status", status.to_string()),
                        ],
                    ),
                    &METADATA,
                )
            })
            .record(seconds);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        self.inner.handle.render()
    }

    /// Folds recorded histogram samples into buckets; run every [`UPKEEP_INTERVAL`].
    pub fn upkeep(&self) {
        self.inner.handle.run_upkeep();
    }
}
