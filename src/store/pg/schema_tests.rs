//! Migrations against the real PostgreSQL: once, together, refused when too new, and the
//! same shape as the SQLite store's.

use std::collections::BTreeSet;

use super::PgError;
use super::schema::{Migrated, SCHEMA_VERSION, migrate};
use super::testdb::{TestDb, admin_client};

/// `(version, name, applied_at)` of every row of `schema_version`, in version order.
async fn versions(client: &tokio_postgres::Client) -> Vec<(i32, String, std::time::SystemTime)> {
    client
        .query(
            "SELECT version, name, applied_at FROM schema_version ORDER BY version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect()
}

fn all_versions() -> Vec<i32> {
    (1..=SCHEMA_VERSION as i32).collect()
}

#[tokio::test]
async fn migrations_apply_on_an_empty_database_and_a_second_run_does_nothing() {
    let db = TestDb::empty().await;
    let mut client = db.client().await;

    let first = migrate(&mut client).await.unwrap();
    assert_eq!(
        first,
        Migrated {
            from: 0,
            to: SCHEMA_VERSION
        }
    );
    let applied = versions(&client).await;
    let numbers: Vec<i32> = applied.iter().map(|(version, ..)| *version).collect();
    assert_eq!(numbers, all_versions());
    // The tables are there and usable.
    let open: i64 = client
        .query_one(
            "SELECT count(*) FROM changes WHERE phase IN ('intended', 'submitted')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(open, 0);

    let second = migrate(&mut client).await.unwrap();
    assert_eq!(
        second,
        Migrated {
            from: SCHEMA_VERSION,
            to: SCHEMA_VERSION
        }
    );
    assert_eq!(
        versions(&client).await,
        applied,
        "a second run writes nothing"
    );
}

/// Three replicas starting together: each migration is applied once, by one of them, in
/// one transaction, and none of them fails.
#[tokio::test]
async fn three_concurrent_migrations_apply_each_version_once() {
    let db = TestDb::empty().await;
    let mut a = db.client().await;
    let mut b = db.client().await;
    let mut c = db.client().await;

    let (ra, rb, rc) = tokio::join!(migrate(&mut a), migrate(&mut b), migrate(&mut c));
    let results = [ra.unwrap(), rb.unwrap(), rc.unwrap()];

    let migrating = results.iter().filter(|done| done.from == 0).count();
    assert_eq!(migrating, 1, "one replica migrates: {results:?}");
    assert!(results.iter().all(|done| done.to == SCHEMA_VERSION));
    assert_eq!(
        results
            .iter()
            .filter(|done| done.from == SCHEMA_VERSION)
            .count(),
        2,
        "the others find it done: {results:?}"
    );
    let applied = versions(&a).await;
    let numbers: Vec<i32> = applied.iter().map(|(version, ..)| *version).collect();
    assert_eq!(numbers, all_versions());
    let transactions: BTreeSet<_> = applied.iter().map(|(.., at)| *at).collect();
    assert_eq!(transactions.len(), 1, "all versions in one transaction");
}

#[tokio::test]
async fn a_database_newer_than_this_build_is_refused_and_left_alone() {
    let db = TestDb::migrated().await;
    let mut client = db.client().await;
    let newer = SCHEMA_VERSION as i32 + 1;
    client
        .execute(
            "INSERT INTO schema_version (version, name) VALUES ($1, 'from a newer build')",
            &[&newer],
        )
        .await
        .unwrap();

    let refused = migrate(&mut client).await.unwrap_err();

    assert_eq!(
        refused,
        PgError::TooNew {
            found: SCHEMA_VERSION + 1,
            known: SCHEMA_VERSION
        }
    );
    assert!(
        refused.to_string().contains("newer than this build"),
        "{refused}"
    );
    let numbers: Vec<i32> = versions(&client).await.iter().map(|(v, ..)| *v).collect();
    let mut expected = all_versions();
    expected.push(newer);
    assert_eq!(numbers, expected);
}

/// A failing migration leaves nothing behind: not its own statements, not the versions.
#[tokio::test]
async fn a_failed_migration_leaves_the_database_as_it_was() {
    let db = TestDb::empty().await;
    let mut client = db.client().await;
    // Something in the way of migration 1's first table.
    client
        .batch_execute("CREATE TABLE alarms (id integer)")
        .await
        .unwrap();

    let failed = migrate(&mut client).await.unwrap_err();

    assert!(
        matches!(failed, PgError::Migrate { version: 1, .. }),
        "{failed:?}"
    );
    let tables: i64 = client
        .query_one(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        tables, 1,
        "only the table that was there (no schema_version either)"
    );
}

#[tokio::test]
async fn a_test_database_is_a_migrated_copy_and_is_dropped_after() {
    let name;
    {
        let db = TestDb::migrated().await;
        name = db.name().to_owned();
        let client = db.client().await;
        let numbers: Vec<i32> = versions(&client).await.iter().map(|(v, ..)| *v).collect();
        assert_eq!(numbers, all_versions());
    }
    let admin = admin_client().await;
    let left = admin
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await
        .unwrap();
    assert!(left.is_none(), "{name} is still there");
}

/// The columns of each table or view (in order) of the SQLite store, from its migrations.
fn sqlite_columns() -> Vec<(String, Vec<String>)> {
    let mut conn = rusqlite::Connection::open_in_memory().unwrap();
    crate::store::schema::migrate(&mut conn).unwrap();
    let names: Vec<String> = conn
        .prepare(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') \
             AND name NOT LIKE 'sqlite_%' AND name <> 'write_probe' ORDER BY name",
        )
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    names
        .into_iter()
        .map(|name| {
            let columns = conn
                .prepare(&format!(
                    "SELECT name FROM pragma_table_info('{name}') ORDER BY cid"
                ))
                .unwrap()
                .query_map([], |row| row.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            (name, columns)
        })
        .collect()
}

fn sqlite_indexes() -> BTreeSet<String> {
    let mut conn = rusqlite::Connection::open_in_memory().unwrap();
    crate::store::schema::migrate(&mut conn).unwrap();
    conn.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_%'")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// What migration 2 adds to each table and view, beyond the SQLite store's columns.
fn replica_columns(table: &str) -> &'static [&'static str] {
    match table {
        "changes" | "change_history" | "latest_finished_changes" => {
            &["owner", "lease_until", "fence"]
        }
        "alarms" | "pending_alarms" => &["owner", "claimed_until", "fence"],
        "deliveries" => &["owner"],
        _ => &[],
    }
}

/// Every table, view, column and index of the SQLite store is here too, in the same
/// order; the only additions are what replicas need. A SQLite migration without its
/// PostgreSQL counterpart fails this.
#[tokio::test]
async fn the_schema_mirrors_the_sqlite_store() {
    let db = TestDb::migrated().await;
    let client = db.client().await;
    let sqlite = sqlite_columns();

    let relations: BTreeSet<String> = client
        .query(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    let mut expected: BTreeSet<String> = sqlite.iter().map(|(name, _)| name.clone()).collect();
    expected.extend([
        "schema_version".to_owned(),
        "replicas".to_owned(),
        "world".to_owned(),
    ]);
    assert_eq!(relations, expected);

    for (table, columns) in &sqlite {
        let found: Vec<String> = client
            .query(
                "SELECT column_name::text FROM information_schema.columns \
                 WHERE table_schema = 'public' AND table_name::text = $1 ORDER BY ordinal_position",
                &[table],
            )
            .await
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect();
        let extra = replica_columns(table);
        let mirrored: Vec<String> = found
            .iter()
            .filter(|column| !extra.contains(&column.as_str()))
            .cloned()
            .collect();
        assert_eq!(&mirrored, columns, "the columns of {table}");
        for column in extra {
            assert!(found.iter().any(|c| c == column), "{table} has no {column}");
        }
    }

    // Indexes other than those behind a primary key or a UNIQUE constraint.
    let indexes: BTreeSet<String> = client
        .query(
            "SELECT indexname::text FROM pg_indexes WHERE schemaname = 'public' \
               AND indexname NOT IN (SELECT conname FROM pg_constraint)",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    let sqlite_indexes = sqlite_indexes();
    let missing: Vec<_> = sqlite_indexes.difference(&indexes).collect();
    assert!(missing.is_empty(), "indexes missing: {missing:?}");
    let added: BTreeSet<&str> = indexes
        .iter()
        .filter(|index| !sqlite_indexes.contains(*index))
        .map(String::as_str)
        .collect();
    assert_eq!(
        added,
        BTreeSet::from([
            "changes_open_per_instance",
            "changes_open_by_lease",
            "schedule_runs_one_change_per_opening",
        ])
    );
}

/// The views read as SQLite's do: a decision, a change's duration, the latest per instance.
#[tokio::test]
async fn the_views_answer_as_the_sqlite_ones() {
    let db = TestDb::migrated().await;
    let client = db.client().await;
    client
        .batch_execute(
            "INSERT INTO alarms (received_at, kind, resolved, body, decided_at, instance_id, \
                                 plan, decision, rule, from_plan, to_plan, detail)
                  VALUES ('2026-11-26T17:00:00Z', 'memory', false, '{}', '2026-11-26T17:00:01Z',
                          7, 'bunny-1', 'change', 'memory-up', 'bunny-1', 'hare-1', 'memory');
             INSERT INTO alarms (received_at, kind, resolved, body)
                  VALUES ('2026-11-26T17:00:02Z', 'memory', false, '{}');
             INSERT INTO changes (instance_id, alarm_id, from_plan, to_plan, rule,
                                  cooldown_seconds, dry_run, phase, intended_at, accepted_at,
                                  finished_at, direction, kind)
                  VALUES (7, 1, 'bunny-1', 'hare-1', 'memory-up', 600, false, 'completed',
                          '2026-11-26T17:00:01Z', '2026-11-26T17:00:02Z',
                          '2026-11-26T17:05:01Z', 'up', 'plan');",
        )
        .await
        .unwrap();
    let one = |sql: &'static str| {
        let client = &client;
        async move { client.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) }
    };
    assert_eq!(one("SELECT count(*) FROM recent_decisions").await, 1);
    assert_eq!(
        one("SELECT count(*) FROM decisions WHERE alarm_id = 1").await,
        1
    );
    assert_eq!(one("SELECT count(*) FROM pending_alarms").await, 1);
    assert_eq!(one("SELECT instance_id FROM latest_decisions").await, 7);
    assert_eq!(one("SELECT took_seconds FROM change_history").await, 300);
    assert_eq!(one("SELECT count(*) FROM latest_finished_changes").await, 1);
    let refused = client
        .execute("UPDATE alarms SET decision = 'maybe' WHERE id = 1", &[])
        .await
        .unwrap_err();
    assert!(matches!(PgError::from(refused), PgError::Refused(_)));
}
