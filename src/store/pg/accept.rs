//! Durable accept with group commit: a batch of webhooks' alarms in one transaction.
//!
//! The writer takes the alarms queued since its last COMMIT and inserts them all in one
//! transaction, one prepared statement run per alarm (parsed once per batch: a plain
//! `tokio_postgres::Client` has no statement cache; the runs are pipelined), and hands their ids back only after the COMMIT returned:
//! each webhook is answered `202` only once its alarm is durable. If any INSERT or the
//! COMMIT fails, nothing of the batch is kept and every alarm of it is answered `503`.
//!
//! An alarm decided on arrival is written with its decision in the same row (the nine
//! decision columns, from `decided_at` to `detail`), as the SQLite writer's
//! `RecordDecidedAlarm` does. An undecided one is claimed by the accepting replica at once
//! (`owner`, `claimed_until` on the database's clock, a new fencing number), so survivors
//! leave it alone while that replica decides it, and take it over once the claim expires
//! ([`super::claim::claim_undecided_alarms`]).

use std::time::Duration;

use futures_util::future::try_join_all;
use tokio_postgres::Client;
use tokio_postgres::types::ToSql;

use super::PgError;
use super::rows::{db_instance_id, db_seconds, db_time};
use crate::store::{AlarmId, NewAlarm, NewDecision};

/// One alarm of a batch: decided on arrival (`decision`) or left for `owner` to decide
/// within `claim`.
#[derive(Debug, Clone)]
pub struct AcceptItem {
    pub alarm: NewAlarm,
    pub decision: Option<NewDecision>,
    /// The accepting replica's id; written only on an undecided alarm.
    pub owner: String,
    /// How long the accepting replica holds an undecided alarm before a survivor may
    /// claim it.
    pub claim: Duration,
}

/// The INSERT of every alarm, decided or not: `$10`..`$18` are the decision columns
/// (all NULL when undecided), `$19` the owner and `$20` the claim's seconds (both NULL
/// when decided). `clock_timestamp()`, not `now()`: `now()` is the transaction's start,
/// and a claim would end early by the time the batch took.
pub(super) const INSERT_ALARM: &str = "INSERT INTO alarms (received_at, remote_addr, kind, \
    value, instance, resolved, message, triggered_at, body, decided_at, instance_id, plan, \
    decision, reason, rule, from_plan, to_plan, detail, owner, claimed_until, fence) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
            $18, $19::text, \
            clock_timestamp() + make_interval(secs => $20::double precision), \
            CASE WHEN $19::text IS NULL THEN NULL ELSE nextval('fences') END) \
    RETURNING id";

/// Inserts every alarm of `batch` in one transaction and returns their ids in batch
/// order, once committed. On an error nothing of the batch is stored; the error never
/// holds the URL nor a parameter's value.
pub async fn record_alarms(
    client: &mut Client,
    batch: &[AcceptItem],
) -> Result<Vec<AlarmId>, PgError> {
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    // Converted before the transaction: a value out of range refuses the batch at once.
    let params = batch
        .iter()
        .map(Params::new)
        .collect::<Result<Vec<_>, _>>()?;
    let tx = client.transaction().await?;
    let statement = tx.prepare(INSERT_ALARM).await?;
    // Pipelined: every INSERT is sent before the first answer is awaited (tokio-postgres
    // sends a connection's requests in order), so a batch costs about one round trip,
    // not one per alarm. The answers come back in the order sent: the batch's.
    // The first error in batch order is the cause; those after it are only "the
    // transaction is aborted".
    let values: Vec<_> = params.iter().map(Params::as_sql).collect();
    let rows = try_join_all(values.iter().map(|values| tx.query_one(&statement, values))).await?;
    let ids = rows
        .iter()
        .map(|row| row.try_get("id"))
        .collect::<Result<Vec<AlarmId>, _>>()?;
    tx.commit().await?;
    Ok(ids)
}

/// One item's parameters, converted to PostgreSQL's types.
pub(super) struct Params<'a> {
    item: &'a AcceptItem,
    received_at: std::time::SystemTime,
    value: Option<f64>,
    decided_at: Option<std::time::SystemTime>,
    instance_id: Option<i64>,
    decision: Option<&'static str>,
    owner: Option<&'a str>,
    claim: Option<f64>,
}

impl<'a> Params<'a> {
    pub(super) fn new(item: &'a AcceptItem) -> Result<Self, PgError> {
        let decision = item.decision.as_ref();
        let undecided = decision.is_none();
        Ok(Self {
            item,
            received_at: db_time(item.alarm.received_at)?,
            // As the SQLite writer: NaN and infinities are not stored as a value.
            value: item.alarm.value.filter(|value| value.is_finite()),
            decided_at: decision.map(|d| db_time(d.at)).transpose()?,
            instance_id: decision
                .and_then(|d| d.instance_id)
                .map(db_instance_id)
                .transpose()?,
            decision: decision.map(|d| d.kind.as_str()),
            owner: undecided.then_some(item.owner.as_str()),
            claim: undecided.then(|| db_seconds(item.claim)).transpose()?,
        })
    }

    pub(super) fn as_sql(&self) -> [&(dyn ToSql + Sync); 20] {
        let alarm = &self.item.alarm;
        let decision = self.item.decision.as_ref();
        [
            &self.received_at,
            &alarm.remote_addr,
            &alarm.kind,
            &self.value,
            &alarm.instance,
            &alarm.resolved,
            &alarm.message,
            &alarm.triggered_at,
            &alarm.body,
            &self.decided_at,
            &self.instance_id,
            decision.map_or(&NONE, |d| &d.plan),
            &self.decision,
            decision.map_or(&NONE, |d| &d.reason),
            decision.map_or(&NONE, |d| &d.rule),
            decision.map_or(&NONE, |d| &d.from_plan),
            decision.map_or(&NONE, |d| &d.to_plan),
            match decision {
                Some(d) => &d.detail,
                None => &NONE,
            },
            &self.owner,
            &self.claim,
        ]
    }
}

/// A NULL `text` parameter.
const NONE: Option<String> = None;
