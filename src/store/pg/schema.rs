//! The schema of the shared state database, for the humans who open it with `psql`.
//!
//! Migration 1 is the SQLite store's final shape (see [`crate::store::schema`]: the same
//! tables, columns, views and indexes, in PostgreSQL's types: `timestamptz`, `boolean`,
//! `bigint` identities, `double precision` seconds). Alarm bodies stay `text`, as received
//! (redacted), so the audit copy is byte for byte what came in; a notification's body is
//! `json`, which checks it and keeps its text exactly (`jsonb` would reorder its keys);
//! a pause's selectors are a `jsonb` array. SQLite's `write_probe` has no counterpart: a
//! full disk on the server is the server's to report.
//!
//! Migration 2 adds what several replicas need: each open change's `owner`, `lease_until`
//! and fencing number `fence`, a unique index that lets each instance have one open change
//! only (the single-flight lock), claims on undecided alarms, at most one change per
//! schedule window opening, and the `replicas` table.
//!
//! `schema_version` has one row per migration applied, with when.
//!
//! ```sql
//! -- The open changes, who holds each, and for how much longer
//! SELECT id, instance_id, phase, owner, fence, lease_until - now() AS lease_left
//!   FROM changes WHERE phase IN ('intended', 'submitted');
//!
//! -- The replicas, and how long since each was heard from
//! SELECT id, live, rules_hash, now() - heartbeat AS silent_for FROM replicas;
//! ```

use tokio_postgres::Client;

use super::PgError;

/// One migration: its version is its place in [`MIGRATIONS`], from 1.
#[derive(Debug)]
struct Migration {
    /// A few words for `schema_version.name`.
    name: &'static str,
    sql: &'static str,
}

/// Migrations in order. Append, never edit: a database in the field has run the old text.
const MIGRATIONS: &[Migration] = &[
    Migration {
        name: "the store: the SQLite schema's final shape",
        sql: include_str!("migrations/0001_store.sql"),
    },
    Migration {
        name: "replicas: leases, fences, claims",
        sql: include_str!("migrations/0002_replicas.sql"),
    },
    Migration {
        name: "the shared state's version, bumped by every write decisions rest on",
        sql: include_str!("migrations/0003_world.sql"),
    },
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// The key of the transaction-level advisory lock `migrate` holds: replicas starting
/// together queue on it, and the ones after the first find nothing left to do. ("autoscm"
/// in ASCII; any constant works as long as no other program on the database uses it.)
const MIGRATION_LOCK: i64 = 0x6175_746f_7363_6d00;

/// What [`migrate`] did: the version before and after (equal when there was nothing to do).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migrated {
    pub from: u32,
    pub to: u32,
}

/// Applies every pending migration, all in one transaction under
/// `pg_advisory_xact_lock`: replicas starting together migrate once (the others wait for
/// the lock, then find the versions there), and a failure leaves the database as it was.
/// A database with a version newer than this build's is refused, untouched.
pub async fn migrate(client: &mut Client) -> Result<Migrated, PgError> {
    let tx = client.transaction().await?;
    // First, before anything else: even `CREATE TABLE IF NOT EXISTS` races with itself
    // (two creators, one unique violation in the catalogue) without it.
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_version (
             version    integer     PRIMARY KEY,
             name       text        NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )
    .await?;
    let current: i32 = tx
        .query_one("SELECT coalesce(max(version), 0) FROM schema_version", &[])
        .await?
        .try_get(0)?;
    let from = u32::try_from(current).unwrap_or(0);
    if from > SCHEMA_VERSION {
        // Dropping `tx` rolls back: nothing is written to a newer build's database.
        return Err(PgError::TooNew {
            found: from,
            known: SCHEMA_VERSION,
        });
    }
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(from as usize) {
        let version = index as u32 + 1;
        let failed = |err: tokio_postgres::Error| PgError::Migrate {
            version,
            reason: PgError::from(err).to_string(),
        };
        tx.batch_execute(migration.sql).await.map_err(failed)?;
        tx.execute(
            "INSERT INTO schema_version (version, name) VALUES ($1, $2)",
            &[&(version as i32), &migration.name],
        )
        .await
        .map_err(failed)?;
    }
    tx.commit().await?;
    if from < SCHEMA_VERSION {
        tracing::info!(from, to = SCHEMA_VERSION, "state database schema migrated");
    }
    Ok(Migrated {
        from,
        to: SCHEMA_VERSION,
    })
}

/// Every migration's text in order, for the test template's name: a template migrated by
/// another text (an edited migration, another branch) is never reused.
pub fn migrations_text() -> impl Iterator<Item = &'static str> {
    MIGRATIONS.iter().map(|migration| migration.sql)
}
