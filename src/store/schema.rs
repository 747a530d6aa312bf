//! The schema of `state/autoscaler.sqlite3`, written for the humans who open it.
//!
//! Tables: `alarms` (the journal, one row per accepted webhook, raw body kept for audit
//! with credentials redacted; once decided, the row also holds its decision and reason),
//! `changes` (plan changes and their phase: `intended` → `submitted` → `completed` |
//! `failed` | `timed_out`), `instances` (name, UUID, last known plan and baseline),
//! `capacities`, `looks` (scale-down looks), `schedule_runs` (what each opening of a
//! schedule's window did) and `pauses` (set through the admin API; `ended_at` once ended
//! early), `notifications` and `deliveries` (the outbox: each event, and its delivery to
//! each sink). Timestamps are
//! RFC 3339 UTC text with nine fractional digits (text order is time order; SQLite's
//! `datetime()`/`julianday()` read them), booleans are 0/1, kinds and phases lowercase words.
//!
//! Views: `decisions` (one row per decided alarm: the decision columns of `alarms`),
//! `recent_decisions` (each decision with its alarm, newest first), `change_history` (each
//! change with how long it took, newest first), `pending_alarms` (accepted, not yet
//! decided), `latest_decisions` and `latest_finished_changes` (one row per instance;
//! start-up reads them too).
//!
//! Open it read-only: a write transaction held open in a shell would make the daemon's
//! writes wait (5 s, then the webhook answers 503). Readers never block it (WAL).
//!
//! ```sh
//! sqlite3 -readonly -header -column state/autoscaler.sqlite3
//! ```
//!
//! ```sql
//! -- The last 20 decisions, with the alarm that caused each
//! SELECT datetime(at) AS at, instance_id, alarm, value, decision, reason, from_plan, to_plan
//!   FROM recent_decisions LIMIT 20;
//!
//! -- Every plan change, how long it took, and whether it needs a human
//! SELECT id, instance_id, from_plan, to_plan, phase, dry_run, datetime(intended_at) AS started,
//!        took_seconds, needs_attention, detail
//!   FROM change_history;
//!
//! -- Why nothing happened: skips by reason over the last 7 days
//! SELECT reason, count(*) AS alarms FROM decisions
//!  WHERE decision = 'skip' AND at >= strftime('%Y-%m-%dT%H:%M:%SZ', 'now', '-7 days')
//!  GROUP BY reason ORDER BY alarms DESC;
//!
//! -- Pauses not ended early, newest first (those with `until` ahead are in force)
//! SELECT id, datetime(until) AS until, directions, instances, reason FROM pauses
//!  WHERE ended_at IS NULL ORDER BY created_at DESC;
//!
//! -- Alarms per day and type, and how many were resolve notifications
//! SELECT date(received_at) AS day, kind, count(*) AS alarms, sum(resolved) AS resolves
//!   FROM alarms GROUP BY day, kind ORDER BY day DESC, alarms DESC;
//! ```

use rusqlite::{Connection, TransactionBehavior};

/// Migrations in order; `PRAGMA user_version` counts how many have been applied. Append,
/// never edit: a database in the field has run the old text.
const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    r#"
CREATE TABLE alarms (
    id            INTEGER PRIMARY KEY,
    received_at   TEXT    NOT NULL,             -- when the webhook arrived
    remote_addr   TEXT,                         -- who sent it
    kind          TEXT    NOT NULL,             -- alarm type: memory, cpu, disk, ...
    value         REAL,
    instance      TEXT,                         -- as the alarm named it: integer id or UUID
    resolved      INTEGER NOT NULL CHECK (resolved IN (0, 1)),
    message       TEXT,
    triggered_at  TEXT,                         -- as the alarm said, unparsed
    body          TEXT    NOT NULL,             -- the raw JSON body, credentials redacted
    decided_at    TEXT                          -- NULL until a decision is recorded
);
-- Start-up decides the alarms a crash left undecided: find them without a scan.
CREATE INDEX alarms_undecided ON alarms (received_at, id) WHERE decided_at IS NULL;

CREATE TABLE decisions (
    id            INTEGER PRIMARY KEY,
    alarm_id      INTEGER NOT NULL REFERENCES alarms (id),
    at            TEXT    NOT NULL,
    instance_id   INTEGER,                      -- NULL when the alarm named no usable instance
    plan          TEXT,                         -- the plan the instance was on
    decision      TEXT    NOT NULL CHECK (decision IN ('change', 'would_change', 'skip')),
    reason        TEXT,                         -- the reason code of a skip
    rule          TEXT,
    from_plan     TEXT,
    to_plan       TEXT,
    detail        TEXT    NOT NULL              -- one human sentence
);
CREATE INDEX decisions_by_alarm ON decisions (alarm_id);
CREATE INDEX decisions_by_instance ON decisions (instance_id, at, id) WHERE instance_id IS NOT NULL;

CREATE TABLE changes (
    id               INTEGER PRIMARY KEY,
    instance_id      INTEGER NOT NULL,
    alarm_id         INTEGER REFERENCES alarms (id),
    from_plan        TEXT    NOT NULL,
    to_plan          TEXT    NOT NULL,
    rule             TEXT    NOT NULL,
    cooldown_seconds NUMERIC NOT NULL,          -- the cooldown the rule asked for
    dry_run          INTEGER NOT NULL CHECK (dry_run IN (0, 1)),
    phase            TEXT    NOT NULL
        CHECK (phase IN ('intended', 'submitted', 'completed', 'failed', 'timed_out')),
    intended_at      TEXT    NOT NULL,          -- recorded before the PUT
    accepted_at      TEXT,                      -- CloudAMQP accepted the PUT
    finished_at      TEXT,                      -- completed, failed or timed out
    detail           TEXT,
    needs_attention  INTEGER NOT NULL DEFAULT 0 CHECK (needs_attention IN (0, 1)),
    -- A change is finished exactly when it has a finish time, and a submitted one was accepted.
    CHECK ((phase IN ('intended', 'submitted')) = (finished_at IS NULL)),
    CHECK (phase <> 'submitted' OR accepted_at IS NOT NULL)
);
-- Start-up tracks open changes again and derives cooldowns from the last finished ones.
CREATE INDEX changes_open ON changes (id) WHERE phase IN ('intended', 'submitted');
CREATE INDEX changes_finished ON changes (instance_id, finished_at, id) WHERE finished_at IS NOT NULL;

CREATE TABLE instances (
    id          INTEGER PRIMARY KEY,            -- CloudAMQP's integer instance id
    name        TEXT,
    providerid  TEXT,                           -- the instance's UUID
    plan        TEXT,                           -- last known plan
    updated_at  TEXT    NOT NULL
);

-- Always empty. After a failed write the daemon writes and deletes 64 KiB here each second
-- until it succeeds, to learn when the disk takes an alarm again (`/readyz`).
CREATE TABLE write_probe (filler BLOB);

-- Each decision with the alarm that caused it, newest first.
CREATE VIEW recent_decisions AS
SELECT d.at, d.instance_id, a.kind AS alarm, a.value, a.resolved, d.plan, d.decision,
       d.reason, d.rule, d.from_plan, d.to_plan, d.detail, a.id AS alarm_id,
       a.received_at, a.remote_addr
  FROM decisions AS d JOIN alarms AS a ON a.id = d.alarm_id
 ORDER BY d.at DESC, d.id DESC;

-- Each plan change with how long it took (seconds from intent to finish), newest first.
CREATE VIEW change_history AS
SELECT c.*,
       CAST(round((julianday(finished_at) - julianday(intended_at)) * 86400) AS INTEGER)
           AS took_seconds
  FROM changes AS c
 ORDER BY c.id DESC;

-- Alarms accepted (answered 202) and not decided yet, oldest first.
CREATE VIEW pending_alarms AS
SELECT * FROM alarms WHERE decided_at IS NULL ORDER BY received_at, id;

-- The latest decision of each instance (by time, ties by id).
CREATE VIEW latest_decisions AS
SELECT d.*
  FROM (SELECT DISTINCT instance_id FROM decisions WHERE instance_id IS NOT NULL) AS i
  JOIN decisions AS d ON d.id = (
        SELECT id FROM decisions
         WHERE instance_id = i.instance_id
         ORDER BY at DESC, id DESC LIMIT 1);

-- The latest finished change of each instance (by finish time, ties by id): cooldowns.
CREATE VIEW latest_finished_changes AS
SELECT c.*
  FROM (SELECT DISTINCT instance_id FROM changes WHERE finished_at IS NOT NULL) AS i
  JOIN changes AS c ON c.id = (
        SELECT id FROM changes
         WHERE instance_id = i.instance_id AND finished_at IS NOT NULL
         ORDER BY finished_at DESC, id DESC LIMIT 1);
"#,
    // 2: each alarm's decision is kept in the alarm's own row.
    //
    // An alarm has exactly one decision; as a row of its own it cost a second insert, a
    // second B-tree and an index on every alarm, where one row says the same and cannot
    // hold two. `decisions` stays, as a view with the same columns (its `id` is now the
    // alarm's). The new CHECK compares rather than using `IN ('a', 'b', 'c')`: SQLite
    // evaluates an IN list of three or more by building a temporary table for every row
    // written (the old `decisions` table paid that on every alarm).
    r#"
DROP VIEW recent_decisions;
DROP VIEW latest_decisions;

-- An alarm's decision, NULL until it is decided; `decided_at` is the decision's time.
ALTER TABLE alarms ADD COLUMN instance_id INTEGER;  -- the instance; NULL when none was usable
ALTER TABLE alarms ADD COLUMN plan        TEXT;     -- the plan the instance was on
ALTER TABLE alarms ADD COLUMN decision    TEXT      -- change, would_change or skip
    CHECK (decision IS NULL OR decision = 'skip' OR decision = 'change'
           OR decision = 'would_change');
ALTER TABLE alarms ADD COLUMN reason      TEXT;     -- the reason code of a skip
ALTER TABLE alarms ADD COLUMN rule        TEXT;
ALTER TABLE alarms ADD COLUMN from_plan   TEXT;
ALTER TABLE alarms ADD COLUMN to_plan     TEXT;
ALTER TABLE alarms ADD COLUMN detail      TEXT;     -- one human sentence
UPDATE alarms
   SET (instance_id, plan, decision, reason, rule, from_plan, to_plan, detail) = (
       SELECT instance_id, plan, decision, reason, rule, from_plan, to_plan, detail
         FROM decisions AS d WHERE d.alarm_id = alarms.id ORDER BY d.id LIMIT 1)
 WHERE decided_at IS NOT NULL;
DROP TABLE decisions;
-- Start-up reads each instance's latest decision: found without a scan.
CREATE INDEX alarms_by_instance ON alarms (instance_id, decided_at, id) WHERE instance_id IS NOT NULL;

-- Each decision (one per decided alarm), as the table of that name used to hold them.
CREATE VIEW decisions AS
SELECT id, id AS alarm_id, decided_at AS at, instance_id, plan, decision, reason, rule,
       from_plan, to_plan, detail
  FROM alarms WHERE decision IS NOT NULL;

-- Each decision with the alarm that caused it, newest first.
CREATE VIEW recent_decisions AS
SELECT decided_at AS at, instance_id, kind AS alarm, value, resolved, plan, decision,
       reason, rule, from_plan, to_plan, detail, id AS alarm_id, received_at, remote_addr
  FROM alarms WHERE decision IS NOT NULL
 ORDER BY decided_at DESC, id DESC;

-- The latest decision of each instance (by time, ties by id).
CREATE VIEW latest_decisions AS
SELECT d.*
  FROM (SELECT DISTINCT instance_id FROM alarms WHERE instance_id IS NOT NULL) AS i
  JOIN decisions AS d ON d.id = (
        SELECT id FROM alarms
         WHERE instance_id = i.instance_id
         ORDER BY decided_at DESC, id DESC LIMIT 1);
"#,
    // 3: an intended change a graceful stop interrupted before CloudAMQP could have it.
    //
    // An `intended` change is never sent again after a restart: its PUT may have reached
    // CloudAMQP. When a stop (SIGTERM) came while nothing had been sent, or every attempt so
    // far had been refused outright (423, 503, 429, no connection), the daemon knows better
    // and says so here; the next start sends it then, as the stop interrupted it.
    r#"
ALTER TABLE changes ADD COLUMN unsent INTEGER NOT NULL DEFAULT 0 CHECK (unsent IN (0, 1));
"#,
    // 4: scaling down. Every change has a direction (the earlier ones were all up); an
    // instance has a baseline, the floor a step down stops at; the memory limit seen on each
    // plan; and every look at an instance above its floor, passed or not, with why.
    r#"
ALTER TABLE changes ADD COLUMN direction TEXT NOT NULL DEFAULT 'up'
    CHECK (direction = 'up' OR direction = 'down');

-- The plan before the daemon's first upward change, moved by any change it did not make;
-- upward changes finished before `baseline_since` are not the daemon's to take back.
ALTER TABLE instances ADD COLUMN baseline       TEXT;
ALTER TABLE instances ADD COLUMN baseline_since TEXT;
-- An instance the daemon already raised: the plan its first completed change left.
UPDATE instances SET
    baseline = coalesce((SELECT from_plan FROM changes AS c
                          WHERE c.instance_id = instances.id AND c.phase = 'completed'
                            AND c.dry_run = 0 ORDER BY c.finished_at, c.id LIMIT 1), plan),
    baseline_since = coalesce((SELECT intended_at FROM changes AS c
                                WHERE c.instance_id = instances.id AND c.phase = 'completed'
                                  AND c.dry_run = 0 ORDER BY c.finished_at, c.id LIMIT 1),
                              updated_at)
 WHERE plan IS NOT NULL;

-- The per-node memory limit (bytes) seen on an instance while it was on a plan.
CREATE TABLE capacities (
    instance_id INTEGER NOT NULL,
    plan        TEXT    NOT NULL,
    mem_limit   INTEGER NOT NULL CHECK (mem_limit > 0),
    nodes       INTEGER NOT NULL,
    seen_at     TEXT    NOT NULL,
    PRIMARY KEY (instance_id, plan)
);

-- Every look at an instance above its floor: whether it passed, and why not.
CREATE TABLE looks (
    id                       INTEGER PRIMARY KEY,
    instance_id              INTEGER NOT NULL,
    at                       TEXT    NOT NULL,
    plan                     TEXT    NOT NULL,   -- the plan it was on
    to_plan                  TEXT,               -- where a step down would go
    passed                   INTEGER NOT NULL CHECK (passed IN (0, 1)),
    reason                   TEXT,               -- why it did not step down
    detail                   TEXT    NOT NULL,   -- one human sentence, with the figures
    projected_memory_percent REAL,
    decision                 TEXT    NOT NULL
        CHECK (decision = 'skip' OR decision = 'change' OR decision = 'would_change'),
    change_id                INTEGER REFERENCES changes (id)
);
CREATE INDEX looks_by_instance ON looks (instance_id, id);
"#,
    // 5: schedules, and max_changes' count of recent changes.
    r#"
-- What each opening of a schedule's window did on an instance: the change it made (at
-- most one per opening, across restarts) or the guardrail that held it, with the reason.
CREATE TABLE schedule_runs (
    id          INTEGER PRIMARY KEY,
    schedule    TEXT    NOT NULL,
    instance_id INTEGER NOT NULL,
    opened_at   TEXT    NOT NULL,   -- when the window opened
    at          TEXT    NOT NULL,
    plan        TEXT    NOT NULL,   -- the plan it was on
    to_plan     TEXT    NOT NULL,   -- the schedule's min_plan
    decision    TEXT    NOT NULL
        CHECK (decision = 'skip' OR decision = 'change' OR decision = 'would_change'),
    reason      TEXT,               -- the guardrail's reason code of a skip
    detail      TEXT    NOT NULL,   -- one human sentence
    change_id   INTEGER REFERENCES changes (id)
);
CREATE INDEX schedule_runs_by_instance ON schedule_runs (instance_id, schedule, opened_at);
-- max_changes counts the changes an instance started lately.
CREATE INDEX changes_by_start ON changes (instance_id, intended_at);
"#,
    // 6: pauses set at run time through the admin API (`POST /pause`). A pause is in force
    // from `created_at` until `until`, unless ended early (`DELETE /pause/{id}` sets
    // `ended_at`); an expired one is simply past its `until` and keeps its row.
    r#"
CREATE TABLE pauses (
    id          TEXT    PRIMARY KEY,            -- the pause_id the API answered (a UUID)
    created_at  TEXT    NOT NULL,
    until       TEXT    NOT NULL,
    directions  TEXT    NOT NULL                -- up, down or both
        CHECK (directions = 'both' OR directions = 'up' OR directions = 'down'),
    instances   TEXT    NOT NULL,               -- JSON array of selectors; [] = every instance
    reason      TEXT,
    ended_at    TEXT                            -- NULL until ended early
);
-- Start-up reads the pauses not ended: found without a scan.
CREATE INDEX pauses_not_ended ON pauses (until) WHERE ended_at IS NULL;
"#,
    // 7: the notification outbox. Each event is written with the decision or change that
    // causes it, with a delivery per sink it goes to; a delivery stays `pending` until
    // sent, or dropped (refused, a day old, its sink no longer configured). The sinks are
    // named only: their URLs and keys never reach the store.
    r#"
CREATE TABLE notifications (
    id          INTEGER PRIMARY KEY,
    event_id    TEXT    NOT NULL UNIQUE,        -- the event's id, as the sinks see it
    kind        TEXT    NOT NULL,               -- change.started, change.blocked, ...
    instance_id INTEGER,
    reason      TEXT,                           -- the reason code of a change.blocked
    at          TEXT    NOT NULL,
    body        TEXT    NOT NULL                -- the event as JSON
);
CREATE INDEX notifications_by_instance ON notifications (instance_id, kind, id);
CREATE INDEX notifications_by_time ON notifications (at);
CREATE TABLE deliveries (
    notification_id INTEGER NOT NULL REFERENCES notifications (id),
    sink            TEXT    NOT NULL,           -- webhook, slack or pagerduty
    state           TEXT    NOT NULL
        CHECK (state = 'pending' OR state = 'sent' OR state = 'dropped'),
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_attempt_at TEXT,
    last_error      TEXT,                       -- why the last attempt failed (no URL)
    finished_at     TEXT,                       -- sent or dropped
    PRIMARY KEY (notification_id, sink)
) WITHOUT ROWID;
CREATE INDEX deliveries_pending ON deliveries (notification_id) WHERE state = 'pending';
-- Retention asks, of each old change and alarm, whether anything kept refers to it.
CREATE INDEX looks_by_change ON looks (change_id) WHERE change_id IS NOT NULL;
CREATE INDEX schedule_runs_by_change ON schedule_runs (change_id) WHERE change_id IS NOT NULL;
CREATE INDEX changes_by_alarm ON changes (alarm_id) WHERE alarm_id IS NOT NULL;
"#,
    // 8: history reads (`GET /history`, `history`, the dashboard), newest first, of every
    // instance or of one, from a time on: each source of events is read in time order
    // along an index (alarms along their rowid), so a page of 100 reads about 100 rows
    // whatever the size of the journal.
    r#"
-- No index on alarms: each would cost every alarm an insert on the webhook's path. Their
-- ids grow with time (read along the rowid), and one instance's are in
-- `alarms_by_instance` (instance_id, decided_at, id).
CREATE INDEX changes_by_time ON changes (intended_at, id);
-- Only the looks that stepped down or that a guardrail held are history: the others would
-- drown it.
CREATE INDEX looks_steps_by_time ON looks (at, id)
    WHERE (decision <> 'skip' OR reason = 'paused' OR reason = 'frozen'
           OR reason = 'max_changes');
CREATE INDEX looks_steps_by_instance ON looks (instance_id, at, id)
    WHERE (decision <> 'skip' OR reason = 'paused' OR reason = 'frozen'
           OR reason = 'max_changes');
CREATE INDEX schedule_runs_by_time ON schedule_runs (at, id);
CREATE INDEX schedule_runs_by_instance_time ON schedule_runs (instance_id, at, id);
"#,
    // 9: disk changes. A change changes the plan or (a `disk_sizes` rule) the extra disk,
    // whose sizes in GB its `from_plan` and `to_plan` then hold. Only plan changes count
    // for the plan rules' cooldown, the baseline and the steps down.
    r#"
ALTER TABLE changes ADD COLUMN kind TEXT NOT NULL DEFAULT 'plan'
    CHECK (kind = 'plan' OR kind = 'disk');
"#,
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Applies the migrations the database has not seen, each in its own transaction with its
/// version bump, so a crash mid-migration leaves the previous version intact.
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), String> {
    let current: u32 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(|err| format!("cannot read the schema version: {err}"))?;
    if current > SCHEMA_VERSION {
        return Err(format!(
            "the database has schema version {current}, newer than this build knows \
             ({SCHEMA_VERSION}); run a newer cloudamqp-autoscaler or move the file away"
        ));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let version = index as u32 + 1;
        apply(conn, sql, version)
            .map_err(|err| format!("cannot migrate the schema to version {version}: {err}"))?;
        tracing::info!(version, "state store schema migrated");
    }
    Ok(())
}

fn apply(conn: &mut Connection, sql: &str, version: u32) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(sql)?;
    tx.pragma_update(None, "user_version", version)?;
    tx.commit()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::commands;

    fn count(conn: &Connection, sql: &str) -> i64 {
        conn.query_row(sql, [], |row| row.get(0)).unwrap()
    }

    /// A database of the first schema, with a decided alarm and a finished change, keeps
    /// every row and view through the later migrations.
    #[test]
    fn a_version_1_database_keeps_its_rows_and_views() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "foreign_keys", true).unwrap();
        apply(&mut conn, MIGRATIONS[0], 1).unwrap();
        conn.execute_batch(
            "INSERT INTO alarms (received_at, kind, resolved, body, decided_at)
                  VALUES ('2026-11-26T17:00:00Z', 'memory', 0, '{}', '2026-11-26T17:00:01Z');
             INSERT INTO decisions (alarm_id, at, instance_id, plan, decision, rule, from_plan,
                                    to_plan, detail)
                  VALUES (1, '2026-11-26T17:00:01Z', 7, 'bunny-1', 'change', 'memory-up',
                          'bunny-1', 'hare-1', 'memory 85 % > 80 %');
             INSERT INTO changes (instance_id, alarm_id, from_plan, to_plan, rule,
                                  cooldown_seconds, dry_run, phase, intended_at, accepted_at,
                                  finished_at)
                  VALUES (7, 1, 'bunny-1', 'hare-1', 'memory-up', 600, 0, 'completed',
                          '2026-11-26T17:00:01Z', '2026-11-26T17:00:02Z',
                          '2026-11-26T17:05:01Z');",
        )
        .unwrap();

        migrate(&mut conn).unwrap();

        let version: u32 = conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        assert_eq!(count(&conn, "SELECT count(*) FROM recent_decisions"), 1);
        assert_eq!(
            count(
                &conn,
                "SELECT count(*) FROM decisions WHERE alarm_id = 1 AND id = 1 AND at = '2026-11-26T17:00:01Z' AND rule = 'memory-up' AND to_plan = 'hare-1' AND detail LIKE 'memory%'"
            ),
            1
        );
        assert_eq!(count(&conn, "SELECT count(*) FROM pending_alarms"), 0);
        assert_eq!(count(&conn, "SELECT instance_id FROM latest_decisions"), 7);
        assert_eq!(count(&conn, "SELECT took_seconds FROM change_history"), 300);
        assert_eq!(
            count(&conn, "SELECT count(*) FROM latest_finished_changes"),
            1
        );
        let check: String = conn
            .query_row("PRAGMA foreign_key_check", [], |row| row.get(0))
            .unwrap_or_else(|_| "ok".into());
        assert_eq!(check, "ok");
        // The CHECKs still hold.
        let refused = conn.execute("UPDATE alarms SET decision = 'maybe' WHERE id = 1", []);
        assert!(refused.unwrap_err().to_string().contains("CHECK"));
    }

    /// The statements every alarm runs build no temporary table (an `IN` list of three or
    /// more in a CHECK did, for every row).
    #[test]
    fn writes_build_no_temporary_tables() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "foreign_keys", true).unwrap();
        migrate(&mut conn).unwrap();
        for sql in [commands::INSERT_ALARM, commands::DECIDE_ALARM] {
            let mut explain = conn.prepare(&format!("EXPLAIN {sql}")).unwrap();
            let opcodes: Vec<String> = explain
                .query_map(
                    rusqlite::params_from_iter(std::iter::repeat_n(
                        rusqlite::types::Null,
                        explain.parameter_count(),
                    )),
                    |row| row.get(1),
                )
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            assert!(
                opcodes
                    .iter()
                    .any(|op| op == "Insert" || op == "Update" || op == "MakeRecord")
            );
            assert!(
                !opcodes.iter().any(|op| op == "OpenEphemeral"),
                "{sql}: {opcodes:?}"
            );
        }
    }
}
