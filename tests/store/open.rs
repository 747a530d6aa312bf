//! Opening the state directory: created when missing, migrated once, refused clearly.

use cloudamqp_autoscaler::store::{DB_FILE_NAME, SCHEMA_VERSION, Store, StoreError};

use super::support::{inspect, restart};

#[tokio::test]
async fn open_creates_the_directory_and_the_schema() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("nested/state");

    let (store, recovered) = Store::open(&dir).unwrap();

    assert!(dir.join(DB_FILE_NAME).is_file());
    assert_eq!(store.path(), dir.join(DB_FILE_NAME));
    assert!(store.healthy());
    assert!(recovered.pending_alarms.is_empty() && recovered.open_changes.is_empty());
    let db = inspect(&dir);
    let version: u32 = db
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    let mode: String = db
        .pragma_query_value(None, "journal_mode", |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let mut names: Vec<String> = db
        .prepare("SELECT name FROM sqlite_schema WHERE type IN ('table', 'view') ORDER BY name")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    names.sort();
    assert_eq!(
        names,
        [
            "alarms",
            "capacities",
            "change_history",
            "changes",
            "decisions",
            "deliveries",
            "instances",
            "latest_decisions",
            "latest_finished_changes",
            "looks",
            "notifications",
            "pauses",
            "pending_alarms",
            "recent_decisions",
            "schedule_runs",
            "write_probe",
        ]
    );
    store.close().await;
}

#[tokio::test]
async fn reopening_is_idempotent() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(tmp.path()).unwrap();
    let (store, _) = restart(store, tmp.path()).await;
    let (store, recovered) = restart(store, tmp.path()).await;
    assert!(recovered.pending_alarms.is_empty());
    let version: u32 = inspect(tmp.path())
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    store.close().await;
}

#[test]
fn open_fails_clearly_on_a_regular_file() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("state");
    std::fs::write(&file, "not a directory").unwrap();

    let err = Store::open(&file).unwrap_err();
    let StoreError::Open { dir, reason } = &err else {
        panic!("expected an open error, got {err:?}");
    };
    assert_eq!(dir, &file.display().to_string());
    assert!(reason.contains("not a directory"), "{reason}");
    assert!(
        err.to_string().contains(&file.display().to_string()),
        "{err}"
    );

    // Below a file, the OS's own reason is passed on.
    let below = file.join("state");
    let err = Store::open(&below).unwrap_err();
    assert!(
        err.to_string().to_lowercase().contains("not a directory"),
        "{err}"
    );
}

#[test]
fn a_newer_schema_is_refused_not_downgraded() {
    let tmp = tempfile::tempdir().unwrap();
    drop(Store::open(tmp.path()).unwrap());
    let db = rusqlite::Connection::open(tmp.path().join(DB_FILE_NAME)).unwrap();
    db.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    drop(db);

    let err = Store::open(tmp.path()).unwrap_err().to_string();
    assert!(err.contains("newer than this build"), "{err}");
}

#[tokio::test]
async fn one_store_per_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(tmp.path()).unwrap();

    let err = Store::open(tmp.path()).unwrap_err().to_string();
    assert!(err.contains("in use"), "{err}");

    // Released on close (and by the OS when the process dies).
    store.close().await;
    let (store, _) = Store::open(tmp.path()).unwrap();
    store.close().await;
}

#[tokio::test]
async fn the_documented_example_queries_run() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(tmp.path()).unwrap();
    super::support::intend_change(&store, 1, "2026-11-26T17:00:00Z").await;
    store.close().await;
    let db = inspect(tmp.path());
    for query in [
        "SELECT datetime(at) AS at, instance_id, alarm, value, decision, reason, from_plan, to_plan \
           FROM recent_decisions LIMIT 20",
        "SELECT id, instance_id, from_plan, to_plan, phase, dry_run, datetime(intended_at) AS started, \
                took_seconds, needs_attention, detail \
           FROM change_history",
        "SELECT reason, count(*) AS alarms FROM decisions \
          WHERE decision = 'skip' AND at >= strftime('%Y-%m-%dT%H:%M:%SZ', 'now', '-7 days') \
          GROUP BY reason ORDER BY alarms DESC",
        "SELECT date(received_at) AS day, kind, count(*) AS alarms, sum(resolved) AS resolves \
           FROM alarms GROUP BY day, kind ORDER BY day DESC, alarms DESC",
        "SELECT * FROM pending_alarms",
    ] {
        let mut statement = db.prepare(query).unwrap();
        let mut rows = statement.query([]).unwrap();
        while rows.next().unwrap().is_some() {}
    }
    let at: String = db
        .query_row("SELECT datetime(at) FROM recent_decisions", [], |row| {
            row.get(0)
        })
        .unwrap();
    assert_eq!(at, "2026-11-26 17:00:00");
}
