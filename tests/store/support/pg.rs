//! A PostgreSQL database of each test's own, cloned from a migrated template.
//!
//! The server is the one `AUTOSCALER_TEST_PG_URL` names (a URL to its `postgres`
//! database), by default 127.0.0.1:5432 as `postgres` with trust auth. Each test process
//! prepares one template, `autoscaler_store_template_<hash of the migration files>`,
//! under an advisory lock, so processes starting together build it once and a template
//! migrated by other text (another branch, an edited or added migration) is never reused;
//! it is built under a `_wip` name and renamed once complete, so no one clones half of
//! one. A test clones it (`CREATE DATABASE … TEMPLATE`, a copy of a few megabytes where
//! migrating would run every statement again) and its copy is dropped with the
//! [`TestDb`], passed or panicked (`DROP DATABASE … WITH (FORCE)`): at once if no other
//! test of the process holds a database, else together with the last one's. (Each DROP
//! forces a checkpoint of the whole server; dropped together, they share a few.) What
//! killed test processes left is dropped by the next one. (The library's own `src/store/pg/testdb.rs` does the same
//! for its unit tests, but is `cfg(test)` and not visible here.)

use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use tokio_postgres::{Client, NoTls};

const ADMIN_URL_ENV: &str = "AUTOSCALER_TEST_PG_URL";
const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// Held (session level, on the `postgres` database) while the template is prepared.
const TEMPLATE_LOCK: i64 = 0x6175_746f_7374_6974;
/// Every test database's name starts so, then the test process's id.
const PREFIX: &str = "autoscaler_store_test_";
/// `object_in_use`: a session is still connected to the database being cloned or
/// renamed (a backend that is closing takes a moment to go).
const OBJECT_IN_USE: &str = "55006";

/// A migrated database for one test; dropped with this value.
#[derive(Debug)]
pub struct TestDb {
    name: String,
    url: String,
}

impl TestDb {
    /// A copy of the migrated template. Blocks (on a thread and runtime of its own), so
    /// it can be made outside a runtime too.
    pub fn migrated() -> TestDb {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let template = template();
        let name = format!(
            "{PREFIX}{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let sql = format!("CREATE DATABASE {name} TEMPLATE {template}");
        on_own_runtime(async move {
            let admin = connect(&admin_url()).await?;
            retry_in_use(|| admin.batch_execute(&sql)).await
        })
        .unwrap_or_else(|err| panic!("cannot create test database {name}: {err}"));
        LIVE.lock().unwrap_or_else(PoisonError::into_inner).live += 1;
        TestDb {
            url: url_for(&admin_url(), &name),
            name,
        }
    }

    /// The database's URL, as `state.database_url` would hold it.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A plain connection to it, served by a task on the caller's runtime.
    pub async fn client(&self) -> Client {
        connect(&self.url)
            .await
            .unwrap_or_else(|err| panic!("cannot connect to {}: {err}", self.name))
    }
}

/// The process's test databases: how many are in use, and those done with but not
/// dropped yet.
struct Live {
    live: usize,
    done: Vec<String>,
}

static LIVE: Mutex<Live> = Mutex::new(Live {
    live: 0,
    done: Vec::new(),
});

impl Drop for TestDb {
    fn drop(&mut self) {
        let names = {
            let mut live = LIVE.lock().unwrap_or_else(PoisonError::into_inner);
            live.live -= 1;
            live.done.push(self.name.clone());
            if live.live > 0 {
                // Dropped with the last database in use.
                return;
            }
            std::mem::take(&mut live.done)
        };
        let dropped = on_own_runtime(async move {
            let drops = names.into_iter().map(|name| async move {
                let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                let dropped = async { connect(&admin_url()).await?.batch_execute(&sql).await };
                dropped.await.map_err(|err| format!("{name}: {err}"))
            });
            // A few at a time: connections to the server are shared with others' tests.
            futures_util::stream::iter(drops)
                .buffer_unordered(8)
                .collect::<Vec<_>>()
                .await
        });
        for err in dropped.into_iter().filter_map(Result::err) {
            eprintln!("cannot drop test database {err}");
        }
    }
}

fn admin_url() -> String {
    std::env::var(ADMIN_URL_ENV).unwrap_or_else(|_| ADMIN_URL.to_owned())
}

/// `admin` (a `postgres://…/postgres` URL) with its database replaced by `database`.
fn url_for(admin: &str, database: &str) -> String {
    let (base, query) = admin
        .split_once('?')
        .map_or((admin, None), |(base, query)| (base, Some(query)));
    let authority = base.find("://").map_or(0, |scheme| scheme + 3);
    let path = base[authority..]
        .find('/')
        .map_or(base.len(), |slash| authority + slash);
    let query = query.map(|query| format!("?{query}")).unwrap_or_default();
    format!("{}/{database}{query}", &base[..path])
}

/// Connects, serving the connection on a task of the current runtime (it ends once the
/// client is dropped).
async fn connect(url: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        // An error here is the connection ending, which the client reports itself.
        let _ = connection.await;
    });
    Ok(client)
}

/// The template's name, preparing it on first use in this process.
fn template() -> &'static str {
    static TEMPLATE: OnceLock<Result<String, String>> = OnceLock::new();
    let prepared = TEMPLATE.get_or_init(|| on_own_runtime(prepare_template()));
    match prepared {
        Ok(name) => name,
        Err(err) => panic!(
            "cannot prepare the test database template on the PostgreSQL server \
             ({ADMIN_URL_ENV}, by default {ADMIN_URL}): {err}"
        ),
    }
}

/// Named by the migration files (names and text, in order), read from the source tree:
/// an edited or added migration makes another template.
fn template_name() -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/store/pg/migrations");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    let mut hash = Sha256::new();
    for file in files {
        hash.update(file.file_name().unwrap().as_encoded_bytes());
        hash.update([0]);
        hash.update(std::fs::read(&file).unwrap());
        hash.update([0]);
    }
    let hex = hex::encode(hash.finalize());
    format!("autoscaler_store_template_{}", &hex[..12])
}

async fn prepare_template() -> Result<String, String> {
    let text = |err: tokio_postgres::Error| err.to_string();
    let name = template_name();
    let admin = connect(&admin_url()).await.map_err(text)?;
    admin
        .execute("SELECT pg_advisory_lock($1)", &[&TEMPLATE_LOCK])
        .await
        .map_err(text)?;
    let built = build_template(&admin, &name).await;
    // The lock is the session's: it would also go with the connection.
    let _ = admin
        .execute("SELECT pg_advisory_unlock($1)", &[&TEMPLATE_LOCK])
        .await;
    built.map(|()| name)
}

/// Under the template lock: drops what killed test processes left, then builds the
/// template unless a complete one exists.
async fn build_template(admin: &Client, name: &str) -> Result<(), String> {
    let text = |err: tokio_postgres::Error| err.to_string();
    sweep(admin).await.map_err(text)?;
    let exists = admin
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await
        .map_err(text)?
        .is_some();
    if exists {
        return Ok(());
    }
    let building = format!("{name}_wip");
    // Two statements: neither may run inside a transaction block, as one string would.
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"))
        .await
        .map_err(text)?;
    admin
        .batch_execute(&format!("CREATE DATABASE {building} TEMPLATE template0"))
        .await
        .map_err(text)?;
    // The migrations `Store::open_shared` runs, without joining as a replica (the
    // template holds the schema and nothing else).
    let mut client = connect(&url_for(&admin_url(), &building))
        .await
        .map_err(text)?;
    cloudamqp_autoscaler::store::pg::migrate(&mut client)
        .await
        .map_err(|err| err.to_string())?;
    drop(client);
    let rename = format!("ALTER DATABASE {building} RENAME TO {name}");
    retry_in_use(|| admin.batch_execute(&rename))
        .await
        .map_err(text)
}

/// Drops the test databases of processes that are gone (killed before their guards ran)
/// and that no one is connected to.
async fn sweep(admin: &Client) -> Result<(), tokio_postgres::Error> {
    let rows = admin
        .query(
            "SELECT datname FROM pg_database AS d \
             WHERE datname LIKE 'autoscaler\\_store\\_test\\_%' \
               AND NOT EXISTS (SELECT 1 FROM pg_stat_activity AS a WHERE a.datid = d.oid)",
            &[],
        )
        .await?;
    for row in rows {
        let name: String = row.try_get(0)?;
        let pid = name[PREFIX.len()..]
            .split('_')
            .next()
            .and_then(|pid| pid.parse::<u32>().ok());
        let alive = pid.is_none_or(|pid| Path::new(&format!("/proc/{pid}")).exists());
        if !alive {
            admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await?;
        }
    }
    Ok(())
}

/// Runs `attempt` again while the database it touches is still in use (5 s at most).
async fn retry_in_use<F, Fut>(mut attempt: F) -> Result<(), tokio_postgres::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), tokio_postgres::Error>>,
{
    let mut tries = 0;
    loop {
        match attempt().await {
            Err(err)
                if tries < 50 && err.code().is_some_and(|code| code.code() == OBJECT_IN_USE) =>
            {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            done => return done,
        }
    }
}

/// Runs `work` to completion on a runtime of its own, on a thread of its own: `drop`
/// cannot await, and the caller may be on a runtime (or on none).
fn on_own_runtime<T: Send + 'static>(work: impl Future<Output = T> + Send + 'static) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the test database's setup")
            .block_on(work)
    })
    .join()
    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}
