//! Building the daemon: settings checked, rules loaded, state reopened, the previous run's
//! work resumed, the listener bound (port 0 in tests) — then run until stopped.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::clock::SharedClock;
use crate::cloudamqp::{CloudAmqpClient, TrackOptions};
use crate::executor::{Api, Executor, ExecutorConfig};
use crate::live_rules::{LiveRules, ReloadReport};
use crate::metrics::{Metrics, UPKEEP_INTERVAL};
use crate::server::{AppState, AuthThrottle, TokenCheck};
use crate::settings::Settings;
use crate::signals::{self, Signal};
use crate::store::Store;

/// Alarms decided at once, over all instances.
pub const MAX_CONCURRENT_DECISIONS: usize = 256;
/// How long alarms being decided may take to finish at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// After a restart (or an unanswered PUT), a change that shows no sign of happening
/// within this many poll intervals is taken as never sent.
const UNCONFIRMED_GRACE_POLLS: u32 = 10;

/// How to start.
#[derive(Debug, Clone)]
pub struct StartOptions {
    pub settings: Settings,
    /// The rules file (`--rules`, else `rules.path`).
    pub rules_path: PathBuf,
    pub clock: SharedClock,
    /// Install the process's SIGHUP/SIGTERM/SIGINT handlers (the binary does; tests use
    /// [`AppHandle`] instead, since handlers are process-wide).
    pub handle_signals: bool,
    /// Alarms decided at once, over all instances ([`MAX_CONCURRENT_DECISIONS`]).
    pub max_concurrent_decisions: usize,
}

impl StartOptions {
    /// Options for `settings`, with the rules file they name, on the system clock.
    pub fn new(settings: Settings) -> Self {
        Self {
            rules_path: settings.rules.path.clone(),
            settings,
            clock: crate::clock::SystemClock::shared(),
            handle_signals: false,
            max_concurrent_decisions: MAX_CONCURRENT_DECISIONS,
        }
    }
}

/// Why the daemon refuses to start (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Rules(String),
    #[error("{0}")]
    Store(#[from] crate::store::StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Controls a running application without process signals.
#[derive(Debug, Clone)]
pub struct AppHandle {
    reloader: crate::reload::Reloader,
    stop: CancellationToken,
    store: Store,
}

impl AppHandle {
    /// What SIGHUP does.
    pub fn reload(&self) -> ReloadReport {
        self.reloader.reload()
    }

    /// What SIGTERM does.
    pub fn shutdown(&self) {
        self.stop.cancel();
    }

    /// The state store (for inspection, and for fault injection in tests).
    pub fn store(&self) -> &Store {
        &self.store
    }
}

/// A built daemon, bound and ready to run.
pub struct Application {
    addr: SocketAddr,
    server: actix_web::dev::Server,
    executor: Executor,
    store: Store,
    stop: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    reloader: crate::reload::Reloader,
    /// The notification senders (stopped with `stop`).
    notify_tasks: tokio_util::task::TaskTracker,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Application {
    pub async fn build(options: StartOptions) -> Result<Self, StartError> {
        let StartOptions {
            settings,
            rules_path,
            clock,
            handle_signals,
            max_concurrent_decisions,
        } = options;
        check_start(&settings)?;
        let stop = CancellationToken::new();
        // First: until a handler is installed, a SIGHUP (a `systemctl reload` right after a
        // start) would kill the process with its default action.
        let signals = if handle_signals {
            Some(signals::listen(stop.clone())?)
        } else {
            None
        };
        // Then the port, before anything with an effect: a start refused because the port
        // is taken must not have opened the store, decided pending alarms or called CloudAMQP.
        let listener =
            TcpListener::bind(settings.server.bind).map_err(|source| StartError::Bind {
                addr: settings.server.bind,
                source,
            })?;
        let addr = listener.local_addr()?;
        let metrics = Metrics::new();
        let rules = LiveRules::load(&rules_path, clock.clone(), metrics.clone())
            .map_err(|failure| StartError::Rules(failure.to_string()))?;
        let rules = Arc::new(rules);
        let (store, mut recovered) = match &settings.state.database_url {
            None => Store::open(&settings.state.dir)?,
            Some(url) => {
                Store::open_shared(
                    url,
                    crate::store::ReplicaOptions {
                        id: crate::store::new_replica_id(),
                        lease: settings.state.lease,
                        live: settings.live,
                        rules_hash: rules.snapshot().rules.source().hash.clone(),
                        database_ca: settings.state.database_ca.clone(),
                    },
                )
                .await?
            }
        };
        // Taken before anything is written: every delivery committed from now on comes here.
        let outbox = store.take_outbox();
        let sinks: Arc<[crate::notify::Sink]> = crate::notify::sinks(&settings.notify).into();
        let notifier = crate::notify::Notifier::new(sinks.clone(), settings.live);
        // Only with a sink: an HTTP client with its TLS roots costs memory for nothing.
        let notify_client = if sinks.is_empty() {
            None
        } else {
            Some(crate::notify::client(settings.notify.timeout).map_err(|e| {
                StartError::Refused(format!("cannot build the notifications' HTTP client: {e}"))
            })?)
        };
        tracing::info!(
            dir = %settings.state.dir.display(),
            pending_alarms = recovered.pending_alarms.len(),
            open_changes = recovered.open_changes.len(),
            instances = recovered.instances.len(),
            "state store open"
        );
        let api = match &settings.cloudamqp.api_key {
            Some(_) => {
                let client = CloudAmqpClient::new(&settings.cloudamqp, clock.clone())
                    .map_err(|e| StartError::Refused(e.to_string()))?;
                let observer = metrics.clone();
                client.observe_with(Arc::new(move |call, status| {
                    observer.api_call(call, status)
                }));
                Some(Api::new(client))
            }
            None => {
                tracing::warn!(
                    "no CloudAMQP API key (cloudamqp.api_key or CLOUDAMQP_API_KEY): the dry run cannot read \
                     instances' plans, so alarms are recorded and skipped with plan_unknown"
                );
                None
            }
        };
        if settings.polls_production_too_fast() {
            tracing::warn!(
                poll_interval = %crate::duration::display(settings.cloudamqp.poll_interval),
                "cloudamqp.poll_interval is below 10s against the production API; CloudAMQP asks for 10s or more"
            );
        }
        let track = TrackOptions::from_settings(&settings.cloudamqp);
        let config = ExecutorConfig {
            live: settings.live,
            default_instance: settings.cloudamqp.default_instance,
            track,
            unconfirmed_grace: track.poll_interval * UNCONFIRMED_GRACE_POLLS,
            max_concurrent: max_concurrent_decisions,
            notifier: notifier.clone(),
            lease_for_put: crate::store::lease_for_put(
                settings.cloudamqp.connect_timeout,
                settings.cloudamqp.request_timeout,
            ),
        };
        let executor = Executor::new(
            rules.clone(),
            store.clone(),
            api,
            config,
            metrics.clone(),
            clock.clone(),
        );
        // Before the pending alarms are decided: they must see the pauses too.
        let pauses = std::mem::take(&mut recovered.pauses);
        executor.pauses().replace(
            pauses
                .into_iter()
                .map(crate::server::admin::pause_from_row)
                .collect(),
        );
        let pauses_in_force = executor.pauses().in_force(clock.now()).len();
        metrics.pauses(pauses_in_force);
        if pauses_in_force > 0 {
            tracing::info!(
                pauses = pauses_in_force,
                "pauses in force from before the restart"
            );
        }
        // Replicas: a delivery is its owner's to send; those of replicas gone are taken
        // over by the claims, not at a start (their owner may be alive).
        let pending_deliveries = if store.replica().is_some() {
            Vec::new()
        } else {
            std::mem::take(&mut recovered.pending_deliveries)
        };
        let dropped_deliveries = recovered.dropped_deliveries;
        executor.resume(recovered);
        let outbox_counts = Arc::new(crate::notify::OutboxCounts::default());

        let (queue, jobs) = mpsc::channel(settings.server.queue_capacity.max(1));
        let state = Arc::new(AppState {
            rules: rules.clone(),
            store: store.clone(),
            executor: executor.clone(),
            queue,
            metrics: metrics.clone(),
            clock,
            token: settings.server.webhook_token.as_ref().map(TokenCheck::new),
            throttle: AuthThrottle::default(),
            admin: settings.server.admin_token.as_ref().map(TokenCheck::new),
            admin_throttle: AuthThrottle::default(),
            reads_need_token: crate::server::admin::reads_need_token(
                settings.server.bind,
                settings.server.admin_token.is_some(),
            ),
            retention: settings.state.retention,
            outbox: outbox_counts.clone(),
        });
        let server = crate::server::serve(
            listener,
            state.clone(),
            settings.server.workers,
            stop.clone().cancelled_owned(),
        )?;

        let mut tasks = vec![tokio::spawn(executor.clone().run(jobs, stop.clone()))];
        tasks.push(tokio::spawn(executor.clone().run_looks(stop.clone())));
        tasks.push(tokio::spawn(executor.clone().run_schedules(stop.clone())));
        tasks.push(tokio::spawn(executor.clone().run_takeovers(stop.clone())));
        tasks.push(tokio::spawn(store.clone().run_duties(stop.clone())));
        tasks.push(tokio::spawn(upkeep(state.clone(), stop.clone())));
        tasks.push(tokio::spawn(crate::retention::run(
            store.clone(),
            settings.state.retention,
            rules.clone(),
            state.clock.clone(),
            stop.clone(),
        )));
        let reloader = crate::reload::Reloader {
            rules: rules.clone(),
            store: store.clone(),
            notifier: notifier.clone(),
        };
        if let Some(signals) = signals {
            tasks.push(tokio::spawn(on_signals(
                signals,
                reloader.clone(),
                stop.clone(),
            )));
        }
        let notify_tasks = tokio_util::task::TaskTracker::new();
        if let Some(outbox) = outbox {
            crate::notify::Senders {
                sinks: sinks.clone(),
                store: store.clone(),
                client: notify_client,
                clock: state.clock.clone(),
                metrics: metrics.clone(),
                counts: outbox_counts,
            }
            .spawn(
                pending_deliveries,
                dropped_deliveries,
                outbox,
                stop.clone(),
                &notify_tasks,
            );
        }
        notify_tasks.close();
        let notifications = if sinks.is_empty() {
            "off (no [notify] sink configured)".to_owned()
        } else {
            sinks
                .iter()
                .map(|sink| sink.name())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let scale_down = match rules.snapshot().rules.scale_down() {
            Some(section) => format!(
                "on: a look every {} at instances above their floor",
                crate::duration::display(section.check_every)
            ),
            None => "off: no [scale_down] in the rules, plans are never moved down".to_owned(),
        };
        let guardrails = describe_guardrails(&rules.snapshot().rules);
        tracing::info!(
            %addr,
            mode = if settings.live { "live" } else { "dry-run" },
            %scale_down,
            %guardrails,
            %notifications,
            rules = %rules_path.display(),
            state = %settings.state.dir.display(),
            "cloudamqp-autoscaler serving"
        );
        Ok(Self {
            addr,
            server,
            executor,
            store,
            stop,
            tasks,
            reloader,
            notify_tasks,
        })
    }

    /// The bound address (the real port when `server.bind` asked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn handle(&self) -> AppHandle {
        AppHandle {
            reloader: self.reloader.clone(),
            stop: self.stop.clone(),
            store: self.store.clone(),
        }
    }

    /// Serves until shut down: then stops accepting, lets work in progress reach a
    /// recorded state, closes the store.
    pub async fn run_until_stopped(self) -> Result<(), StartError> {
        let served = self.server.await;
        self.stop.cancel();
        self.executor.shutdown(SHUTDOWN_GRACE).await;
        for task in self.tasks {
            let _ = task.await;
        }
        // A request in flight is abandoned (its delivery stays pending for the next start).
        self.notify_tasks.wait().await;
        self.store.close().await;
        tracing::info!("stopped");
        served.map_err(StartError::from)
    }
}

/// What the contract refuses at start-up.
fn check_start(settings: &Settings) -> Result<(), StartError> {
    if settings.live && settings.cloudamqp.api_key.is_none() {
        return Err(StartError::Refused(
            "--live (or live = true) needs the CloudAMQP API key: set cloudamqp.api_key or CLOUDAMQP_API_KEY".into(),
        ));
    }
    if !settings.server.bind.ip().is_loopback() && settings.server.webhook_token.is_none() {
        return Err(StartError::Refused(format!(
            "server.bind {} is reachable from other hosts, so the webhook needs a secret: set server.webhook_token \
             (AUTOSCALER__SERVER__WEBHOOK_TOKEN) and put it in the webhook URL as ?token=…",
            settings.server.bind
        )));
    }
    // The webhook token travels in CloudAMQP's recipient URL (its console shows it): the
    // key that pauses the daemon must be another.
    if let (Some(webhook), Some(admin)) =
        (&settings.server.webhook_token, &settings.server.admin_token)
        && secrecy::ExposeSecret::expose_secret(webhook)
            == secrecy::ExposeSecret::expose_secret(admin)
    {
        return Err(StartError::Refused(
            "server.admin_token is the same as server.webhook_token, which CloudAMQP's              recipient URL carries: give the admin API a token of its own"
                .into(),
        ));
    }
    // The right token is never throttled (a reverse proxy's address is every sender's), so
    // the token's own strength is what stops a guesser.
    for (key, token) in [
        ("server.webhook_token", &settings.server.webhook_token),
        ("server.admin_token", &settings.server.admin_token),
    ] {
        if let Some(warning) = token
            .as_ref()
            .and_then(|token| weak_token(key, secrecy::ExposeSecret::expose_secret(token)))
        {
            tracing::warn!("{warning}");
        }
    }
    if settings.server.admin_token.is_none() {
        tracing::info!(
            "pausing is off: server.admin_token (AUTOSCALER__SERVER__ADMIN_TOKEN) is not set, so \
             POST /pause and DELETE /pause/{{id}} answer 403"
        );
        if !settings.server.bind.ip().is_loopback() {
            tracing::warn!(
                "server.bind {} is reachable from other hosts and server.admin_token is not set: \
                 /status and /pauses are public",
                settings.server.bind
            );
        }
    }
    Ok(())
}

/// Below this, `serve` warns that a token is weak.
const MIN_TOKEN_CHARS: usize = 16;

/// The warning for a token (setting `key`) too short to stand up to guessing (never the
/// token).
fn weak_token(key: &str, token: &str) -> Option<String> {
    let length = token.chars().count();
    (length < MIN_TOKEN_CHARS).then(|| {
        format!(
            "{key} is only {length} characters: the right token is never \
             throttled, so nothing but its length stops a guesser; use at least \
             {MIN_TOKEN_CHARS} random ones (openssl rand -hex 32)"
        )
    })
}

async fn on_signals(
    mut signals: mpsc::Receiver<Signal>,
    reloader: crate::reload::Reloader,
    stop: CancellationToken,
) {
    loop {
        let signal = tokio::select! {
            _ = stop.cancelled() => return,
            signal = signals.recv() => signal,
        };
        match signal {
            Some(Signal::Reload) => {
                let reloader = reloader.clone();
                // File I/O off the async workers.
                let _ = tokio::task::spawn_blocking(move || reloader.reload()).await;
            }
            Some(Signal::Shutdown) => {
                tracing::info!("shutdown requested: no new alarms; finishing work in progress");
                stop.cancel();
            }
            None => return,
        }
    }
}

/// Periodic housekeeping: histogram buckets, the auth throttles' memory, the pause gauge.
async fn upkeep(state: Arc<AppState>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(UPKEEP_INTERVAL);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {
                state.metrics.upkeep();
                state.throttle.prune();
                state.admin_throttle.prune();
                // Pauses expire by themselves: the gauge follows between scrapes too.
                state.metrics.pauses(state.executor.pauses().in_force(state.clock.now()).len());
            }
        }
    }
}

/// The guardrails of the rules in force, for the start-up line.
fn describe_guardrails(rules: &crate::rules::RuleSet) -> String {
    let limits = rules.limits();
    let mut parts = Vec::new();
    if let Some(max) = limits.max_changes {
        parts.push(format!(
            "at most {} changes per instance in {}",
            max.count,
            crate::duration::display(max.per)
        ));
    }
    if let Some(cap) = limits.max_monthly_price {
        parts.push(format!("a monthly price cap of {cap}"));
    }
    if !rules.freezes().is_empty() {
        parts.push(format!("{} freeze window(s)", rules.freezes().len()));
    }
    if !rules.schedules().is_empty() {
        parts.push(format!("{} schedule(s)", rules.schedules().len()));
    }
    if parts.is_empty() {
        "none in the rules".to_owned()
    } else {
        parts.join(", ")
    }
}

#[cfg(test)]
mod token_tests {
    use super::weak_token;

    #[test]
    fn a_short_token_is_warned_about_without_being_shown() {
        let warning = weak_token("server.admin_token", "hunter2").expect("7 characters are weak");
        assert!(
            warning.contains("server.admin_token is only 7 characters"),
            "{warning}"
        );
        assert!(!warning.contains("hunter2"), "{warning}");
        assert_eq!(weak_token("server.webhook_token", "0123456789abcdef"), None);
    }
}
