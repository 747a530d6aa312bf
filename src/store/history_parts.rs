//! What the history reads of both backends share: the shape of a source of events and
//! its filter's conditions, the events' order and their merge, and the few rules that
//! turn rows into events. Each backend keeps only its SQL and its row decoding
//! (`read.rs` for SQLite, `pg/read.rs` for PostgreSQL).

use std::collections::HashMap;

use jiff::Timestamp;

use super::Direction;
use super::read::{EventKind, HistoryEvent, TimelineChange};

/// One kind of event the history reads: its query (`{where}` for the filter's
/// conditions), the query used instead for one instance when there is one, and the
/// columns the filter names.
pub(crate) struct Source {
    pub sql: &'static str,
    pub by_instance: Option<&'static str>,
    pub instance_col: &'static str,
    pub at_col: &'static str,
    /// Rows are in time order by id: a time filter also bounds `id` from below
    /// (`:floor`, the first alarm id since), so a scan stops where the time does.
    pub rowid_in_time_order: bool,
}

impl Source {
    /// The query with the filter's conditions in place (`:instance`, `:since` and
    /// `:floor` left for the backend to bind); `truth` where there is none (`1` or
    /// `true`, as the backend spells it).
    pub fn filtered(&self, instance: bool, since: bool, truth: &str) -> String {
        let mut conditions = Vec::new();
        let sql = match (instance, self.by_instance) {
            (true, Some(by_instance)) => {
                conditions.push(format!("{} = :instance", self.instance_col));
                if since {
                    conditions.push("decided_at >= :since".to_owned());
                }
                by_instance
            }
            (instance, _) => {
                if instance {
                    conditions.push(format!("{} = :instance", self.instance_col));
                }
                if since && self.rowid_in_time_order {
                    conditions.push("id >= :floor".to_owned());
                }
                self.sql
            }
        };
        if since {
            conditions.push(format!("{} >= :since", self.at_col));
        }
        if conditions.is_empty() {
            conditions.push(truth.to_owned());
        }
        sql.replace("{where}", &conditions.join(" AND "))
    }
}

/// Orders events newest first; at one instant a change before its decision before its
/// alarm (the order they are read in, reversed), then by row id.
pub(crate) type SortKey = (Timestamp, u8, i64);

pub(crate) fn event(at: Timestamp, instance: Option<u64>, what: EventKind) -> HistoryEvent {
    HistoryEvent {
        at,
        instance,
        instance_name: None,
        what,
    }
}

/// The events of every source, newest first, cut to `limit`, each with its instance's name.
pub(crate) fn merge(
    mut events: Vec<(SortKey, HistoryEvent)>,
    limit: usize,
    names: &HashMap<u64, String>,
) -> Vec<HistoryEvent> {
    events.sort_by_key(|(key, _)| std::cmp::Reverse(*key));
    events.truncate(limit);
    events
        .into_iter()
        .map(|(_, mut event)| {
            event.instance_name = event.instance.and_then(|id| names.get(&id).cloned());
            event
        })
        .collect()
}

/// An alarm decision's direction: alarm rules only ever climb; a skip before any rule
/// was in play has none.
pub(crate) fn alarm_direction(rule: Option<&str>, decision: &str) -> Option<Direction> {
    (rule.is_some() || decision != "skip").then_some(Direction::Up)
}

/// The plan an instance was on when a plan chart's window opened: where the first change
/// in it that moved the plan left from.
pub(crate) fn plan_at_start(changes: &[TimelineChange]) -> Option<String> {
    changes
        .iter()
        .find(|c| c.moved_plan())
        .map(|c| c.from.clone())
}
