//! From the way an alarm names an instance to the integer id every API path takes.
//!
//! Alarms may carry the instance UUID (`providerid`); only `GET /api/instances` maps it.
//! The list is cached and refreshed on a miss, so a new instance is found on its first
//! alarm. A UUID that a fresh list did not contain is remembered as unknown for a while:
//! a sender repeating an alarm for a deleted or foreign instance must not cost one list
//! call per alarm (the cost of an alarm must not grow with the number of alarms).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use jiff::Timestamp;
use uuid::Uuid;

use super::client::CloudAmqpClient;
use super::error::ApiError;
use super::model::InstanceSummary;
use crate::clock::add;
use crate::instance::InstanceRef;

/// How long a UUID missing from a fresh list stays "unknown" before a miss may list again.
pub const UNKNOWN_UUID_RECHECK: Duration = Duration::from_secs(30);

/// Why an instance reference could not be mapped to an id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("no instance of this account has UUID {uuid}")]
    InstanceUnknown { uuid: Uuid },
    #[error(transparent)]
    Api(#[from] ApiError),
}

/// Maps instance references to ids through a cached instance list.
#[derive(Debug)]
pub struct InstanceResolver {
    client: CloudAmqpClient,
    cache: Mutex<Cache>,
    /// Held while listing, so that a burst of misses shares one list call.
    refreshing: tokio::sync::Mutex<()>,
}

#[derive(Debug, Default)]
struct Cache {
    by_uuid: HashMap<Uuid, u64>,
    by_id: HashMap<u64, InstanceSummary>,
    /// Bumped on every refresh; a waiter that sees it move knows the list is fresh.
    generation: u64,
    /// UUIDs a refresh did not find, with the time of that refresh.
    unknown: HashMap<Uuid, Timestamp>,
    /// When the list was last read.
    listed_at: Option<Timestamp>,
}

impl InstanceResolver {
    /// An empty resolver; the first UUID lookup lists the instances.
    pub fn new(client: CloudAmqpClient) -> Self {
        Self {
            client,
            cache: Mutex::new(Cache::default()),
            refreshing: tokio::sync::Mutex::new(()),
        }
    }

    /// The integer id for `instance`. An id passes through without a call.
    pub async fn resolve(&self, instance: InstanceRef) -> Result<u64, ResolveError> {
        let uuid = match instance {
            InstanceRef::Id(id) => return Ok(id),
            InstanceRef::Uuid(uuid) => uuid,
        };
        if let Some(answer) = self.cached(instance) {
            return answer;
        }
        // A refresh finishing between `cached` and here only costs a needless refresh.
        let seen_generation = self.lock().generation;
        let _refreshing = self.refreshing.lock().await;
        if self.lock().generation == seen_generation {
            self.refresh_locked().await?;
        }
        let mut cache = self.lock();
        match cache.by_uuid.get(&uuid) {
            Some(id) => Ok(*id),
            None => {
                let now = self.client.clock().now();
                cache
                    .unknown
                    .retain(|_, at| now < add(*at, UNKNOWN_UUID_RECHECK));
                cache.unknown.insert(uuid, now);
                tracing::info!(%uuid, "no instance has this UUID");
                Err(ResolveError::InstanceUnknown { uuid })
            }
        }
    }

    /// What is known without a call: the id, or that the UUID was not found lately.
    /// `None` when only listing the instances can tell.
    pub fn cached(&self, instance: InstanceRef) -> Option<Result<u64, ResolveError>> {
        let uuid = match instance {
            InstanceRef::Id(id) => return Some(Ok(id)),
            InstanceRef::Uuid(uuid) => uuid,
        };
        let now = self.client.clock().now();
        let cache = self.lock();
        if let Some(id) = cache.by_uuid.get(&uuid) {
            return Some(Ok(*id));
        }
        cache
            .unknown
            .get(&uuid)
            .is_some_and(|at| now < add(*at, UNKNOWN_UUID_RECHECK))
            .then_some(Err(ResolveError::InstanceUnknown { uuid }))
    }

    /// What the last list said about instance `id` (name, plan, providerid), if it was in it.
    pub fn known(&self, id: u64) -> Option<InstanceSummary> {
        self.lock().by_id.get(&id).cloned()
    }

    /// Every instance of the account, from a list at most `max_age` old (listing again
    /// when it is older): what schedules select from and the budget sums over.
    pub async fn list_within(&self, max_age: Duration) -> Result<Vec<InstanceSummary>, ApiError> {
        let fresh = |cache: &Cache| {
            let now = self.client.clock().now();
            cache
                .listed_at
                .is_some_and(|at| now < add(at, max_age))
                .then(|| cache.by_id.values().cloned().collect::<Vec<_>>())
        };
        if let Some(list) = fresh(&self.lock()) {
            return Ok(list);
        }
        let _refreshing = self.refreshing.lock().await;
        // Another caller may have listed while this one waited.
        if let Some(list) = fresh(&self.lock()) {
            return Ok(list);
        }
        self.refresh_locked().await?;
        Ok(self.lock().by_id.values().cloned().collect())
    }

    /// Lists the instances now, replacing the cache.
    pub async fn refresh(&self) -> Result<(), ApiError> {
        let _refreshing = self.refreshing.lock().await;
        self.refresh_locked().await
    }

    async fn refresh_locked(&self) -> Result<(), ApiError> {
        let instances = self.client.list_instances().await?;
        let mut by_uuid = HashMap::new();
        let mut by_id = HashMap::new();
        for instance in instances {
            if let Some(uuid) = instance
                .providerid
                .as_deref()
                .and_then(|p| Uuid::try_parse(p.trim()).ok())
            {
                by_uuid.insert(uuid, instance.id);
            }
            by_id.insert(instance.id, instance);
        }
        tracing::debug!(instances = by_id.len(), "instance list refreshed");
        let mut cache = self.lock();
        // Verdicts on other unknown UUIDs stand until they expire: clearing them would let
        // two alternating unknown UUIDs cost a list call per alarm.
        cache.unknown.retain(|uuid, _| !by_uuid.contains_key(uuid));
        cache.by_uuid = by_uuid;
        cache.by_id = by_id;
        cache.generation += 1;
        cache.listed_at = Some(self.client.clock().now());
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        // Plain maps, replaced whole: a panic elsewhere cannot leave them half-written.
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
