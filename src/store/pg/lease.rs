//! Single flight across replicas, without a leader: the open change row is the lock.
//!
//! An instance has at most one change in phase `intended` or `submitted`
//! (`changes_open_per_instance`, a unique partial index), whichever replica wrote it. Its
//! writer owns it: `owner` (the replica's id), a lease (`lease_until`) and a fencing number
//! (`fence`, from the global sequence `fences`, so a later holder's is always larger).
//! Every write the owner makes afterwards is one statement conditional on all three
//! (`WHERE owner = $ AND fence = $ AND lease_until > clock_timestamp()`): a replica that
//! was paused past its lease, or whose change a survivor took over, writes nothing.
//!
//! Lease times are the database's clock, never the replica's: replicas' clocks differ (NTP
//! keeps them close, not equal), and a lease compared on two clocks could look valid to its
//! owner and expired to a survivor at once. On one clock, "held" and "expired" exclude each
//! other, and the row lock orders an owner's write and a takeover: whichever locks the row
//! first wins, and the other's `WHERE` no longer matches. `clock_timestamp()` rather than
//! `now()`, because `now()` is frozen at the start of the transaction: inside a group
//! commit's transaction it would grant leases that end early and accept writes after the
//! lease ended.
//!
//! The replica keeps its own bound, [`Deadline`], on its monotonic clock from *before* it
//! sent the statement, so it ends no later than the database's; before a PUT it checks
//! that the bound covers the request timeout plus a margin.

use std::time::{Duration, Instant};

use deadpool_postgres::GenericClient;
use jiff::Timestamp;

use super::PgError;
use super::rows::{db_instance_id, db_seconds, db_time, phase, timestamp};
use crate::store::rows::seconds;
use crate::store::{ChangeFinish, ChangeId, NewChange, Phase};

/// A fencing number: larger for every later grant of a lease.
pub type Fence = i64;

/// Why a lease operation did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeaseError {
    /// The instance has an open change already (another replica's, or this one's): the
    /// decision is a skip, nothing is sent.
    #[error("instance {instance_id} has a change in flight already")]
    Busy { instance_id: u64 },
    /// The lease ended or another replica took the change over: stop working on it now.
    #[error("the lease on change {change_id} is lost (expired, or taken over)")]
    LeaseLost { change_id: ChangeId },
    /// A write the store will not make (an invalid transition, an unknown change): the
    /// caller's mistake; the lease, if any, is still held.
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Database(#[from] PgError),
}

impl From<tokio_postgres::Error> for LeaseError {
    fn from(err: tokio_postgres::Error) -> Self {
        LeaseError::Database(err.into())
    }
}

/// This replica's own bound on a lease: it ends no later than the database's
/// `lease_until`, since it counts from before the statement that granted the lease was
/// sent (clock rates aside, which the margin before a PUT covers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline(Instant);

impl Deadline {
    /// The bound of a lease of `lease` granted by a statement sent at `sent`.
    pub fn new(sent: Instant, lease: Duration) -> Self {
        Self(sent + lease)
    }

    /// What is left of the lease at `now`.
    pub fn remaining(self, now: Instant) -> Duration {
        self.0.saturating_duration_since(now)
    }

    /// Whether the lease lasts `needed` more from `now`: before a PUT, `needed` is the
    /// request timeout plus a margin, so the PUT ends (or is abandoned) while it is held.
    pub fn covers(self, now: Instant, needed: Duration) -> bool {
        self.remaining(now) >= needed
    }
}

/// A change this replica holds: what every fenced write names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub change_id: ChangeId,
    /// This replica's id.
    pub owner: String,
    pub fence: Fence,
    /// The database's end of the lease, for logs and `/status`; never compared with this
    /// replica's clock (see [`Held::deadline`]).
    pub lease_until: Timestamp,
    /// This replica's bound on the lease.
    pub deadline: Deadline,
}

const OPEN_CHANGE: &str = "INSERT INTO changes (instance_id, alarm_id, from_plan, to_plan, \
    rule, cooldown_seconds, dry_run, phase, intended_at, direction, kind, owner, \
    lease_until, fence) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, 'intended', $8, $9, $10, $11, \
            clock_timestamp() + make_interval(secs => $12::double precision), \
            nextval('fences')) \
    ON CONFLICT (instance_id) WHERE phase IN ('intended', 'submitted') DO NOTHING \
    RETURNING id, fence, lease_until";

/// Records `change` in phase `intended`, held by `owner` for `lease`, under a new fencing
/// number. `Busy` when the instance has an open change already: that is no error of the
/// caller's transaction (`ON CONFLICT DO NOTHING`), whose other writes still commit.
///
/// Meant for the transaction that records the decision (or look, or schedule run)
/// causing the change; the lease runs from this statement, not from the COMMIT.
pub async fn open_change(
    client: &impl GenericClient,
    change: &NewChange,
    owner: &str,
    lease: Duration,
) -> Result<Held, LeaseError> {
    let sent = Instant::now();
    let statement = client.prepare_cached(OPEN_CHANGE).await?;
    let row = client
        .query_opt(
            &statement,
            &[
                &db_instance_id(change.instance_id)?,
                &change.alarm_id,
                &change.from_plan,
                &change.to_plan,
                &change.rule,
                &seconds(change.cooldown),
                &change.dry_run,
                &db_time(change.intended_at)?,
                &change.direction.as_str(),
                &change.kind.as_str(),
                &owner,
                &db_seconds(lease)?,
            ],
        )
        .await?;
    let Some(row) = row else {
        return Err(LeaseError::Busy {
            instance_id: change.instance_id,
        });
    };
    Ok(Held {
        change_id: row.try_get("id")?,
        owner: owner.to_owned(),
        fence: row.try_get("fence")?,
        lease_until: timestamp(&row, "lease_until")?,
        deadline: Deadline::new(sent, lease),
    })
}

/// The condition of every write by the holder: still the owner, under the same fence,
/// within the lease (`$1` the change, `$2` the owner, `$3` the fence). A macro, so each
/// statement is one literal for `concat!`.
macro_rules! held {
    () => {
        "id = $1 AND owner = $2 AND fence = $3 AND lease_until > clock_timestamp()"
    };
}

/// Extends the lease to at least `lease` from now (never shortening it: a lease
/// lengthened to cover a PUT stays so until [`settle`]) if `held` still holds it (same owner and fence,
/// not expired), updating `held`; `false` (and `held` unchanged) if not: the change is
/// no longer this replica's. An expired lease is not renewed even when no one took the
/// change over yet: expired means lost, so an owner and a survivor never both believe
/// they hold it.
pub async fn renew(
    client: &impl GenericClient,
    held: &mut Held,
    lease: Duration,
) -> Result<bool, LeaseError> {
    let sent = Instant::now();
    let statement = client
        .prepare_cached(concat!(
            "UPDATE changes SET lease_until = greatest(lease_until, clock_timestamp() ",
            "+ make_interval(secs => $4::double precision)) WHERE ",
            held!(),
            " AND phase IN ('intended', 'submitted') RETURNING lease_until"
        ))
        .await?;
    let row = client
        .query_opt(
            &statement,
            &[
                &held.change_id,
                &held.owner,
                &held.fence,
                &db_seconds(lease)?,
            ],
        )
        .await?;
    let Some(row) = row else {
        return Ok(false);
    };
    held.lease_until = timestamp(&row, "lease_until")?;
    held.deadline = Deadline::new(sent, lease);
    Ok(true)
}

/// [`renew`] for every change `held` names, in one statement (a replica holding many
/// changes renews them in one round trip, not one each). Returns the changes no longer
/// held (expired, taken over, finished by no one of this replica's), which the caller
/// drops; the others' `lease_until` and deadline are updated. Every held entry must be
/// this `owner`'s.
pub async fn renew_many(
    client: &impl GenericClient,
    owner: &str,
    held: &mut std::collections::HashMap<ChangeId, Held>,
    lease: Duration,
) -> Result<Vec<ChangeId>, LeaseError> {
    if held.is_empty() {
        return Ok(Vec::new());
    }
    let sent = Instant::now();
    let (ids, fences): (Vec<ChangeId>, Vec<Fence>) =
        held.values().map(|h| (h.change_id, h.fence)).unzip();
    let statement = client
        .prepare_cached(
            "UPDATE changes AS c SET lease_until = greatest(c.lease_until, clock_timestamp() \
               + make_interval(secs => $4::double precision)) \
               FROM unnest($1::bigint[], $2::bigint[]) AS h(id, fence) \
              WHERE c.id = h.id AND c.fence = h.fence AND c.owner = $3 \
                AND c.lease_until > clock_timestamp() AND c.phase IN ('intended', 'submitted') \
             RETURNING c.id, c.lease_until",
        )
        .await?;
    let rows = client
        .query(&statement, &[&ids, &fences, &owner, &db_seconds(lease)?])
        .await?;
    let mut renewed = std::collections::HashSet::with_capacity(rows.len());
    for row in &rows {
        let id: ChangeId = row.try_get("id").map_err(PgError::from)?;
        if let Some(entry) = held.get_mut(&id) {
            entry.lease_until = timestamp(row, "lease_until")?;
            entry.deadline = Deadline::new(sent, lease);
            renewed.insert(id);
        }
    }
    Ok(ids.into_iter().filter(|id| !renewed.contains(id)).collect())
}

/// Sets the lease to `lease` from now, shortening one [`renew`] lengthened for a PUT once
/// the PUT is over (so a takeover after a crash waits `lease`, not the PUT's timeout);
/// `false` if `held` no longer holds it.
pub async fn settle(
    client: &impl GenericClient,
    held: &mut Held,
    lease: Duration,
) -> Result<bool, LeaseError> {
    let sent = Instant::now();
    let statement = client
        .prepare_cached(concat!(
            "UPDATE changes SET lease_until = clock_timestamp() ",
            "+ make_interval(secs => $4::double precision) WHERE ",
            held!(),
            " AND phase IN ('intended', 'submitted') RETURNING lease_until"
        ))
        .await?;
    let row = client
        .query_opt(
            &statement,
            &[
                &held.change_id,
                &held.owner,
                &held.fence,
                &db_seconds(lease)?,
            ],
        )
        .await?;
    let Some(row) = row else {
        return Ok(false);
    };
    held.lease_until = timestamp(&row, "lease_until")?;
    held.deadline = Deadline::new(sent, lease);
    Ok(true)
}

/// CloudAMQP accepted the PUT at `accepted_at`: `intended` → `submitted`, if still held.
pub async fn mark_submitted(
    client: &impl GenericClient,
    held: &Held,
    accepted_at: Timestamp,
) -> Result<(), LeaseError> {
    let statement = client
        .prepare_cached(concat!(
            "UPDATE changes SET phase = 'submitted', accepted_at = $4 WHERE ",
            held!(),
            " AND phase = 'intended'"
        ))
        .await?;
    let updated = client
        .execute(
            &statement,
            &[
                &held.change_id,
                &held.owner,
                &held.fence,
                &db_time(accepted_at)?,
            ],
        )
        .await?;
    written(client, held, updated, Phase::Submitted.as_str()).await
}

/// `true`: CloudAMQP cannot have this `intended` change yet (nothing sent, or every
/// attempt refused outright), so a taker may send it; `false`, written before a send:
/// from then on it may have been sent, and a taker only watches it.
pub async fn mark_unsent(
    client: &impl GenericClient,
    held: &Held,
    unsent: bool,
) -> Result<(), LeaseError> {
    let statement = client
        .prepare_cached(concat!(
            "UPDATE changes SET unsent = $4 WHERE ",
            held!(),
            " AND phase = 'intended'"
        ))
        .await?;
    let updated = client
        .execute(
            &statement,
            &[&held.change_id, &held.owner, &held.fence, &unsent],
        )
        .await?;
    written(
        client,
        held,
        updated,
        "marked unsent (only an intended change is)",
    )
    .await
}

/// The change ended (completed, failed or timed out), if still held. Only a final phase
/// is accepted; the row then leaves the open-changes index, which frees the instance.
pub async fn finish(
    client: &impl GenericClient,
    held: &Held,
    finish: &ChangeFinish,
) -> Result<(), LeaseError> {
    if !finish.phase.is_final() {
        return Err(LeaseError::Refused(format!(
            "cannot finish change {} in phase {}: a change finishes as completed, failed \
             or timed_out",
            held.change_id,
            finish.phase.as_str()
        )));
    }
    let statement = client
        .prepare_cached(concat!(
            "UPDATE changes SET phase = $4, finished_at = $5, detail = $6, ",
            "needs_attention = $7 WHERE ",
            held!(),
            " AND phase IN ('intended', 'submitted')"
        ))
        .await?;
    let updated = client
        .execute(
            &statement,
            &[
                &held.change_id,
                &held.owner,
                &held.fence,
                &finish.phase.as_str(),
                &db_time(finish.finished_at)?,
                &finish.detail,
                &finish.needs_attention,
            ],
        )
        .await?;
    written(client, held, updated, finish.phase.as_str()).await
}

/// A fenced write changed `updated` rows: none means the lease is lost, unless the change
/// is still held and only the transition was wrong (`to` is what it was to become), which
/// is the caller's mistake and says so. The second read only words the refusal: the write
/// itself was the one atomic check.
async fn written(
    client: &impl GenericClient,
    held: &Held,
    updated: u64,
    to: &str,
) -> Result<(), LeaseError> {
    if updated > 0 {
        return Ok(());
    }
    let statement = client
        .prepare_cached(concat!(
            "SELECT phase, coalesce(",
            held!(),
            ", false) AS held FROM changes WHERE id = $1"
        ))
        .await?;
    let row = client
        .query_opt(&statement, &[&held.change_id, &held.owner, &held.fence])
        .await?;
    let Some(row) = row else {
        return Err(LeaseError::Refused(format!(
            "no change {} to mark {to}",
            held.change_id
        )));
    };
    if !row.try_get::<_, bool>("held")? {
        return Err(LeaseError::LeaseLost {
            change_id: held.change_id,
        });
    }
    let from = phase(row.try_get::<_, &str>("phase")?)?;
    Err(LeaseError::Refused(format!(
        "change {} is {}; it cannot be {to}",
        held.change_id,
        from.as_str()
    )))
}
