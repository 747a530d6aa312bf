//! Builders for the store's inputs, and the backend a test runs on: SQLite in a temporary
//! directory, or PostgreSQL in a database of the test's own, each with a side door for
//! assertions (what an operator's `sqlite3` or `psql` would see).
//!
//! A test is written once, `async fn name(backend: Backend)`, and `both!(name)` runs it
//! on each backend, as the tests `name::sqlite` and `name::postgres`.

use std::future::Future;
use std::time::Duration;

use cloudamqp_autoscaler::store::pg::testdb::TestDb;
use cloudamqp_autoscaler::store::{
    AlarmId, ChangeFinish, ChangeId, DB_FILE_NAME, DecisionKind, NewAlarm, NewChange, NewDecision,
    Phase, Recovered, ReplicaOptions, Store, StoreError, new_replica_id,
};
use jiff::Timestamp;
use rusqlite::{Connection, OpenFlags};
use secrecy::SecretString;
use tempfile::TempDir;

/// For each `async fn name(backend: Backend)` named, the module `name` with the tests
/// `sqlite` and `postgres`. A multi-threaded runtime: dropping a PostgreSQL store blocks
/// its thread until the writer has flushed, which needs the runtime's I/O driven by
/// another.
macro_rules! both {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            use crate::store::support::Backend;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(Backend::sqlite()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(Backend::postgres()).await;
            }
        }
    )+};
}

/// `state.lease` of the PostgreSQL stores: the shortest the daemon accepts.
pub const LEASE: Duration = cloudamqp_autoscaler::settings::MIN_LEASE;

/// Where a test's store lives; dropped (the directory deleted, the database dropped) at
/// the end of the test.
#[derive(Debug)]
pub enum Backend {
    Sqlite(TempDir),
    Postgres(TestDb),
}

impl Backend {
    pub fn sqlite() -> Backend {
        Backend::Sqlite(tempfile::tempdir().unwrap())
    }

    /// A database of its own, migrated.
    pub fn postgres() -> Backend {
        Backend::Postgres(TestDb::migrated_blocking())
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Backend::Postgres(_))
    }

    /// The directory or the database URL, for [`open_at`] (in a child process).
    pub fn location(&self) -> String {
        match self {
            Backend::Sqlite(dir) => dir.path().display().to_string(),
            Backend::Postgres(db) => db.url_text().to_owned(),
        }
    }

    pub async fn try_open(&self) -> Result<(Store, Recovered), StoreError> {
        open_at(&self.location()).await
    }

    /// Opens the store, as the daemon starts: on PostgreSQL, as a new replica.
    pub async fn open(&self) -> (Store, Recovered) {
        self.try_open().await.unwrap()
    }

    /// Closes the store and opens it again, as a restart does. On PostgreSQL the new
    /// store is another replica: it does not hold the changes the one before opened (see
    /// [`Backend::first_write_after_restart`]).
    pub async fn restart(&self, store: Store) -> (Store, Recovered) {
        store.close().await;
        self.open().await
    }

    /// After a restart, the first write on `change`, opened before it. On SQLite it is
    /// just the write. On PostgreSQL the new replica does not hold the change: the write
    /// is refused as `LeaseLost` and changes nothing, and `Store::claim` does not take a
    /// lease that still runs; once it ran out (made to, rather than waited for: the
    /// replica before is closed, nothing renews it), the claim takes the change over and
    /// the same write goes through.
    pub async fn first_write_after_restart<T, F, Fut>(
        &self,
        store: &Store,
        change: ChangeId,
        write: F,
    ) -> Result<T, StoreError>
    where
        T: std::fmt::Debug,
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        if let Backend::Postgres(_) = self {
            let stored = format!(
                "SELECT phase, unsent, accepted_at, finished_at, owner, fence FROM changes \
                 WHERE id = {change}"
            );
            let untouched = self.row(&stored).await;
            let before = write().await;
            assert!(
                matches!(before, Err(StoreError::LeaseLost(lost)) if lost == change),
                "a write on change {change} before the claim: {before:?}"
            );
            assert_eq!(self.row(&stored).await, untouched, "a write not held");
            assert_eq!(store.lease_losses(change), 1, "work on it stops");
            // The store before was closed cleanly, which ended its leases: the claim takes
            // the change at once (after a crash it would wait for the lease; tests/replicas.rs).
            let claimed = store.claim().await.unwrap();
            let ids: Vec<ChangeId> = claimed.changes.iter().map(|row| row.id).collect();
            assert_eq!(ids, [change], "the changes a clean stop released, claimed");
            let owner = self.row(&stored).await[4].clone();
            let replica = store.replica().unwrap().id.clone();
            assert_eq!(owner, Cell::Text(replica), "the owner once claimed");
            assert_eq!(
                store.lease_losses_at_grant(change),
                1,
                "work started on the claim counts from it"
            );
            let after = write().await;
            // Claimed back: work started from now on runs (the count moved only once).
            assert_eq!(store.lease_losses(change), 1, "{after:?}");
            return after;
        }
        write().await
    }

    /// The one row `sql` answers, through a connection of its own.
    pub async fn row(&self, sql: &str) -> Vec<Cell> {
        let mut rows = match self {
            Backend::Sqlite(dir) => sqlite_rows(&inspect(dir), sql),
            Backend::Postgres(db) => {
                let rows = db.client().await.query(sql, &[]).await.unwrap();
                rows.iter().map(pg_cells).collect()
            }
        };
        assert_eq!(rows.len(), 1, "rows of {sql}: {rows:?}");
        rows.pop().unwrap()
    }

    /// Runs `sql` through a connection of its own; how many rows it answered.
    pub async fn run(&self, sql: &str) -> usize {
        match self {
            Backend::Sqlite(dir) => {
                let conn = inspect(dir);
                let mut statement = conn.prepare(sql).unwrap();
                let mut rows = statement.query([]).unwrap();
                let mut count = 0;
                while rows.next().unwrap().is_some() {
                    count += 1;
                }
                count
            }
            Backend::Postgres(db) => db.client().await.query(sql, &[]).await.unwrap().len(),
        }
    }

    pub async fn count(&self, table: &str) -> i64 {
        self.row(&format!("SELECT count(*) FROM {table}")).await[0].int()
    }

    /// The schema version the database records, and the one this build writes.
    pub async fn schema_version(&self) -> (u32, u32) {
        let (sql, current) = match self {
            Backend::Sqlite(_) => (
                "PRAGMA user_version",
                cloudamqp_autoscaler::store::SCHEMA_VERSION,
            ),
            Backend::Postgres(_) => (
                "SELECT max(version) FROM schema_version",
                cloudamqp_autoscaler::store::pg::SCHEMA_VERSION,
            ),
        };
        let found = self.row(sql).await[0].int();
        (u32::try_from(found).unwrap(), current)
    }

    /// Makes the database look migrated by a newer build (the store is closed).
    pub async fn pretend_newer_schema(&self) {
        let (found, _) = self.schema_version().await;
        match self {
            Backend::Sqlite(dir) => Connection::open(dir.path().join(DB_FILE_NAME))
                .unwrap()
                .pragma_update(None, "user_version", found + 1)
                .unwrap(),
            Backend::Postgres(db) => {
                db.client()
                    .await
                    .execute(
                        "INSERT INTO schema_version (version, name) VALUES ($1, 'newer')",
                        &[&i32::try_from(found + 1).unwrap()],
                    )
                    .await
                    .unwrap();
            }
        }
    }

    /// Holds a lock that recording an alarm waits for, from a connection of its own (as
    /// an operator's `sqlite3` in a write transaction would, or a `LOCK TABLE` in `psql`),
    /// until [`Blocker::release`].
    pub async fn block_alarm_writes(&self) -> Blocker {
        match self {
            Backend::Sqlite(dir) => {
                let conn = Connection::open(dir.path().join(DB_FILE_NAME)).unwrap();
                conn.execute_batch("BEGIN IMMEDIATE").unwrap();
                Blocker::Sqlite(conn)
            }
            Backend::Postgres(db) => {
                let client = db.client().await;
                client
                    .batch_execute("BEGIN; LOCK TABLE alarms IN EXCLUSIVE MODE")
                    .await
                    .unwrap();
                Blocker::Postgres(client)
            }
        }
    }

    /// SQLite: a copy of the database files as they are now, the store still open, as
    /// a power cut leaves them. PostgreSQL: none (the files are the server's; what a
    /// crash of the daemon leaves is what was committed).
    pub fn power_cut_copy(&self) -> Option<Backend> {
        let Backend::Sqlite(dir) = self else {
            return None;
        };
        let copy = tempfile::tempdir().unwrap();
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name();
            if name.to_string_lossy().starts_with(DB_FILE_NAME) {
                std::fs::copy(entry.path(), copy.path().join(name)).unwrap();
            }
        }
        Some(Backend::Sqlite(copy))
    }
}

/// Opens the store at a [`Backend::location`]: a PostgreSQL URL, else a directory.
pub async fn open_at(location: &str) -> Result<(Store, Recovered), StoreError> {
    if location.starts_with("postgres://") {
        let options = ReplicaOptions {
            id: new_replica_id(),
            lease: LEASE,
            live: false,
            rules_hash: "store-tests".into(),
            database_ca: None,
        };
        Store::open_shared(&SecretString::from(location.to_owned()), options).await
    } else {
        Store::open(std::path::Path::new(location))
    }
}

/// A lock held by [`Backend::block_alarm_writes`].
#[derive(Debug)]
pub enum Blocker {
    Sqlite(Connection),
    Postgres(tokio_postgres::Client),
}

impl Blocker {
    pub async fn release(self) {
        match self {
            Blocker::Sqlite(conn) => conn.execute_batch("COMMIT").unwrap(),
            Blocker::Postgres(client) => client.batch_execute("COMMIT").await.unwrap(),
        }
    }
}

/// A value as the side door reads it, in the database's own type: SQLite keeps times
/// as RFC 3339 text and booleans as 0 or 1; PostgreSQL has `timestamptz` and `boolean`.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Bool(bool),
    Time(Timestamp),
}

impl Cell {
    pub fn int(&self) -> i64 {
        match self {
            Cell::Int(value) => *value,
            other => panic!("not an integer: {other:?}"),
        }
    }

    pub fn text(&self) -> &str {
        match self {
            Cell::Text(value) => value,
            other => panic!("not text: {other:?}"),
        }
    }

    /// A time, stored as text (SQLite) or as a `timestamptz` (PostgreSQL).
    pub fn time(&self) -> Timestamp {
        match self {
            Cell::Text(value) => value
                .parse()
                .unwrap_or_else(|err| panic!("not a time: {value:?}: {err}")),
            Cell::Time(value) => *value,
            other => panic!("not a time: {other:?}"),
        }
    }
}

/// A separate, read-only connection: what an operator's `sqlite3` would see.
fn inspect(dir: &TempDir) -> Connection {
    Connection::open_with_flags(
        dir.path().join(DB_FILE_NAME),
        OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap()
}

fn sqlite_rows(conn: &Connection, sql: &str) -> Vec<Vec<Cell>> {
    use rusqlite::types::ValueRef;
    let mut statement = conn.prepare(sql).unwrap();
    let width = statement.column_count();
    statement
        .query_map([], |row| {
            (0..width)
                .map(|i| {
                    Ok(match row.get_ref(i)? {
                        ValueRef::Null => Cell::Null,
                        ValueRef::Integer(value) => Cell::Int(value),
                        ValueRef::Real(value) => Cell::Real(value),
                        ValueRef::Text(text) => {
                            Cell::Text(String::from_utf8(text.to_vec()).unwrap())
                        }
                        ValueRef::Blob(_) => panic!("a blob in column {i} of {sql}"),
                    })
                })
                .collect()
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn pg_cells(row: &tokio_postgres::Row) -> Vec<Cell> {
    use tokio_postgres::types::Type;
    fn get<'a, T: tokio_postgres::types::FromSql<'a>>(
        row: &'a tokio_postgres::Row,
        i: usize,
        cell: impl FnOnce(T) -> Cell,
    ) -> Cell {
        row.get::<_, Option<T>>(i).map_or(Cell::Null, cell)
    }
    (0..row.len())
        .map(|i| match row.columns()[i].type_() {
            &Type::INT2 => get(row, i, |v: i16| Cell::Int(v.into())),
            &Type::INT4 => get(row, i, |v: i32| Cell::Int(v.into())),
            &Type::INT8 => get(row, i, Cell::Int),
            &Type::FLOAT8 => get(row, i, Cell::Real),
            &Type::BOOL => get(row, i, Cell::Bool),
            &Type::TEXT | &Type::VARCHAR | &Type::NAME => get(row, i, Cell::Text),
            &Type::TIMESTAMPTZ => get(row, i, |v: std::time::SystemTime| {
                Cell::Time(Timestamp::try_from(v).unwrap())
            }),
            other => panic!("column {i} has type {other}, which the side door does not read"),
        })
        .collect()
}

pub const INSTANCE: u64 = 359_559;

pub fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

pub fn alarm(body: &str) -> NewAlarm {
    NewAlarm {
        received_at: at("2026-11-26T17:00:00.25Z"),
        remote_addr: Some("203.0.113.7:51000".into()),
        body: body.into(),
        kind: "memory".into(),
        value: Some(85.0),
        instance: Some(INSTANCE.to_string()),
        resolved: false,
        message: Some("memory alarm".into()),
        triggered_at: Some("2026-11-26T16:59:58Z".into()),
    }
}

pub fn skip(instance_id: Option<u64>, when: &str) -> NewDecision {
    NewDecision {
        at: at(when),
        instance_id,
        plan: Some("bunny-1".into()),
        kind: DecisionKind::Skip,
        reason: Some("cooldown".into()),
        rule: Some("memory-high".into()),
        from_plan: None,
        to_plan: None,
        detail: "the instance is cooling down".into(),
    }
}

pub fn change_decision(instance_id: u64, when: &str) -> NewDecision {
    NewDecision {
        kind: DecisionKind::Change,
        reason: None,
        from_plan: Some("bunny-1".into()),
        to_plan: Some("hare-1".into()),
        detail: "memory 85 > 80: bunny-1 -> hare-1".into(),
        ..skip(Some(instance_id), when)
    }
}

/// A change decided on the state `store` has now (on PostgreSQL a change is recorded
/// only if the shared state is still the version its decision saw).
pub async fn change(store: &Store, alarm_id: AlarmId, instance_id: u64, when: &str) -> NewChange {
    NewChange {
        instance_id,
        alarm_id: Some(alarm_id),
        direction: cloudamqp_autoscaler::decide::Direction::Up,
        kind: cloudamqp_autoscaler::decide::ChangeKind::Plan,
        from_plan: "bunny-1".into(),
        to_plan: "hare-1".into(),
        rule: "memory-high".into(),
        cooldown: Duration::from_secs(1800),
        dry_run: false,
        intended_at: at(when),
        world: store.world_version().await.unwrap(),
    }
}

pub fn finish(phase: Phase, when: &str) -> ChangeFinish {
    ChangeFinish {
        phase,
        finished_at: at(when),
        detail: Some(format!("ended {}", phase.as_str())),
        needs_attention: phase != Phase::Completed,
    }
}

/// Records an alarm and a change decided on it; returns the change id.
pub async fn intend_change(store: &Store, instance_id: u64, when: &str) -> ChangeId {
    let alarm_id = store.record_alarm(alarm("{}")).await.unwrap();
    let change = change(store, alarm_id, instance_id, when).await;
    store
        .record_decision(alarm_id, change_decision(instance_id, when), Some(change))
        .await
        .unwrap()
        .expect("a change id")
}
