//! Builders for the store's inputs and a side door into the database file for assertions.

use std::path::Path;
use std::time::Duration;

use cloudamqp_autoscaler::store::{
    AlarmId, ChangeFinish, DB_FILE_NAME, DecisionKind, NewAlarm, NewChange, NewDecision, Phase,
    Recovered, Store,
};
use jiff::Timestamp;
use rusqlite::{Connection, OpenFlags};

pub const INSTANCE: u64 = 359_559;

pub fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

pub fn alarm(body: &str) -> NewAlarm {
    NewAlarm {
        received_at: at("2026-11-26T17:00:00.25Z"),
        remote_addr: Some("203.0.113.7:51000".into()),
        body: body.into(),
        kind: "memory".into(),
        value: Some(85.0),
        instance: Some(INSTANCE.to_string()),
        resolved: false,
        message: Some("memory alarm".into()),
        triggered_at: Some("2026-11-26T16:59:58Z".into()),
    }
}

pub fn skip(instance_id: Option<u64>, when: &str) -> NewDecision {
    NewDecision {
        at: at(when),
        instance_id,
        plan: Some("bunny-1".into()),
        kind: DecisionKind::Skip,
        reason: Some("cooldown".into()),
        rule: Some("memory-high".into()),
        from_plan: None,
        to_plan: None,
        detail: "the instance is cooling down".into(),
    }
}

pub fn change_decision(instance_id: u64, when: &str) -> NewDecision {
    NewDecision {
        kind: DecisionKind::Change,
        reason: None,
        from_plan: Some("bunny-1".into()),
        to_plan: Some("hare-1".into()),
        detail: "memory 85 > 80: bunny-1 -> hare-1".into(),
        ..skip(Some(instance_id), when)
    }
}

pub fn change(alarm_id: AlarmId, instance_id: u64, when: &str) -> NewChange {
    NewChange {
        instance_id,
        alarm_id: Some(alarm_id),
        direction: cloudamqp_autoscaler::decide::Direction::Up,
        kind: cloudamqp_autoscaler::decide::ChangeKind::Plan,
        from_plan: "bunny-1".into(),
        to_plan: "hare-1".into(),
        rule: "memory-high".into(),
        cooldown: Duration::from_secs(1800),
        dry_run: false,
        intended_at: at(when),
        world: None,
    }
}

pub fn finish(phase: Phase, when: &str) -> ChangeFinish {
    ChangeFinish {
        phase,
        finished_at: at(when),
        detail: Some(format!("ended {}", phase.as_str())),
        needs_attention: phase != Phase::Completed,
    }
}

/// Records an alarm and a change decided on it; returns the change id.
pub async fn intend_change(store: &Store, instance_id: u64, when: &str) -> i64 {
    let alarm_id = store.record_alarm(alarm("{}")).await.unwrap();
    store
        .record_decision(
            alarm_id,
            change_decision(instance_id, when),
            Some(change(alarm_id, instance_id, when)),
        )
        .await
        .unwrap()
        .expect("a change id")
}

/// Closes the store and opens the directory again, as a restart does.
pub async fn restart(store: Store, dir: &Path) -> (Store, Recovered) {
    store.close().await;
    Store::open(dir).unwrap()
}

/// A separate, read-only connection: what an operator's `sqlite3` would see.
pub fn inspect(dir: &Path) -> Connection {
    Connection::open_with_flags(dir.join(DB_FILE_NAME), OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap()
}

pub fn count(dir: &Path, table: &str) -> i64 {
    inspect(dir)
        .query_row(&format!("SELECT count(*) FROM {table}"), [], |row| {
            row.get(0)
        })
        .unwrap()
}
