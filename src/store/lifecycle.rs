//! The writer thread's life: started at open, fed through a channel, stopped by `close` or
//! by the last `Store` clone going away.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError, RwLock, mpsc};
use std::thread::JoinHandle;

use tokio::sync::watch;

use super::writer::{self, Job, Shared};
use super::{Recovered, StoreError, open};

/// What the `Store` clones share.
#[derive(Debug)]
pub(crate) struct Inner {
    /// `None` once closed: later calls get `StoreError::Closed`. The channel's only
    /// sender, so taking it out lets the writer drain the queue and stop.
    jobs: RwLock<Option<mpsc::Sender<Job>>>,
    pub(crate) shared: Arc<Shared>,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// Its sender lives on the writer thread and is dropped as the thread ends, after the
    /// connection is closed: `close` awaits that.
    stopped: watch::Receiver<()>,
    /// The SQLite file; empty on PostgreSQL.
    pub(crate) path: PathBuf,
    /// Holds the advisory lock on the state directory for as long as the store is open
    /// (SQLite only: replicas sharing PostgreSQL coordinate through leases).
    _lock: Option<File>,
    /// Set when the state is in PostgreSQL, shared with other replicas.
    pub(crate) replica: Option<super::Replica>,
}

impl Inner {
    /// Opens the database and starts the writer thread on its connection.
    pub(crate) fn start(dir: &Path) -> Result<(Inner, Recovered), StoreError> {
        let opened = open::open(dir)?;
        let shared = Arc::new(Shared::default());
        shared.healthy.store(true, Ordering::Relaxed);
        let (jobs, queue) = mpsc::channel();
        let (stopped_tx, stopped) = watch::channel(());
        let guard = ExitGuard {
            shared: Arc::clone(&shared),
            _stopped: stopped_tx,
        };
        let conn = opened.conn;
        let writer_shared = Arc::clone(&shared);
        let writer = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || {
                // Dropped when the writer returns or panics (a bug): the store turns
                // unhealthy and `close` stops waiting.
                let _guard = guard;
                writer::run(conn, queue, writer_shared);
            })
            .map_err(|err| StoreError::Open {
                dir: dir.display().to_string(),
                reason: format!("cannot start the writer thread: {err}"),
            })?;
        let inner = Inner {
            jobs: RwLock::new(Some(jobs)),
            shared,
            writer: Mutex::new(Some(writer)),
            stopped,
            path: opened.path,
            _lock: Some(opened.lock),
            replica: None,
        };
        Ok((inner, opened.recovered))
    }

    /// Starts the PostgreSQL writer thread for `replica` (the database is migrated and
    /// this replica registered already). Must be called within the daemon's runtime.
    pub(crate) fn start_shared(replica: super::Replica) -> Result<Inner, StoreError> {
        let shared = Arc::new(Shared::default());
        shared.healthy.store(true, Ordering::Relaxed);
        let (jobs, queue) = mpsc::channel();
        let (stopped_tx, stopped) = watch::channel(());
        let guard = ExitGuard {
            shared: Arc::clone(&shared),
            _stopped: stopped_tx,
        };
        let writer_shared = Arc::clone(&shared);
        let handle = tokio::runtime::Handle::current();
        let pool = replica.pool.clone();
        let ctx = super::pg::commands::WriterCtx {
            owner: replica.id.clone(),
            lease: replica.lease,
            held: Default::default(),
            left: false,
        };
        let writer = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || {
                let _guard = guard;
                super::pg::writer::run(handle, pool, queue, writer_shared, ctx);
            })
            .map_err(|err| StoreError::Open {
                dir: "state.database_url".into(),
                reason: format!("cannot start the writer thread: {err}"),
            })?;
        Ok(Inner {
            jobs: RwLock::new(Some(jobs)),
            shared,
            writer: Mutex::new(Some(writer)),
            stopped,
            path: PathBuf::new(),
            _lock: None,
            replica: Some(replica),
        })
    }

    pub(crate) fn send(&self, job: Job) -> Result<(), StoreError> {
        // Poisoning cannot leave the `Option` half-written; carry on with it.
        let jobs = self.jobs.read().unwrap_or_else(PoisonError::into_inner);
        match jobs.as_ref() {
            Some(jobs) => jobs.send(job).map_err(|_| StoreError::Closed),
            None => Err(StoreError::Closed),
        }
    }

    pub(crate) fn stop_accepting(&self) {
        let sender = self
            .jobs
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        drop(sender);
        // Unhealthy from now on, not only once the writer has drained the queue.
        self.shared.healthy.store(false, Ordering::Relaxed);
    }

    /// Resolves once the writer thread has answered everything and closed the database.
    pub(crate) async fn stopped(&self) {
        let mut stopped = self.stopped.clone();
        // `changed` fails once the writer thread dropped its sender, i.e. has finished.
        while stopped.changed().await.is_ok() {}
    }

    pub(crate) fn join_writer(&self) {
        let handle = self
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(handle) = handle
            && handle.join().is_err()
        {
            tracing::error!("the state store writer thread panicked");
        }
    }
}

/// The last `Store` clone is gone: let the writer answer what is queued, then wait for it,
/// so the database is closed cleanly (blocks for at most one batch's commit).
impl Drop for Inner {
    fn drop(&mut self) {
        self.stop_accepting();
        // The PostgreSQL writer drives its statements on the runtime's I/O: a thread of a
        // current-thread runtime blocked here would stop them and never see the writer
        // end. Left to finish on its own (the commits are the server's; nothing waits).
        let current_thread = tokio::runtime::Handle::try_current().is_ok_and(|handle| {
            handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread
        });
        if self.replica.is_some() && current_thread {
            return;
        }
        self.join_writer();
    }
}

/// Marks the store unhealthy and wakes `close` when the writer thread ends, even by panic.
struct ExitGuard {
    shared: Arc<Shared>,
    _stopped: watch::Sender<()>,
}

impl Drop for ExitGuard {
    fn drop(&mut self) {
        self.shared.healthy.store(false, Ordering::Relaxed);
    }
}
