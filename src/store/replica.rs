//! The store on PostgreSQL, shared by replicas: opening it (migrate once, join the
//! replicas alive, recover) and what only a replica asks of it.

use std::time::Duration;

use deadpool_postgres::Pool;
use jiff::Timestamp;
use secrecy::SecretString;
use tokio::sync::oneshot;

use super::lifecycle::Inner;
use super::pg::{self, PgError};
use super::replica_jobs::{Claimed, ReplicaJob};
use super::writer::Job;
use super::{ChangeId, Recovered, Store, StoreError};

/// Serialises replicas joining (the check of the others' mode and the own row).
const JOIN_LOCK: i64 = 0x6175_746f_6a6f_696e;
/// What a replica's lease must still cover past a PUT's connect and request timeouts.
const PUT_LEASE_MARGIN: Duration = Duration::from_secs(2);
/// What a claim round itself may take (its queries, the rounds' drift), in the bound.
const CLAIM_SLACK: Duration = Duration::from_secs(1);
/// The contract's bound on a takeover after a replica died: `state.lease` plus this.
const TAKEOVER_GRACE: Duration = Duration::from_secs(15);

/// How much lease a replica holds before each PUT attempt: the whole request, connect
/// included, and a margin (the writer renews a little more still, `RENEW_SLACK`).
pub fn lease_for_put(connect: Duration, request: Duration) -> Duration {
    connect + request + PUT_LEASE_MARGIN
}

/// Why a replica with these timeouts could not keep the contract's takeover bound, if
/// it could not: a replica killed during a PUT holds the change's lease for the whole
/// request, and a survivor's next claim round (every `claim_every`) comes after that, all
/// within `state.lease` plus [`TAKEOVER_GRACE`].
pub fn put_outlasts_takeover(
    lease: Duration,
    connect: Duration,
    request: Duration,
    claim_every: Duration,
) -> Option<String> {
    let worst =
        lease_for_put(connect, request) + pg::writer::RENEW_SLACK + claim_every + CLAIM_SLACK;
    let bound = lease + TAKEOVER_GRACE;
    (worst > bound).then(|| {
        let show = crate::duration::display;
        format!(
            "with state.database_url, a replica killed during a PUT is taken over only after \
             connect_timeout + request_timeout ({}) plus {} of margin and claim round, more than \
             state.lease + {} ({}): lower cloudamqp.request_timeout to at most {} or raise state.lease",
            show(connect + request),
            show(worst - connect - request),
            show(TAKEOVER_GRACE),
            show(bound),
            show(request.saturating_sub(worst - bound)),
        )
    })
}

/// The most a clean stop waits to release this replica's leases.
const LEAVE_WITHIN: Duration = Duration::from_secs(5);

/// A replica's place in the shared database.
#[derive(Debug, Clone)]
pub struct Replica {
    /// This replica's id: the `owner` of its leases and claims.
    pub id: String,
    pub(crate) pool: Pool,
    /// `state.lease`.
    pub lease: Duration,
    pub(crate) duties: std::sync::Arc<Duties>,
}

/// How a replica joins.
#[derive(Debug, Clone)]
pub struct ReplicaOptions {
    pub id: String,
    pub lease: Duration,
    /// `live`: replicas sharing a database all run one mode.
    pub live: bool,
    pub rules_hash: String,
    /// `state.database_ca`.
    pub database_ca: Option<std::path::PathBuf>,
}

/// A replica alive (its heartbeat within three leases).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaRow {
    pub id: String,
    pub started_at: Timestamp,
    pub heartbeat: Timestamp,
    pub live: bool,
    pub rules_hash: String,
}

/// An id for this process: the host's name and a random part, so two replicas on one
/// host (or a restart) never share one.
pub fn new_replica_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "replica".to_owned());
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}", &random[..8])
}

fn open_error(err: impl std::fmt::Display) -> StoreError {
    StoreError::Open {
        dir: "state.database_url".into(),
        reason: err.to_string(),
    }
}

const ALIVE: &str = "SELECT id, started_at, heartbeat, live, rules_hash FROM replicas \
     WHERE heartbeat > clock_timestamp() - make_interval(secs => $1::double precision) \
     ORDER BY started_at, id";

fn alive_window(lease: Duration) -> f64 {
    (lease * 3).as_secs_f64()
}

fn replica_row(row: &tokio_postgres::Row) -> Result<ReplicaRow, PgError> {
    let at = |column: &str| -> Result<Timestamp, PgError> {
        let at: std::time::SystemTime = row.try_get(column)?;
        Timestamp::try_from(at).map_err(|err| PgError::Refused(err.to_string()))
    };
    Ok(ReplicaRow {
        id: row.try_get("id")?,
        started_at: at("started_at")?,
        heartbeat: at("heartbeat")?,
        live: row.try_get("live")?,
        rules_hash: row.try_get("rules_hash")?,
    })
}

impl Store {
    /// Opens the state in PostgreSQL at `url`: migrates it (once, whichever replicas
    /// start together), joins the replicas alive (refused, `StoreError::Refused`, if
    /// their mode differs), reads the shared state and starts the writer.
    pub async fn open_shared(
        url: &SecretString,
        options: ReplicaOptions,
    ) -> Result<(Store, Recovered), StoreError> {
        let pool_options = pg::PoolOptions {
            ca_file: options.database_ca.clone(),
            ..pg::PoolOptions::default()
        };
        let pool = pg::pool(url, &pool_options).map_err(open_error)?;
        let mut client = pg::connect::get(&pool).await.map_err(open_error)?;
        pg::migrate(&mut client).await.map_err(open_error)?;
        join(&mut client, &options).await?;
        let recovered = pg::recover(&mut client).await.map_err(open_error)?;
        drop(client);
        let inner = Inner::start_shared(Replica {
            id: options.id,
            pool,
            lease: options.lease,
            duties: Default::default(),
        })?;
        Ok((
            Store {
                inner: std::sync::Arc::new(inner),
            },
            recovered,
        ))
    }

    /// This replica's place, when the state is shared in PostgreSQL.
    pub fn replica(&self) -> Option<&Replica> {
        self.inner.replica.as_ref()
    }

    /// The shared state's version now (`None` on SQLite).
    pub async fn world_version(&self) -> Result<Option<i64>, StoreError> {
        let Some(replica) = self.replica() else {
            return Ok(None);
        };
        let client = pg::connect::get(&replica.pool).await.map_err(read_error)?;
        let row = client
            .query_one("SELECT version FROM world", &[])
            .await
            .map_err(|err| read_error(PgError::from(err)))?;
        Ok(Some(row.get("version")))
    }

    /// The shared state as now (PostgreSQL; SQLite has nothing to reload from).
    pub async fn reload(&self) -> Result<Recovered, StoreError> {
        let Some(replica) = self.replica() else {
            return Err(StoreError::Read("only a shared store reloads".into()));
        };
        let mut client = pg::connect::get(&replica.pool).await.map_err(read_error)?;
        pg::recover(&mut client).await.map_err(read_error)
    }

    /// The replicas alive now, oldest first (none on SQLite).
    pub async fn replicas(&self) -> Result<Vec<ReplicaRow>, StoreError> {
        let Some(replica) = self.replica() else {
            return Ok(Vec::new());
        };
        let client = pg::connect::get(&replica.pool).await.map_err(read_error)?;
        let rows = client
            .query(ALIVE, &[&alive_window(replica.lease)])
            .await
            .map_err(|err| read_error(PgError::from(err)))?;
        rows.iter()
            .map(replica_row)
            .collect::<Result<_, _>>()
            .map_err(read_error)
    }

    /// Before a PUT: holds `change`'s lease for at least `needed` more, or says it is
    /// lost. Always `Ok` on SQLite.
    pub fn hold_for(
        &self,
        change: ChangeId,
        needed: Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'static {
        let (reply, answer) = oneshot::channel();
        let queued = self.inner.send(Job::Replica(ReplicaJob::HoldFor {
            change,
            needed,
            reply,
        }));
        async move {
            queued?;
            answer.await.unwrap_or(Err(StoreError::Closed))
        }
    }

    /// Takes over the changes and alarms replicas that died left (nothing on SQLite).
    pub fn claim(&self) -> impl Future<Output = Result<Claimed, StoreError>> + Send + 'static {
        let (reply, answer) = oneshot::channel();
        let queued = self.inner.send(Job::Replica(ReplicaJob::Claim { reply }));
        async move {
            queued?;
            answer.await.unwrap_or(Err(StoreError::Closed))
        }
    }

    /// At a clean stop, once nothing works on a change any more: releases this replica's
    /// leases and claims and removes it from the replicas, so a survivor (or this
    /// replica's successor) takes its open changes, undecided alarms and unsent
    /// notifications over at its next claim instead of a lease later. Bounded: a database
    /// that does not answer leaves them to expire, as after a crash.
    pub(crate) async fn leave(&self) {
        let (reply, answer) = oneshot::channel();
        if self
            .inner
            .send(Job::Replica(ReplicaJob::Leave { reply }))
            .is_err()
        {
            return;
        }
        if tokio::time::timeout(LEAVE_WITHIN, answer).await.is_err() {
            tracing::warn!(
                "could not release this replica's leases in time: the other replicas take its work over once they expire"
            );
        }
    }

    /// Records the hash of the rules this replica now decides with (nothing on SQLite).
    pub fn set_rules_hash(
        &self,
        hash: String,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'static {
        let replica = self.replica().cloned();
        async move {
            let Some(replica) = replica else {
                return Ok(());
            };
            let client = pg::connect::get(&replica.pool).await.map_err(read_error)?;
            client
                .execute(
                    "UPDATE replicas SET rules_hash = $2 WHERE id = $1",
                    &[&replica.id, &hash],
                )
                .await
                .map_err(|err| StoreError::Write(PgError::from(err).to_string()))?;
            Ok(())
        }
    }

    /// How many times this replica lost `change`'s lease (always 0 on SQLite): work on a
    /// change stops when this moves past what it was when the work started (a change
    /// claimed back after a loss is worked on again, by new work).
    pub fn lease_losses(&self, change: ChangeId) -> u64 {
        self.inner.shared.losses(change)
    }

    /// What [`Self::lease_losses`] was when this replica was last granted `change` (its
    /// claim; 0 for a change it opened): work on the change stops once the count moves
    /// past it, even if it moved before the work started.
    pub fn lease_losses_at_grant(&self, change: ChangeId) -> u64 {
        self.inner.shared.losses_at_grant(change)
    }
}

fn read_error(err: PgError) -> StoreError {
    StoreError::Read(err.to_string())
}

/// Refuses to join replicas alive in another mode; then writes this replica's row. Under
/// a transaction-level advisory lock, so two replicas joining at once see each other.
async fn join(
    client: &mut deadpool_postgres::Client,
    options: &ReplicaOptions,
) -> Result<(), StoreError> {
    let attempt = async {
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&JOIN_LOCK])
            .await?;
        let others = tx
            .query(ALIVE, &[&alive_window(options.lease)])
            .await?
            .iter()
            .map(replica_row)
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(other) = others
            .iter()
            .find(|other| other.id != options.id && other.live != options.live)
        {
            return Ok(Some(other.clone()));
        }
        tx.execute(
            "INSERT INTO replicas (id, started_at, heartbeat, live, rules_hash) \
             VALUES ($1, clock_timestamp(), clock_timestamp(), $2, $3) \
             ON CONFLICT (id) DO UPDATE SET started_at = excluded.started_at, \
                 heartbeat = excluded.heartbeat, live = excluded.live, \
                 rules_hash = excluded.rules_hash",
            &[&options.id, &options.live, &options.rules_hash],
        )
        .await?;
        tx.commit().await?;
        Ok::<_, PgError>(None)
    };
    match attempt.await {
        Ok(None) => Ok(()),
        Ok(Some(other)) => Err(StoreError::Refused(format!(
            "replica {} shares this database with live = {}, and this one has live = {}: \
             replicas sharing a database run one mode (stop it, or set live alike)",
            other.id, other.live, options.live
        ))),
        Err(err) => Err(open_error(err)),
    }
}

/// Work one replica does at a time, whichever: the holder of the duty's session lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Duty {
    /// Scale-down looks: each instance looked at by one replica at a time.
    Looks,
    /// Schedules' window openings.
    Schedules,
    /// Retention's pruning: one pruner at a time.
    Retention,
}

impl Duty {
    const ALL: [Duty; 3] = [Duty::Looks, Duty::Schedules, Duty::Retention];

    fn index(self) -> usize {
        self as usize
    }

    /// The advisory lock's key (`pg_try_advisory_lock`, session level).
    fn key(self) -> i64 {
        0x6175_746f_6475_0000 + self as i64
    }

    fn name(self) -> &'static str {
        match self {
            Duty::Looks => "looks",
            Duty::Schedules => "schedules",
            Duty::Retention => "retention",
        }
    }
}

/// Which duties this replica holds now.
#[derive(Debug, Default)]
pub(crate) struct Duties {
    held: [std::sync::atomic::AtomicBool; 3],
}

impl Duties {
    fn set(&self, duty: Duty, held: bool) {
        self.held[duty.index()].store(held, std::sync::atomic::Ordering::Relaxed);
    }

    fn get(&self, duty: Duty) -> bool {
        self.held[duty.index()].load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// How often a replica tries for the duties it does not hold and checks the connection
/// holding the others.
const DUTY_EVERY: Duration = Duration::from_secs(2);

impl Store {
    /// Whether this replica does `duty` now: always on SQLite.
    pub fn on_duty(&self, duty: Duty) -> bool {
        match &self.inner.replica {
            None => true,
            Some(replica) => replica.duties.get(duty),
        }
    }

    /// Holds the duties this replica can get, on one connection of its own (its locks
    /// end with it: a replica that dies or loses the database gives them up), until
    /// `stop`. Nothing on SQLite.
    pub async fn run_duties(self, stop: tokio_util::sync::CancellationToken) {
        let Some(replica) = self.inner.replica.clone() else {
            return;
        };
        let mut holder: Option<deadpool_postgres::Client> = None;
        loop {
            if let Err(err) = take_duties(&replica, &mut holder).await {
                if holder.take().is_some() {
                    tracing::warn!(error = %err, "lost the connection holding this replica's duties");
                }
                for duty in Duty::ALL {
                    replica.duties.set(duty, false);
                }
            }
            tokio::select! {
                _ = stop.cancelled() => break,
                () = tokio::time::sleep(DUTY_EVERY) => {}
            }
        }
        for duty in Duty::ALL {
            replica.duties.set(duty, false);
        }
        if let Some(client) = holder {
            // Detached from the pool: closing it ends the session and its locks.
            drop(deadpool_postgres::Object::take(client));
        }
    }
}

async fn take_duties(
    replica: &Replica,
    holder: &mut Option<deadpool_postgres::Client>,
) -> Result<(), PgError> {
    let client = match holder {
        Some(client) => client,
        None => holder.insert(pg::connect::get(&replica.pool).await?),
    };
    for duty in Duty::ALL {
        if replica.duties.get(duty) {
            client.query_one("SELECT 1", &[]).await?;
            continue;
        }
        let got: bool = client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&duty.key()])
            .await?
            .try_get(0)?;
        if got {
            tracing::info!(duty = duty.name(), replica = %replica.id, "this replica now does this duty");
            replica.duties.set(duty, true);
        }
    }
    Ok(())
}
