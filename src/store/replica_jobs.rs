//! What the writer does only for a replica sharing PostgreSQL: leases and takeovers. The
//! SQLite writer, the only writer of its file, answers these at once.

use std::time::Duration;

use tokio::sync::oneshot;

use super::{ChangeId, ChangeRow, PendingAlarm, StoreError};

/// A request to the writer, which holds this replica's leases.
#[derive(Debug)]
pub(crate) enum ReplicaJob {
    /// Before a PUT: make sure this replica holds the change's lease for `needed` more
    /// (renewing it if it lasts less); `Err(LeaseLost)` if it does not hold it.
    HoldFor {
        change: ChangeId,
        needed: Duration,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    /// Takes over open changes whose lease ended and undecided alarms whose claim ended.
    Claim {
        reply: oneshot::Sender<Result<Claimed, StoreError>>,
    },
    /// A clean stop: gives up this replica's leases and claims and its place among the
    /// replicas, so the others take its work over at once rather than after a lease.
    Leave { reply: oneshot::Sender<()> },
}

/// What a takeover brought this replica.
#[derive(Debug, Default)]
pub struct Claimed {
    /// Open changes now held by this replica: tracked to their end, never sent again
    /// unless certainly unsent (`unsent`, and not a dry run).
    pub changes: Vec<ChangeRow>,
    /// Alarms accepted by a replica that did not decide them in time, oldest first.
    pub alarms: Vec<PendingAlarm>,
    /// One claim takes a bounded number of each: `true` when it took as many changes as
    /// it may, so more may be waiting (claim again at once).
    pub more_changes: bool,
    /// The same for alarms.
    pub more_alarms: bool,
}

impl ReplicaJob {
    /// The answer of a writer that shares its database with no one.
    pub(crate) fn answer_alone(self) {
        match self {
            ReplicaJob::HoldFor { reply, .. } => {
                let _ = reply.send(Ok(()));
            }
            ReplicaJob::Claim { reply } => {
                let _ = reply.send(Ok(Claimed::default()));
            }
            ReplicaJob::Leave { reply } => {
                let _ = reply.send(());
            }
        }
    }
}
