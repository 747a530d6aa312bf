//! A fake CloudAMQP Customer API, in memory: faithful where the facts are known, scriptable
//! where they are not.
//!
//! It serves the endpoints the daemon uses (`/api/instances`, `/api/instances/{id}`,
//! `/api/instances/{id}/nodes`, `/api/plans`) with production's auth rule, bodies, plan
//! move rules and the asynchronous reconfiguration timeline, the alarms and notification
//! recipients `setup` writes (`/api/instances/{id}/alarms[/recipients][/{id}]`), and disk
//! resizes (`PUT /api/instances/{id}/disk`, on the same timeline), and it can be told to fail in
//! each way production has been seen to fail. On the same server, under
//! `/management/{id}/api/nodes`, it serves each instance's own management API (RabbitMQ's
//! or LavinMQ's node list, with the instance's own credentials), which the daemon reads
//! before a step down. Tests, `serve --demo` and `examples/fake-cloudamqp.rs` all run this
//! one implementation, so what the demo shows is what the tests prove.
//!
//! ```text
//! request ─▶ record ─▶ queued fault? ─▶ auth ─┬▶ route ──────▶ state (instances + timeline)
//!                                             └▶ management ─▶ state (+ figures set per instance)
//!
//! auth: the account key on /api/…, the instance's own user and password on /management/…
//! ```
//!
//! Module map: `catalogue` (the plan list, what a plan name means, RAM per family), `state`
//! (instances, the `PUT` rules for plans and disks, the figures set on them), `alarms`
//! (recipients and alarms per instance, their rules and shapes), `timeline` (phases of a change),
//! `faults` (scripted failures), `record` (request log, credentials, bodies), `views`
//! (Customer API JSON shapes, instance credentials), `routes` (the one HTTP handler),
//! `management` (an instance's management API: its checks and node list).
//!
//! Not faithful, because nobody knows: production's rate limits, its 429/503 bodies, the
//! error texts for unknown plans and refused moves other than dedicated → shared, how
//! nodes look while a change runs, and every RAM figure and count the management API
//! reports; for alarms and disks, the texts of every 422, the 404 for an unknown alarm or
//! recipient, the defaults of omitted alarm fields, and how a disk resize shows on the nodes. Those are plausible and scriptable, not facts.

mod alarms;
mod catalogue;
mod faults;
mod management;
mod record;
mod routes;
mod state;
mod timeline;
mod views;

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use actix_web::{App, HttpServer, web};

use crate::clock::{SharedClock, SystemClock};

pub use alarms::{
    ALARM_TYPES, DEDICATED_ONLY_ALARMS, FakeAlarm, FakeRecipient, NOTICE_CANNOT_BE_CREATED,
    NOTICE_CANNOT_BE_DELETED, RECIPIENT_TYPES,
};
pub use catalogue::{FakePlan, LAVINMQ, RABBITMQ, production_plans};
pub use faults::{Fault, FaultRule, PathMatch};
pub use management::DEFAULT_MEM_USED;
pub use record::RecordedRequest;
pub use state::{DISK_SIZES, InstanceSnapshot, SeedInstance};
pub use timeline::Timeline;
pub use views::SECRET_MARKER;

/// The instance a default fake holds: the production example from the API notes.
pub const DEFAULT_INSTANCE_ID: u64 = 359_559;

/// Everything a fake starts from.
#[derive(Debug, Clone)]
pub struct FakeConfig {
    /// The only accepted credential: HTTP Basic with an empty user name and this password.
    pub api_key: String,
    /// How an accepted plan change unfolds.
    pub timeline: Timeline,
    /// The instances at start.
    pub instances: Vec<SeedInstance>,
    /// `GET /api/plans`, and what a `PUT` may move to; sorted by price when served.
    pub plans: Vec<FakePlan>,
    /// The timeline and the request log read this clock.
    pub clock: SharedClock,
}

impl Default for FakeConfig {
    /// Key `fake-api-key`, instant timeline, instance 359559 `bunny1-test` on `bunny-1`,
    /// the production catalogue, the system clock.
    fn default() -> Self {
        Self {
            api_key: "fake-api-key".to_owned(),
            timeline: Timeline::instant(),
            instances: vec![SeedInstance::new(
                DEFAULT_INSTANCE_ID,
                "bunny1-test",
                "bunny-1",
            )],
            plans: production_plans(),
            clock: SystemClock::shared(),
        }
    }
}

/// A handle on one fake's state; clones share it. Start serving with [`Self::start`].
#[derive(Debug, Clone)]
pub struct FakeCloudAmqp {
    shared: Arc<Shared>,
}

/// What the HTTP handler and the handle share.
#[derive(Debug)]
pub(crate) struct Shared {
    api_key: String,
    clock: SharedClock,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    instances: state::Instances,
    faults: faults::Faults,
    requests: Vec<RecordedRequest>,
    plan_changes: Vec<(u64, String)>,
    put_attempts: usize,
    alarms: alarms::Alarms,
    disk_resizes: Vec<(u64, u32)>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every mutation is a single push or field update; a panic while holding the lock
        // cannot leave the state half-changed, so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl FakeCloudAmqp {
    /// A fake holding `config`'s instances; nothing is served until [`Self::start`].
    pub fn new(config: FakeConfig) -> Self {
        let mut plans = config.plans;
        catalogue::sort_by_price(&mut plans);
        let now = config.clock.now();
        Self {
            shared: Arc::new(Shared {
                api_key: config.api_key,
                clock: config.clock,
                state: Mutex::new(State {
                    instances: state::Instances::new(config.instances, plans, config.timeline, now),
                    faults: faults::Faults::default(),
                    requests: Vec::new(),
                    plan_changes: Vec::new(),
                    put_attempts: 0,
                    alarms: alarms::Alarms::default(),
                    disk_resizes: Vec::new(),
                }),
            }),
        }
    }

    /// Serves on `listener` in the background (one worker thread) until
    /// [`RunningFake::stop`]. Tests pass a listener bound to `127.0.0.1:0`.
    ///
    /// Must be called inside a tokio runtime (plain tokio or actix's).
    pub async fn start(&self, listener: TcpListener) -> io::Result<RunningFake> {
        let addr = listener.local_addr()?;
        let shared = Arc::clone(&self.shared);
        let server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::from(Arc::clone(&shared)))
                .default_service(web::to(routes::handle))
        })
        // One worker is plenty for a test double and keeps the thread count low.
        .workers(1)
        // The process that embeds the fake owns signal handling, not the fake.
        .disable_signals()
        .shutdown_timeout(1)
        .listen(listener)?
        .run();
        let handle = server.handle();
        let task = tokio::spawn(server);
        Ok(RunningFake { addr, handle, task })
    }

    /// Binds `127.0.0.1:0` and starts: the usual call in tests.
    pub async fn start_local(&self) -> io::Result<RunningFake> {
        self.start(TcpListener::bind("127.0.0.1:0")?).await
    }

    /// Every request received, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    /// The requests to instances' management APIs (paths under `/management/`), in order.
    pub fn management_requests(&self) -> Vec<RecordedRequest> {
        self.shared
            .lock()
            .requests
            .iter()
            .filter(|r| r.path.starts_with(management::PREFIX))
            .cloned()
            .collect()
    }

    /// Every plan change accepted with a 200: `(instance id, plan)`, in order.
    pub fn plan_changes(&self) -> Vec<(u64, String)> {
        self.shared.lock().plan_changes.clone()
    }

    /// How many `PUT` requests arrived, whatever the answer (faults included).
    pub fn put_attempts(&self) -> usize {
        self.shared.lock().put_attempts
    }

    /// Queues a fault behind those already queued.
    pub fn inject(&self, rule: FaultRule) {
        self.shared.lock().faults.push(rule);
    }

    /// The first `GET` after the next accepted `PUT` answers 401, whatever the credentials,
    /// as production once did.
    pub fn unauthorized_once_after_put(&self) {
        self.shared.lock().faults.arm_unauthorized_after_put();
    }

    /// Forgets every injected fault not used up yet.
    pub fn clear_faults(&self) {
        self.shared.lock().faults.clear();
    }

    /// How many injected faults have not been used up yet.
    pub fn pending_faults(&self) -> usize {
        self.shared.lock().faults.pending()
    }

    /// Someone changed the plan in the console: it applies at once, ready, and any change
    /// in flight is forgotten. Returns `false` if there is no such instance.
    pub fn set_plan(&self, id: u64, plan: &str) -> bool {
        self.shared.lock().instances.set_plan(id, plan)
    }

    /// Marks an instance ready or not (a `PUT` on a not-ready instance answers 422).
    /// Returns `false` if there is no such instance.
    pub fn set_ready(&self, id: u64, ready: bool) -> bool {
        self.shared.lock().instances.set_ready(id, ready)
    }

    /// What `GET /api/instances/{id}` would show now.
    pub fn instance(&self, id: u64) -> Option<InstanceSnapshot> {
        let now = self.shared.clock.now();
        self.shared.lock().instances.show(id, now)
    }

    /// Adds an instance, or replaces the one with the same id; its nodes start now.
    pub fn add_instance(&self, seed: SeedInstance) {
        let now = self.shared.clock.now();
        self.shared.lock().instances.add(seed, now);
    }

    /// Every node of the instance's management API reports `bytes` as `mem_used` (default
    /// [`DEFAULT_MEM_USED`]); above `mem_limit` RabbitMQ's `mem_alarm` goes on by itself.
    /// Returns `false` if there is no such instance.
    pub fn set_mem_used(&self, id: u64, bytes: u64) -> bool {
        self.update_figures(id, |figures| figures.mem_used = bytes)
    }

    /// Forces RabbitMQ's `mem_alarm` on every node (`false`: only `mem_used` above
    /// `mem_limit` sets it). LavinMQ reports no such field. Returns `false` if there is no
    /// such instance.
    pub fn set_mem_alarm(&self, id: u64, alarm: bool) -> bool {
        self.update_figures(id, |figures| figures.mem_alarm = alarm)
    }

    /// Every node in disk alarm or not: RabbitMQ's `disk_free_alarm`, and `disk_free` below
    /// `disk_free_limit` (LavinMQ shows only the low `disk_free`). Returns `false` if there
    /// is no such instance.
    pub fn set_disk_alarm(&self, id: u64, alarm: bool) -> bool {
        self.update_figures(id, |figures| figures.disk_alarm = alarm)
    }

    /// `false`: the instance's last node stops running. The management API reports it as
    /// RabbitMQ does (`name`, `type`, `running: false`, nothing else) and the Customer API's
    /// node list shows it `running: false`. One switch for the last node, not one per node:
    /// enough for "not every node runs". Returns `false` if there is no such instance.
    pub fn set_running(&self, id: u64, running: bool) -> bool {
        self.update_figures(id, |figures| figures.running = running)
    }

    /// The `mem_limit` the instance's nodes report now (it follows the plan the instance
    /// shows); `None` for an unknown instance or a shared plan.
    pub fn mem_limit(&self, id: u64) -> Option<u64> {
        self.instance(id).as_ref().and_then(management::mem_limit)
    }

    fn update_figures(&self, id: u64, update: impl FnOnce(&mut management::Figures)) -> bool {
        self.shared
            .lock()
            .instances
            .figures_mut(id)
            .map(update)
            .is_some()
    }

    /// The recipients of instance `id` as `GET …/alarms/recipients` shows them now (a new
    /// instance has one: `Default`, email, id from 661 on); `None` for an unknown instance.
    pub fn recipients(&self, id: u64) -> Option<Vec<FakeRecipient>> {
        let mut state = self.shared.lock();
        if !state.instances.contains(id) {
            return None;
        }
        Some(state.alarms.board(id).recipients.clone())
    }

    /// The alarms of instance `id` as `GET …/alarms` shows them now (a new instance has the
    /// `notice` alarm, id from 679 on); `None` for an unknown instance.
    pub fn alarms(&self, id: u64) -> Option<Vec<FakeAlarm>> {
        let mut state = self.shared.lock();
        if !state.instances.contains(id) {
            return None;
        }
        Some(state.alarms.board(id).alarms.clone())
    }

    /// Adds a recipient to instance `id` as if made in the console, without any check (its
    /// `id` field is ignored); returns the id it got, `None` for an unknown instance.
    pub fn seed_recipient(&self, id: u64, recipient: FakeRecipient) -> Option<u64> {
        let mut state = self.shared.lock();
        if !state.instances.contains(id) {
            return None;
        }
        Some(state.alarms.seed_recipient(id, recipient))
    }

    /// Adds an alarm to instance `id` as if made in the console (e.g. someone else's, sent
    /// to their own recipient), without any check (its `id` field is ignored); returns the
    /// id it got, `None` for an unknown instance.
    pub fn seed_alarm(&self, id: u64, alarm: FakeAlarm) -> Option<u64> {
        let mut state = self.shared.lock();
        if !state.instances.contains(id) {
            return None;
        }
        Some(state.alarms.seed_alarm(id, alarm))
    }

    /// Each node's `additional_disk_size` (GB) as `GET /api/instances/{id}/nodes` shows it
    /// now; `None` for an unknown instance.
    pub fn disk_sizes(&self, id: u64) -> Option<Vec<u32>> {
        self.instance(id)
            .map(|instance| instance.additional_disk_size)
    }

    /// Every disk resize accepted with a 200: `(instance id, extra_disk_size)`, in order.
    pub fn disk_resizes(&self) -> Vec<(u64, u32)> {
        self.shared.lock().disk_resizes.clone()
    }

    /// Someone resized the disk in the console: every node has `gb` extra at once and any
    /// resize in flight is forgotten. Returns `false` if there is no such instance.
    pub fn set_extra_disk(&self, id: u64, gb: u32) -> bool {
        self.shared.lock().instances.set_extra_disk(id, gb)
    }

    /// The least time between two accepted disk resizes of one instance, as the cloud
    /// provider limits it (AWS: 6 h); a resize sooner answers 422. Default: no limit.
    pub fn set_disk_resize_interval(&self, interval: std::time::Duration) {
        self.shared.lock().instances.set_disk_interval(interval);
    }

    /// The catalogue, as `GET /api/plans` serves it.
    pub fn plans(&self) -> Vec<FakePlan> {
        self.shared.lock().instances.plans().to_vec()
    }
}

/// A fake being served; stop it with [`Self::stop`].
#[derive(Debug)]
pub struct RunningFake {
    addr: SocketAddr,
    handle: actix_web::dev::ServerHandle,
    task: tokio::task::JoinHandle<io::Result<()>>,
}

impl RunningFake {
    /// The base URL a client is configured with, e.g. `http://127.0.0.1:40123/api`.
    pub fn base_url(&self) -> String {
        format!("http://{}/api", self.addr)
    }

    /// The template of instances' management API addresses, for the daemon's
    /// `cloudamqp.management_url`: `http://127.0.0.1:40123/management/{id}/api`, with the
    /// literal `{id}` the daemon fills in.
    pub fn management_url(&self) -> String {
        format!("http://{}/management/{{id}}/api", self.addr)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, drops open connections and waits for the server to finish.
    pub async fn stop(self) {
        self.handle.stop(false).await;
        // The server's own result is of no interest once we asked it to stop.
        let _ = self.task.await;
    }
}
