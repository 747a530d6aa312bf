//! Reading the history back: a read-only view of `state.dir`'s database, for `GET
//! /history`, the `history` command and the dashboard.
//!
//! It works whether or not a daemon runs: it opens the file with `SQLITE_OPEN_READ_ONLY`
//! and takes no lock file (that lock keeps a second *writer* out). The daemon keeps the
//! database in WAL mode, where readers never block the writer and see the last commit.
//! Every call is blocking: async callers go through `spawn_blocking`.
//!
//! Events come from four places, each read newest first along an index of its own
//! (migration 8) and merged: alarms (`received_at`), decisions (an alarm's, at its
//! `decided_at`; a look that stepped down; a schedule's opening), and changes (at
//! `intended_at`, with `finished_at` once finished). Looks that neither stepped down nor
//! were held by a guardrail (paused, frozen, max_changes: a refusal, found again here) are
//! left out: one every `check_every` would drown the rest (the `looks` table has them all,
//! and `/status` the last).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, ToSql};
use serde::Serialize;

use super::history_parts::{SortKey, Source, alarm_direction, event, merge, plan_at_start};
use super::rows::{instance_id, optional_timestamp, timestamp, timestamp_text};
use super::{DB_FILE_NAME, Direction, Phase, SCHEMA_VERSION, StoreError};

/// The most events one history read answers (`GET /history` caps `limit` at it).
pub const MAX_HISTORY_LIMIT: usize = 1000;
/// The events a history read answers when no limit is given.
pub const DEFAULT_HISTORY_LIMIT: usize = 100;
/// The oldest schema the queries here understand (pauses, schedules, looks, directions);
/// the indexes of version 7 only make them quick.
const OLDEST_READABLE_VERSION: u32 = 6;
/// A reader waits this long for a writer's WAL recovery or checkpoint before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(2);
/// The alarms a plan timeline marks at most (the newest): a storm would make a chart of
/// dots and a page of megabytes.
pub const MAX_TIMELINE_ALARMS: usize = 500;

/// Which events to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryQuery {
    /// Only this instance's events (events of no instance are left out then).
    pub instance: Option<u64>,
    /// Only events at or after this time.
    pub since: Option<Timestamp>,
    /// At most this many (the newest); clamped to [`MAX_HISTORY_LIMIT`].
    pub limit: usize,
}

impl Default for HistoryQuery {
    fn default() -> Self {
        Self {
            instance: None,
            since: None,
            limit: DEFAULT_HISTORY_LIMIT,
        }
    }
}

/// One thing that happened, as `GET /history` and `history --format json` print it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryEvent {
    pub at: Timestamp,
    /// The instance's integer id; `None` for an alarm that named no usable instance (or
    /// is not decided yet and named one by UUID).
    pub instance: Option<u64>,
    /// Its name as last seen, when known.
    pub instance_name: Option<String>,
    #[serde(flatten)]
    pub what: EventKind,
}

/// What happened, with the contract's fields; `kind` is `alarm`, `decision` or `change`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventKind {
    Alarm {
        alarm_id: i64,
        #[serde(rename = "type")]
        alarm_type: String,
        value: Option<f64>,
        resolved: bool,
    },
    Decision {
        /// `change`, `would_change` or `skip`.
        decision: String,
        /// The reason code of a skip.
        reason: Option<String>,
        rule: Option<String>,
        /// The human sentence.
        detail: String,
        /// `up` for what alarms and schedules decide (`None` when no rule was in play),
        /// `down` for a look that stepped down.
        direction: Option<Direction>,
        from: Option<String>,
        to: Option<String>,
        /// `alarm`, `look` or `schedule`: what was decided about.
        source: &'static str,
        alarm_id: Option<i64>,
    },
    Change {
        change_id: i64,
        /// `disk` (then `from` and `to` are extra disk sizes in GB); left out for a plan.
        #[serde(skip_serializing_if = "crate::decide::ChangeKind::is_plan")]
        change_kind: crate::decide::ChangeKind,
        from: String,
        to: String,
        direction: Direction,
        rule: String,
        /// `completed`, `failed` or `timed_out`; `None` while in flight.
        result: Option<&'static str>,
        /// `intended`, `submitted`, or the result.
        phase: &'static str,
        finished_at: Option<Timestamp>,
        dry_run: bool,
        needs_attention: bool,
        detail: Option<String>,
    },
}

impl EventKind {
    /// `alarm`, `decision` or `change`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Alarm { .. } => "alarm",
            Self::Decision { .. } => "decision",
            Self::Change { .. } => "change",
        }
    }
}

/// What a chart of an instance's plan needs: its changes and alarms since a time, oldest
/// first, and the plan it was on when the window opened.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlanTimeline {
    /// The plan before the window's first completed change (`None`: no change in the
    /// window, the current plan held throughout).
    pub plan_at_start: Option<String>,
    pub changes: Vec<TimelineChange>,
    /// The newest [`MAX_TIMELINE_ALARMS`] alarms in the window, oldest first.
    pub alarms: Vec<TimelineAlarm>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TimelineChange {
    pub at: Timestamp,
    pub finished_at: Option<Timestamp>,
    pub from: String,
    pub to: String,
    pub direction: Direction,
    pub rule: String,
    pub phase: Phase,
    pub dry_run: bool,
}

impl TimelineChange {
    /// Whether it moved the plan: completed, for real.
    pub fn moved_plan(&self) -> bool {
        self.phase == Phase::Completed && !self.dry_run
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TimelineAlarm {
    pub at: Timestamp,
    pub alarm_type: String,
    pub value: Option<f64>,
    pub resolved: bool,
}

/// A read-only connection to a state store.
#[derive(Debug)]
pub struct Reader {
    conn: Connection,
    path: PathBuf,
}

impl Reader {
    /// Opens `dir/autoscaler.sqlite3` read-only. Refused (never created) when the file is
    /// missing, and when its schema is newer than this build knows or older than it reads.
    pub fn open(dir: &Path) -> Result<Reader, StoreError> {
        let path = dir.join(DB_FILE_NAME);
        let fail = |reason: String| StoreError::Open {
            dir: dir.display().to_string(),
            reason,
        };
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_file() => {}
            Ok(_) => return Err(fail(format!("{} is not a file", path.display()))),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::Missing(path.display().to_string()));
            }
            Err(err) => return Err(fail(format!("cannot read {}: {err}", path.display()))),
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&path, flags)
            .map_err(|err| fail(format!("cannot open {}: {err}", path.display())))?;
        let version: u32 = conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(|err| fail(format!("cannot read {}: {err}", path.display())))?;
        if version > SCHEMA_VERSION {
            return Err(fail(format!(
                "{} has schema version {version}, newer than this build knows \
                 ({SCHEMA_VERSION}); run a newer cloudamqp-autoscaler",
                path.display()
            )));
        }
        if version < OLDEST_READABLE_VERSION {
            return Err(fail(format!(
                "{} has schema version {version}, older than this build reads \
                 ({OLDEST_READABLE_VERSION}); start the daemon once to migrate it",
                path.display()
            )));
        }
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(|err| fail(format!("cannot set the busy timeout: {err}")))?;
        Ok(Reader { conn, path })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `wal` for a store the daemon made: readers then never block its writes.
    pub fn journal_mode(&self) -> Result<String, StoreError> {
        self.conn
            .pragma_query_value(None, "journal_mode", |row| row.get(0))
            .map_err(read_failed)
    }

    /// The events `query` selects, newest first (ties: changes, decisions, alarms).
    pub fn history(&self, query: &HistoryQuery) -> Result<Vec<HistoryEvent>, StoreError> {
        let limit = query.limit.min(MAX_HISTORY_LIMIT);
        if limit == 0 {
            return Ok(Vec::new());
        }
        // One read transaction: every source describes the same moment.
        let tx = self.conn.unchecked_transaction().map_err(read_failed)?;
        let mut filter = Filter::new(query, limit);
        if let Some(since) = &filter.since {
            // Once for both alarm sources.
            filter.floor = first_alarm_since(&tx, since).map_err(read_failed)?;
        }
        let mut events = Vec::new();
        events.extend(filter.read(&tx, ALARM_EVENTS, alarm_event)?);
        events.extend(filter.read(&tx, ALARM_DECISIONS, alarm_decision)?);
        events.extend(filter.read(&tx, LOOK_DECISIONS, look_decision)?);
        events.extend(filter.read(&tx, SCHEDULE_DECISIONS, schedule_decision)?);
        events.extend(filter.read(&tx, CHANGE_EVENTS, change_event)?);
        let names = instance_names(&tx)?;
        tx.finish().map_err(read_failed)?;
        Ok(merge(events, limit, &names))
    }

    /// Instance `instance`'s changes and alarms at or after `since`, for its plan chart.
    pub fn plan_timeline(
        &self,
        instance: u64,
        since: Timestamp,
    ) -> Result<PlanTimeline, StoreError> {
        let tx = self.conn.unchecked_transaction().map_err(read_failed)?;
        let id = i64::try_from(instance).unwrap_or(i64::MAX);
        let since_text = timestamp_text(since);
        let changes: Vec<TimelineChange> = tx
            .prepare(
                "SELECT * FROM changes WHERE instance_id = ?1 AND intended_at >= ?2 AND kind = 'plan' \
                 ORDER BY intended_at, id",
            )
            .and_then(|mut statement| {
                statement
                    .query_map(rusqlite::params![id, since_text], |row| {
                        Ok(TimelineChange {
                            at: timestamp(row, "intended_at")?,
                            finished_at: optional_timestamp(row, "finished_at")?,
                            from: row.get("from_plan")?,
                            to: row.get("to_plan")?,
                            direction: row.get("direction")?,
                            rule: row.get("rule")?,
                            phase: row.get("phase")?,
                            dry_run: row.get("dry_run")?,
                        })
                    })?
                    .collect()
            })
            .map_err(read_failed)?;
        let mut alarms: Vec<TimelineAlarm> = tx
            .prepare(
                "SELECT received_at, kind, value, resolved FROM alarms \
                 WHERE instance_id = ?1 AND decided_at >= ?2 AND received_at >= ?2 \
                 ORDER BY decided_at DESC, id DESC LIMIT ?3",
            )
            .and_then(|mut statement| {
                statement
                    .query_map(
                        rusqlite::params![id, since_text, MAX_TIMELINE_ALARMS as i64],
                        |row| {
                            Ok(TimelineAlarm {
                                at: timestamp(row, "received_at")?,
                                alarm_type: row.get("kind")?,
                                value: row.get("value")?,
                                resolved: row.get("resolved")?,
                            })
                        },
                    )?
                    .collect()
            })
            .map_err(read_failed)?;
        tx.finish().map_err(read_failed)?;
        alarms.reverse();
        Ok(PlanTimeline {
            plan_at_start: plan_at_start(&changes),
            changes,
            alarms,
        })
    }
}

/// A read failing after the file opened (a corrupt page, a disk error).
fn read_failed(err: rusqlite::Error) -> StoreError {
    StoreError::Read(err.to_string())
}

// Each source's query: `{where}` becomes the instance and time filter on columns
// `instance_col` and `at_col`; `:limit` is the limit. `by_instance`, when set, is the query
// for one instance (another order, along another index).
//
// Alarms have no index in time order (each would cost every alarm an insert on the
// webhook's path): their ids grow with time, so every instance's newest are read along
// the rowid, and one instance's along `alarms_by_instance` (decided_at ≥ received_at, so
// `decided_at >= :since` keeps every alarm received since).
const ALARM_EVENTS: Source = Source {
    sql: "SELECT * FROM alarms WHERE {where} ORDER BY id DESC LIMIT :limit",
    by_instance: Some(
        "SELECT * FROM alarms WHERE {where} ORDER BY decided_at DESC, id DESC LIMIT :limit",
    ),
    instance_col: "instance_id",
    at_col: "received_at",
    rowid_in_time_order: true,
};
const ALARM_DECISIONS: Source = Source {
    sql: "SELECT * FROM alarms WHERE decided_at IS NOT NULL AND {where} \
          ORDER BY id DESC LIMIT :limit",
    by_instance: Some(
        "SELECT * FROM alarms WHERE decided_at IS NOT NULL AND {where} \
         ORDER BY decided_at DESC, id DESC LIMIT :limit",
    ),
    instance_col: "instance_id",
    at_col: "decided_at",
    rowid_in_time_order: true,
};
const LOOK_DECISIONS: Source = Source {
    by_instance: None,
    rowid_in_time_order: false,
    sql: "SELECT l.*, c.rule AS rule FROM looks AS l LEFT JOIN changes AS c ON c.id = l.change_id \
          WHERE (l.decision <> 'skip' OR l.reason = 'paused' OR l.reason = 'frozen' \
                 OR l.reason = 'max_changes') \
            AND {where} ORDER BY l.at DESC, l.id DESC LIMIT :limit",
    instance_col: "l.instance_id",
    at_col: "l.at",
};
const SCHEDULE_DECISIONS: Source = Source {
    by_instance: None,
    rowid_in_time_order: false,
    sql: "SELECT * FROM schedule_runs WHERE {where} ORDER BY at DESC, id DESC LIMIT :limit",
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

/// What every source's query binds: `:instance`, `:since` (when filtered) and `:limit`.
struct Filter {
    instance: Option<i64>,
    since: Option<String>,
    limit: i64,
    /// The first alarm id received at or after `since` ([`first_alarm_since`]).
    floor: i64,
}

impl Filter {
    fn new(query: &HistoryQuery, limit: usize) -> Self {
        Self {
            // An id above i64::MAX is in no store: it matches nothing.
            instance: query
                .instance
                .map(|id| i64::try_from(id).unwrap_or(i64::MAX)),
            since: query.since.map(timestamp_text),
            limit: limit as i64,
            floor: 0,
        }
    }

    /// The source's query with this filter's conditions.
    fn sql(&self, source: &Source) -> String {
        source.filtered(self.instance.is_some(), self.since.is_some(), "1")
    }

    fn read(
        &self,
        conn: &Connection,
        source: Source,
        row: fn(&Row<'_>) -> rusqlite::Result<(SortKey, HistoryEvent)>,
    ) -> Result<Vec<(SortKey, HistoryEvent)>, StoreError> {
        let sql = self.sql(&source);
        let mut statement = conn.prepare_cached(&sql).map_err(read_failed)?;
        let params: [(&str, &dyn ToSql); 4] = [
            (":instance", &self.instance),
            (":since", &self.since),
            (":limit", &self.limit),
            (":floor", &self.floor),
        ];
        for (name, value) in params {
            // Bound only where the query has the parameter (no filter, no parameter).
            if let Some(index) = statement.parameter_index(name).map_err(read_failed)? {
                statement
                    .raw_bind_parameter(index, value)
                    .map_err(read_failed)?;
            }
        }
        let mut rows = statement.raw_query();
        let mut events = Vec::new();
        while let Some(r) = rows.next().map_err(read_failed)? {
            events.push(row(r).map_err(read_failed)?);
        }
        Ok(events)
    }
}

/// The smallest alarm id received at or after `since` (one past the last when none was):
/// ids grow with time, so a binary search over the rowid finds it in ~log2(rows) lookups.
pub(super) fn first_alarm_since(conn: &Connection, since: &str) -> rusqlite::Result<i64> {
    let bounds: (Option<i64>, Option<i64>) =
        conn.query_row("SELECT min(id), max(id) FROM alarms", [], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?;
    let (Some(mut low), Some(max)) = bounds else {
        return Ok(0);
    };
    let mut high = max.saturating_add(1);
    let mut next = conn
        .prepare_cached("SELECT id, received_at FROM alarms WHERE id >= ?1 ORDER BY id LIMIT 1")?;
    while low < high {
        let middle = low + (high - low) / 2;
        let row: Option<(i64, String)> = next
            .query_row([middle], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()?;
        match row {
            Some((id, received_at)) if received_at.as_str() < since => low = id + 1,
            _ => high = middle,
        }
    }
    Ok(low)
}

fn optional_instance(row: &Row<'_>, column: &str) -> rusqlite::Result<Option<u64>> {
    let id: Option<i64> = row.get(column)?;
    Ok(id.and_then(|id| u64::try_from(id).ok()))
}

fn alarm_event(row: &Row<'_>) -> rusqlite::Result<(SortKey, HistoryEvent)> {
    let at = timestamp(row, "received_at")?;
    let id: i64 = row.get("id")?;
    // Not decided yet: the instance as the alarm named it, when that is an integer id.
    let instance = match optional_instance(row, "instance_id")? {
        Some(id) => Some(id),
        None => row
            .get::<_, Option<String>>("instance")?
            .and_then(|named| named.parse().ok()),
    };
    let what = EventKind::Alarm {
        alarm_id: id,
        alarm_type: row.get("kind")?,
        value: row.get("value")?,
        resolved: row.get("resolved")?,
    };
    Ok(((at, 0, id), event(at, instance, what)))
}

fn alarm_decision(row: &Row<'_>) -> rusqlite::Result<(SortKey, HistoryEvent)> {
    let at = timestamp(row, "decided_at")?;
    let id: i64 = row.get("id")?;
    let decision: String = row.get("decision")?;
    let rule: Option<String> = row.get("rule")?;
    let direction = alarm_direction(rule.as_deref(), &decision);
    let what = EventKind::Decision {
        decision,
        reason: row.get("reason")?,
        rule,
        detail: row.get::<_, Option<String>>("detail")?.unwrap_or_default(),
        direction,
        from: row.get("from_plan")?,
        to: row.get("to_plan")?,
        source: "alarm",
        alarm_id: Some(id),
    };
    Ok((
        (at, 1, id),
        event(at, optional_instance(row, "instance_id")?, what),
    ))
}

fn look_decision(row: &Row<'_>) -> rusqlite::Result<(SortKey, HistoryEvent)> {
    let at = timestamp(row, "at")?;
    let id: i64 = row.get("id")?;
    let what = EventKind::Decision {
        decision: row.get("decision")?,
        reason: row.get("reason")?,
        rule: row.get("rule")?,
        detail: row.get("detail")?,
        direction: Some(Direction::Down),
        from: row.get("plan")?,
        to: row.get("to_plan")?,
        source: "look",
        alarm_id: None,
    };
    Ok((
        (at, 1, id),
        event(at, Some(instance_id(row, "instance_id")?), what),
    ))
}

fn schedule_decision(row: &Row<'_>) -> rusqlite::Result<(SortKey, HistoryEvent)> {
    let at = timestamp(row, "at")?;
    let id: i64 = row.get("id")?;
    let what = EventKind::Decision {
        decision: row.get("decision")?,
        reason: row.get("reason")?,
        rule: row.get("schedule")?,
        detail: row.get("detail")?,
        direction: Some(Direction::Up),
        from: row.get("plan")?,
        to: row.get("to_plan")?,
        source: "schedule",
        alarm_id: None,
    };
    Ok((
        (at, 1, id),
        event(at, Some(instance_id(row, "instance_id")?), what),
    ))
}

fn change_event(row: &Row<'_>) -> rusqlite::Result<(SortKey, HistoryEvent)> {
    let at = timestamp(row, "intended_at")?;
    let id: i64 = row.get("id")?;
    let phase: Phase = row.get("phase")?;
    let what = EventKind::Change {
        change_id: id,
        change_kind: row.get("kind")?,
        from: row.get("from_plan")?,
        to: row.get("to_plan")?,
        direction: row.get("direction")?,
        rule: row.get("rule")?,
        result: phase.is_final().then(|| phase.as_str()),
        phase: phase.as_str(),
        finished_at: optional_timestamp(row, "finished_at")?,
        dry_run: row.get("dry_run")?,
        needs_attention: row.get("needs_attention")?,
        detail: row.get("detail")?,
    };
    Ok((
        (at, 2, id),
        event(at, Some(instance_id(row, "instance_id")?), what),
    ))
}

fn instance_names(conn: &Connection) -> Result<HashMap<u64, String>, StoreError> {
    conn.prepare_cached("SELECT id, name FROM instances WHERE name IS NOT NULL")
        .and_then(|mut statement| {
            statement
                .query_map([], |row| Ok((instance_id(row, "id")?, row.get("name")?)))?
                .collect()
        })
        .map_err(read_failed)
}

#[cfg(test)]
#[path = "read_tests.rs"]
mod tests;
