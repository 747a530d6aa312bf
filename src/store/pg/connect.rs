//! A connection pool to the state database, from `state.database_url` (a secret).
//!
//! The URL is exposed once, to parse it; no error, log or `Debug` output shows it
//! (tokio-postgres' own `Debug` of a config redacts the password, and its error texts
//! name neither host nor password). A URL with `sslmode=require` connects over TLS with
//! the server's certificate verified ([`super::tls`]); any other, plain TCP.

use std::time::Duration;

use deadpool_postgres::{Hook, HookError, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use secrecy::{ExposeSecret, SecretString};
use tokio_postgres::NoTls;
use tokio_postgres::config::SslMode;

use super::PgError;

/// How the pool behaves; the defaults suit one replica's webhook and background work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolOptions {
    /// Connections at most (default 8: the writer's, the executor's, readers').
    pub max_size: usize,
    /// How long a new connection may take, unless the URL sets `connect_timeout`
    /// (default 5 s: longer and a webhook waits past its client's patience for a 503).
    pub connect_timeout: Duration,
    /// How long a caller waits for a free connection (default 5 s).
    pub wait_timeout: Duration,
    /// `state.database_ca`: CAs trusted besides the system's, with `sslmode=require`.
    pub ca_file: Option<std::path::PathBuf>,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            max_size: 8,
            connect_timeout: Duration::from_secs(5),
            wait_timeout: Duration::from_secs(5),
            ca_file: None,
        }
    }
}

/// Shown in `pg_stat_activity`, unless the URL names another.
const APPLICATION_NAME: &str = "cloudamqp-autoscaler";

/// Marks a post-create hook's refusal as a `synchronous_commit` one (see [`From`] for
/// [`PgError`]): the hook can only return text.
pub(super) const NOT_DURABLE_PREFIX: &str = "synchronous_commit=";

/// Builds the pool; connects lazily (the first `get`), so a database down at start-up is
/// a `503` then, not a failure here. Every new connection is checked for durable commits
/// ([`check_synchronous_commit`]) before it is handed out.
pub fn pool(url: &SecretString, options: &PoolOptions) -> Result<Pool, PgError> {
    let mut config = check_url(url)?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(options.connect_timeout);
    }
    if config.get_application_name().is_none() {
        config.application_name(APPLICATION_NAME);
    }
    build(config, options)
}

/// Parses `state.database_url`, refusing what this build cannot use; the error never
/// shows the value.
pub fn check_url(url: &SecretString) -> Result<tokio_postgres::Config, PgError> {
    let text = tls_mode(url.expose_secret())?;
    let config: tokio_postgres::Config = text.parse().map_err(|_| {
        PgError::BadUrl(
            "is not a PostgreSQL connection URL (postgres://user:password@host:port/dbname)",
        )
    })?;
    if config.get_hosts().is_empty() {
        return Err(PgError::BadUrl("names no host"));
    }
    Ok(config)
}

/// The URL with libpq's verifying modes (`verify-full`, `verify-ca`) spelt as
/// tokio-postgres knows them (`require`, which here verifies the certificate and the host
/// name, [`super::tls`]); libpq's modes that fall back to plain TCP (`prefer`, `allow`)
/// refused, since here they could only mean plain TCP.
fn tls_mode(url: &str) -> Result<std::borrow::Cow<'_, str>, PgError> {
    // Only the parameters: a URL's query (after `?`, `&`-separated), or the `key=value`
    // words of the other form; never the user or password before them.
    let (head, params, separator) =
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            match url.split_once('?') {
                Some((head, query)) => (Some(head), query, "&"),
                None => return Ok(url.into()),
            }
        } else {
            (None, url, " ")
        };
    let mut changed = false;
    let mut words = Vec::new();
    for word in params.split(separator) {
        match word {
            "sslmode=verify-full" | "sslmode=verify-ca" => {
                changed = true;
                words.push("sslmode=require");
            }
            "sslmode=prefer" | "sslmode=allow" => {
                return Err(PgError::BadUrl(
                    "asks for TLS only if the server offers it (sslmode=prefer or allow), which \
                     would be unverified: use sslmode=require (TLS, the server's certificate and \
                     name verified) or sslmode=disable",
                ));
            }
            other => words.push(other),
        }
    }
    if !changed {
        return Ok(url.into());
    }
    let params = words.join(separator);
    Ok(match head {
        Some(head) => format!("{head}?{params}"),
        None => params,
    }
    .into())
}

fn build(config: tokio_postgres::Config, options: &PoolOptions) -> Result<Pool, PgError> {
    // `Fast` recycling checks only that the connection is not closed (no query per
    // checkout): the webhook's path pays one round trip per batch, not two. A connection
    // the server dropped is seen closed once its socket is, and a statement on one that
    // died silently fails as `Unavailable`, a 503.
    let manager_config = || ManagerConfig {
        recycling_method: RecyclingMethod::Fast,
    };
    let manager = if config.get_ssl_mode() == SslMode::Require {
        let tls = super::tls::client_config(options.ca_file.as_deref())?;
        Manager::from_config(
            config,
            tokio_postgres_rustls::MakeRustlsConnect::new(tls),
            manager_config(),
        )
    } else {
        Manager::from_config(config, NoTls, manager_config())
    };
    Pool::builder(manager)
        .max_size(options.max_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(options.wait_timeout))
        .create_timeout(Some(options.connect_timeout))
        .recycle_timeout(Some(options.connect_timeout))
        .post_create(Hook::async_fn(|client, _metrics| {
            Box::pin(async move {
                match check_synchronous_commit(client).await {
                    Ok(_) => Ok(()),
                    Err(PgError::NotDurable(setting)) => {
                        Err(HookError::message(format!("{NOT_DURABLE_PREFIX}{setting}")))
                    }
                    Err(other) => Err(HookError::message(other.to_string())),
                }
            })
        }))
        .build()
        .map_err(|err| PgError::Refused(format!("cannot build the connection pool: {err}")))
}

/// Refuses a connection whose commits return before they are durable
/// (`synchronous_commit = off`: the server may lose the last commits on a crash, so a
/// `202` would promise what it cannot keep). `local`, `on`, `remote_write` and
/// `remote_apply` all flush the local WAL first. Nothing here sets it: a stronger setting
/// the operator chose (`remote_apply`) stays. Returns the setting.
pub async fn check_synchronous_commit(client: &tokio_postgres::Client) -> Result<String, PgError> {
    let setting: String = client
        .query_one("SELECT current_setting('synchronous_commit')", &[])
        .await?
        .try_get(0)?;
    if setting == "off" {
        return Err(PgError::NotDurable(setting));
    }
    Ok(setting)
}

/// A connection from the pool, as [`PgError`] on failure.
pub async fn get(pool: &Pool) -> Result<deadpool_postgres::Client, PgError> {
    Ok(pool.get().await?)
}
