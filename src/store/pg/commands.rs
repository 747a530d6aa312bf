//! The SQLite writer's commands ([`Command`]) on PostgreSQL: the same writes, the same
//! refusals, inside the PostgreSQL writer's transaction (see `writer.rs`).
//!
//! What differs from SQLite is what replicas add:
//! - a change is opened only if the shared state is still the version its decision rested
//!   on ([`open_change_checked`]), and only if the instance has no open change (the
//!   unique index); either miss is [`PgFailure::Stale`]: the caller reloads and decides
//!   again;
//! - the writes of a change this replica holds are fenced ([`super::lease`]); a lost lease
//!   is [`PgFailure::LeaseLost`];
//! - a decision is recorded only on an alarm not yet decided (by any replica).

use std::collections::HashMap;
use std::time::Duration;

use deadpool_postgres::Transaction;

use super::PgError;
use super::lease::{self, Held, LeaseError};
use crate::store::commands::{Command, Done};
use crate::store::{ChangeId, NewChange};

/// What the PostgreSQL writer keeps between transactions.
#[derive(Debug)]
pub(crate) struct WriterCtx {
    /// This replica's id: the `owner` of what it holds.
    pub(crate) owner: String,
    /// `state.lease`.
    pub(crate) lease: Duration,
    /// The open changes this replica holds, by id.
    pub(crate) held: HashMap<ChangeId, Held>,
}

/// Why a command failed on PostgreSQL.
#[derive(Debug)]
pub(crate) enum PgFailure {
    /// The database failed or went away: the store turns unhealthy; in a batch, the whole
    /// transaction is lost.
    Storage(PgError),
    /// A write the store will not make (an invalid transition, an unknown or already
    /// decided alarm): the caller's mistake.
    Refused(String),
    /// The decision rested on state another replica has changed since (or the instance
    /// has an open change already): nothing written; reload and decide again.
    Stale(String),
    /// This replica no longer holds the change: stop working on it.
    LeaseLost(ChangeId),
}

impl From<PgError> for PgFailure {
    fn from(err: PgError) -> Self {
        match err {
            PgError::Refused(message) => PgFailure::Refused(message),
            other => PgFailure::Storage(other),
        }
    }
}

impl From<tokio_postgres::Error> for PgFailure {
    fn from(err: tokio_postgres::Error) -> Self {
        PgError::from(err).into()
    }
}

impl From<crate::store::StoreError> for PgFailure {
    fn from(err: crate::store::StoreError) -> Self {
        PgFailure::Refused(match err {
            crate::store::StoreError::Write(message) => message,
            other => other.to_string(),
        })
    }
}

/// Runs `command` in `tx` (which the writer commits or rolls back): a command that fails
/// half-way leaves nothing behind once the writer rolls back.
pub(crate) async fn execute(
    tx: &Transaction<'_>,
    command: &Command,
    ctx: &mut WriterCtx,
) -> Result<Done, PgFailure> {
    let _ = (tx, command, ctx);
    todo!("issue 16: every Command on PostgreSQL")
}

/// Opens `change` (phase `intended`) held by this replica, if the shared state is still
/// the version the decision rested on and the instance has no open change; the world row
/// stays locked until the writer's COMMIT, so no other replica's write can slip between
/// this check and the COMMIT. Returns the change's id; the lease is remembered in `ctx`
/// (forgotten again by the writer if the transaction does not commit).
pub(crate) async fn open_change_checked(
    tx: &Transaction<'_>,
    change: &NewChange,
    ctx: &mut WriterCtx,
) -> Result<ChangeId, PgFailure> {
    let row = tx
        .query_one("SELECT version FROM world FOR UPDATE", &[])
        .await?;
    let version: i64 = row.try_get("version")?;
    if change.world != Some(version) {
        return Err(PgFailure::Stale(format!(
            "the shared state moved (version {version}, the decision saw {})",
            change
                .world
                .map_or_else(|| "none".to_owned(), |seen| seen.to_string())
        )));
    }
    match lease::open_change(tx, change, &ctx.owner, ctx.lease).await {
        Ok(held) => {
            let id = held.change_id;
            ctx.held.insert(id, held);
            Ok(id)
        }
        Err(LeaseError::Busy { instance_id }) => Err(PgFailure::Stale(format!(
            "instance {instance_id} has a change in flight already"
        ))),
        Err(other) => Err(lease_failure(other)),
    }
}

/// A lease operation's failure as the writer reports it.
pub(crate) fn lease_failure(err: LeaseError) -> PgFailure {
    match err {
        LeaseError::Busy { instance_id } => PgFailure::Stale(format!(
            "instance {instance_id} has a change in flight already"
        )),
        LeaseError::LeaseLost { change_id } => PgFailure::LeaseLost(change_id),
        LeaseError::Refused(message) => PgFailure::Refused(message),
        LeaseError::Database(err) => err.into(),
    }
}
