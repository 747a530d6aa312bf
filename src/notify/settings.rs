//! `[notify]`: where notifications go. Every URL and key is a secret (a Slack webhook URL
//! is its own credential), so each may also come from a file (`*_file`, e.g. a mounted
//! Kubernetes or Docker secret) or from the environment like every setting.

use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};

use super::event::EventKind;
use crate::duration::serde_human;
use crate::settings::SettingsError;

/// PagerDuty's Events API v2 endpoint, the default of `notify.pagerduty.url`.
pub const PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";
/// The default of `notify.timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// `[notify]`. Default: every sink off.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifySettings {
    /// Time for one request to a sink, connecting included. Default 10 s.
    #[serde(default = "default_timeout", with = "serde_human")]
    pub timeout: Duration,
    #[serde(default)]
    pub webhook: WebhookSettings,
    #[serde(default)]
    pub slack: SlackSettings,
    #[serde(default)]
    pub pagerduty: PagerDutySettings,
}

impl Default for NotifySettings {
    fn default() -> Self {
        Self {
            timeout: DEFAULT_TIMEOUT,
            webhook: WebhookSettings::default(),
            slack: SlackSettings::default(),
            pagerduty: PagerDutySettings::default(),
        }
    }
}

fn default_timeout() -> Duration {
    DEFAULT_TIMEOUT
}

fn default_pagerduty_url() -> Option<SecretString> {
    Some(SecretString::from(PAGERDUTY_EVENTS_URL))
}

/// `[notify.webhook]`: the generic JSON webhook. On when `url` (or `url_file`) is set.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// Where events are POSTed. Default unset (off).
    #[serde(default)]
    pub url: Option<SecretString>,
    /// A file holding `url` (one trailing newline ignored). Default unset.
    #[serde(default)]
    pub url_file: Option<PathBuf>,
    /// Key of `X-Autoscaler-Signature: sha256=<hex HMAC-SHA256 of the body>`. Default unset
    /// (unsigned).
    #[serde(default)]
    pub secret: Option<SecretString>,
    /// A file holding `secret`. Default unset.
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// Which events it gets. Default all.
    #[serde(default, deserialize_with = "event_names")]
    pub events: Option<Vec<EventKind>>,
}

/// `[notify.slack]`: a Slack incoming webhook. On when `url` (or `url_file`) is set.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackSettings {
    /// The incoming webhook's URL. Default unset (off).
    #[serde(default)]
    pub url: Option<SecretString>,
    /// A file holding `url`. Default unset.
    #[serde(default)]
    pub url_file: Option<PathBuf>,
    /// Which events it gets. Default all.
    #[serde(default, deserialize_with = "event_names")]
    pub events: Option<Vec<EventKind>>,
}

/// `[notify.pagerduty]`: PagerDuty's Events API v2. On when `routing_key` (or
/// `routing_key_file`) is set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PagerDutySettings {
    /// The integration's routing key. Default unset (off).
    #[serde(default)]
    pub routing_key: Option<SecretString>,
    /// A file holding `routing_key`. Default unset.
    #[serde(default)]
    pub routing_key_file: Option<PathBuf>,
    /// The Events API endpoint. Default `https://events.pagerduty.com/v2/enqueue`.
    #[serde(default = "default_pagerduty_url")]
    pub url: Option<SecretString>,
    /// Which events it gets (only `change.failed`, `ladder.top` and `change.completed` make
    /// requests). Default all.
    #[serde(default, deserialize_with = "event_names")]
    pub events: Option<Vec<EventKind>>,
}

impl Default for PagerDutySettings {
    fn default() -> Self {
        Self {
            routing_key: None,
            routing_key_file: None,
            url: default_pagerduty_url(),
            events: None,
        }
    }
}

/// `events = ["change.failed", "ladder.top"]`, or from the environment a comma-separated
/// `change.failed,ladder.top`.
fn event_names<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Vec<EventKind>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        List(Vec<String>),
        Text(String),
    }
    let names: Vec<String> = match Option::<Raw>::deserialize(deserializer)? {
        None => return Ok(None),
        Some(Raw::List(names)) => names,
        Some(Raw::Text(text)) => text
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(str::to_owned)
            .collect(),
    };
    names
        .iter()
        .map(|name| {
            EventKind::parse(name.trim()).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "unknown event {name:?}; the events are {}",
                    EventKind::known_names()
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// A secret read from `value` or from `file`, checked: the key names used in errors.
struct SecretSource<'a> {
    key: &'a str,
    file_key: &'a str,
    value: &'a mut Option<SecretString>,
    file: &'a Option<PathBuf>,
    /// Whether the value is a URL that must be http(s).
    is_url: bool,
}

impl SecretSource<'_> {
    fn resolve(self) -> Result<(), SettingsError> {
        let invalid = |why: String| SettingsError::Invalid(why);
        if let Some(path) = self.file {
            if self.value.is_some() {
                return Err(invalid(format!(
                    "notify.{} and notify.{} are both set; set one of them",
                    self.key, self.file_key
                )));
            }
            // The path may be named; the content never is.
            let text = std::fs::read_to_string(path).map_err(|e| {
                invalid(format!(
                    "notify.{}: cannot read {}: {}",
                    self.file_key,
                    path.display(),
                    e.kind()
                ))
            })?;
            let text = text
                .strip_suffix('\n')
                .map(|t| t.strip_suffix('\r').unwrap_or(t))
                .unwrap_or(&text);
            *self.value = Some(SecretString::from(text));
        }
        let Some(value) = self.value.as_ref() else {
            return Ok(());
        };
        let shown_key = if self.file.is_some() {
            self.file_key
        } else {
            self.key
        };
        if value.expose_secret().trim().is_empty() {
            return Err(invalid(format!(
                "notify.{shown_key}: is set but empty; give it a value or leave it unset"
            )));
        }
        if self.is_url {
            // Never the URL itself in the message: it is a credential.
            match reqwest::Url::parse(value.expose_secret().trim()) {
                Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => {}
                _ => {
                    return Err(invalid(format!(
                        "notify.{shown_key}: is not an http(s) URL (the value is a secret and not shown)"
                    )));
                }
            }
        }
        Ok(())
    }
}

impl NotifySettings {
    /// Reads the `*_file` secrets and checks every value; called once when settings load.
    pub(crate) fn resolve(&mut self) -> Result<(), SettingsError> {
        if self.timeout.is_zero() {
            return Err(SettingsError::Invalid(
                "notify.timeout: must be more than zero".into(),
            ));
        }
        let webhook = &mut self.webhook;
        SecretSource {
            key: "webhook.url",
            file_key: "webhook.url_file",
            value: &mut webhook.url,
            file: &webhook.url_file,
            is_url: true,
        }
        .resolve()?;
        SecretSource {
            key: "webhook.secret",
            file_key: "webhook.secret_file",
            value: &mut webhook.secret,
            file: &webhook.secret_file,
            is_url: false,
        }
        .resolve()?;
        let slack = &mut self.slack;
        SecretSource {
            key: "slack.url",
            file_key: "slack.url_file",
            value: &mut slack.url,
            file: &slack.url_file,
            is_url: true,
        }
        .resolve()?;
        let pagerduty = &mut self.pagerduty;
        SecretSource {
            key: "pagerduty.routing_key",
            file_key: "pagerduty.routing_key_file",
            value: &mut pagerduty.routing_key,
            file: &pagerduty.routing_key_file,
            is_url: false,
        }
        .resolve()?;
        SecretSource {
            key: "pagerduty.url",
            file_key: "pagerduty.url",
            value: &mut pagerduty.url,
            file: &None,
            is_url: true,
        }
        .resolve()?;
        Ok(())
    }

    /// Whether any sink is on.
    pub fn any_sink(&self) -> bool {
        self.webhook.url.is_some()
            || self.slack.url.is_some()
            || self.pagerduty.routing_key.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Settings;

    const HOOK: &str = "https://hooks.example.com/autoscaler/s3cret-path-77";
    const SLACK: &str = "https://hooks.slack.com/services/T0/B0/slack-s3cret-91";

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn load(pairs: &[(&str, &str)]) -> Result<NotifySettings, SettingsError> {
        Settings::load_from(None, env(pairs)).map(|s| s.notify)
    }

    fn load_file(text: &str) -> Result<NotifySettings, SettingsError> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, text).unwrap();
        Settings::load_from(Some(&file), env(&[])).map(|s| s.notify)
    }

    #[test]
    fn by_default_every_sink_is_off() {
        let notify = load(&[]).unwrap();
        assert!(!notify.any_sink());
        assert_eq!(notify.timeout, DEFAULT_TIMEOUT);
        assert_eq!(
            notify.pagerduty.url.unwrap().expose_secret(),
            PAGERDUTY_EVENTS_URL
        );
    }

    #[test]
    fn every_sink_comes_from_the_environment() {
        let notify = load(&[
            ("AUTOSCALER__NOTIFY__WEBHOOK__URL", HOOK),
            ("AUTOSCALER__NOTIFY__WEBHOOK__SECRET", "hmac-s3cret"),
            (
                "AUTOSCALER__NOTIFY__WEBHOOK__EVENTS",
                "change.failed, ladder.top",
            ),
            ("AUTOSCALER__NOTIFY__SLACK__URL", SLACK),
            ("AUTOSCALER__NOTIFY__PAGERDUTY__ROUTING_KEY", "pd-key-0123"),
            (
                "AUTOSCALER__NOTIFY__PAGERDUTY__URL",
                "http://127.0.0.1:9/v2/enqueue",
            ),
            ("AUTOSCALER__NOTIFY__TIMEOUT", "3s"),
        ])
        .unwrap();
        assert_eq!(notify.webhook.url.unwrap().expose_secret(), HOOK);
        assert_eq!(
            notify.webhook.secret.unwrap().expose_secret(),
            "hmac-s3cret"
        );
        assert_eq!(
            notify.webhook.events,
            Some(vec![EventKind::ChangeFailed, EventKind::LadderTop])
        );
        assert_eq!(notify.slack.url.unwrap().expose_secret(), SLACK);
        assert_eq!(
            notify.pagerduty.routing_key.unwrap().expose_secret(),
            "pd-key-0123"
        );
        assert_eq!(
            notify.pagerduty.url.unwrap().expose_secret(),
            "http://127.0.0.1:9/v2/enqueue"
        );
        assert_eq!(notify.timeout, Duration::from_secs(3));
    }

    #[test]
    fn events_are_a_list_in_a_file() {
        let notify = load_file(&format!(
            "[notify.slack]\nurl = \"{SLACK}\"\nevents = [\"change.completed\", \"rules.reload_failed\"]\n"
        ))
        .unwrap();
        assert_eq!(
            notify.slack.events,
            Some(vec![
                EventKind::ChangeCompleted,
                EventKind::RulesReloadFailed
            ])
        );
        assert!(notify.webhook.events.is_none());
    }

    #[test]
    fn an_unknown_event_is_named_with_the_known_ones() {
        for err in [
            load_file(&format!(
                "[notify.webhook]\nurl = \"{HOOK}\"\nevents = [\"change.failed\", \"change.exploded\"]\n"
            ))
            .unwrap_err(),
            load(&[("AUTOSCALER__NOTIFY__SLACK__EVENTS", "test")]).unwrap_err(),
        ] {
            let text = err.to_string();
            assert!(text.contains("events"), "{text}");
            assert!(text.contains("change.exploded") || text.contains("\"test\""), "{text}");
            assert!(text.contains(&EventKind::known_names()), "{text}");
        }
    }

    #[test]
    fn secrets_are_read_from_files_without_their_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("url");
        let secret = dir.path().join("secret");
        let key = dir.path().join("key");
        std::fs::write(&url, format!("{HOOK}\n")).unwrap();
        std::fs::write(&secret, "hmac-from-file\r\n").unwrap();
        std::fs::write(&key, "pd-key-from-file").unwrap();
        let notify = load(&[
            (
                "AUTOSCALER__NOTIFY__WEBHOOK__URL_FILE",
                url.to_str().unwrap(),
            ),
            (
                "AUTOSCALER__NOTIFY__WEBHOOK__SECRET_FILE",
                secret.to_str().unwrap(),
            ),
            (
                "AUTOSCALER__NOTIFY__PAGERDUTY__ROUTING_KEY_FILE",
                key.to_str().unwrap(),
            ),
        ])
        .unwrap();
        assert_eq!(notify.webhook.url.unwrap().expose_secret(), HOOK);
        assert_eq!(
            notify.webhook.secret.unwrap().expose_secret(),
            "hmac-from-file"
        );
        assert_eq!(
            notify.pagerduty.routing_key.unwrap().expose_secret(),
            "pd-key-from-file"
        );
    }

    #[test]
    fn an_unreadable_file_is_named_and_its_key_too() {
        let err = load(&[(
            "AUTOSCALER__NOTIFY__SLACK__URL_FILE",
            "/nonexistent/slack-url",
        )])
        .unwrap_err()
        .to_string();
        assert!(err.contains("notify.slack.url_file"), "{err}");
        assert!(err.contains("/nonexistent/slack-url"), "{err}");
    }

    #[test]
    fn a_key_and_its_file_together_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("url");
        std::fs::write(&url, SLACK).unwrap();
        let err = load(&[
            ("AUTOSCALER__NOTIFY__SLACK__URL", SLACK),
            ("AUTOSCALER__NOTIFY__SLACK__URL_FILE", url.to_str().unwrap()),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("notify.slack.url") && err.contains("notify.slack.url_file"),
            "{err}"
        );
        assert!(!err.contains("slack-s3cret"), "{err}");
    }

    #[test]
    fn a_url_that_is_not_http_is_refused_without_being_shown() {
        for (var, value, key) in [
            (
                "AUTOSCALER__NOTIFY__WEBHOOK__URL",
                "ftp://x/s3cret-a",
                "notify.webhook.url",
            ),
            (
                "AUTOSCALER__NOTIFY__SLACK__URL",
                "not a url s3cret-b",
                "notify.slack.url",
            ),
            (
                "AUTOSCALER__NOTIFY__PAGERDUTY__URL",
                "mailto:s3cret-c@x",
                "notify.pagerduty.url",
            ),
        ] {
            let err = load(&[(var, value)]).unwrap_err().to_string();
            assert!(err.contains(key), "{err}");
            assert!(!err.contains("s3cret"), "{err}");
        }
    }

    #[test]
    fn an_empty_secret_is_refused_naming_its_key() {
        for (var, key) in [
            ("AUTOSCALER__NOTIFY__WEBHOOK__URL", "notify.webhook.url"),
            (
                "AUTOSCALER__NOTIFY__WEBHOOK__SECRET",
                "notify.webhook.secret",
            ),
            ("AUTOSCALER__NOTIFY__SLACK__URL", "notify.slack.url"),
            (
                "AUTOSCALER__NOTIFY__PAGERDUTY__ROUTING_KEY",
                "notify.pagerduty.routing_key",
            ),
        ] {
            for value in ["", " "] {
                let err = load(&[(var, value)]).unwrap_err().to_string();
                assert!(
                    err.contains(key) && err.contains("empty"),
                    "{var}={value:?}: {err}"
                );
            }
        }
    }

    #[test]
    fn debug_shows_no_secret() {
        let settings = Settings::load_from(
            None,
            env(&[
                ("AUTOSCALER__NOTIFY__WEBHOOK__URL", HOOK),
                ("AUTOSCALER__NOTIFY__WEBHOOK__SECRET", "hmac-s3cret"),
                ("AUTOSCALER__NOTIFY__SLACK__URL", SLACK),
                ("AUTOSCALER__NOTIFY__PAGERDUTY__ROUTING_KEY", "pd-s3cret"),
            ]),
        )
        .unwrap();
        let shown = format!("{settings:?} {:?}", crate::notify::sinks(&settings.notify));
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(!shown.contains("hooks.example.com"), "{shown}");
    }

    #[test]
    fn a_zero_timeout_is_refused() {
        let err = load(&[("AUTOSCALER__NOTIFY__TIMEOUT", "0s")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("notify.timeout"), "{err}");
    }
}
