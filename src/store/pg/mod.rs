//! The state on PostgreSQL, shared by several replicas (issue 16): the foundation only.
//!
//! This module is a library with tests and is not wired into `serve` yet: there is no
//! `state.database_url` setting until a replica can keep every promise with it.
//!
//! # What is here
//!
//! - [`schema`]: versioned migrations (the SQLite store's final shape, then what replicas
//!   add), run once by replicas starting together (`pg_advisory_xact_lock`).
//! - [`connect`]: a connection pool from a secret URL; errors never show it.
//! - [`lease`]: single flight across replicas. The open change row *is* the lock (a unique
//!   index over the open phases per instance); its owner holds a lease on the database's
//!   clock and a fencing number, and every later write of the owner is conditional on both.
//! - [`accept`]: durable accept with group commit ([`record_alarms`]): a batch of alarms
//!   in one transaction, ids in batch order once committed; an alarm decided on arrival
//!   with its decision in its row, an undecided one claimed by the accepting replica.
//! - [`mod@recover`]: the SQLite store's `Recovered`, field for field, from one
//!   `REPEATABLE READ` read-only snapshot (`recover_tests` checks the parity on one
//!   history applied to both backends).
//! - [`claim`]: survivors take over expired changes and undecided alarms
//!   (`FOR UPDATE SKIP LOCKED`, one statement each, a new fencing number each time).
//!
//! # How the `Store` backend will use them
//!
//! - **Durable accept with group commit**: the writer takes the queued alarms, runs their
//!   INSERTs in one transaction (the accepting replica as `owner`, `claimed_until` a lease
//!   ahead) and answers each webhook `202` only after that COMMIT returns. Nothing here
//!   weakens `synchronous_commit` ([`connect`] refuses a connection where it is `off`), so
//!   COMMIT returns once the WAL is flushed (and on a synchronous standby, if the operator
//!   runs one). A failed COMMIT answers every alarm of the batch `503`.
//! - **The open change as the lock**: the decision and [`lease::open_change`] run in one
//!   transaction. `Busy` (the instance has an open change, whichever replica holds it) is
//!   not an error of that transaction (`ON CONFLICT DO NOTHING`): the decision is recorded
//!   as a skip, `change_in_flight`, and the other alarms of the batch commit as usual.
//! - **A lease before every PUT**: the owner renews ([`lease::renew`]) so that it holds at
//!   least the request timeout plus a margin before it sends the PUT
//!   ([`lease::Deadline::covers`], measured on the replica's monotonic clock from before the
//!   statement was sent, so it never outlasts the database's). Every later write
//!   (`mark_submitted`, `mark_unsent`, `finish`) is fenced; [`lease::LeaseError::LeaseLost`]
//!   stops that replica's work on the change at once: no retry, no PUT, no poll.
//! - **Takeover**: a survivor claims expired changes ([`claim::claim_expired`]). For one
//!   that may have been sent ([`claim::ClaimedChange::may_have_been_sent`]) it reads the
//!   instance from CloudAMQP first and only tracks it to its end (completed if the plan is
//!   there, else timed out as today's recovery does); it never sends a second PUT for it
//!   (the Part 1 rule). Only a change that certainly was not sent (`unsent`) is sent by the
//!   taker. Undecided alarms are claimed the same way ([`claim::claim_undecided_alarms`])
//!   and decided by the claimer, whose decision write is conditional on its claim.
//!
//! # Around it
//!
//! The writer (`writer`: group commit, leases renewed, fenced writes, takeovers), every
//! command of the SQLite store on PostgreSQL (`commands`), the history reads (`read`), TLS
//! (`tls`); the replica's joining, duties and clean leave are in `store/replica.rs`, the
//! executor's side in `executor/replica.rs`. Timestamps are microsecond-precise in
//! PostgreSQL (nanoseconds in SQLite): `recover_tests` and `read_tests` compare them cut to
//! the microsecond.

pub mod accept;
pub mod claim;
pub(crate) mod commands;
mod commands_outbox;
pub mod connect;
pub mod lease;
pub mod read;
pub mod recover;
mod rows;
pub mod schema;
pub mod tls;
pub(crate) mod writer;

/// Test support (the library's tests and tests/store.rs): a database per test, cloned
/// from a migrated template. Not part of the daemon.
#[doc(hidden)]
pub mod testdb;

#[cfg(test)]
mod accept_tests;
#[cfg(test)]
mod claim_tests;
#[cfg(test)]
mod commands_tests;
#[cfg(test)]
mod connect_tests;
#[cfg(test)]
mod lease_tests;
#[cfg(test)]
mod read_tests;
#[cfg(test)]
mod recover_tests;
#[cfg(test)]
mod schema_tests;

pub use accept::{AcceptItem, record_alarms};
pub use claim::{ClaimedAlarm, ClaimedChange, claim_expired, claim_undecided_alarms};
pub use connect::{PoolOptions, check_synchronous_commit, check_url, pool};
pub use lease::{
    Deadline, Fence, Held, LeaseError, finish, mark_submitted, mark_unsent, open_change, renew,
};
pub use recover::recover;
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
    /// TLS to the database cannot be set up (`state.database_ca`).
    #[error("TLS to the state database: {0}")]
    Tls(String),
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
        if let Some(why) = tls::handshake_failure(&err) {
            // Worth trying again (a certificate renewed, a CA file fixed and reloaded).
            return PgError::Unavailable(why);
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
