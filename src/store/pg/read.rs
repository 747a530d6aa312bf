//! Reading the history back on PostgreSQL: the SQLite store's `Reader::history` and
//! `Reader::plan_timeline` (`crate::store::read`), answering the same events in the same
//! order for the same rows, for `GET /history`, the `history` command and the dashboard.
//!
//! Each read is one `REPEATABLE READ` read-only transaction (one snapshot, as SQLite's one
//! read transaction), so every source describes the same moment while replicas write:
//! the functions take a pooled client and open it themselves.
//!
//! The statements are the SQLite ones in PostgreSQL's dialect, source by source, with the
//! same limits and the same filters (the alarms' `id` floor for `since` included, found by
//! the same binary search, in one recursive statement), then merged in the same order.
//! What differs: a newest-first order by `decided_at`, nullable, says where its NULLs go
//! (SQLite puts them last) without losing the index's order, and timestamps are
//! microsecond-precise (SQLite keeps nanoseconds), which can reorder events less than a
//! microsecond apart.

use std::collections::HashMap;
use std::time::SystemTime;

use deadpool_postgres::{Client, GenericClient, Transaction};
use jiff::Timestamp;
use tokio_postgres::types::ToSql;
use tokio_postgres::{IsolationLevel, Row};

use super::PgError;
use super::rows::{db_time, direction, instance_id, optional_timestamp, phase, timestamp};
use crate::decide::{ChangeKind, Direction};
use crate::store::history_parts::{SortKey, Source, alarm_direction, event, merge, plan_at_start};
use crate::store::read::{
    EventKind, HistoryEvent, HistoryQuery, MAX_HISTORY_LIMIT, MAX_TIMELINE_ALARMS, PlanTimeline,
    TimelineAlarm, TimelineChange,
};

/// The events `query` selects, newest first (ties: changes, decisions, alarms): what
/// `Reader::history` answers for the same rows.
pub async fn history(
    client: &mut Client,
    query: &HistoryQuery,
) -> Result<Vec<HistoryEvent>, PgError> {
    let limit = query.limit.min(MAX_HISTORY_LIMIT);
    if limit == 0 {
        return Ok(Vec::new());
    }
    let mut filter = Filter::new(query, limit)?;
    // One snapshot: every source describes the same moment.
    let tx = snapshot(client).await?;
    if let Some(since) = filter.since {
        // Once for both alarm sources.
        filter.floor = first_alarm_since(&tx, since).await?;
    }
    let mut events = Vec::new();
    events.extend(filter.read(&tx, &ALARM_EVENTS, alarm_event).await?);
    events.extend(filter.read(&tx, &ALARM_DECISIONS, alarm_decision).await?);
    events.extend(filter.read(&tx, &LOOK_DECISIONS, look_decision).await?);
    events.extend(
        filter
            .read(&tx, &SCHEDULE_DECISIONS, schedule_decision)
            .await?,
    );
    events.extend(filter.read(&tx, &CHANGE_EVENTS, change_event).await?);
    let names = instance_names(&tx).await?;
    tx.commit().await?;
    Ok(merge(events, limit, &names))
}

const TIMELINE_CHANGES: &str = "SELECT intended_at, finished_at, from_plan, to_plan, direction, \
    rule, phase, dry_run FROM changes \
    WHERE instance_id = $1 AND intended_at >= $2 AND kind = 'plan' ORDER BY intended_at, id";
// `decided_at >= $2` leaves no NULL to place: the plain order is SQLite's, along
// `alarms_by_instance` backwards.
const TIMELINE_ALARMS: &str = "SELECT received_at, kind, value, resolved FROM alarms \
    WHERE instance_id = $1 AND decided_at >= $2 AND received_at >= $2 \
    ORDER BY decided_at DESC, id DESC LIMIT $3";

/// Instance `instance`'s changes and alarms at or after `since`, for its plan chart: what
/// `Reader::plan_timeline` answers for the same rows.
pub async fn plan_timeline(
    client: &mut Client,
    instance: u64,
    since: Timestamp,
) -> Result<PlanTimeline, PgError> {
    // An id above i64::MAX is in no store: it matches nothing.
    let id = i64::try_from(instance).unwrap_or(i64::MAX);
    let since = db_time(since)?;
    let most = MAX_TIMELINE_ALARMS as i64;
    let tx = snapshot(client).await?;
    let statement = tx.prepare_cached(TIMELINE_CHANGES).await?;
    let changes = tx
        .query(&statement, &[&id, &since])
        .await?
        .iter()
        .map(|row| {
            let phase_word: String = row.try_get("phase")?;
            let direction_word: String = row.try_get("direction")?;
            Ok(TimelineChange {
                at: timestamp(row, "intended_at")?,
                finished_at: optional_timestamp(row, "finished_at")?,
                from: row.try_get("from_plan")?,
                to: row.try_get("to_plan")?,
                direction: direction(&direction_word)?,
                rule: row.try_get("rule")?,
                phase: phase(&phase_word)?,
                dry_run: row.try_get("dry_run")?,
            })
        })
        .collect::<Result<Vec<_>, PgError>>()?;
    let statement = tx.prepare_cached(TIMELINE_ALARMS).await?;
    let mut alarms = tx
        .query(&statement, &[&id, &since, &most])
        .await?
        .iter()
        .map(|row| {
            Ok(TimelineAlarm {
                at: timestamp(row, "received_at")?,
                alarm_type: row.try_get("kind")?,
                value: row.try_get("value")?,
                resolved: row.try_get("resolved")?,
            })
        })
        .collect::<Result<Vec<_>, PgError>>()?;
    tx.commit().await?;
    alarms.reverse();
    Ok(PlanTimeline {
        plan_at_start: plan_at_start(&changes),
        changes,
        alarms,
    })
}

/// A `REPEATABLE READ` read-only transaction: one snapshot for every statement in it.
async fn snapshot(client: &mut Client) -> Result<Transaction<'_>, PgError> {
    Ok(client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?)
}

// Each source's query, as in SQLite: `{where}` becomes the instance and time filter on
// columns `instance_col` and `at_col`; `:instance`, `:since`, `:limit` and `:floor` become
// positional parameters. `by_instance`, when set, is the query for one instance.

/// What the alarm sources read (`SELECT *` less the body and what replicas add).
macro_rules! alarm_columns {
    () => {
        "id, received_at, kind, value, instance, resolved, decided_at, instance_id, decision, \
         reason, rule, from_plan, to_plan, detail"
    };
}

// As in SQLite: every instance's newest alarms along the primary key, one instance's along
// `alarms_by_instance`. SQLite's `decided_at DESC` puts undecided rows last; PostgreSQL's
// would put them first, and `NULLS LAST` would lose the index's order: the decided and
// the undecided rows are read apart (each along the index) and merged in SQLite's order.
const ALARM_EVENTS: Source = Source {
    sql: concat!(
        "SELECT ",
        alarm_columns!(),
        " FROM alarms WHERE {where} ORDER BY id DESC LIMIT :limit"
    ),
    by_instance: Some(concat!(
        "SELECT * FROM ((SELECT ",
        alarm_columns!(),
        " FROM alarms WHERE decided_at IS NOT NULL AND {where} \
         ORDER BY decided_at DESC, id DESC LIMIT :limit) \
         UNION ALL (SELECT ",
        alarm_columns!(),
        " FROM alarms WHERE decided_at IS NULL AND {where} \
         ORDER BY id DESC LIMIT :limit)) AS a \
         ORDER BY decided_at DESC NULLS LAST, id DESC LIMIT :limit"
    )),
    instance_col: "instance_id",
    at_col: "received_at",
    rowid_in_time_order: true,
};
const ALARM_DECISIONS: Source = Source {
    sql: concat!(
        "SELECT ",
        alarm_columns!(),
        " FROM alarms WHERE decided_at IS NOT NULL AND {where} ORDER BY id DESC LIMIT :limit"
    ),
    // No NULL to place here.
    by_instance: Some(concat!(
        "SELECT ",
        alarm_columns!(),
        " FROM alarms WHERE decided_at IS NOT NULL AND {where} \
         ORDER BY decided_at DESC, id DESC LIMIT :limit"
    )),
    instance_col: "instance_id",
    at_col: "decided_at",
    rowid_in_time_order: true,
};
// The steps' condition written as `looks_steps_by_time`'s predicate (the same rows).
const LOOK_DECISIONS: Source = Source {
    by_instance: None,
    rowid_in_time_order: false,
    sql: "SELECT l.id, l.instance_id, l.at, l.plan, l.to_plan, l.reason, l.detail, l.decision, \
          c.rule AS rule FROM looks AS l LEFT JOIN changes AS c ON c.id = l.change_id \
          WHERE (l.decision <> 'skip' OR l.reason IN ('paused', 'frozen', 'max_changes')) \
            AND {where} ORDER BY l.at DESC, l.id DESC LIMIT :limit",
    instance_col: "l.instance_id",
    at_col: "l.at",
};
const SCHEDULE_DECISIONS: Source = Source {
    by_instance: None,
    rowid_in_time_order: false,
    sql: "SELECT id, schedule, instance_id, at, plan, to_plan, decision, reason, detail \
          FROM schedule_runs WHERE {where} ORDER BY at DESC, id DESC LIMIT :limit",
    instance_col: "instance_id",
    at_col: "at",
};
const CHANGE_EVENTS: Source = Source {
    by_instance: None,
    rowid_in_time_order: false,
    sql: "SELECT * FROM changes WHERE {where} ORDER BY intended_at DESC, id DESC LIMIT :limit",
    instance_col: "instance_id",
    at_col: "intended_at",
};

/// What every source's query binds: `:instance`, `:since` (when filtered), `:limit`.
struct Filter {
    instance: Option<i64>,
    since: Option<SystemTime>,
    limit: i64,
    /// The first alarm id received at or after `since` ([`first_alarm_since`]).
    floor: i64,
}

impl Filter {
    fn new(query: &HistoryQuery, limit: usize) -> Result<Self, PgError> {
        Ok(Self {
            // An id above i64::MAX is in no store: it matches nothing.
            instance: query
                .instance
                .map(|id| i64::try_from(id).unwrap_or(i64::MAX)),
            since: query.since.map(db_time).transpose()?,
            limit: limit as i64,
            floor: 0,
        })
    }

    /// The source's query with this filter's conditions, and its parameters.
    fn sql(&self, source: &Source) -> (String, Vec<&(dyn ToSql + Sync)>) {
        let mut sql = source.filtered(self.instance.is_some(), self.since.is_some(), "true");
        // Numbered in order of use: PostgreSQL wants no gap between `$n`s.
        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::new();
        let named: [(&str, Option<&(dyn ToSql + Sync)>); 4] = [
            (":instance", self.instance.as_ref().map(|v| v as _)),
            (":since", self.since.as_ref().map(|v| v as _)),
            (":limit", Some(&self.limit)),
            (":floor", Some(&self.floor)),
        ];
        for (name, value) in named {
            if let Some(value) = value.filter(|_| sql.contains(name)) {
                params.push(value);
                sql = sql.replace(name, &format!("${}", params.len()));
            }
        }
        (sql, params)
    }

    async fn read(
        &self,
        tx: &impl GenericClient,
        source: &Source,
        row: fn(&Row) -> Result<(SortKey, HistoryEvent), PgError>,
    ) -> Result<Vec<(SortKey, HistoryEvent)>, PgError> {
        let (sql, params) = self.sql(source);
        let statement = tx.prepare_cached(&sql).await?;
        tx.query(&statement, &params)
            .await?
            .iter()
            .map(row)
            .collect()
    }
}

/// SQLite's `first_alarm_since` in one statement: the same binary search over the ids
/// (ids grow with time), each step one lookup along the primary key; `$1` is `since`.
/// The smallest alarm id received at or after it (one past the last when none was; 0
/// when there is no alarm).
const FIRST_ALARM_SINCE: &str = "WITH RECURSIVE search (low, high) AS ( \
      SELECT min(id), CASE WHEN max(id) = 9223372036854775807 THEN max(id) ELSE max(id) + 1 END \
        FROM alarms \
      UNION ALL \
      SELECT CASE WHEN n.received_at < $1 THEN n.id + 1 ELSE s.low END, \
             CASE WHEN n.received_at < $1 THEN s.high ELSE s.low + (s.high - s.low) / 2 END \
        FROM search AS s \
        LEFT JOIN LATERAL (SELECT id, received_at FROM alarms \
                            WHERE id >= s.low + (s.high - s.low) / 2 ORDER BY id LIMIT 1) AS n \
          ON true \
       WHERE s.low < s.high) \
    SELECT coalesce((SELECT low FROM search WHERE low >= high), 0) AS floor";

pub(super) async fn first_alarm_since(
    tx: &impl GenericClient,
    since: SystemTime,
) -> Result<i64, PgError> {
    let statement = tx.prepare_cached(FIRST_ALARM_SINCE).await?;
    Ok(tx
        .query_one(&statement, &[&since])
        .await?
        .try_get("floor")?)
}

/// A nullable instance id; a negative one (in no store) is none.
fn optional_instance(row: &Row, column: &str) -> Result<Option<u64>, PgError> {
    let id: Option<i64> = row.try_get(column)?;
    Ok(id.and_then(|id| u64::try_from(id).ok()))
}

fn alarm_event(row: &Row) -> Result<(SortKey, HistoryEvent), PgError> {
    let at = timestamp(row, "received_at")?;
    let id: i64 = row.try_get("id")?;
    // Not decided yet: the instance as the alarm named it, when that is an integer id.
    let instance = match optional_instance(row, "instance_id")? {
        Some(id) => Some(id),
        None => row
            .try_get::<_, Option<String>>("instance")?
            .and_then(|named| named.parse().ok()),
    };
    let what = EventKind::Alarm {
        alarm_id: id,
        alarm_type: row.try_get("kind")?,
        value: row.try_get("value")?,
        resolved: row.try_get("resolved")?,
    };
    Ok(((at, 0, id), event(at, instance, what)))
}

fn alarm_decision(row: &Row) -> Result<(SortKey, HistoryEvent), PgError> {
    let at = timestamp(row, "decided_at")?;
    let id: i64 = row.try_get("id")?;
    let decision: String = row.try_get("decision")?;
    let rule: Option<String> = row.try_get("rule")?;
    let direction = alarm_direction(rule.as_deref(), &decision);
    let what = EventKind::Decision {
        decision,
        reason: row.try_get("reason")?,
        rule,
        detail: row
            .try_get::<_, Option<String>>("detail")?
            .unwrap_or_default(),
        direction,
        from: row.try_get("from_plan")?,
        to: row.try_get("to_plan")?,
        source: "alarm",
        alarm_id: Some(id),
    };
    Ok((
        (at, 1, id),
        event(at, optional_instance(row, "instance_id")?, what),
    ))
}

fn look_decision(row: &Row) -> Result<(SortKey, HistoryEvent), PgError> {
    let at = timestamp(row, "at")?;
    let id: i64 = row.try_get("id")?;
    let what = EventKind::Decision {
        decision: row.try_get("decision")?,
        reason: row.try_get("reason")?,
        rule: row.try_get("rule")?,
        detail: row.try_get("detail")?,
        direction: Some(Direction::Down),
        from: row.try_get("plan")?,
        to: row.try_get("to_plan")?,
        source: "look",
        alarm_id: None,
    };
    Ok((
        (at, 1, id),
        event(at, Some(instance_id(row, "instance_id")?), what),
    ))
}

fn schedule_decision(row: &Row) -> Result<(SortKey, HistoryEvent), PgError> {
    let at = timestamp(row, "at")?;
    let id: i64 = row.try_get("id")?;
    let what = EventKind::Decision {
        decision: row.try_get("decision")?,
        reason: row.try_get("reason")?,
        rule: row.try_get("schedule")?,
        detail: row.try_get("detail")?,
        direction: Some(Direction::Up),
        from: row.try_get("plan")?,
        to: row.try_get("to_plan")?,
        source: "schedule",
        alarm_id: None,
    };
    Ok((
        (at, 1, id),
        event(at, Some(instance_id(row, "instance_id")?), what),
    ))
}

fn change_event(row: &Row) -> Result<(SortKey, HistoryEvent), PgError> {
    let at = timestamp(row, "intended_at")?;
    let id: i64 = row.try_get("id")?;
    let phase_word: String = row.try_get("phase")?;
    let phase = phase(&phase_word)?;
    let kind: String = row.try_get("kind")?;
    let direction_word: String = row.try_get("direction")?;
    let what = EventKind::Change {
        change_id: id,
        change_kind: ChangeKind::from_name(&kind).ok_or_else(|| {
            PgError::Refused(format!(
                "unknown change kind {kind:?} in the state database"
            ))
        })?,
        from: row.try_get("from_plan")?,
        to: row.try_get("to_plan")?,
        direction: direction(&direction_word)?,
        rule: row.try_get("rule")?,
        result: phase.is_final().then(|| phase.as_str()),
        phase: phase.as_str(),
        finished_at: optional_timestamp(row, "finished_at")?,
        dry_run: row.try_get("dry_run")?,
        needs_attention: row.try_get("needs_attention")?,
        detail: row.try_get("detail")?,
    };
    Ok((
        (at, 2, id),
        event(at, Some(instance_id(row, "instance_id")?), what),
    ))
}

async fn instance_names(tx: &impl GenericClient) -> Result<HashMap<u64, String>, PgError> {
    let statement = tx
        .prepare_cached("SELECT id, name FROM instances WHERE name IS NOT NULL")
        .await?;
    tx.query(&statement, &[])
        .await?
        .iter()
        .map(|row| Ok((instance_id(row, "id")?, row.try_get("name")?)))
        .collect()
}
