//! Where the history is read from: the SQLite file (a read-only connection of its own, on
//! a blocking thread) or the shared PostgreSQL database (a pooled connection). `/history`,
//! the dashboard and the `history` command read through this, whichever store the daemon
//! runs on.

use std::path::PathBuf;

use deadpool_postgres::Pool;
use jiff::Timestamp;

use super::{HistoryEvent, HistoryQuery, PlanTimeline, Reader, Store, StoreError};

/// A store's history, to read.
#[derive(Debug, Clone)]
pub enum HistorySource {
    /// The state directory holding `autoscaler.sqlite3`.
    Sqlite(PathBuf),
    Postgres(Pool),
}

impl Store {
    /// Where this store's history is read from.
    pub fn history_source(&self) -> HistorySource {
        match self.replica() {
            Some(replica) => HistorySource::Postgres(replica.pool.clone()),
            None => {
                HistorySource::Sqlite(self.path().parent().map(PathBuf::from).unwrap_or_default())
            }
        }
    }
}

fn unreadable(err: impl std::fmt::Display) -> StoreError {
    StoreError::Read(err.to_string())
}

impl HistorySource {
    /// The history of the state the settings name (`state.database_url`, else
    /// `state.dir`), for a command run beside the daemon.
    pub fn of(state: &crate::settings::StateSettings) -> Result<Self, StoreError> {
        match &state.database_url {
            None => Ok(HistorySource::Sqlite(state.dir.clone())),
            Some(url) => super::pg::pool(
                url,
                &super::pg::PoolOptions {
                    ca_file: state.database_ca.clone(),
                    ..super::pg::PoolOptions::default()
                },
            )
            .map(HistorySource::Postgres)
            .map_err(unreadable),
        }
    }

    /// What happened, newest first (see [`Reader::history`]).
    pub async fn history(&self, query: HistoryQuery) -> Result<Vec<HistoryEvent>, StoreError> {
        match self {
            HistorySource::Sqlite(dir) => {
                let dir = dir.clone();
                blocking(move || Reader::open(&dir)?.history(&query)).await
            }
            HistorySource::Postgres(pool) => {
                let mut client = super::pg::connect::get(pool).await.map_err(unreadable)?;
                super::pg::read::history(&mut client, &query)
                    .await
                    .map_err(unreadable)
            }
        }
    }

    /// Each instance's plan timeline since `from` (see [`Reader::plan_timeline`]).
    pub async fn plan_timelines(
        &self,
        ids: Vec<u64>,
        from: Timestamp,
    ) -> Result<Vec<PlanTimeline>, StoreError> {
        match self {
            HistorySource::Sqlite(dir) => {
                let dir = dir.clone();
                blocking(move || {
                    let reader = Reader::open(&dir)?;
                    ids.iter()
                        .map(|&id| reader.plan_timeline(id, from))
                        .collect()
                })
                .await
            }
            HistorySource::Postgres(pool) => {
                let mut client = super::pg::connect::get(pool).await.map_err(unreadable)?;
                let mut timelines = Vec::with_capacity(ids.len());
                for id in ids {
                    timelines.push(
                        super::pg::read::plan_timeline(&mut client, id, from)
                            .await
                            .map_err(unreadable)?,
                    );
                }
                Ok(timelines)
            }
        }
    }
}

/// SQLite calls block: off the async threads.
async fn blocking<T: Send + 'static>(
    what: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(what)
        .await
        .unwrap_or_else(|e| Err(StoreError::Read(format!("the read did not finish: {e}"))))
}
