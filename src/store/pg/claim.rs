//! Takeover: survivors claim what a replica that died (or stalled) left behind.
//!
//! Each claim is one statement: it locks the rows it takes (`FOR UPDATE SKIP LOCKED`, so
//! two claimers never wait on each other and never take the same row: each row goes to
//! the first to lock it, and is skipped by the other), and gives each a new owner, a new
//! lease and a new fencing number. Whether a lease has expired is asked of the database's
//! clock (see [`super::lease`]).

use std::time::{Duration, Instant};

use deadpool_postgres::GenericClient;
use jiff::Timestamp;

use super::PgError;
use super::lease::{Deadline, Fence, Held};
use super::rows::{change_row, db_limit, db_seconds, timestamp};
use crate::store::{AlarmId, ChangeRow, Phase};

/// An open change taken over from a replica whose lease ended.
#[derive(Debug, Clone)]
pub struct ClaimedChange {
    /// The change as stored (phase, plans, whether marked `unsent`).
    pub change: ChangeRow,
    /// What this replica now holds, for its fenced writes.
    pub held: Held,
    /// Who held it before, and under which fence (smaller than `held.fence`).
    pub previous_owner: String,
    pub previous_fence: Fence,
}

impl ClaimedChange {
    /// Whether CloudAMQP may have its PUT: `submitted`, or `intended` and not marked
    /// `unsent` (the owner may have died mid-PUT). Such a change is never sent again: the
    /// taker reads the instance and tracks the change to its end. A dry run sends nothing.
    pub fn may_have_been_sent(&self) -> bool {
        !self.change.dry_run
            && match self.change.phase {
                Phase::Submitted => true,
                Phase::Intended => !self.change.unsent,
                Phase::Completed | Phase::Failed | Phase::TimedOut => false,
            }
    }
}

const CLAIM_EXPIRED: &str = "WITH expired AS ( \
        SELECT id, owner AS previous_owner, fence AS previous_fence FROM changes \
         WHERE phase IN ('intended', 'submitted') AND lease_until < clock_timestamp() \
         ORDER BY lease_until, id \
         LIMIT $3 \
           FOR UPDATE SKIP LOCKED) \
    UPDATE changes AS c \
       SET owner = $1, fence = nextval('fences'), \
           lease_until = clock_timestamp() + make_interval(secs => $2::double precision) \
      FROM expired \
     WHERE c.id = expired.id \
    RETURNING c.*, expired.previous_owner, expired.previous_fence";

/// Takes over up to `limit` open changes whose lease has expired, for `owner`, each with
/// a lease of `lease` and a new fencing number; the rows another claimer is taking at the
/// same moment are skipped, not waited for. Oldest change first.
pub async fn claim_expired(
    client: &impl GenericClient,
    owner: &str,
    lease: Duration,
    limit: usize,
) -> Result<Vec<ClaimedChange>, PgError> {
    let sent = Instant::now();
    let statement = client.prepare_cached(CLAIM_EXPIRED).await?;
    let rows = client
        .query(&statement, &[&owner, &db_seconds(lease)?, &db_limit(limit)])
        .await?;
    let mut claimed = rows
        .iter()
        .map(|row| -> Result<ClaimedChange, PgError> {
            let change = change_row(row)?;
            Ok(ClaimedChange {
                held: Held {
                    change_id: change.id,
                    owner: owner.to_owned(),
                    fence: row.try_get("fence")?,
                    lease_until: timestamp(row, "lease_until")?,
                    deadline: Deadline::new(sent, lease),
                },
                change,
                previous_owner: row.try_get("previous_owner")?,
                previous_fence: row.try_get("previous_fence")?,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    // `RETURNING` has no order.
    claimed.sort_by_key(|claimed| claimed.change.id);
    Ok(claimed)
}

/// An alarm accepted (answered 202) but not decided, now claimed for deciding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedAlarm {
    pub id: AlarmId,
    pub received_at: Timestamp,
    /// The body as stored (credentials redacted); re-parsed with `alarm::parse`.
    pub body: String,
    /// The claim's fencing number: the decision is written only under it.
    pub fence: Fence,
    /// The database's end of the claim.
    pub claimed_until: Timestamp,
    /// This replica's bound on the claim.
    pub deadline: Deadline,
    /// Who claimed it before (the replica that accepted it, usually), if anyone.
    pub previous_owner: Option<String>,
}

const CLAIM_UNDECIDED: &str = "WITH undecided AS ( \
        SELECT id, owner AS previous_owner FROM alarms \
         WHERE decided_at IS NULL \
           AND received_at < clock_timestamp() - make_interval(secs => $4::double precision) \
           AND (claimed_until IS NULL OR claimed_until < clock_timestamp()) \
         ORDER BY received_at, id \
         LIMIT $3 \
           FOR UPDATE SKIP LOCKED) \
    UPDATE alarms AS a \
       SET owner = $1, fence = nextval('fences'), \
           claimed_until = clock_timestamp() + make_interval(secs => $2::double precision) \
      FROM undecided \
     WHERE a.id = undecided.id \
    RETURNING a.id, a.received_at, a.body, a.fence, a.claimed_until, undecided.previous_owner";

/// Claims up to `limit` undecided alarms received more than `older_than` ago whose claim
/// (if any) has expired, for `owner`, for `lease`; oldest first.
///
/// `received_at` is the accepting replica's clock: a skew between replicas only moves
/// when an unclaimed alarm becomes claimable, never lets two replicas decide it (the
/// claim is on the database's clock, and a decision is written once).
pub async fn claim_undecided_alarms(
    client: &impl GenericClient,
    owner: &str,
    lease: Duration,
    limit: usize,
    older_than: Duration,
) -> Result<Vec<ClaimedAlarm>, PgError> {
    let sent = Instant::now();
    let statement = client.prepare_cached(CLAIM_UNDECIDED).await?;
    let rows = client
        .query(
            &statement,
            &[
                &owner,
                &db_seconds(lease)?,
                &db_limit(limit),
                &older_than.as_secs_f64(),
            ],
        )
        .await?;
    let mut claimed = rows
        .iter()
        .map(|row| -> Result<ClaimedAlarm, PgError> {
            Ok(ClaimedAlarm {
                id: row.try_get("id")?,
                received_at: timestamp(row, "received_at")?,
                body: row.try_get("body")?,
                fence: row.try_get("fence")?,
                claimed_until: timestamp(row, "claimed_until")?,
                deadline: Deadline::new(sent, lease),
                previous_owner: row.try_get("previous_owner")?,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    claimed.sort_by_key(|alarm| (alarm.received_at, alarm.id));
    Ok(claimed)
}
