//! Sinks: one event in, the HTTP requests that deliver it out. Pure: nothing here sends.
//!
//! - webhook: one POST of the event itself ([`Event`] is the generic body), signed with
//!   `X-Autoscaler-Signature: sha256=<hex HMAC-SHA256 of the body bytes>` when a secret is set;
//! - slack: one POST of `{"text": "<summary>"}`;
//! - pagerduty (Events API v2): a `trigger` for `change.failed` and `ladder.top`, with
//!   `dedup_key` `cloudamqp-autoscaler/<instance id>/<type>`; a `change.completed` resolves
//!   both of that instance's keys (two requests; resolving a key with no open alert is a
//!   no-op for PagerDuty). Other kinds make no request. The `test` event triggers an `info`
//!   alert under `cloudamqp-autoscaler/test` and resolves it at once, so a test shows in
//!   the service's alert log without leaving an incident open.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::event::{Event, EventKind};
use super::settings::{NotifySettings, PAGERDUTY_EVENTS_URL};

/// The header that carries the webhook's signature.
pub const SIGNATURE_HEADER: &str = "x-autoscaler-signature";
/// The prefix of PagerDuty dedup keys.
pub const DEDUP_PREFIX: &str = "cloudamqp-autoscaler";
/// PagerDuty refuses a longer `payload.summary`.
const PAGERDUTY_MAX_SUMMARY_CHARS: usize = 1024;

/// One HTTP POST ready to send. Its `Debug` shows neither the URL nor the body (a Slack
/// URL is a credential, a PagerDuty body holds the routing key).
pub struct Prepared {
    pub url: SecretString,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// Secrets a server might echo back, scrubbed from every `why` of an outcome.
    pub(crate) secrets: Vec<SecretString>,
}

impl fmt::Debug for Prepared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prepared")
            .field("url", &"[redacted]")
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("body_bytes", &self.body.len())
            .finish()
    }
}

/// Where a sink sends, with its secrets.
enum Target {
    Webhook {
        url: SecretString,
        secret: Option<SecretString>,
    },
    Slack {
        url: SecretString,
    },
    PagerDuty {
        url: SecretString,
        routing_key: SecretString,
    },
}

/// A configured notification sink.
pub struct Sink {
    target: Target,
    /// `None`: every event.
    events: Option<Vec<EventKind>>,
}

impl fmt::Debug for Sink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("Sink");
        debug
            .field("name", &self.name())
            .field("url", &"[redacted]");
        match &self.target {
            Target::Webhook { secret, .. } => {
                debug.field("signed", &secret.is_some());
            }
            Target::PagerDuty { .. } => {
                debug.field("routing_key", &"[redacted]");
            }
            Target::Slack { .. } => {}
        }
        debug.field("events", &self.events).finish()
    }
}

/// The sinks `settings` turn on, in a fixed order: webhook, slack, pagerduty.
pub fn sinks(settings: &NotifySettings) -> Vec<Sink> {
    let mut sinks = Vec::new();
    if let Some(url) = &settings.webhook.url {
        sinks.push(Sink {
            target: Target::Webhook {
                url: url.clone(),
                secret: settings.webhook.secret.clone(),
            },
            events: settings.webhook.events.clone(),
        });
    }
    if let Some(url) = &settings.slack.url {
        sinks.push(Sink {
            target: Target::Slack { url: url.clone() },
            events: settings.slack.events.clone(),
        });
    }
    if let Some(routing_key) = &settings.pagerduty.routing_key {
        sinks.push(Sink {
            target: Target::PagerDuty {
                url: settings
                    .pagerduty
                    .url
                    .clone()
                    .unwrap_or_else(|| SecretString::from(PAGERDUTY_EVENTS_URL)),
                routing_key: routing_key.clone(),
            },
            events: settings.pagerduty.events.clone(),
        });
    }
    sinks
}

impl Sink {
    /// `webhook`, `slack` or `pagerduty`.
    pub fn name(&self) -> &'static str {
        match self.target {
            Target::Webhook { .. } => "webhook",
            Target::Slack { .. } => "slack",
            Target::PagerDuty { .. } => "pagerduty",
        }
    }

    /// Whether its `events` filter takes `kind`; `test` always passes.
    pub fn wants(&self, kind: EventKind) -> bool {
        kind == EventKind::Test
            || self
                .events
                .as_ref()
                .is_none_or(|events| events.contains(&kind))
    }

    /// The requests that deliver `event`, to send in this order (none: nothing to send,
    /// e.g. PagerDuty and a `change.started`). The filter is not applied here: see
    /// [`Self::wants`].
    pub fn requests(&self, event: &Event) -> Vec<Prepared> {
        match &self.target {
            Target::Webhook { url, secret } => {
                let body = serde_json::to_vec(event).expect("an event always serializes");
                let mut prepared = post_json(url, body, vec![url.clone()]);
                if let Some(secret) = secret {
                    let value = format!("sha256={}", sign(secret, &prepared.body));
                    prepared.headers.insert(
                        HeaderName::from_static(SIGNATURE_HEADER),
                        HeaderValue::try_from(value).expect("hex is a valid header value"),
                    );
                }
                vec![prepared]
            }
            Target::Slack { url } => {
                let body = json!({ "text": slack_escape(&event.summary) });
                vec![post_json(
                    url,
                    body.to_string().into_bytes(),
                    vec![url.clone()],
                )]
            }
            Target::PagerDuty { url, routing_key } => pagerduty_bodies(event, routing_key)
                .into_iter()
                .map(|body| {
                    post_json(
                        url,
                        body.to_string().into_bytes(),
                        vec![url.clone(), routing_key.clone()],
                    )
                })
                .collect(),
        }
    }
}

fn post_json(url: &SecretString, body: Vec<u8>, secrets: Vec<SecretString>) -> Prepared {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Prepared {
        url: url.clone(),
        headers,
        body,
        secrets,
    }
}

/// The lowercase hex HMAC-SHA256 of `body` under `secret`.
pub fn sign(secret: &SecretString, body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.expose_secret().as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Slack reads `&`, `<` and `>` as markup (links, mentions): they are escaped, so the
/// summary shows as written.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// `cloudamqp-autoscaler/<instance id>/<type>` (no instance: `cloudamqp-autoscaler/<type>`).
pub fn dedup_key(instance: Option<u64>, kind: EventKind) -> String {
    match instance {
        Some(id) => format!("{DEDUP_PREFIX}/{id}/{kind}"),
        None => format!("{DEDUP_PREFIX}/{kind}"),
    }
}

/// The Events API v2 bodies for `event`, in sending order.
fn pagerduty_bodies(event: &Event, routing_key: &SecretString) -> Vec<Value> {
    let instance = event.instance.as_ref().map(|i| i.id);
    let key = routing_key.expose_secret();
    let trigger = |dedup: String, severity: &str| {
        let source = match &event.instance {
            Some(i) => i
                .name
                .clone()
                .unwrap_or_else(|| format!("cloudamqp instance {}", i.id)),
            None => DEDUP_PREFIX.to_owned(),
        };
        json!({
            "routing_key": key,
            "event_action": "trigger",
            "dedup_key": dedup,
            "client": DEDUP_PREFIX,
            "payload": {
                "summary": event.summary.chars().take(PAGERDUTY_MAX_SUMMARY_CHARS).collect::<String>(),
                "source": source,
                "severity": severity,
                "timestamp": event.time,
                "component": "cloudamqp",
                "class": event.kind.as_str(),
                "custom_details": event,
            },
        })
    };
    let resolve = |dedup: String| {
        json!({
            "routing_key": key,
            "event_action": "resolve",
            "dedup_key": dedup,
        })
    };
    match event.kind {
        EventKind::ChangeFailed => vec![trigger(dedup_key(instance, event.kind), "error")],
        EventKind::LadderTop => vec![trigger(dedup_key(instance, event.kind), "warning")],
        EventKind::ChangeCompleted => [EventKind::ChangeFailed, EventKind::LadderTop]
            .map(|kind| resolve(dedup_key(instance, kind)))
            .into(),
        EventKind::Test => {
            let dedup = format!("{DEDUP_PREFIX}/test");
            vec![trigger(dedup.clone(), "info"), resolve(dedup)]
        }
        EventKind::ChangeStarted | EventKind::ChangeBlocked | EventKind::RulesReloadFailed => {
            Vec::new()
        }
    }
}
