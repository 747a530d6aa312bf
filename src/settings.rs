//! Layered settings: the compiled-in `config/default.toml` → `--config FILE` → environment.
//!
//! Every key is typed and validated here, so a bad value stops the command at start-up
//! with a message naming the key, never half-way through a plan change.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use config::{Config, Environment, File, FileFormat};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::duration::serde_human;
use crate::instance::InstanceRef;

/// The compiled-in defaults: the base layer of every configuration.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// Prefix of the environment variables that override settings.
pub const ENV_PREFIX: &str = "AUTOSCALER";
/// Environment variable holding the Customer API key.
pub const API_KEY_ENV: &str = "CLOUDAMQP_API_KEY";
/// The most alarms `server.queue_capacity` may hold waiting (far beyond any storm: the
/// bound keeps a typo from asking the runtime for an impossible channel).
pub const MAX_QUEUE_CAPACITY: usize = 1_000_000;
/// Environment variable holding the default instance.
pub const INSTANCE_ENV: &str = "CLOUDAMQP_INSTANCE_ID";

/// The production Customer API; polling it faster than every 10 s logs a warning.
pub const PRODUCTION_API_URL: &str = "https://customer.cloudamqp.com/api";
/// The fastest poll interval we accept at all.
pub const MIN_POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Slower than this against production is what CloudAMQP asks for.
pub const PRODUCTION_MIN_POLL_INTERVAL: Duration = Duration::from_secs(10);

/// All settings of the daemon and its commands.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Act for real (same as `serve --live`). Default `false`.
    pub live: bool,
    pub server: ServerSettings,
    pub cloudamqp: CloudAmqpSettings,
    pub rules: RulesSettings,
    pub state: StateSettings,
    pub log: LogSettings,
    /// `[notify]`: notification sinks. Default: none.
    #[serde(default)]
    pub notify: crate::notify::NotifySettings,
}

/// `[server]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// Listen address. Default `127.0.0.1:8080`.
    pub bind: SocketAddr,
    /// Secret the webhook URL must carry. Default unset.
    #[serde(default)]
    pub webhook_token: Option<SecretString>,
    /// Secret of the admin API (`POST /pause`, `DELETE /pause/{id}`), sent as
    /// `Authorization: Bearer`; on a non-loopback `bind` it also guards the reads
    /// (`/status`, `/pauses`). Default unset: the admin API answers 403.
    #[serde(default)]
    pub admin_token: Option<SecretString>,
    /// Alarms recorded and waiting for a decision before the webhook answers 503.
    /// Default 1024.
    pub queue_capacity: usize,
    /// HTTP worker threads; 0 = one per CPU. Default 0.
    pub workers: usize,
}

/// `[cloudamqp]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudAmqpSettings {
    /// Customer API base URL. Default `https://customer.cloudamqp.com/api`.
    pub api_url: String,
    /// Customer API key. Default unset; also `CLOUDAMQP_API_KEY`.
    #[serde(default)]
    pub api_key: Option<SecretString>,
    /// Instance used when an alarm names none. Default unset; also `CLOUDAMQP_INSTANCE_ID`.
    #[serde(default, deserialize_with = "instance_ref")]
    pub default_instance: Option<InstanceRef>,
    /// How often a running change is polled. Default 15 s.
    #[serde(with = "serde_human")]
    pub poll_interval: Duration,
    /// Counted from the accepted PUT. Default 60 min.
    #[serde(with = "serde_human")]
    pub change_timeout: Duration,
    /// Time to open a connection. Default 5 s.
    #[serde(with = "serde_human")]
    pub connect_timeout: Duration,
    /// Time for one request and its answer. Default 30 s.
    #[serde(with = "serde_human")]
    pub request_timeout: Duration,
    /// How long one call may keep retrying transient failures. Default 5 min.
    #[serde(with = "serde_human")]
    pub retry_deadline: Duration,
    /// Client-side rate limit, requests per second. Default 5.
    pub requests_per_second: u32,
    /// Each instance's management API, `{host}` and `{id}` filled in. Default
    /// `https://{host}/api`.
    pub management_url: String,
    /// Time for one management API request and its answer. Default 10 s.
    #[serde(with = "serde_human")]
    pub management_timeout: Duration,
}

/// `[rules]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesSettings {
    /// The rules file. Default `rules.toml`.
    pub path: PathBuf,
}

/// The shortest `state.lease`: renewed every third of it, a shorter one would turn a
/// database's brief pause into lost leases.
pub const MIN_LEASE: Duration = Duration::from_secs(3);

/// `[state]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateSettings {
    /// Where durable state lives. Default `state`.
    pub dir: PathBuf,
    /// How long alarms, decisions, finished changes and delivered notifications are kept.
    /// Default `90d`.
    #[serde(with = "serde_human")]
    pub retention: Duration,
    /// PostgreSQL instead of `dir`, shared by every replica with the same URL (a secret).
    #[serde(default)]
    pub database_url: Option<SecretString>,
    /// CAs (PEM) trusted besides the system's for the database's TLS (`sslmode=require`).
    #[serde(default)]
    pub database_ca: Option<PathBuf>,
    /// How long a replica holds a change or an alarm without renewing it. Default `30s`.
    #[serde(with = "serde_human")]
    pub lease: Duration,
}

/// `[log]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// `text` or `json`. Default `text`.
    pub format: LogFormat,
    /// A tracing filter. Default `info`.
    pub level: String,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// Settings could not be loaded; the message names the key or the file.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read settings file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid settings: {0}")]
    Invalid(String),
}

fn instance_ref<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<InstanceRef>, D::Error> {
    // Environment variables arrive as strings, TOML may hold an integer: take both.
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Int(u64),
        Text(String),
    }
    match Option::<Raw>::deserialize(deserializer)? {
        None => Ok(None),
        Some(Raw::Int(id)) => Ok(Some(InstanceRef::Id(id))),
        Some(Raw::Text(text)) if text.trim().is_empty() => Ok(None),
        Some(Raw::Text(text)) => text.parse().map(Some).map_err(serde::de::Error::custom),
    }
}

impl Settings {
    /// Loads the layers from the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, SettingsError> {
        Self::load_from(file, std::env::vars())
    }

    /// Loads the layers with the given environment (tests pass their own).
    pub fn load_from(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, SettingsError> {
        let env: std::collections::HashMap<String, String> = env.into_iter().collect();
        let mut builder =
            Config::builder().add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml));
        if let Some(path) = file {
            // Read it ourselves so that a missing file is an I/O error naming the path,
            // not a generic "configuration not found".
            let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
                path: path.to_owned(),
                source,
            })?;
            // Parsed once here only to name the file in a syntax error: the file, line,
            // column and message, never the line itself (it may hold a secret).
            toml::from_str::<toml::Table>(&text).map_err(|e| {
                let at = e.span().map_or(0, |span| span.start);
                let file = path.display().to_string();
                let location = crate::rules::Location::of_offset(&file, &text, at);
                SettingsError::Invalid(format!("{location}: {}", e.message()))
            })?;
            builder = builder.add_source(File::from_str(&text, FileFormat::Toml));
        }
        // The two CloudAMQP variables form a layer below the AUTOSCALER__ one, so the more
        // specific name wins when both are set.
        let plain: std::collections::HashMap<String, String> = [
            (API_KEY_ENV, "CLOUDAMQP__API_KEY"),
            (INSTANCE_ENV, "CLOUDAMQP__DEFAULT_INSTANCE"),
        ]
        .into_iter()
        .filter_map(|(var, key)| {
            env.get(var)
                .filter(|v| !v.is_empty())
                .map(|v| (key.to_owned(), v.clone()))
        })
        .collect();
        builder = builder.add_source(Environment::default().separator("__").source(Some(plain)));
        let scoped: std::collections::HashMap<String, String> = env
            .iter()
            .filter(|(k, _)| k.starts_with(&format!("{ENV_PREFIX}__")))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        builder = builder.add_source(
            Environment::with_prefix(ENV_PREFIX)
                .prefix_separator("__")
                .separator("__")
                // Values stay strings until a typed field asks for a number or a boolean:
                // guessing types here would turn a token "007" into "7", or a 23-digit one
                // into a rounded float.
                .source(Some(scoped)),
        );
        let mut settings: Settings = builder
            .build()
            .and_then(Config::try_deserialize)
            .map_err(|e| SettingsError::Invalid(e.to_string()))?;
        settings.notify.resolve()?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks what types alone cannot say.
    fn validate(&self) -> Result<(), SettingsError> {
        let invalid = |key: &str, why: String| Err(SettingsError::Invalid(format!("{key}: {why}")));
        let api = &self.cloudamqp;
        match reqwest::Url::parse(&api.api_url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => {}
            _ => {
                return invalid(
                    "cloudamqp.api_url",
                    format!("{:?} is not an http(s) URL", api.api_url),
                );
            }
        }
        if api.poll_interval < MIN_POLL_INTERVAL {
            return invalid(
                "cloudamqp.poll_interval",
                format!(
                    "{} is too fast; it must be at least {}",
                    crate::duration::display(api.poll_interval),
                    crate::duration::display(MIN_POLL_INTERVAL)
                ),
            );
        }
        if api.change_timeout <= api.poll_interval {
            return invalid(
                "cloudamqp.change_timeout",
                "must be longer than cloudamqp.poll_interval".into(),
            );
        }
        let example = api
            .management_url
            .replace("{host}", "host.example")
            .replace("{id}", "1");
        match reqwest::Url::parse(&example) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => {}
            _ => {
                return invalid(
                    "cloudamqp.management_url",
                    format!(
                        "{:?} does not make an http(s) URL (with {{host}} and {{id}} filled in)",
                        api.management_url
                    ),
                );
            }
        }
        for (key, value) in [
            ("cloudamqp.management_timeout", api.management_timeout),
            ("cloudamqp.connect_timeout", api.connect_timeout),
            ("cloudamqp.request_timeout", api.request_timeout),
            ("cloudamqp.retry_deadline", api.retry_deadline),
            ("state.retention", self.state.retention),
        ] {
            if value.is_zero() {
                return invalid(key, "must be more than zero".into());
            }
        }
        if self.state.lease < MIN_LEASE {
            return invalid(
                "state.lease",
                format!(
                    "{} is too short; it must be at least {} (it is renewed every third of it)",
                    crate::duration::display(self.state.lease),
                    crate::duration::display(MIN_LEASE)
                ),
            );
        }
        if self.state.database_ca.is_some() && self.state.database_url.is_none() {
            return invalid(
                "state.database_ca",
                "is set without state.database_url (it is for TLS to PostgreSQL)".into(),
            );
        }
        if let Some(url) = &self.state.database_url {
            if let Err(err) = crate::store::pg::check_url(url) {
                return invalid("state.database_url", err.to_string());
            }
            if let Some(ca) = &self.state.database_ca {
                let tls = crate::store::pg::check_url(url).is_ok_and(|config| {
                    config.get_ssl_mode() == tokio_postgres::config::SslMode::Require
                });
                if !tls {
                    return invalid(
                        "state.database_ca",
                        "is set, but state.database_url does not ask for TLS: add sslmode=require to it".into(),
                    );
                }
                if let Err(err) = crate::store::pg::tls::load_ca(ca) {
                    return invalid("state.database_ca", err.to_string());
                }
            }
            if let Some(why) = crate::store::put_outlasts_takeover(
                self.state.lease,
                api.connect_timeout,
                api.request_timeout,
                crate::executor::CLAIM_EVERY,
            ) {
                return invalid("cloudamqp.request_timeout", why);
            }
        }
        if !(1..=MAX_QUEUE_CAPACITY).contains(&self.server.queue_capacity) {
            return invalid(
                "server.queue_capacity",
                format!("must be between 1 and {MAX_QUEUE_CAPACITY}"),
            );
        }
        if api.requests_per_second == 0 {
            return invalid("cloudamqp.requests_per_second", "must be at least 1".into());
        }
        // An empty secret is no secret: `-e AUTOSCALER__SERVER__WEBHOOK_TOKEN=$TOKEN` with
        // TOKEN unset must not open the webhook (`?token=` would match it).
        for (key, secret) in [
            ("server.webhook_token", &self.server.webhook_token),
            ("server.admin_token", &self.server.admin_token),
            ("cloudamqp.api_key", &api.api_key),
            ("state.database_url", &self.state.database_url),
        ] {
            if secret
                .as_ref()
                .is_some_and(|s| s.expose_secret().trim().is_empty())
            {
                return invalid(
                    key,
                    "is set but empty; give it a value or leave it unset".into(),
                );
            }
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            return invalid(
                "log.level",
                format!("{:?} is not a log filter: {e}", self.log.level),
            );
        }
        Ok(())
    }

    /// Whether polling is faster than CloudAMQP asks for on the production API.
    pub fn polls_production_too_fast(&self) -> bool {
        self.cloudamqp.api_url.trim_end_matches('/') == PRODUCTION_API_URL
            && self.cloudamqp.poll_interval < PRODUCTION_MIN_POLL_INTERVAL
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn compiled_defaults_load_into_typed_settings() {
        let s = Settings::load_from(None, env(&[])).unwrap();
        assert!(!s.live);
        assert_eq!(s.server.bind, "127.0.0.1:8080".parse().unwrap());
        assert!(s.server.webhook_token.is_none());
        assert_eq!(s.cloudamqp.api_url, PRODUCTION_API_URL);
        assert!(s.cloudamqp.api_key.is_none());
        assert!(s.cloudamqp.default_instance.is_none());
        assert_eq!(s.cloudamqp.poll_interval, Duration::from_secs(15));
        assert_eq!(s.cloudamqp.change_timeout, Duration::from_secs(3600));
        assert_eq!(s.rules.path, PathBuf::from("rules.toml"));
        assert_eq!(s.state.dir, PathBuf::from("state"));
        assert_eq!(s.log.format, LogFormat::Text);
    }

    #[test]
    fn environment_overrides_file_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "[server]\nbind = \"0.0.0.0:9000\"\n[cloudamqp]\npoll_interval = \"1s\"\n",
        )
        .unwrap();
        let s = Settings::load_from(
            Some(&file),
            env(&[
                ("AUTOSCALER__CLOUDAMQP__POLL_INTERVAL", "2s"),
                ("AUTOSCALER__LIVE", "true"),
                ("CLOUDAMQP_API_KEY", "k-123"),
                ("CLOUDAMQP_INSTANCE_ID", "359559"),
            ]),
        )
        .unwrap();
        assert!(s.live);
        assert_eq!(s.server.bind.port(), 9000);
        assert_eq!(s.cloudamqp.poll_interval, Duration::from_secs(2));
        assert_eq!(
            s.cloudamqp.api_key.as_ref().unwrap().expose_secret(),
            "k-123"
        );
        assert_eq!(s.cloudamqp.default_instance, Some(InstanceRef::Id(359_559)));
    }

    #[test]
    fn the_scoped_variable_wins_over_the_plain_one() {
        let s = Settings::load_from(
            None,
            env(&[
                ("CLOUDAMQP_API_KEY", "plain"),
                ("AUTOSCALER__CLOUDAMQP__API_KEY", "scoped"),
            ]),
        )
        .unwrap();
        assert_eq!(s.cloudamqp.api_key.unwrap().expose_secret(), "scoped");
    }

    #[test]
    fn bad_values_name_their_key() {
        for (var, value, key) in [
            (
                "AUTOSCALER__CLOUDAMQP__POLL_INTERVAL",
                "soon",
                "poll_interval",
            ),
            (
                "AUTOSCALER__CLOUDAMQP__POLL_INTERVAL",
                "10ms",
                "cloudamqp.poll_interval",
            ),
            ("AUTOSCALER__SERVER__BIND", "nowhere", "bind"),
            (
                "AUTOSCALER__CLOUDAMQP__API_URL",
                "ftp://x",
                "cloudamqp.api_url",
            ),
            ("CLOUDAMQP_INSTANCE_ID", "prod", "default_instance"),
            ("AUTOSCALER__SERVER__NOPE", "1", "nope"),
        ] {
            let err = Settings::load_from(None, env(&[(var, value)]))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(key),
                "{var}={value}: {err:?} does not name {key}"
            );
        }
    }

    #[test]
    fn environment_values_are_taken_as_written() {
        let s = Settings::load_from(
            None,
            env(&[
                (
                    "AUTOSCALER__SERVER__WEBHOOK_TOKEN",
                    "12345678901234567890123",
                ),
                ("AUTOSCALER__CLOUDAMQP__API_KEY", "007"),
                ("AUTOSCALER__STATE__DIR", "0755"),
                ("AUTOSCALER__SERVER__QUEUE_CAPACITY", "10"),
                ("AUTOSCALER__LIVE", "true"),
            ]),
        )
        .unwrap();
        assert_eq!(
            s.server.webhook_token.unwrap().expose_secret(),
            "12345678901234567890123"
        );
        assert_eq!(s.cloudamqp.api_key.unwrap().expose_secret(), "007");
        assert_eq!(s.state.dir, PathBuf::from("0755"));
        assert_eq!(s.server.queue_capacity, 10);
        assert!(s.live);
        let key = Settings::load_from(None, env(&[("AUTOSCALER__CLOUDAMQP__API_KEY", "1e5")]))
            .unwrap()
            .cloudamqp
            .api_key
            .unwrap();
        assert_eq!(key.expose_secret(), "1e5");
    }

    #[test]
    fn a_fraction_where_a_whole_number_belongs_is_refused() {
        let err = Settings::load_from(
            None,
            env(&[("AUTOSCALER__CLOUDAMQP__REQUESTS_PER_SECOND", "0.5")]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("requests_per_second"), "{err}");
    }

    #[test]
    fn the_admin_token_is_read_from_the_environment_and_never_shown() {
        let s = Settings::load_from(
            None,
            env(&[("AUTOSCALER__SERVER__ADMIN_TOKEN", "admin-s3cret-9f1")]),
        )
        .unwrap();
        assert!(!format!("{s:?}").contains("admin-s3cret-9f1"));
        assert_eq!(
            s.server.admin_token.unwrap().expose_secret(),
            "admin-s3cret-9f1"
        );
        let unset = Settings::load_from(None, env(&[])).unwrap();
        assert!(unset.server.admin_token.is_none());
    }

    #[test]
    fn an_empty_secret_is_refused_naming_its_key() {
        for (var, key) in [
            ("AUTOSCALER__SERVER__WEBHOOK_TOKEN", "server.webhook_token"),
            ("AUTOSCALER__SERVER__ADMIN_TOKEN", "server.admin_token"),
            ("AUTOSCALER__CLOUDAMQP__API_KEY", "cloudamqp.api_key"),
        ] {
            for value in ["", "  "] {
                let err = Settings::load_from(None, env(&[(var, value)]))
                    .unwrap_err()
                    .to_string();
                assert!(err.contains(key), "{var}={value:?}: {err}");
            }
        }
    }

    #[test]
    fn fast_polling_is_flagged_against_production_only() {
        let fast = |url: &str| {
            Settings::load_from(
                None,
                env(&[
                    ("AUTOSCALER__CLOUDAMQP__POLL_INTERVAL", "1s"),
                    ("AUTOSCALER__CLOUDAMQP__API_URL", url),
                ]),
            )
            .unwrap()
            .polls_production_too_fast()
        };
        assert!(fast("https://customer.cloudamqp.com/api/"));
        assert!(!fast("http://127.0.0.1:8090/api"));
        assert!(
            !Settings::load_from(None, env(&[]))
                .unwrap()
                .polls_production_too_fast()
        );
    }

    #[test]
    fn a_settings_file_that_is_not_toml_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("broken.toml");
        std::fs::write(&file, "[server\nbind = \"x\"\n").unwrap();
        let err = Settings::load_from(Some(&file), env(&[])).unwrap_err();
        assert!(matches!(err, SettingsError::Invalid(_)));
        assert!(err.to_string().contains("broken.toml:1:8:"), "{err}");
        // The offending line is not quoted: it may hold a secret.
        std::fs::write(&file, "[server]\nwebhook_token = \"s3cret-token\n").unwrap();
        let err = Settings::load_from(Some(&file), env(&[])).unwrap_err();
        assert!(err.to_string().contains("broken.toml:2:30:"), "{err}");
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }

    #[test]
    fn replicas_whose_put_would_outlast_the_takeover_bound_are_refused() {
        let load = |pairs: &[(&str, &str)]| {
            let mut all = vec![(
                "AUTOSCALER__STATE__DATABASE_URL",
                "postgres://autoscaler@db.internal/autoscaler",
            )];
            all.extend_from_slice(pairs);
            Settings::load_from(None, env(&all))
        };
        // The defaults keep it: 5 s + 30 s + margins and a claim round within 30 s + 15 s.
        load(&[]).unwrap();
        let err = load(&[("AUTOSCALER__STATE__LEASE", "3s")]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("cloudamqp.request_timeout"), "{text}");
        assert!(text.contains("at most 4s or raise state.lease"), "{text}");
        load(&[
            ("AUTOSCALER__STATE__LEASE", "3s"),
            ("AUTOSCALER__CLOUDAMQP__REQUEST_TIMEOUT", "4s"),
        ])
        .unwrap();
        load(&[("AUTOSCALER__CLOUDAMQP__REQUEST_TIMEOUT", "31s")]).unwrap();
        load(&[("AUTOSCALER__CLOUDAMQP__REQUEST_TIMEOUT", "32s")]).unwrap_err();
        // Only replicas take over: one daemon on SQLite may wait as long as it likes.
        Settings::load_from(
            None,
            env(&[
                ("AUTOSCALER__STATE__LEASE", "3s"),
                ("AUTOSCALER__CLOUDAMQP__REQUEST_TIMEOUT", "120s"),
            ]),
        )
        .unwrap();
    }

    #[test]
    fn a_database_ca_needs_a_database_url_that_asks_for_tls_and_a_readable_file() {
        let ca = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls/ca.pem");
        let tls = "postgres://autoscaler@db.internal/autoscaler?sslmode=require";
        let load = |url: Option<&str>, ca: &str| {
            let mut pairs = vec![("AUTOSCALER__STATE__DATABASE_CA", ca)];
            pairs.extend(url.map(|url| ("AUTOSCALER__STATE__DATABASE_URL", url)));
            Settings::load_from(None, env(&pairs))
        };
        let settings = load(Some(tls), ca).unwrap();
        assert_eq!(settings.state.database_ca.as_deref(), Some(Path::new(ca)));
        for (url, file, says) in [
            (None, ca, "without state.database_url"),
            (
                Some("postgres://autoscaler@db.internal/autoscaler"),
                ca,
                "add sslmode=require",
            ),
            (Some(tls), "/nonexistent/ca.pem", "/nonexistent/ca.pem"),
        ] {
            let err = load(url, file).unwrap_err().to_string();
            assert!(
                err.contains("state.database_ca") && err.contains(says),
                "{err}"
            );
        }
    }

    #[test]
    fn an_impossible_queue_capacity_is_refused() {
        let load = |value| {
            Settings::load_from(None, env(&[("AUTOSCALER__SERVER__QUEUE_CAPACITY", value)]))
        };
        for value in ["0", "1000001", "2305843009213693952"] {
            let err = load(value).unwrap_err();
            assert!(err.to_string().contains("server.queue_capacity"), "{err}");
        }
        for value in ["1", "1000000"] {
            assert_eq!(
                load(value).unwrap().server.queue_capacity.to_string(),
                value
            );
        }
    }

    #[test]
    fn a_missing_settings_file_is_an_io_error_naming_it() {
        let err =
            Settings::load_from(Some(Path::new("/nonexistent/x.toml")), env(&[])).unwrap_err();
        assert!(matches!(err, SettingsError::Read { .. }));
        assert!(err.to_string().contains("/nonexistent/x.toml"));
    }
}
