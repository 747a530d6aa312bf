//! Opening the state directory: every way it can fail is named with the OS's reason.
//!
//! SQLite alone would say only "unable to open database file"; an operator needs to know
//! whether the directory is read-only, a file is in the way, or another daemon holds it.
//! So each step is first tried with the standard library, which reports `errno`.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::Connection;

use super::{DB_FILE_NAME, LOCK_FILE_NAME, Recovered, StoreError, recover, schema};

/// How long a write waits for a lock someone else holds (a human's `sqlite3` session in a
/// write transaction) before failing, so the webhook answers 503 rather than hanging.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Prepared statements kept per connection: the writer uses about a dozen.
const STATEMENT_CACHE: usize = 32;

/// An open, migrated database and what the previous run left.
pub(crate) struct Opened {
    pub(crate) conn: Connection,
    pub(crate) path: PathBuf,
    pub(crate) lock: File,
    pub(crate) recovered: Recovered,
}

pub(crate) fn open(dir: &Path) -> Result<Opened, StoreError> {
    let fail = |reason: String| StoreError::Open {
        dir: dir.display().to_string(),
        reason,
    };
    ensure_dir(dir).map_err(fail)?;
    let lock = lock(dir).map_err(fail)?;
    probe_writable(dir).map_err(fail)?;
    let path = dir.join(DB_FILE_NAME);
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|err| fail(format!("cannot open {}: {err}", path.display())))?;
    let mut conn = Connection::open(&path)
        .map_err(|err| err.to_string())
        .and_then(|conn| configure(&conn).map(|()| conn))
        .map_err(|err| fail(format!("cannot open {}: {err}", path.display())))?;
    schema::migrate(&mut conn).map_err(fail)?;
    let recovered = recover::read(&conn)
        .map_err(|err| fail(format!("cannot read the previous run's state: {err}")))?;
    Ok(Opened {
        conn,
        path,
        lock,
        recovered,
    })
}

fn ensure_dir(dir: &Path) -> Result<(), String> {
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err("it exists and is not a directory".into()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(dir).map_err(|err| format!("cannot create it: {err}"))
        }
        Err(err) => Err(err.to_string()),
    }
}

/// One daemon per state directory: a second one would re-decide the same alarms and send
/// the same plan changes. The lock is advisory (`flock`), released by the OS when the
/// process dies however it dies, so a `kill -9` never leaves a stale lock behind.
fn lock(dir: &Path) -> Result<File, String> {
    let path = dir.join(LOCK_FILE_NAME);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|err| format!("cannot create {}: {err}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(format!(
            "it is in use by another cloudamqp-autoscaler (or another store in this process); \
             {} is locked",
            path.display()
        )),
        Err(TryLockError::Error(err)) => Err(format!("cannot lock {}: {err}", path.display())),
    }
}

/// SQLite needs to create its `-wal` and `-shm` files next to the database: check the
/// directory takes new files now, with a clear reason, rather than at the first alarm.
fn probe_writable(dir: &Path) -> Result<(), String> {
    let probe = dir.join(".autoscaler-write-probe");
    File::create(&probe).map_err(|err| format!("cannot write in it: {err}"))?;
    fs::remove_file(&probe).map_err(|err| format!("cannot write in it: {err}"))
}

fn configure(conn: &Connection) -> Result<(), String> {
    // WAL: readers (an operator's `sqlite3`) never block the writer, and a commit is one
    // append + fsync of the log.
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(|err| format!("cannot switch to write-ahead logging: {err}"))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(format!(
            "the database refused write-ahead logging (journal_mode is {mode})"
        ));
    }
    let set = |name: &str, value: &dyn rusqlite::ToSql| {
        conn.pragma_update(None, name, value)
            .map_err(|err| format!("cannot set {name}: {err}"))
    };
    // FULL: in WAL mode, NORMAL does not fsync on commit, and an alarm must be on disk
    // before its 202.
    set("synchronous", &"FULL")?;
    set("foreign_keys", &true)?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|err| format!("cannot set the busy timeout: {err}"))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(())
}
