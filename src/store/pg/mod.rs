//! The state on PostgreSQL, shared by several replicas (issue 16): the foundation only.
//!
//! This module is a library with tests and is not wired into `serve` yet: there is no
//! `state.database_url` setting until a replica can keep every promise with it.
//!
//! # What is here
//!
//! - [`schema`]: versioned migrations (the SQLite store's final shape, then what replicas
//!   add), run once by replicas starting together (`pg_advisory_xact_lock`).
//! - [`connect`]: a connection pool from a secret URL; errors never show it, and a
//!   connection whose commits would not be durable is refused.
//!
//! Leases and takeover follow; then the `Store` backend over them. Connections use
//! `NoTls` for now.

pub mod connect;
pub mod schema;

#[cfg(test)]
pub(crate) mod testdb;

#[cfg(test)]
mod connect_tests;
#[cfg(test)]
mod schema_tests;

pub use connect::{PoolOptions, check_synchronous_commit, pool};
pub use schema::{Migrated, SCHEMA_VERSION, migrate};

/// The database could not do what was asked. The message is fit for logs and a `503`: it
/// never holds the URL, a password or a statement's parameters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PgError {
    /// `state.database_url` cannot be used; why, without the value (a secret).
    #[error("state.database_url {0} (the value is a secret and is not shown)")]
    BadUrl(&'static str),
    /// The database cannot be reached or is going away: worth trying again.
    #[error("the state database is unavailable: {0}")]
    Unavailable(String),
    /// The database refused the statement (a constraint, a bug, permissions).
    #[error("the state database refused: {0}")]
    Refused(String),
    /// A replica of a newer build migrated this database.
    #[error(
        "the state database has schema version {found}, newer than this build knows \
         ({known}): run a newer cloudamqp-autoscaler on it"
    )]
    TooNew { found: u32, known: u32 },
    /// A migration failed; nothing of it (or of those after it) was kept.
    #[error("cannot migrate the state database to version {version}: {reason}")]
    Migrate { version: u32, reason: String },
    /// The connection would acknowledge commits before they are durable.
    #[error(
        "the state database has synchronous_commit = {0}: a 202 would not mean the alarm \
         is stored (set it to on, or remote_apply with a synchronous standby)"
    )]
    NotDurable(String),
}

impl PgError {
    /// Whether trying again later may succeed (the database down, restarting, full of
    /// connections, or a serialization failure).
    pub fn is_transient(&self) -> bool {
        matches!(self, PgError::Unavailable(_))
    }
}

impl From<tokio_postgres::Error> for PgError {
    fn from(err: tokio_postgres::Error) -> Self {
        if let Some(db) = err.as_db_error() {
            // The message and the SQLSTATE only: `detail` can quote the values of a row.
            let text = format!("{} (SQLSTATE {})", db.message(), db.code().code());
            return if is_transient_state(db.code().code()) {
                PgError::Unavailable(text)
            } else {
                PgError::Refused(text)
            };
        }
        // Not from the server: the connection (I/O, closed, a timeout) or this side
        // (encoding a parameter, decoding a column). tokio-postgres' texts hold neither
        // the URL nor the password.
        let text = error_chain(&err);
        let io =
            std::error::Error::source(&err).is_some_and(|source| source.is::<std::io::Error>());
        if err.is_closed() || io || text.starts_with("timeout") {
            PgError::Unavailable(text)
        } else {
            PgError::Refused(text)
        }
    }
}

impl From<deadpool_postgres::PoolError> for PgError {
    fn from(err: deadpool_postgres::PoolError) -> Self {
        use deadpool_postgres::{HookError, PoolError, TimeoutType};
        match err {
            PoolError::Backend(err) => err.into(),
            PoolError::Timeout(TimeoutType::Wait) => {
                PgError::Unavailable("every connection of the pool is busy".into())
            }
            PoolError::Timeout(TimeoutType::Create) => {
                PgError::Unavailable("no connection within the connect timeout".into())
            }
            PoolError::Timeout(TimeoutType::Recycle) => {
                PgError::Unavailable("a pooled connection did not answer in time".into())
            }
            PoolError::Closed => PgError::Unavailable("the connection pool is closed".into()),
            PoolError::NoRuntimeSpecified => {
                PgError::Refused("the connection pool has no runtime".into())
            }
            PoolError::PostCreateHook(HookError::Backend(err)) => err.into(),
            PoolError::PostCreateHook(HookError::Message(message)) => {
                match message.strip_prefix(connect::NOT_DURABLE_PREFIX) {
                    Some(setting) => PgError::NotDurable(setting.to_owned()),
                    None => PgError::Refused(message.into_owned()),
                }
            }
        }
    }
}

/// Connection exceptions (08), insufficient resources (53), the server shutting down or
/// starting (57P01-57P03), serialization failures and deadlocks (40001, 40P01).
fn is_transient_state(code: &str) -> bool {
    code.starts_with("08")
        || code.starts_with("53")
        || matches!(code, "57P01" | "57P02" | "57P03" | "40001" | "40P01")
}

/// An error and its causes, `outer: inner: innermost`.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
