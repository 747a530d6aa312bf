//! Alarms and notification recipients of an instance (`/instances/{id}/alarms[/recipients]`),
//! what `setup` writes and `check --online` reads.
//!
//! Every call goes through the client's one path (rate limit, timeout, retries of transient
//! failures inside `cloudamqp.retry_deadline`). A `PUT` sends the whole object, so sending it
//! twice is harmless and it is retried like a `GET`. A `POST` is not idempotent (CloudAMQP
//! would hold two recipients or two alarms): once an attempt may have reached CloudAMQP
//! without an answer, it is never sent again here; the call ends with
//! [`PostError::Unanswered`] and the caller lists before deciding (cloudamqp-api.md: "after a
//! timeout, list before retrying").
//!
//! A recipient's `value` holds the webhook's token: it is kept out of `Debug`, out of every
//! log line and out of every error text here.

use std::fmt;

use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize};

use super::client::{CloudAmqpClient, Failed, Fate};

/// The alarm types whose alarm carries a `value_threshold` (CloudAMQP requires one, and
/// sends `time_threshold` 600 when none is given).
pub const THRESHOLD_TYPES: &[&str] = &[
    "cpu",
    "memory",
    "disk",
    "queue",
    "connection",
    "flow",
    "consumer",
];
use super::error::ApiError;
use super::retry::with_retries;

/// One notification recipient of `GET …/alarms/recipients`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct Recipient {
    pub id: u64,
    /// `email`, `webhook`, `slack`, …
    #[serde(rename = "type", default, deserialize_with = "null_as_default")]
    pub kind: String,
    /// The address or URL, in clear (a webhook's token included): never log it.
    #[serde(default, deserialize_with = "null_as_default")]
    pub value: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub name: String,
}

impl fmt::Debug for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recipient")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// One alarm of `GET …/alarms`. Fields a type does not have are `None` (the `notice` alarm
/// has no thresholds and `reminder_interval: null`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AlarmConfig {
    pub id: u64,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, deserialize_with = "lenient_number")]
    pub value_threshold: Option<u64>,
    /// Seconds the value must hold before the alarm is sent.
    #[serde(default, deserialize_with = "lenient_number")]
    pub time_threshold: Option<u64>,
    /// Seconds between reminders; 0 = never.
    #[serde(default, deserialize_with = "lenient_number")]
    pub reminder_interval: Option<u64>,
    /// Recipient ids; empty means every recipient.
    #[serde(default, deserialize_with = "null_as_default")]
    pub recipients: Vec<u64>,
    #[serde(default = "enabled_by_default", deserialize_with = "lenient_enabled")]
    pub enabled: bool,
}

impl AlarmConfig {
    /// Whether the alarm reaches recipient `id`: it names it, or names none (every one).
    pub fn reaches(&self, id: u64) -> bool {
        self.recipients.is_empty() || self.recipients.contains(&id)
    }
}

/// The alarm `setup` writes (`POST` creates it, `PUT` replaces every field).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlarmSpec {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_threshold: Option<u64>,
    pub time_threshold: u64,
    pub reminder_interval: u64,
    pub recipients: Vec<u64>,
    pub enabled: bool,
}

/// A `POST` that did not create its object, or may have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PostError {
    /// CloudAMQP answered (a refusal, or transient failures until the deadline, none of
    /// which can have created anything).
    #[error(transparent)]
    Api(#[from] ApiError),
    /// An attempt may have reached CloudAMQP and no answer came back: the object may exist.
    #[error(
        "the request may have reached CloudAMQP but its answer was lost ({0}); not sent again blindly"
    )]
    Unanswered(ApiError),
}

impl CloudAmqpClient {
    /// `GET /instances/{id}/alarms/recipients`.
    pub async fn recipients(&self, instance: u64) -> Result<Vec<Recipient>, ApiError> {
        self.get_list(
            &format!("/instances/{instance}/alarms/recipients"),
            self.retry_deadline(),
        )
        .await
    }

    /// `GET /instances/{id}/alarms`.
    pub async fn alarms(&self, instance: u64) -> Result<Vec<AlarmConfig>, ApiError> {
        self.get_list(
            &format!("/instances/{instance}/alarms"),
            self.retry_deadline(),
        )
        .await
    }

    /// `POST /instances/{id}/alarms/recipients`: a webhook recipient (201, the object with
    /// its id).
    pub async fn create_webhook_recipient(
        &self,
        instance: u64,
        name: &str,
        url: &SecretString,
    ) -> Result<Recipient, PostError> {
        let path = format!("/instances/{instance}/alarms/recipients");
        let body = webhook_body(name, url);
        let answer = self.post_once(&path, &body).await?;
        Ok(self.read_answer(&path, &answer, "a recipient")?)
    }

    /// `PUT /instances/{id}/alarms/recipients/{rid}` (200, the full object): makes it a
    /// webhook recipient named `name` sending to `url`.
    pub async fn update_webhook_recipient(
        &self,
        instance: u64,
        recipient: u64,
        name: &str,
        url: &SecretString,
    ) -> Result<Recipient, ApiError> {
        let path = format!("/instances/{instance}/alarms/recipients/{recipient}");
        let answer = self.put(&path, &webhook_body(name, url)).await?;
        self.read_answer(&path, &answer, "a recipient")
    }

    /// `POST /instances/{id}/alarms` (201, the object with its id).
    pub async fn create_alarm(
        &self,
        instance: u64,
        alarm: &AlarmSpec,
    ) -> Result<AlarmConfig, PostError> {
        let path = format!("/instances/{instance}/alarms");
        let answer = self.post_once(&path, &to_json(alarm)).await?;
        Ok(self.read_answer(&path, &answer, "an alarm")?)
    }

    /// `PUT /instances/{id}/alarms/{aid}` (201 — sic —, the full object).
    pub async fn update_alarm(
        &self,
        instance: u64,
        alarm_id: u64,
        alarm: &AlarmSpec,
    ) -> Result<AlarmConfig, ApiError> {
        let path = format!("/instances/{instance}/alarms/{alarm_id}");
        let answer = self.put(&path, &to_json(alarm)).await?;
        self.read_answer(&path, &answer, "an alarm")
    }

    /// A `PUT` of a whole object: the same again changes nothing, so every transient
    /// failure is retried, an unanswered one included.
    async fn put(&self, path: &str, body: &serde_json::Value) -> Result<Vec<u8>, ApiError> {
        let what = format!("PUT {path}");
        with_retries(self.clock(), self.retry_deadline(), &what, || async {
            self.attempt(Method::PUT, path, Some(body)).await
        })
        .await
    }

    /// A `POST`, retried only while no attempt can have reached CloudAMQP (a refusal such
    /// as a 429, 503 or 423, or a connection never made).
    async fn post_once(&self, path: &str, body: &serde_json::Value) -> Result<Vec<u8>, PostError> {
        let what = format!("POST {path}");
        let outcome = with_retries(self.clock(), self.retry_deadline(), &what, || async {
            match self.exchange(Method::POST, path, Some(body), None).await {
                Ok(answer) => Ok(Ok(answer)),
                Err(Failed {
                    error,
                    fate: Fate::Unanswered | Fate::MaybeApplied,
                }) => {
                    tracing::warn!(path, %error, "the POST may have reached CloudAMQP without an answer: not sending it again");
                    Ok(Err(PostError::Unanswered(error)))
                }
                Err(Failed { error, .. }) => Err(error),
            }
        })
        .await;
        outcome?
    }

    /// The object of a success answer; an unreadable one is described without its content
    /// (a recipient's value holds a token).
    fn read_answer<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        answer: &[u8],
        what: &str,
    ) -> Result<T, ApiError> {
        serde_json::from_slice(answer).map_err(|_| ApiError::Malformed {
            what: format!("{path}: the answer is not {what}"),
        })
    }
}

fn webhook_body(name: &str, url: &SecretString) -> serde_json::Value {
    // The one place the webhook's token leaves the secret.
    serde_json::json!({
        "type": "webhook",
        "value": url.expose_secret(),
        "name": name,
        "options": {},
    })
}

fn to_json(alarm: &AlarmSpec) -> serde_json::Value {
    // Plain strings, numbers, booleans and a list: serialising cannot fail.
    serde_json::to_value(alarm).unwrap_or_default()
}

fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// A count of seconds or a threshold as CloudAMQP may write it: an integer, a float, a
/// numeric string or `null`.
fn lenient_number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    let value = Option::<serde_json::Value>::deserialize(deserializer)?;
    Ok(match value {
        Some(serde_json::Value::Number(n)) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite() && *f >= 0.0)
                // Whole seconds or percent: a fraction is CloudAMQP's rounding, not ours.
                .map(|f| f.round() as u64)
        }),
        Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    })
}

fn enabled_by_default() -> bool {
    true
}

fn lenient_enabled<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    Ok(Option::<bool>::deserialize(deserializer)?.unwrap_or(true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_shapes_are_read_nulls_and_absent_fields_included() {
        let recipients: Vec<Recipient> = serde_json::from_str(
            r#"[{"id":661,"type":"email","value":"team@x","name":"Default","options":null,"last_status":null},
                {"id":662,"type":"webhook","value":"https://h/a?token=SECRET","name":null,"options":{}}]"#,
        )
        .unwrap();
        assert_eq!(recipients[1].name, "");
        assert!(!format!("{recipients:?}").contains("SECRET"));
        let alarms: Vec<AlarmConfig> = serde_json::from_str(
            r#"[{"id":679,"type":"notice","reminder_interval":null,"recipients":[],"enabled":true},
                {"id":680,"type":"cpu","value_threshold":90,"time_threshold":600,"reminder_interval":0,"recipients":[662],"enabled":true,"queue_regex":null}]"#,
        )
        .unwrap();
        assert_eq!(alarms[0].value_threshold, None);
        assert_eq!(alarms[0].reminder_interval, None);
        assert!(alarms[0].reaches(662), "recipients [] reach everyone");
        assert_eq!(alarms[1].value_threshold, Some(90));
        assert!(alarms[1].reaches(662) && !alarms[1].reaches(661));
    }

    #[test]
    fn an_alarm_spec_leaves_out_a_threshold_it_has_not() {
        let spec = AlarmSpec {
            kind: "netsplit".into(),
            value_threshold: None,
            time_threshold: 300,
            reminder_interval: 0,
            recipients: vec![662],
            enabled: true,
        };
        assert_eq!(
            to_json(&spec),
            serde_json::json!({"type":"netsplit","time_threshold":300,"reminder_interval":0,"recipients":[662],"enabled":true})
        );
    }
}
