//! Opening the store (the state directory, or the database): created when missing,
//! migrated once, refused clearly.

use cloudamqp_autoscaler::store::{DB_FILE_NAME, SCHEMA_VERSION, Store, StoreError};
use rusqlite::{Connection, OpenFlags};

use super::support::Backend;

both!(
    reopening_is_idempotent,
    a_newer_schema_is_refused_not_downgraded,
    the_documented_example_queries_run,
);

/// A separate, read-only connection: what an operator's `sqlite3` would see.
fn inspect(dir: &std::path::Path) -> Connection {
    Connection::open_with_flags(dir.join(DB_FILE_NAME), OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap()
}

/// SQLite only: a directory, its file and the file's pragmas (PostgreSQL's schema:
/// `store::pg::schema_tests::migrations_apply_on_an_empty_database_and_a_second_run_does_nothing`
/// and `the_schema_mirrors_the_sqlite_store`).
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

async fn reopening_is_idempotent(backend: Backend) {
    let (store, _) = backend.open().await;
    let (store, _) = backend.restart(store).await;
    let (store, recovered) = backend.restart(store).await;
    assert!(recovered.pending_alarms.is_empty());
    let (found, current) = backend.schema_version().await;
    assert_eq!(found, current);
    if backend.is_postgres() {
        // One row per migration: none was applied twice.
        assert_eq!(backend.count("schema_version").await, i64::from(current));
    }
    store.close().await;
}

/// SQLite only: a directory that cannot be one (PostgreSQL's URL that cannot be used:
/// `store::pg::connect_tests::a_url_that_cannot_be_used_is_refused_without_showing_it`).
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

async fn a_newer_schema_is_refused_not_downgraded(backend: Backend) {
    let (store, _) = backend.open().await;
    store.close().await;
    backend.pretend_newer_schema().await;
    let (before, _) = backend.schema_version().await;

    let err = backend.try_open().await.unwrap_err().to_string();
    assert!(err.contains("newer than this build"), "{err}");
    assert_eq!(backend.schema_version().await.0, before, "left as it was");
}

/// SQLite only: the directory's lock (replicas share a PostgreSQL database by design:
/// `replicas::three_replicas_started_together_migrate_once_and_serve`).
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

/// The queries the documentation offers operators run: the README's for `sqlite3`, and
/// for `psql` those of `src/store/pg/schema.rs`.
async fn the_documented_example_queries_run(backend: Backend) {
    let (store, _) = backend.open().await;
    super::support::intend_change(&store, 1, "2026-11-26T17:00:00Z").await;
    // Each with the rows it answers here, the store still open (a replica stopped cleanly
    // leaves `replicas`): one alarm, decided, and the change it started.
    let queries: &[(&str, usize)] = if backend.is_postgres() {
        &[
            (
                "SELECT id, instance_id, phase, owner, fence, lease_until - now() AS lease_left \
                   FROM changes WHERE phase IN ('intended', 'submitted')",
                1,
            ),
            (
                "SELECT id, live, rules_hash, now() - heartbeat AS silent_for FROM replicas",
                1,
            ),
        ]
    } else {
        &[
            (
                "SELECT datetime(at) AS at, instance_id, alarm, value, decision, reason, from_plan, to_plan \
                   FROM recent_decisions LIMIT 20",
                1,
            ),
            (
                "SELECT id, instance_id, from_plan, to_plan, phase, dry_run, datetime(intended_at) AS started, \
                        took_seconds, needs_attention, detail \
                   FROM change_history",
                1,
            ),
            (
                "SELECT reason, count(*) AS alarms FROM decisions \
                  WHERE decision = 'skip' AND at >= strftime('%Y-%m-%dT%H:%M:%SZ', 'now', '-7 days') \
                  GROUP BY reason ORDER BY alarms DESC",
                0,
            ),
            (
                "SELECT date(received_at) AS day, kind, count(*) AS alarms, sum(resolved) AS resolves \
                   FROM alarms GROUP BY day, kind ORDER BY day DESC, alarms DESC",
                1,
            ),
            ("SELECT * FROM pending_alarms", 0),
        ]
    };
    for (query, rows) in queries {
        assert_eq!(backend.run(query).await, *rows, "{query}");
    }
    store.close().await;
    if !backend.is_postgres() {
        let at = backend
            .row("SELECT datetime(at) FROM recent_decisions")
            .await;
        assert_eq!(at[0].text(), "2026-11-26 17:00:00");
    }
}

/// The last `Store` dropped without `close`, on a current-thread runtime (as a small tool
/// or a test might): it comes back, on both backends. (The PostgreSQL writer drives its
/// statements on the runtime; a drop that waited for it there would wait forever.)
#[test]
fn a_store_dropped_on_a_current_thread_runtime_comes_back() {
    for backend in [Backend::sqlite(), Backend::postgres()] {
        let postgres = backend.is_postgres();
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let (store, _) = backend.open().await;
                store
                    .record_alarm(super::support::alarm("{}"))
                    .await
                    .unwrap();
                // One more queued, not awaited, then the last clone goes.
                drop(store.record_alarm(super::support::alarm("{}")));
                drop(store);
            });
            let _ = done.send(());
            drop(backend);
        });
        assert!(
            finished
                .recv_timeout(std::time::Duration::from_secs(30))
                .is_ok(),
            "the drop did not come back (postgres: {postgres})"
        );
    }
}
