//! The instances the fake holds, what `GET` shows of them at a moment, and the rules a plan
//! change (`PUT /api/instances/{id}`) must pass; also the figures each instance's own
//! management API reports (see `management`).

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use uuid::Uuid;

use super::catalogue::{FakePlan, current_kind, target_kind};
use super::management::{DEFAULT_MEM_USED, Figures};
use super::timeline::{Phase, Timeline};

/// An instance the fake starts with (or gains through [`super::FakeCloudAmqp::add_instance`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedInstance {
    /// The integer id every API path takes.
    pub id: u64,
    /// The instance's name; node names and host names derive from it.
    pub name: String,
    /// The current plan; legacy unsuffixed names (`bunny`) are allowed.
    pub plan: String,
    /// The instance's UUID, as alarms may name it.
    pub providerid: Uuid,
    /// `false` makes every `PUT` answer 422 "Please wait…" until [`super::FakeCloudAmqp::set_ready`].
    pub ready: bool,
    /// Bytes each node's management API reports as `mem_used`. Default
    /// [`DEFAULT_MEM_USED`] (300 MiB); later [`super::FakeCloudAmqp::set_mem_used`].
    pub mem_used: u64,
}

impl SeedInstance {
    /// A ready instance whose `providerid` is derived from `id`, so runs are reproducible.
    pub fn new(id: u64, name: &str, plan: &str) -> Self {
        let mut bytes = [0x5e_u8; 16];
        bytes[8..].copy_from_slice(&id.to_be_bytes());
        Self {
            id,
            name: name.to_owned(),
            plan: plan.to_owned(),
            // Sets the version-4 and variant bits so it reads like the UUIDs production prints.
            providerid: uuid::Builder::from_random_bytes(bytes).into_uuid(),
            ready: true,
            mem_used: DEFAULT_MEM_USED,
        }
    }

    /// The same instance with every node's management API reporting `bytes` of `mem_used`.
    #[must_use]
    pub fn with_mem_used(mut self, bytes: u64) -> Self {
        self.mem_used = bytes;
        self
    }
}

/// What `GET /api/instances/{id}` would show at one moment, minus the credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceSnapshot {
    pub id: u64,
    pub name: String,
    pub providerid: Uuid,
    /// The plan `GET` shows: the old one during the lag, the target from reconfiguring on.
    pub plan: String,
    /// `rabbitmq` or `lavinmq`.
    pub backend: String,
    /// Dedicated plans have nodes and show a `nodes` count; shared plans show neither.
    pub dedicated: bool,
    pub ready: bool,
    /// One `configured` flag per node, in node order; its length is the node count.
    pub configured: Vec<bool>,
    /// The plan an accepted change is heading to, while it is in flight (lag or reconfiguring).
    pub changing_to: Option<String>,
    /// Each node's `additional_disk_size` (GB), in node order: during a disk resize the nodes
    /// already done show the new size, the others the old one.
    pub additional_disk_size: Vec<u32>,
    /// The size an accepted disk resize is heading to, while it is in flight.
    pub disk_resizing_to: Option<u32>,
}

impl InstanceSnapshot {
    /// The node count `GET` shows.
    pub fn node_count(&self) -> usize {
        self.configured.len()
    }
}

/// What an instance's management API would show at one moment: the instance as `GET` shows
/// it, the figures set on it, and how long its nodes have run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BrokerSnapshot {
    pub instance: InstanceSnapshot,
    pub figures: Figures,
    /// Since the instance was added, or since its last plan change finished (a change
    /// restarts the nodes).
    pub uptime: Duration,
}

/// Why a `PUT` was refused; the HTTP mapping lives in `routes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    UnknownId,
    Busy,
    MissingPlan,
    UnknownPlan(String),
    ToShared,
    SharedToDedicated,
    BackendChange { from: String, to: String },
}

/// The extra disk sizes (GB) `PUT /api/instances/{id}/disk` accepts.
pub const DISK_SIZES: &[u32] = &[0, 25, 50, 100, 250, 500, 1000, 2000];

/// Why a disk resize was refused; the HTTP mapping lives in `routes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DiskRefusal {
    UnknownId,
    /// A shared plan has no disk of its own.
    Shared,
    /// A plan change or a disk resize is in flight, or the instance is not ready.
    Busy,
    /// 400 on these fields.
    Invalid(Vec<&'static str>),
    /// Smaller than the current size (`current`, GB).
    Shrink {
        current: u32,
    },
    /// The size the disk already has.
    Same {
        current: u32,
    },
    /// Within the provider's minimum interval since the last resize.
    TooSoon {
        interval: Duration,
    },
}

#[derive(Debug, Clone)]
struct Instance {
    id: u64,
    name: String,
    providerid: Uuid,
    plan: String,
    node_count: u32,
    ready: bool,
    change: Option<Change>,
    figures: Figures,
    /// When the nodes last started, on the fake's clock.
    up_since: Timestamp,
    /// The extra disk (GB) every node has once no resize is in flight.
    extra_disk: u32,
    disk_change: Option<DiskChange>,
    /// When the last accepted resize started.
    last_resize: Option<Timestamp>,
}

#[derive(Debug, Clone)]
struct DiskChange {
    to: u32,
    started: Timestamp,
}

#[derive(Debug, Clone)]
struct Change {
    to_plan: String,
    from_nodes: u32,
    to_nodes: u32,
    started: Timestamp,
}

/// Every instance, the catalogue it is checked against, and the change timeline.
#[derive(Debug)]
pub(crate) struct Instances {
    by_id: BTreeMap<u64, Instance>,
    plans: Vec<FakePlan>,
    timeline: Timeline,
    /// The least time between two disk resizes (the provider's limit; AWS: 6 h).
    disk_interval: Duration,
}

impl Instances {
    pub fn new(
        seeds: Vec<SeedInstance>,
        plans: Vec<FakePlan>,
        timeline: Timeline,
        now: Timestamp,
    ) -> Self {
        let mut instances = Self {
            by_id: BTreeMap::new(),
            plans,
            timeline,
            disk_interval: Duration::ZERO,
        };
        for seed in seeds {
            instances.add(seed, now);
        }
        instances
    }

    pub fn plans(&self) -> &[FakePlan] {
        &self.plans
    }

    /// Adds or replaces an instance; its nodes start at `now`.
    pub fn add(&mut self, seed: SeedInstance, now: Timestamp) {
        let node_count = current_kind(&self.plans, &seed.plan).nodes_after(1);
        self.by_id.insert(
            seed.id,
            Instance {
                id: seed.id,
                name: seed.name,
                providerid: seed.providerid,
                plan: seed.plan,
                node_count,
                ready: seed.ready,
                change: None,
                figures: Figures::new(seed.mem_used),
                up_since: now,
                extra_disk: 0,
                disk_change: None,
                last_resize: None,
            },
        );
    }

    /// Whether the fake holds instance `id`.
    pub fn contains(&self, id: u64) -> bool {
        self.by_id.contains_key(&id)
    }

    /// Every instance as `GET /api/instances` would show it at `now`, by id.
    pub fn list(&mut self, now: Timestamp) -> Vec<InstanceSnapshot> {
        let ids: Vec<u64> = self.by_id.keys().copied().collect();
        ids.into_iter()
            .filter_map(|id| self.show(id, now))
            .collect()
    }

    /// One instance as `GET /api/instances/{id}` would show it at `now`.
    pub fn show(&mut self, id: u64, now: Timestamp) -> Option<InstanceSnapshot> {
        let timeline = self.timeline;
        let instance = self.by_id.get_mut(&id)?;
        settle(instance, timeline, now);
        let phase = instance
            .change
            .as_ref()
            .map(|change| (change, timeline.phase(change.started, now)));
        let disk_phase = instance
            .disk_change
            .as_ref()
            .map(|change| (change.to, timeline.phase(change.started, now)));
        let (plan, ready, configured) = match phase {
            Some((change, Phase::Reconfiguring { progress })) => {
                let dedicated = !current_kind(&self.plans, &change.to_plan).shared;
                let count = moving_count(change.from_nodes, change.to_nodes, progress, dedicated);
                let mut configured = vec![true; count];
                // The node being worked on: the reconfiguration rolls through them in order.
                let working = ((progress * count as f64) as usize).min(count.saturating_sub(1));
                if let Some(flag) = configured.get_mut(working) {
                    *flag = false;
                }
                (change.to_plan.clone(), false, configured)
            }
            // Lag (or a finished change `settle` has already applied): the current plan.
            _ => (
                instance.plan.clone(),
                instance.ready,
                vec![true; instance.node_count as usize],
            ),
        };
        let mut ready = ready;
        let mut configured = configured;
        let mut additional_disk_size = vec![instance.extra_disk; configured.len()];
        if let Some((to, Phase::Reconfiguring { progress })) = disk_phase {
            // The resize rolls through the nodes in order: those before the one being worked
            // on have the new size, it and those after still the old one.
            let count = configured.len();
            let working = ((progress * count as f64) as usize).min(count.saturating_sub(1));
            for size in additional_disk_size.iter_mut().take(working) {
                *size = to;
            }
            if let Some(flag) = configured.get_mut(working) {
                *flag = false;
            }
            ready = false;
        }
        let kind = current_kind(&self.plans, &plan);
        Some(InstanceSnapshot {
            id: instance.id,
            name: instance.name.clone(),
            providerid: instance.providerid,
            plan,
            backend: kind.backend,
            dedicated: !kind.shared,
            ready,
            configured,
            changing_to: instance.change.as_ref().map(|c| c.to_plan.clone()),
            additional_disk_size,
            disk_resizing_to: instance.disk_change.as_ref().map(|c| c.to),
        })
    }

    /// Instance `id` as its management API would show it at `now`.
    pub fn broker(&mut self, id: u64, now: Timestamp) -> Option<BrokerSnapshot> {
        let instance = self.show(id, now)?;
        let stored = self.by_id.get(&id)?;
        Some(BrokerSnapshot {
            instance,
            figures: stored.figures,
            uptime: crate::clock::between(stored.up_since, now),
        })
    }

    /// The management figures of instance `id`, to change them.
    pub fn figures_mut(&mut self, id: u64) -> Option<&mut Figures> {
        self.by_id
            .get_mut(&id)
            .map(|instance| &mut instance.figures)
    }

    /// The plan was changed elsewhere (the console): applies at once, ready, and cancels any
    /// change in flight. Returns `false` if there is no such instance.
    pub fn set_plan(&mut self, id: u64, plan: &str) -> bool {
        let Some(instance) = self.by_id.get_mut(&id) else {
            return false;
        };
        instance.node_count = current_kind(&self.plans, plan).nodes_after(instance.node_count);
        instance.plan = plan.to_owned();
        instance.ready = true;
        instance.change = None;
        true
    }

    /// Sets the seed-level `ready` flag (a change in flight still shows `ready: false`).
    pub fn set_ready(&mut self, id: u64, ready: bool) -> bool {
        self.by_id
            .get_mut(&id)
            .map(|instance| instance.ready = ready)
            .is_some()
    }

    /// Applies production's rules, in production's order, to a `PUT` asking for `plan`
    /// (`None`: the body had no usable `plan`). On success the change starts at `now` and
    /// the accepted plan is returned.
    pub fn request_change(
        &mut self,
        id: u64,
        plan: Option<&str>,
        now: Timestamp,
    ) -> Result<String, Refusal> {
        let timeline = self.timeline;
        let instance = self.by_id.get_mut(&id).ok_or(Refusal::UnknownId)?;
        settle(instance, timeline, now);
        if instance.change.is_some() || instance.disk_change.is_some() || !instance.ready {
            return Err(Refusal::Busy);
        }
        let plan = plan.ok_or(Refusal::MissingPlan)?;
        let target =
            target_kind(&self.plans, plan).ok_or_else(|| Refusal::UnknownPlan(plan.to_owned()))?;
        let current = current_kind(&self.plans, &instance.plan);
        if !current.shared && target.shared {
            return Err(Refusal::ToShared);
        }
        if current.backend != target.backend {
            return Err(Refusal::BackendChange {
                from: current.backend,
                to: target.backend,
            });
        }
        // LavinMQ allows shared → dedicated; RabbitMQ does not.
        if current.shared && !target.shared && current.backend == super::catalogue::RABBITMQ {
            return Err(Refusal::SharedToDedicated);
        }
        instance.change = Some(Change {
            to_plan: plan.to_owned(),
            from_nodes: instance.node_count,
            to_nodes: target.nodes_after(instance.node_count),
            started: now,
        });
        Ok(plan.to_owned())
    }
}

impl Instances {
    /// The least time between two accepted disk resizes (default none).
    pub fn set_disk_interval(&mut self, interval: Duration) {
        self.disk_interval = interval;
    }

    /// The extra disk was changed elsewhere (the console): every node has `gb` at once, and
    /// any resize in flight is forgotten. Returns `false` if there is no such instance.
    pub fn set_extra_disk(&mut self, id: u64, gb: u32) -> bool {
        let Some(instance) = self.by_id.get_mut(&id) else {
            return false;
        };
        instance.extra_disk = gb;
        instance.disk_change = None;
        true
    }

    /// Applies the disk rules to `PUT /api/instances/{id}/disk` asking for `size`
    /// (`None`: missing or not a non-negative integer) with `allow_downtime` (`None`: sent
    /// but not a boolean; absent reads as `false`). Order: unknown id, shared plan, busy,
    /// invalid fields, shrink or same size, too soon. On success the resize starts at `now`.
    pub fn request_disk(
        &mut self,
        id: u64,
        size: Option<u64>,
        allow_downtime: Option<bool>,
        now: Timestamp,
    ) -> Result<u32, DiskRefusal> {
        let timeline = self.timeline;
        let interval = self.disk_interval;
        let plans = &self.plans;
        let instance = self.by_id.get_mut(&id).ok_or(DiskRefusal::UnknownId)?;
        settle(instance, timeline, now);
        if current_kind(plans, &instance.plan).shared {
            return Err(DiskRefusal::Shared);
        }
        if instance.change.is_some() || instance.disk_change.is_some() || !instance.ready {
            return Err(DiskRefusal::Busy);
        }
        let size = size
            .and_then(|size| u32::try_from(size).ok())
            .filter(|size| DISK_SIZES.contains(size));
        let mut bad = Vec::new();
        if size.is_none() {
            bad.push("extra_disk_size");
        }
        if allow_downtime.is_none() {
            bad.push("allow_downtime");
        }
        let Some(size) = size.filter(|_| bad.is_empty()) else {
            return Err(DiskRefusal::Invalid(bad));
        };
        let current = instance.extra_disk;
        if size < current {
            return Err(DiskRefusal::Shrink { current });
        }
        if size == current {
            return Err(DiskRefusal::Same { current });
        }
        if let Some(last) = instance.last_resize
            && crate::clock::between(last, now) < interval
        {
            return Err(DiskRefusal::TooSoon { interval });
        }
        instance.disk_change = Some(DiskChange {
            to: size,
            started: now,
        });
        instance.last_resize = Some(now);
        Ok(size)
    }
}

/// Applies a change whose timeline has reached `Done`.
fn settle(instance: &mut Instance, timeline: Timeline, now: Timestamp) {
    let disk_done = instance
        .disk_change
        .as_ref()
        .is_some_and(|change| timeline.phase(change.started, now) == Phase::Done);
    if disk_done && let Some(change) = instance.disk_change.take() {
        instance.extra_disk = change.to;
    }
    let done = instance
        .change
        .as_ref()
        .is_some_and(|change| timeline.phase(change.started, now) == Phase::Done);
    if done && let Some(change) = instance.change.take() {
        instance.plan = change.to_plan;
        instance.node_count = change.to_nodes;
        instance.ready = true;
        // The nodes restarted when the change finished, not when someone first looked.
        instance.up_since = crate::clock::add(change.started, timeline.lag + timeline.reconfigure);
    }
}

/// The node count while reconfiguring: moves from `from` toward `to` with `progress`, and a
/// dedicated target always shows at least the one node being configured.
fn moving_count(from: u32, to: u32, progress: f64, dedicated: bool) -> usize {
    let (from, to) = (f64::from(from), f64::from(to));
    let count = (from + (to - from) * progress).round().max(0.0) as usize;
    if dedicated { count.max(1) } else { count }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_count_moves_toward_the_target() {
        assert_eq!(moving_count(1, 3, 0.0, true), 1);
        assert_eq!(moving_count(1, 3, 0.5, true), 2);
        assert_eq!(moving_count(5, 1, 0.9, true), 1);
        assert_eq!(moving_count(0, 1, 0.1, true), 1);
        assert_eq!(moving_count(0, 0, 0.5, false), 0);
    }

    #[test]
    fn seed_uuids_are_deterministic_v4() {
        let a = SeedInstance::new(359_559, "a", "bunny-1");
        assert_eq!(
            a.providerid,
            SeedInstance::new(359_559, "b", "x").providerid
        );
        assert_ne!(
            a.providerid,
            SeedInstance::new(1, "a", "bunny-1").providerid
        );
        assert_eq!(a.providerid.get_version_num(), 4);
    }
}
