use super::*;
use crate::store::schema;

/// A state directory with a migrated, WAL-mode database holding `sql`.
fn store_with(sql: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = Connection::open(dir.path().join(DB_FILE_NAME)).unwrap();
    let _: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .unwrap();
    schema::migrate(&mut conn).unwrap();
    conn.execute_batch(sql).unwrap();
    dir
}

/// Instance 7 ("prod"): a memory alarm at 17:00 decided at 17:00:01 with a change that
/// completed at 17:05, then a cpu alarm at 18:00 skipped for the cooldown; instance 8: an
/// alarm at 17:30 skipped; and one alarm naming no instance at 19:00.
const HISTORY: &str = "
INSERT INTO instances (id, name, plan, updated_at)
     VALUES (7, 'prod', 'hare-1', '2026-11-26T17:00:00.000000000Z');
INSERT INTO alarms (id, received_at, kind, value, resolved, body, decided_at, instance_id, plan,
                    decision, rule, from_plan, to_plan, detail)
     VALUES (1, '2026-11-26T17:00:00.000000000Z', 'memory', 85, 0, '{}',
             '2026-11-26T17:00:01.000000000Z', 7, 'bunny-1', 'change', 'memory-high',
             'bunny-1', 'hare-1', 'memory 85 > 80');
INSERT INTO changes (id, instance_id, alarm_id, from_plan, to_plan, rule, cooldown_seconds,
                     dry_run, phase, intended_at, accepted_at, finished_at)
     VALUES (1, 7, 1, 'bunny-1', 'hare-1', 'memory-high', 1800, 0, 'completed',
             '2026-11-26T17:00:01.000000000Z', '2026-11-26T17:00:02.000000000Z',
             '2026-11-26T17:05:00.000000000Z');
INSERT INTO alarms (id, received_at, kind, value, resolved, body, decided_at, instance_id,
                    decision, reason, rule, detail)
     VALUES (2, '2026-11-26T17:30:00.000000000Z', 'cpu', 95, 0, '{}',
             '2026-11-26T17:30:00.000000000Z', 8, 'skip', 'no_matching_rule', NULL,
             'no rule names cpu');
INSERT INTO alarms (id, received_at, kind, value, resolved, body, decided_at, instance_id,
                    decision, reason, rule, detail)
     VALUES (3, '2026-11-26T18:00:00.000000000Z', 'memory', 90, 0, '{}',
             '2026-11-26T18:00:00.500000000Z', 7, 'skip', 'cooldown', 'memory-high',
             'cooling down until 17:35');
INSERT INTO alarms (id, received_at, kind, resolved, body)
     VALUES (4, '2026-11-26T19:00:00.000000000Z', 'notice', 0, '{}');
";

fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn kinds(events: &[HistoryEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| format!("{}:{}", e.what.name(), e.at))
        .collect()
}

#[test]
fn a_missing_database_is_refused_and_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let err = Reader::open(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::Missing(_)), "{err}");
    assert!(err.to_string().contains("no daemon has run"), "{err}");
    assert!(!dir.path().join(DB_FILE_NAME).exists());
}

#[test]
fn a_newer_or_unmigrated_schema_is_refused() {
    let dir = store_with(&format!("PRAGMA user_version = {};", SCHEMA_VERSION + 1));
    let err = Reader::open(dir.path()).unwrap_err().to_string();
    assert!(err.contains("newer than this build knows"), "{err}");

    let empty = tempfile::tempdir().unwrap();
    std::fs::write(empty.path().join(DB_FILE_NAME), b"").unwrap();
    let err = Reader::open(empty.path()).unwrap_err().to_string();
    assert!(err.contains("start the daemon once"), "{err}");
}

#[test]
fn the_reader_is_read_only_and_sees_a_wal_database() {
    let dir = store_with(HISTORY);
    let reader = Reader::open(dir.path()).unwrap();
    assert_eq!(reader.journal_mode().unwrap(), "wal");
    let refused = reader.conn.execute("DELETE FROM alarms", []);
    assert!(refused.unwrap_err().to_string().contains("readonly"));
    // No lock file: that one is the writer's.
    assert!(!dir.path().join(super::super::LOCK_FILE_NAME).exists());
}

#[test]
fn history_merges_every_source_newest_first() {
    let dir = store_with(HISTORY);
    let reader = Reader::open(dir.path()).unwrap();
    let events = reader.history(&HistoryQuery::default()).unwrap();
    assert_eq!(
        kinds(&events),
        [
            "alarm:2026-11-26T19:00:00Z",
            "decision:2026-11-26T18:00:00.5Z",
            "alarm:2026-11-26T18:00:00Z",
            "decision:2026-11-26T17:30:00Z",
            "alarm:2026-11-26T17:30:00Z",
            "change:2026-11-26T17:00:01Z",
            "decision:2026-11-26T17:00:01Z",
            "alarm:2026-11-26T17:00:00Z",
        ]
    );
    let json = serde_json::to_value(&events[5]).unwrap();
    assert_eq!(json["kind"], "change");
    assert_eq!(json["instance"], 7);
    assert_eq!(json["instance_name"], "prod");
    assert_eq!(json["from"], "bunny-1");
    assert_eq!(json["to"], "hare-1");
    assert_eq!(json["direction"], "up");
    assert_eq!(json["result"], "completed");
    assert_eq!(json["finished_at"], "2026-11-26T17:05:00Z");
    let decision = serde_json::to_value(&events[1]).unwrap();
    assert_eq!(decision["decision"], "skip");
    assert_eq!(decision["reason"], "cooldown");
    assert_eq!(decision["rule"], "memory-high");
    assert_eq!(decision["direction"], "up");
    assert!(decision["detail"].as_str().unwrap().contains("cooling"));
    let alarm = serde_json::to_value(&events[7]).unwrap();
    assert_eq!(alarm["type"], "memory");
    assert_eq!(alarm["value"], 85.0);
    assert_eq!(alarm["alarm_id"], 1);
    assert!(serde_json::to_value(&events[0]).unwrap()["instance"].is_null());
    // A skip before any rule was in play has no direction.
    assert!(serde_json::to_value(&events[3]).unwrap()["direction"].is_null());
}

#[test]
fn history_filters_by_instance_time_and_limit() {
    let dir = store_with(HISTORY);
    let reader = Reader::open(dir.path()).unwrap();
    let query = |instance, since: Option<&str>, limit| HistoryQuery {
        instance,
        since: since.map(at),
        limit,
    };
    let of_8 = reader.history(&query(Some(8), None, 100)).unwrap();
    assert_eq!(kinds(&of_8).len(), 2);
    assert!(of_8.iter().all(|e| e.instance == Some(8)));
    let recent = reader
        .history(&query(Some(7), Some("2026-11-26T17:00:01Z"), 100))
        .unwrap();
    assert_eq!(recent.len(), 4, "{:?}", kinds(&recent));
    let newest = reader.history(&query(None, None, 3)).unwrap();
    assert_eq!(newest.len(), 3);
    assert_eq!(newest[0].at, at("2026-11-26T19:00:00Z"));
    assert!(reader.history(&query(None, None, 0)).unwrap().is_empty());
    assert!(
        reader
            .history(&query(Some(99), None, 10))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn every_history_query_walks_an_index_in_time_order() {
    let dir = store_with(HISTORY);
    let reader = Reader::open(dir.path()).unwrap();
    for (instance, since) in [
        (None, None),
        (Some(7), None),
        (None, Some(at("2026-11-26T17:00:00Z"))),
        (Some(7), Some(at("2026-11-26T17:00:00Z"))),
    ] {
        let filter = Filter::new(
            &HistoryQuery {
                instance,
                since,
                limit: 10,
            },
            10,
        );
        for source in [
            ALARM_EVENTS,
            ALARM_DECISIONS,
            LOOK_DECISIONS,
            SCHEDULE_DECISIONS,
            CHANGE_EVENTS,
        ] {
            let sql = filter.sql(&source);
            let plan: Vec<String> = reader
                .conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap()
                .query_map(
                    rusqlite::named_params! {":instance": 7, ":since": "x", ":limit": 10, ":floor": 1}
                        .iter()
                        .filter(|(name, _)| sql.contains(name))
                        .copied()
                        .collect::<Vec<_>>()
                        .as_slice(),
                    |row| row.get::<_, String>(3),
                )
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            let first = &plan[0];
            // Every instance's alarms go along the rowid (in time order): a scan from the
            // newest, bounded by `:floor` when filtered by time.
            let along_rowid = first == "SCAN alarms" || first.contains("USING INTEGER PRIMARY KEY");
            assert!(
                first.contains("USING INDEX")
                    || first.contains("USING COVERING INDEX")
                    || (along_rowid && !sql.contains(":instance")),
                "{sql}: {plan:?}"
            );
            assert!(
                !plan.iter().any(|step| step.contains("TEMP B-TREE")),
                "{sql}: {plan:?}"
            );
        }
    }
}

#[test]
fn a_plan_timeline_has_the_changes_and_alarms_since_a_time() {
    let dir = store_with(HISTORY);
    let reader = Reader::open(dir.path()).unwrap();
    let timeline = reader.plan_timeline(7, at("2026-11-26T00:00:00Z")).unwrap();
    assert_eq!(timeline.plan_at_start.as_deref(), Some("bunny-1"));
    assert_eq!(timeline.changes.len(), 1);
    assert!(timeline.changes[0].moved_plan());
    assert_eq!(
        timeline.alarms.iter().map(|a| a.at).collect::<Vec<_>>(),
        [at("2026-11-26T17:00:00Z"), at("2026-11-26T18:00:00Z")]
    );
    let later = reader.plan_timeline(7, at("2026-11-26T17:30:00Z")).unwrap();
    assert_eq!(later.plan_at_start, None);
    assert!(later.changes.is_empty());
    assert_eq!(later.alarms.len(), 1);
}

#[test]
fn the_first_alarm_since_a_time_is_found_along_the_rowid() {
    let mut sql = String::new();
    // Ids 1..=40 one minute apart, with gaps (retention deleted 11..=20).
    for id in (1..=40).filter(|id| !(11..=20).contains(id)) {
        sql.push_str(&format!(
            "INSERT INTO alarms (id, received_at, kind, resolved, body) \
             VALUES ({id}, '2026-11-26T17:{:02}:00.000000000Z', 'cpu', 0, '{{}}');\n",
            id - 1
        ));
    }
    let dir = store_with(&sql);
    let reader = Reader::open(dir.path()).unwrap();
    let first = |since: &str| super::first_alarm_since(&reader.conn, since).unwrap();
    assert_eq!(first("2026-11-26T16:00:00.000000000Z"), 1);
    assert_eq!(first("2026-11-26T17:05:00.000000000Z"), 6);
    assert_eq!(first("2026-11-26T17:05:30.000000000Z"), 7);
    // Inside the gap: a bound that lets no alarm before it through, the first after it in.
    assert!((11..=21).contains(&first("2026-11-26T17:12:00.000000000Z")));
    assert_eq!(
        first("2026-11-26T18:00:00.000000000Z"),
        41,
        "none since: past the last"
    );
    let empty = store_with("");
    let reader = Reader::open(empty.path()).unwrap();
    assert_eq!(
        super::first_alarm_since(&reader.conn, "2026-11-26T16:00:00Z").unwrap(),
        0
    );
}
