//! The instance's own management HTTP API: `GET {management_url}/nodes`, the evidence a
//! step down needs (cloudamqp-api.md, "The instance's own management API").
//!
//! The credentials are the user and password of the instance's `url`
//! (`amqps://user:password@host/vhost`), a secret: they are exposed only while building the
//! `Authorization` header and never appear in an error, a log line or the store. The call
//! goes through the same rate limit as every Customer API call, has its own timeout, and is
//! tried again at most once (after a refused connection or a 502/503/504). Every failure
//! means "no evidence": the caller must never step down on one.

use std::fmt;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};

use super::client::CloudAmqpClient;
use super::error::sanitize;

/// The default `cloudamqp.management_url`: `{host}` is the host of the instance's `url`,
/// `{id}` its integer id.
pub const DEFAULT_MANAGEMENT_URL: &str = "https://{host}/api";

/// One node as `GET /api/nodes` reports it (RabbitMQ; LavinMQ's answer reads the same, with
/// no `mem_alarm` and only the node that answers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerNode {
    /// `rabbit@host-01`.
    pub name: String,
    pub running: bool,
    /// Bytes in use.
    pub mem_used: u64,
    /// Bytes: RabbitMQ's memory high watermark (where it blocks publishers); LavinMQ's RAM.
    pub mem_limit: u64,
    /// `mem_used` passed `mem_limit` (RabbitMQ only; false when absent).
    pub mem_alarm: bool,
    pub disk_free_alarm: bool,
}

/// What the management API could not give. Every variant means the same to a look: no
/// metrics (`metrics_unavailable`); the message says which, without a credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetricsError {
    /// The instance object carries no usable `url` (no host, no user).
    #[error("the instance's url gives no management API address or credentials")]
    NoAccess,
    /// `cloudamqp.management_url` with the instance's host filled in is not a URL.
    #[error("cloudamqp.management_url gives no valid URL for this instance: {0}")]
    BadUrl(String),
    /// No connection, a connection lost, or a 502/503/504, twice.
    #[error("the management API cannot be reached: {0}")]
    Unreachable(String),
    /// No answer within the management timeout.
    #[error("the management API did not answer within {0}")]
    Timeout(String),
    /// 401/403: the instance's user may not read `/api/nodes` (it needs the `monitoring` tag).
    #[error(
        "the management API refused the instance's credentials (HTTP {0}); the user needs the monitoring tag"
    )]
    Refused(u16),
    /// Another status.
    #[error("the management API answered HTTP {0}")]
    Status(u16),
    /// A success whose body is not a node list we can read.
    #[error("the management API's node list cannot be read: {0}")]
    Malformed(String),
}

/// Where and as whom to read one instance's management API, from its `url`. Debug never
/// shows the password.
#[derive(Clone)]
pub struct ManagementAccess {
    /// `{management_url}/nodes` with the host and id filled in.
    pub nodes_url: String,
    pub user: String,
    pub password: SecretString,
}

impl fmt::Debug for ManagementAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManagementAccess")
            .field("nodes_url", &self.nodes_url)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl ManagementAccess {
    /// The management API of instance `id` whose AMQP `url` is given, by the template (see
    /// [`DEFAULT_MANAGEMENT_URL`]).
    pub fn new(template: &str, id: u64, url: &SecretString) -> Result<Self, MetricsError> {
        let parsed =
            reqwest::Url::parse(url.expose_secret()).map_err(|_| MetricsError::NoAccess)?;
        let host = parsed.host_str().filter(|h| !h.is_empty());
        let (Some(host), user) = (host, parsed.username()) else {
            return Err(MetricsError::NoAccess);
        };
        if user.is_empty() {
            return Err(MetricsError::NoAccess);
        }
        let decode = |text: &str| {
            percent_encoding::percent_decode_str(text)
                .decode_utf8()
                .map(|t| t.into_owned())
                .map_err(|_| MetricsError::NoAccess)
        };
        let user = decode(user)?;
        let password = SecretString::from(decode(parsed.password().unwrap_or(""))?);
        let base = template
            .replace("{host}", host)
            .replace("{id}", &id.to_string());
        let nodes_url = format!("{}/nodes", base.trim_end_matches('/'));
        match reqwest::Url::parse(&nodes_url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => {}
            _ => return Err(MetricsError::BadUrl(nodes_url)),
        }
        Ok(Self {
            nodes_url,
            user,
            password,
        })
    }
}

/// Parses `GET /api/nodes`: every node, or why the answer is no evidence. A node that does
/// not run reports few fields (RabbitMQ leaves out its memory); one that runs must report
/// `mem_used` and `mem_limit`.
pub fn parse_nodes(body: &[u8]) -> Result<Vec<BrokerNode>, MetricsError> {
    let raw: Vec<RawNode> =
        serde_json::from_slice(body).map_err(|e| MetricsError::Malformed(e.to_string()))?;
    if raw.is_empty() {
        return Err(MetricsError::Malformed("the list has no node".into()));
    }
    raw.into_iter()
        .map(|node| {
            let running = node.running.unwrap_or(false);
            let memory = node.mem_used.zip(node.mem_limit);
            let (mem_used, mem_limit) = match memory {
                Some(memory) => memory,
                None if !running => (0, 0),
                None => {
                    return Err(MetricsError::Malformed(format!(
                        "node {:?} runs but reports no mem_used or mem_limit",
                        node.name
                    )));
                }
            };
            Ok(BrokerNode {
                name: node.name,
                running,
                mem_used,
                mem_limit,
                mem_alarm: node.mem_alarm.unwrap_or(false),
                disk_free_alarm: node.disk_free_alarm.unwrap_or(false),
            })
        })
        .collect()
}

/// A node as sent; the other ~90 keys are ignored.
#[derive(Deserialize)]
struct RawNode {
    name: String,
    #[serde(default)]
    running: Option<bool>,
    #[serde(default, deserialize_with = "bytes")]
    mem_used: Option<u64>,
    #[serde(default, deserialize_with = "bytes")]
    mem_limit: Option<u64>,
    #[serde(default)]
    mem_alarm: Option<bool>,
    #[serde(default)]
    disk_free_alarm: Option<bool>,
}

/// A byte count: an integer, or a whole non-negative float (some brokers send `1.0e9`).
fn bytes<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    let Some(number) = Option::<serde_json::Number>::deserialize(deserializer)? else {
        return Ok(None);
    };
    if let Some(n) = number.as_u64() {
        return Ok(Some(n));
    }
    match number.as_f64() {
        // Exact for any byte count a broker has.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        Some(f) if (0.0..1.8e19).contains(&f) => Ok(Some(f as u64)),
        _ => Err(serde::de::Error::custom(format!(
            "{number} is not a byte count"
        ))),
    }
}

/// The pause before the one retry, after a refused connection or a gateway error.
pub const MANAGEMENT_RETRY_AFTER: Duration = Duration::from_millis(500);

impl CloudAmqpClient {
    /// `GET {management_url}/nodes` of one instance, as its own user. Tried again once after
    /// a connection that failed or a 502/503/504; a timeout, a refusal or an unreadable
    /// answer ends it at once.
    pub async fn management_nodes(
        &self,
        access: &ManagementAccess,
    ) -> Result<Vec<BrokerNode>, MetricsError> {
        let secret = access.password.expose_secret();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let answer = self
                .send_management(
                    &access.nodes_url,
                    &access.user,
                    &access.password,
                    "management_nodes",
                )
                .await;
            let error = match answer {
                Ok((status, body)) if status.is_success() => return parse_nodes(&body),
                Ok((status, _)) if matches!(status.as_u16(), 401 | 403) => {
                    return Err(MetricsError::Refused(status.as_u16()));
                }
                Ok((status, _)) if matches!(status.as_u16(), 502..=504) => {
                    MetricsError::Unreachable(format!("HTTP {}", status.as_u16()))
                }
                Ok((status, _)) => return Err(MetricsError::Status(status.as_u16())),
                Err(error) if error.is_timeout() => {
                    return Err(MetricsError::Timeout(crate::duration::display(
                        self.management_timeout(),
                    )));
                }
                Err(error) => MetricsError::Unreachable(sanitize(&describe(&error), secret)),
            };
            if attempts >= 2 {
                return Err(error);
            }
            tracing::debug!(%error, "management API call failed; trying once more");
            self.clock().sleep(MANAGEMENT_RETRY_AFTER).await;
        }
    }
}

/// A transport failure with its causes, without the URL.
fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(url: &str) -> Result<ManagementAccess, MetricsError> {
        ManagementAccess::new(
            DEFAULT_MANAGEMENT_URL,
            7,
            &SecretString::from(url.to_owned()),
        )
    }

    #[test]
    fn the_address_and_credentials_come_from_the_instance_url() {
        let a = access("amqps://us%40er:p%3Ass@prod.rmq.cloudamqp.com/vhost").unwrap();
        assert_eq!(a.nodes_url, "https://prod.rmq.cloudamqp.com/api/nodes");
        assert_eq!(a.user, "us@er");
        assert_eq!(a.password.expose_secret(), "p:ss");
        let debug = format!("{a:?}");
        assert!(
            !debug.contains("p:ss") && !debug.contains("p%3Ass"),
            "{debug}"
        );
        let templated = ManagementAccess::new(
            "http://127.0.0.1:9/management/{id}/api/",
            7,
            &SecretString::from("amqps://u:p@h/v".to_owned()),
        )
        .unwrap();
        assert_eq!(
            templated.nodes_url,
            "http://127.0.0.1:9/management/7/api/nodes"
        );
        for bad in ["not a url", "amqps://host/vhost", "amqps://:p@host/v"] {
            assert_eq!(access(bad).unwrap_err(), MetricsError::NoAccess, "{bad}");
        }
        let err = ManagementAccess::new(
            "ftp://{host}",
            7,
            &SecretString::from("amqps://u:p@h/v".to_owned()),
        )
        .unwrap_err();
        assert!(matches!(err, MetricsError::BadUrl(_)));
    }

    #[test]
    fn rabbitmq_and_lavinmq_answers_parse() {
        let rabbit = br#"[{"name":"rabbit@a-01","type":"disc","running":true,"mem_used":123456,
            "mem_limit":1717986918,"mem_alarm":false,"disk_free_alarm":false,"disk_free":9e9,
            "processors":2},{"name":"rabbit@a-02","running":false,"type":"disc"}]"#;
        let nodes = parse_nodes(rabbit).unwrap();
        assert_eq!(nodes.len(), 2);
        assert_eq!(nodes[0].mem_used, 123_456);
        assert_eq!(nodes[0].mem_limit, 1_717_986_918);
        assert!(nodes[0].running && !nodes[1].running);
        // LavinMQ: no mem_alarm, floats are whole.
        let lavin =
            br#"[{"name":"lavinmq@b","running":true,"mem_used":2.0e8,"mem_limit":4294967296,
            "disk_free_alarm":false,"run_queue":0}]"#;
        let nodes = parse_nodes(lavin).unwrap();
        assert_eq!(nodes[0].mem_used, 200_000_000);
        assert!(!nodes[0].mem_alarm);
    }

    #[test]
    fn answers_that_are_no_evidence_are_malformed() {
        for body in [
            &b"<html>"[..],
            b"{}",
            b"[]",
            br#"[{"name":"n","running":true}]"#,
            br#"[{"name":"n","running":true,"mem_used":-1,"mem_limit":1}]"#,
            br#"[{"name":"n","running":true,"mem_used":"12","mem_limit":1}]"#,
        ] {
            assert!(
                matches!(parse_nodes(body), Err(MetricsError::Malformed(_))),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
