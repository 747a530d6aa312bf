//! Pauses set at run time through the admin API (`POST /pause`): durable, expiring by
//! themselves. This file is the pure part (what a pause holds) and the in-memory book the
//! executor consults; the store keeps them across restarts.

use std::sync::{Arc, RwLock};

use jiff::Timestamp;

use crate::decide::{Direction, Directions};
use crate::rules::{InstanceNames, Selector};

/// One pause in force until `until`.
#[derive(Debug, Clone)]
pub struct Pause {
    pub id: String,
    pub until: Timestamp,
    pub directions: Directions,
    /// The selectors as given; empty means every instance.
    pub instances: Vec<String>,
    pub selectors: Vec<Selector>,
    pub reason: Option<String>,
    pub created_at: Timestamp,
}

impl Pause {
    /// Whether this pause holds a change in `direction` of the instance named `names` at
    /// `now`.
    pub fn holds(&self, names: &InstanceNames<'_>, direction: Direction, now: Timestamp) -> bool {
        now < self.until
            && self.directions.holds(direction)
            && crate::rules::any_picks(&self.selectors, names)
    }
}

/// The pauses the daemon knows, shared by the admin API (which writes them to the store
/// first) and the executor (which reads them before every change).
#[derive(Debug, Clone, Default)]
pub struct PauseBook {
    pauses: Arc<RwLock<Vec<Pause>>>,
}

impl PauseBook {
    /// Replaces every pause (at start, from the store).
    pub fn replace(&self, pauses: Vec<Pause>) {
        *self.pauses.write().unwrap_or_else(|e| e.into_inner()) = pauses;
    }

    pub fn add(&self, pause: Pause) {
        self.pauses
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(pause);
    }

    /// Removes a pause; `false` when none has that id.
    pub fn remove(&self, id: &str) -> bool {
        let mut pauses = self.pauses.write().unwrap_or_else(|e| e.into_inner());
        let before = pauses.len();
        pauses.retain(|p| p.id != id);
        pauses.len() != before
    }

    /// Removes every pause, returning their ids.
    pub fn clear(&self) -> Vec<String> {
        let mut pauses = self.pauses.write().unwrap_or_else(|e| e.into_inner());
        pauses.drain(..).map(|p| p.id).collect()
    }

    /// The pauses in force at `now`, soonest to end first (expired ones are dropped).
    pub fn in_force(&self, now: Timestamp) -> Vec<Pause> {
        let mut pauses = self.pauses.write().unwrap_or_else(|e| e.into_inner());
        pauses.retain(|p| p.until > now);
        let mut list = pauses.clone();
        list.sort_by_key(|p| (p.until, p.created_at));
        list
    }

    /// The pause that holds a change in `direction` of `names` at `now`, the one that lasts
    /// longest when several do.
    pub fn holding(
        &self,
        names: &InstanceNames<'_>,
        direction: Direction,
        now: Timestamp,
    ) -> Option<Pause> {
        self.pauses
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|p| p.holds(names, direction, now))
            .max_by_key(|p| p.until)
            .cloned()
    }
}
