//! A fresh PostgreSQL database per test, cloned from a migrated template.
//!
//! The server is the one `AUTOSCALER_TEST_PG_URL` names (a URL to its `postgres`
//! database), by default 127.0.0.1:5432 as `postgres` with trust auth, as on the
//! developers' machines and CI. Each test process prepares one template,
//! `autoscaler_template_<hash of the migrations' text>`, under an advisory lock on the
//! `postgres` database, so test processes starting together build it once, and a template
//! migrated by other text (another branch, an edited migration) is never reused. It is
//! built under a `_wip` name and renamed when complete, so no one clones half of one.
//! Each test then clones it (`CREATE DATABASE … TEMPLATE`: a copy of a few megabytes,
//! where migrating would run every statement again) and drops its copy when the
//! [`TestDb`] is dropped, passed or panicked (`DROP DATABASE … WITH (FORCE)`): at once
//! if no other test of the process holds a database, else together with the last one's
//! (each DROP forces a checkpoint of the whole server; dropped together, they share a
//! few). Databases left by a test process that was killed are dropped by the next one.
//!
//! Used by the library's own tests and by tests/store.rs (through this public module,
//! hidden from the docs: it is not part of the daemon).

use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use futures_util::StreamExt;
use secrecy::SecretString;
use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;
use tokio_postgres::{Client, Config, NoTls};

use super::connect::{PoolOptions, pool};
use super::schema::{migrate, migrations_text};

const ADMIN_URL_ENV: &str = "AUTOSCALER_TEST_PG_URL";
const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// Held (session-level, on the `postgres` database) while a template is prepared.
const TEMPLATE_LOCK: i64 = 0x6175_746f_7374_706c;
/// Every test database's name starts so, then the test process's id.
const PREFIX: &str = "autoscaler_test_";
/// `object_in_use`: a session is still connected to the database being cloned or renamed
/// (a backend that is closing takes a moment to go).
const OBJECT_IN_USE: &str = "55006";

/// A database of its own for one test; dropped with this value.
#[derive(Debug)]
pub struct TestDb {
    name: String,
    url: String,
}

impl TestDb {
    /// A database with the schema migrated (cloned from the template).
    pub async fn migrated() -> TestDb {
        let template = template();
        Self::create(&format!("TEMPLATE {template}")).await
    }

    /// A database with nothing in it, for the migrations' own tests.
    pub async fn empty() -> TestDb {
        Self::create("TEMPLATE template0").await
    }

    async fn create(source: &str) -> TestDb {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "{PREFIX}{}_{}_{:08x}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            fastrand::u32(..)
        );
        let admin = admin_client().await;
        let sql = format!("CREATE DATABASE {name} {source}");
        retry_in_use(|| admin.batch_execute(&sql))
            .await
            .unwrap_or_else(|err| panic!("cannot create test database {name}: {err}"));
        LIVE.lock().unwrap_or_else(PoisonError::into_inner).live += 1;
        TestDb {
            url: url_for(&admin_url(), &name),
            name,
        }
    }

    /// [`Self::migrated`], made on a thread and runtime of its own: for a caller outside a
    /// runtime, or one that must not block its own.
    pub fn migrated_blocking() -> TestDb {
        on_own_runtime(Self::migrated()).expect("a test database")
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The database's URL, as `state.database_url` would hold it.
    pub fn url(&self) -> SecretString {
        SecretString::from(self.url.clone())
    }

    /// The URL as text, for a child process's environment.
    pub fn url_text(&self) -> &str {
        &self.url
    }

    /// A pool to it, built as the daemon will build one.
    pub fn pool(&self) -> deadpool_postgres::Pool {
        pool(&self.url(), &PoolOptions::default()).expect("a pool to the test database")
    }

    /// A plain connection to it, served by a task on the caller's runtime.
    pub async fn client(&self) -> Client {
        let config: Config = self.url.parse().expect("the test database's URL");
        connect(&config)
            .await
            .unwrap_or_else(|err| panic!("cannot connect to {}: {err}", self.name))
            .0
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
        // Its own runtime on its own thread: `drop` cannot await, and the test's runtime
        // may be the one this runs on.
        let dropped = on_own_runtime(async move {
            let drops = names.into_iter().map(|name| async move {
                let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                let dropped = async {
                    let (admin, _) = connect(&admin_config()).await?;
                    admin.batch_execute(&sql).await
                };
                dropped.await.map_err(|err| format!("{name}: {err}"))
            });
            // A few at a time: connections to the server are shared with others' tests.
            futures_util::stream::iter(drops)
                .buffer_unordered(8)
                .collect::<Vec<_>>()
                .await
        });
        match dropped {
            Ok(results) => {
                for err in results.into_iter().filter_map(Result::err) {
                    eprintln!("cannot drop test database {err}");
                }
            }
            Err(_) => eprintln!("cannot drop test databases: the drop panicked"),
        }
    }
}

/// A connection to the server's `postgres` database.
pub async fn admin_client() -> Client {
    connect(&admin_config())
        .await
        .unwrap_or_else(|err| {
            panic!(
                "cannot connect to the test PostgreSQL server ({ADMIN_URL_ENV}, by default \
             {ADMIN_URL}): {err}"
            )
        })
        .0
}

fn admin_url() -> String {
    std::env::var(ADMIN_URL_ENV).unwrap_or_else(|_| ADMIN_URL.to_owned())
}

fn admin_config() -> Config {
    admin_url()
        .parse()
        .expect("a PostgreSQL URL in AUTOSCALER_TEST_PG_URL")
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

/// Connects, serving the connection on a task of the current runtime; the task ends once
/// the client is dropped and the connection closed.
async fn connect(config: &Config) -> Result<(Client, JoinHandle<()>), tokio_postgres::Error> {
    let (client, connection) = config.connect(NoTls).await?;
    let task = tokio::spawn(async move {
        // An error here is the connection ending, which the client reports itself.
        let _ = connection.await;
    });
    Ok((client, task))
}

/// The template's name, preparing it on first use in this process.
fn template() -> &'static str {
    static TEMPLATE: OnceLock<Result<String, String>> = OnceLock::new();
    let prepared = TEMPLATE.get_or_init(|| {
        on_own_runtime(prepare_template())
            .unwrap_or_else(|_| Err("preparing it panicked".to_owned()))
    });
    match prepared {
        Ok(name) => name,
        Err(err) => panic!("cannot prepare the test database template: {err}"),
    }
}

fn template_name() -> String {
    let mut hash = Sha256::new();
    for sql in migrations_text() {
        hash.update(sql.as_bytes());
        hash.update([0]);
    }
    let hex = hex::encode(hash.finalize());
    format!("autoscaler_template_{}", &hex[..12])
}

async fn prepare_template() -> Result<String, String> {
    let name = template_name();
    let (admin, _) = connect(&admin_config()).await.map_err(|err| {
        format!(
            "cannot connect to the test PostgreSQL server ({ADMIN_URL_ENV}, by default \
             {ADMIN_URL}): {err}"
        )
    })?;
    admin
        .execute("SELECT pg_advisory_lock($1)", &[&TEMPLATE_LOCK])
        .await
        .map_err(|err| err.to_string())?;
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
    // Two statements: neither runs inside a transaction block, as one string would.
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"))
        .await
        .map_err(text)?;
    admin
        .batch_execute(&format!("CREATE DATABASE {building} TEMPLATE template0"))
        .await
        .map_err(text)?;
    let config: Config = url_for(&admin_url(), &building).parse().map_err(text)?;
    let (mut client, task) = connect(&config).await.map_err(text)?;
    migrate(&mut client).await.map_err(|err| err.to_string())?;
    drop(client);
    let _ = task.await;
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
             WHERE datname LIKE 'autoscaler\\_test\\_%' \
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

/// Runs `attempt` again while the database it touches is still in use (for 5 s at most).
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

/// Runs `work` to completion on a runtime of its own, on a thread of its own.
fn on_own_runtime<T: Send + 'static>(
    work: impl Future<Output = T> + Send + 'static,
) -> std::thread::Result<T> {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the test database's setup")
            .block_on(work)
    })
    .join()
}

/// A plan change of `instance_id` (bunny-1 → hare-1 by `memory-high`), for tests to
/// adjust.
pub fn new_change(instance_id: u64) -> crate::store::NewChange {
    crate::store::NewChange {
        instance_id,
        alarm_id: None,
        direction: crate::decide::Direction::Up,
        kind: crate::decide::ChangeKind::Plan,
        from_plan: "bunny-1".into(),
        to_plan: "hare-1".into(),
        rule: "memory-high".into(),
        cooldown: Duration::from_secs(1800),
        dry_run: false,
        intended_at: jiff::Timestamp::now(),
        world: None,
    }
}
