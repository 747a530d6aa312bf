//! Recovery against the real PostgreSQL, in parity with the SQLite store: one history,
//! applied to both backends (SQLite through the public [`Store`] API, PostgreSQL through
//! [`record_alarms`], the lease functions and plain INSERTs), then both `Recovered`
//! compared field by field, ids replaced by the history's names for them and timestamps
//! cut to the microsecond.

use std::collections::HashMap;
use std::time::Duration;

use jiff::Timestamp;

use super::accept::{AcceptItem, record_alarms};
use super::lease::{Held, finish, mark_submitted, open_change};
use super::recover::recover;
use super::rows::{db_instance_id, db_time};
use super::testdb::TestDb;
use crate::decide::{ChangeKind, Direction, Directions};
use crate::store::{
    AlarmId, BaselineRow, CapacityRow, ChangeFinish, ChangeId, ChangeRow, DecisionKind,
    DecisionRow, DeliveryAttempt, DeliveryOutcome, InstanceRow, LookRow, NewAlarm, NewChange,
    NewDecision, NewLook, NewNotification, NewScheduleRun, PauseRow, Phase, Recovered, Store,
};

const LEASE: Duration = Duration::from_secs(600);

/// One step of the history. Alarms and changes are named (`a1`, `c1`); a step refers to
/// an earlier one by its name, and each backend keeps its own ids for them.
enum Op {
    Instance(InstanceRow),
    Baseline(BaselineRow),
    Capacity(CapacityRow),
    Alarm(&'static str, NewAlarm, Option<NewDecision>),
    /// The decision on a named alarm, and the change it starts (its `alarm_id` is filled
    /// in with the alarm's).
    Decide(&'static str, NewDecision, Option<(&'static str, NewChange)>),
    Submit(&'static str, Timestamp),
    Finish(&'static str, ChangeFinish),
    Look(NewLook),
    ScheduleRun(NewScheduleRun),
    Pause(PauseRow),
    EndPause(&'static str, Timestamp),
    Notes(Vec<NewNotification>),
    Delivery(DeliveryAttempt),
}

/// Seconds after a fixed moment, with a nanosecond part SQLite keeps and PostgreSQL cuts.
fn t(seconds: i64) -> Timestamp {
    Timestamp::from_nanosecond(i128::from(1_796_000_000 + seconds) * 1_000_000_000 + 123_456_789)
        .unwrap()
}

fn alarm(at: i64, instance: &str, resolved: bool) -> NewAlarm {
    NewAlarm {
        received_at: t(at),
        remote_addr: Some("10.0.0.1".into()),
        body: format!("{{\"instance\":\"{instance}\",\"at\":{at}}}"),
        kind: "memory".into(),
        value: Some(91.5),
        instance: Some(instance.into()),
        resolved,
        message: Some("memory high".into()),
        triggered_at: None,
    }
}

fn decision(at: i64, instance: u64, kind: DecisionKind, reason: Option<&str>) -> NewDecision {
    NewDecision {
        at: t(at),
        instance_id: Some(instance),
        plan: Some("bunny-1".into()),
        kind,
        reason: reason.map(str::to_owned),
        rule: Some("memory-high".into()),
        from_plan: (kind != DecisionKind::Skip).then(|| "bunny-1".to_owned()),
        to_plan: (kind != DecisionKind::Skip).then(|| "hare-1".to_owned()),
        detail: format!("decided at {at}"),
    }
}

#[allow(clippy::too_many_arguments)]
fn change(
    instance_id: u64,
    at: i64,
    direction: Direction,
    kind: ChangeKind,
    from: &str,
    to: &str,
    dry_run: bool,
) -> NewChange {
    NewChange {
        instance_id,
        alarm_id: None,
        direction,
        kind,
        from_plan: from.into(),
        to_plan: to.into(),
        rule: "memory-high".into(),
        cooldown: Duration::from_secs(1800),
        dry_run,
        intended_at: t(at),
        world: None,
    }
}

fn finished(phase: Phase, at: i64) -> ChangeFinish {
    ChangeFinish {
        phase,
        finished_at: t(at),
        detail: Some(format!("{} at {at}", phase.as_str())),
        needs_attention: phase == Phase::Failed,
    }
}

fn note(event_id: &str, kind: &str, instance: u64, at: i64, sinks: &[&str]) -> NewNotification {
    NewNotification {
        event_id: event_id.into(),
        kind: kind.into(),
        instance_id: Some(instance),
        reason: Some("frozen".into()),
        at: t(at),
        body: format!("{{\"id\":\"{event_id}\",\"n\":[1, 2]}}"),
        sinks: sinks.iter().map(|s| (*s).to_owned()).collect(),
    }
}

fn history() -> Vec<Op> {
    use ChangeKind::{Disk, Plan};
    use DecisionKind::{Change, Skip, WouldChange};
    use Direction::{Down, Up};
    let instance = |id: u64, plan: &str| {
        Op::Instance(InstanceRow {
            id,
            name: Some(format!("rabbit-{id}")),
            providerid: Some(format!("00000000-0000-0000-0000-00000000000{id}")),
            plan: Some(plan.into()),
            updated_at: t(id as i64),
        })
    };
    vec![
        instance(7, "bunny-1"),
        instance(8, "hare-1"),
        instance(9, "bunny-1"),
        Op::Baseline(BaselineRow {
            instance_id: 7,
            plan: "bunny-1".into(),
            since: t(5),
        }),
        Op::Capacity(CapacityRow {
            instance_id: 7,
            plan: "bunny-1".into(),
            mem_limit: 1 << 31,
            nodes: 1,
            seen_at: t(6),
        }),
        Op::Capacity(CapacityRow {
            instance_id: 7,
            plan: "hare-1".into(),
            mem_limit: 1 << 32,
            nodes: 3,
            seen_at: t(7),
        }),
        // 7: up, completed.
        Op::Alarm("a1", alarm(10, "7", false), None),
        Op::Decide(
            "a1",
            decision(11, 7, Change, None),
            Some(("c1", change(7, 11, Up, Plan, "bunny-1", "hare-1", false))),
        ),
        Op::Submit("c1", t(12)),
        Op::Finish("c1", finished(Phase::Completed, 100)),
        // 7: decided on arrival, a skip.
        Op::Alarm(
            "a2",
            alarm(200, "7", false),
            Some(decision(200, 7, Skip, Some("cooldown"))),
        ),
        // 8: up, failed.
        Op::Alarm("a3", alarm(300, "8", false), None),
        Op::Decide(
            "a3",
            decision(301, 8, Change, None),
            Some(("c3", change(8, 301, Up, Plan, "hare-1", "rabbit-1", false))),
        ),
        Op::Submit("c3", t(302)),
        Op::Finish("c3", finished(Phase::Failed, 350)),
        // 8: a disk change completed, then a dry run's later one.
        Op::Alarm("a4", alarm(400, "8", false), None),
        Op::Decide(
            "a4",
            decision(401, 8, Change, None),
            Some(("c4", change(8, 401, Up, Disk, "0", "100", false))),
        ),
        Op::Submit("c4", t(402)),
        Op::Finish("c4", finished(Phase::Completed, 450)),
        Op::Alarm("a5", alarm(500, "8", false), None),
        Op::Decide(
            "a5",
            decision(501, 8, WouldChange, None),
            Some(("c5", change(8, 501, Up, Disk, "100", "200", true))),
        ),
        Op::Finish("c5", finished(Phase::Completed, 520)),
        // 8: down, completed.
        Op::Alarm("a6", alarm(600, "8", false), None),
        Op::Decide(
            "a6",
            decision(601, 8, Change, None),
            Some(("c6", change(8, 601, Down, Plan, "hare-1", "bunny-1", false))),
        ),
        Op::Submit("c6", t(602)),
        Op::Finish("c6", finished(Phase::Completed, 650)),
        // Open changes: 9 intended, 7 submitted.
        Op::Alarm("a7", alarm(700, "9", false), None),
        Op::Decide(
            "a7",
            decision(701, 9, Change, None),
            Some(("c7", change(9, 701, Up, Plan, "bunny-1", "hare-1", false))),
        ),
        Op::Alarm("a8", alarm(710, "7", false), None),
        Op::Decide(
            "a8",
            decision(711, 7, Change, None),
            Some(("c8", change(7, 711, Up, Plan, "hare-1", "rabbit-1", false))),
        ),
        Op::Submit("c8", t(712)),
        // Pending: never decided.
        Op::Alarm("a9", alarm(800, "7", false), None),
        Op::Alarm("a10", alarm(810, "8", true), None),
        Op::Look(NewLook {
            instance_id: 7,
            at: t(900),
            plan: "hare-1".into(),
            to_plan: Some("bunny-1".into()),
            passed: false,
            reason: Some("cooldown".into()),
            detail: "in cooldown".into(),
            projected_memory_percent: Some(42.5),
            kind: Skip,
        }),
        Op::ScheduleRun(NewScheduleRun {
            schedule: "nightly".into(),
            instance_id: 8,
            opened_at: t(950),
            at: t(951),
            plan: "bunny-1".into(),
            to_plan: "hare-1".into(),
            kind: WouldChange,
            reason: None,
            detail: "nightly would change".into(),
        }),
        Op::Pause(PauseRow {
            id: "p1".into(),
            created_at: t(960),
            until: t(10_000),
            directions: Directions::BOTH,
            instances: vec!["7".into(), "rabbit-8".into()],
            reason: Some("maintenance".into()),
        }),
        Op::Pause(PauseRow {
            id: "p2".into(),
            created_at: t(961),
            until: t(5_000),
            directions: Directions::from_name("up").unwrap(),
            instances: vec![],
            reason: None,
        }),
        Op::Pause(PauseRow {
            id: "p3".into(),
            created_at: t(962),
            until: t(6_000),
            directions: Directions::from_name("down").unwrap(),
            instances: vec![],
            reason: None,
        }),
        Op::EndPause("p2", t(970)),
        Op::Notes(vec![
            note("e1", "change.blocked", 7, 980, &["a", "b"]),
            note("e2", "ladder.top", 8, 990, &["a"]),
            note("e3", "change.completed", 8, 991, &["b"]),
        ]),
        Op::Delivery(DeliveryAttempt {
            event_id: "e1".into(),
            sink: "a".into(),
            at: t(985),
            outcome: DeliveryOutcome::Sent,
        }),
        Op::Delivery(DeliveryAttempt {
            event_id: "e2".into(),
            sink: "a".into(),
            at: t(995),
            outcome: DeliveryOutcome::Dropped("refused".into()),
        }),
        Op::Delivery(DeliveryAttempt {
            event_id: "e3".into(),
            sink: "b".into(),
            at: t(996),
            outcome: DeliveryOutcome::Failed("timeout".into()),
        }),
    ]
}

/// Each backend's ids for the history's names.
#[derive(Default)]
struct Names {
    alarms: HashMap<&'static str, AlarmId>,
    changes: HashMap<&'static str, ChangeId>,
}

impl Names {
    fn alarm(&self, id: AlarmId) -> &'static str {
        self.alarms
            .iter()
            .find(|(_, v)| **v == id)
            .map_or("?", |(k, _)| *k)
    }
    fn change(&self, id: ChangeId) -> &'static str {
        self.changes
            .iter()
            .find(|(_, v)| **v == id)
            .map_or("?", |(k, _)| *k)
    }
}

async fn on_sqlite(history: &[Op]) -> (Recovered, Names) {
    let dir = tempfile::tempdir().unwrap();
    let mut names = Names::default();
    {
        let (store, _) = Store::open(dir.path()).unwrap();
        for op in history {
            match op {
                Op::Instance(row) => store.upsert_instance(row.clone()).await.unwrap(),
                Op::Baseline(row) => store.set_baseline(row.clone()).await.unwrap(),
                Op::Capacity(row) => store.record_capacity(row.clone()).await.unwrap(),
                Op::Alarm(name, alarm, decision) => {
                    let id = match decision {
                        Some(d) => store.record_decided_alarm(alarm.clone(), d.clone()).await,
                        None => store.record_alarm(alarm.clone()).await,
                    };
                    names.alarms.insert(name, id.unwrap());
                }
                Op::Decide(name, decision, change) => {
                    let alarm_id = names.alarms[name];
                    let new = change.as_ref().map(|(_, c)| NewChange {
                        alarm_id: Some(alarm_id),
                        ..c.clone()
                    });
                    let id = store
                        .record_decision(alarm_id, decision.clone(), new)
                        .await
                        .unwrap();
                    if let Some((cname, _)) = change {
                        names.changes.insert(cname, id.unwrap());
                    }
                }
                Op::Submit(name, at) => store
                    .mark_submitted(names.changes[name], *at)
                    .await
                    .unwrap(),
                Op::Finish(name, f) => store
                    .finish_change(names.changes[name], f.clone())
                    .await
                    .unwrap(),
                Op::Look(look) => {
                    store.record_look(look.clone(), None).await.unwrap();
                }
                Op::ScheduleRun(run) => {
                    store.record_schedule_run(run.clone(), None).await.unwrap();
                }
                Op::Pause(pause) => store.add_pause(pause.clone()).await.unwrap(),
                Op::EndPause(id, at) => {
                    assert!(store.end_pause((*id).into(), *at).await.unwrap());
                }
                Op::Notes(notes) => store.record_notifications(notes.clone()).await.unwrap(),
                Op::Delivery(attempt) => store.record_delivery(attempt.clone()).await.unwrap(),
            }
        }
        store.close().await;
    }
    // What the next start reads.
    let (store, recovered) = Store::open(dir.path()).unwrap();
    store.close().await;
    (recovered, names)
}

async fn on_postgres(client: &mut deadpool_postgres::Object, history: &[Op]) -> (Recovered, Names) {
    let mut names = Names::default();
    let mut held: HashMap<&'static str, Held> = HashMap::new();
    for op in history {
        match op {
            Op::Instance(row) => {
                client
                    .execute(
                        "INSERT INTO instances (id, name, providerid, plan, updated_at) \
                         VALUES ($1, $2, $3, $4, $5)",
                        &[
                            &db_instance_id(row.id).unwrap(),
                            &row.name,
                            &row.providerid,
                            &row.plan,
                            &db_time(row.updated_at).unwrap(),
                        ],
                    )
                    .await
                    .unwrap();
            }
            Op::Baseline(row) => {
                let updated = client
                    .execute(
                        "UPDATE instances SET baseline = $2, baseline_since = $3 WHERE id = $1",
                        &[
                            &db_instance_id(row.instance_id).unwrap(),
                            &row.plan,
                            &db_time(row.since).unwrap(),
                        ],
                    )
                    .await
                    .unwrap();
                assert_eq!(updated, 1);
            }
            Op::Capacity(row) => {
                client
                    .execute(
                        "INSERT INTO capacities (instance_id, plan, mem_limit, nodes, seen_at) \
                         VALUES ($1, $2, $3, $4, $5)",
                        &[
                            &db_instance_id(row.instance_id).unwrap(),
                            &row.plan,
                            &(row.mem_limit as i64),
                            &(row.nodes as i32),
                            &db_time(row.seen_at).unwrap(),
                        ],
                    )
                    .await
                    .unwrap();
            }
            Op::Alarm(name, alarm, decision) => {
                let item = AcceptItem {
                    alarm: alarm.clone(),
                    decision: decision.clone(),
                    owner: "replica-a".into(),
                    claim: LEASE,
                };
                let ids = record_alarms(client, &[item]).await.unwrap();
                names.alarms.insert(name, ids[0]);
            }
            Op::Decide(name, d, change) => {
                let alarm_id = names.alarms[name];
                let tx = client.transaction().await.unwrap();
                let decided = tx
                    .execute(
                        "UPDATE alarms SET decided_at = $1, instance_id = $2, plan = $3, \
                         decision = $4, reason = $5, rule = $6, from_plan = $7, to_plan = $8, \
                         detail = $9 WHERE id = $10 AND decided_at IS NULL",
                        &[
                            &db_time(d.at).unwrap(),
                            &d.instance_id.map(|id| db_instance_id(id).unwrap()),
                            &d.plan,
                            &d.kind.as_str(),
                            &d.reason,
                            &d.rule,
                            &d.from_plan,
                            &d.to_plan,
                            &d.detail,
                            &alarm_id,
                        ],
                    )
                    .await
                    .unwrap();
                assert_eq!(decided, 1);
                if let Some((cname, c)) = change {
                    let new = NewChange {
                        alarm_id: Some(alarm_id),
                        ..c.clone()
                    };
                    let h = open_change(&tx, &new, "replica-a", LEASE).await.unwrap();
                    names.changes.insert(cname, h.change_id);
                    held.insert(cname, h);
                }
                tx.commit().await.unwrap();
            }
            Op::Submit(name, at) => mark_submitted(&*client, &held[name], *at).await.unwrap(),
            Op::Finish(name, f) => finish(&*client, &held[name], f).await.unwrap(),
            Op::Look(look) => {
                client
                    .execute(
                        "INSERT INTO looks (instance_id, at, plan, to_plan, passed, reason, \
                         detail, projected_memory_percent, decision) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                        &[
                            &db_instance_id(look.instance_id).unwrap(),
                            &db_time(look.at).unwrap(),
                            &look.plan,
                            &look.to_plan,
                            &look.passed,
                            &look.reason,
                            &look.detail,
                            &look.projected_memory_percent,
                            &look.kind.as_str(),
                        ],
                    )
                    .await
                    .unwrap();
            }
            Op::ScheduleRun(run) => {
                client
                    .execute(
                        "INSERT INTO schedule_runs (schedule, instance_id, opened_at, at, plan, \
                         to_plan, decision, reason, detail) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                        &[
                            &run.schedule,
                            &db_instance_id(run.instance_id).unwrap(),
                            &db_time(run.opened_at).unwrap(),
                            &db_time(run.at).unwrap(),
                            &run.plan,
                            &run.to_plan,
                            &run.kind.as_str(),
                            &run.reason,
                            &run.detail,
                        ],
                    )
                    .await
                    .unwrap();
            }
            Op::Pause(p) => {
                client
                    .execute(
                        "INSERT INTO pauses (id, created_at, until, directions, instances, \
                         reason) VALUES ($1, $2, $3, $4, $5::text::jsonb, $6)",
                        &[
                            &p.id,
                            &db_time(p.created_at).unwrap(),
                            &db_time(p.until).unwrap(),
                            &p.directions.as_str(),
                            &serde_json::to_string(&p.instances).unwrap(),
                            &p.reason,
                        ],
                    )
                    .await
                    .unwrap();
            }
            Op::EndPause(id, at) => {
                let ended = client
                    .execute(
                        "UPDATE pauses SET ended_at = $2 WHERE id = $1 AND ended_at IS NULL",
                        &[id, &db_time(*at).unwrap()],
                    )
                    .await
                    .unwrap();
                assert_eq!(ended, 1);
            }
            Op::Notes(notes) => {
                for n in notes {
                    let id: i64 = client
                        .query_one(
                            "INSERT INTO notifications (event_id, kind, instance_id, reason, \
                             at, body) VALUES ($1, $2, $3, $4, $5, $6::text::json) RETURNING id",
                            &[
                                &n.event_id,
                                &n.kind,
                                &n.instance_id.map(|id| db_instance_id(id).unwrap()),
                                &n.reason,
                                &db_time(n.at).unwrap(),
                                &n.body,
                            ],
                        )
                        .await
                        .unwrap()
                        .get(0);
                    for sink in &n.sinks {
                        client
                            .execute(
                                "INSERT INTO deliveries (notification_id, sink, state) \
                                 VALUES ($1, $2, 'pending')",
                                &[&id, sink],
                            )
                            .await
                            .unwrap();
                    }
                }
            }
            Op::Delivery(a) => {
                let (state, error) = match &a.outcome {
                    DeliveryOutcome::Sent => ("sent", None),
                    DeliveryOutcome::Failed(why) => ("pending", Some(why.as_str())),
                    DeliveryOutcome::Dropped(why) => ("dropped", Some(why.as_str())),
                };
                let at = db_time(a.at).unwrap();
                let finished = (state != "pending").then_some(at);
                let updated = client
                    .execute(
                        "UPDATE deliveries SET state = $1, attempts = attempts + 1, \
                         last_error = $2, finished_at = $3, last_attempt_at = $4 \
                         WHERE state = 'pending' AND sink = $5 AND notification_id = \
                           (SELECT id FROM notifications WHERE event_id = $6)",
                        &[&state, &error, &finished, &at, &a.sink, &a.event_id],
                    )
                    .await
                    .unwrap();
                assert_eq!(updated, 1);
            }
        }
    }
    (recover(client).await.unwrap(), names)
}

/// A timestamp cut to the microsecond (PostgreSQL's precision).
fn us(at: Timestamp) -> Timestamp {
    Timestamp::from_microsecond(at.as_microsecond()).unwrap()
}

fn change_row(c: &ChangeRow, names: &Names) -> String {
    let name = names.change(c.id);
    let alarm = c.alarm_id.map(|id| names.alarm(id));
    let c = ChangeRow {
        id: 0,
        alarm_id: None,
        intended_at: us(c.intended_at),
        accepted_at: c.accepted_at.map(us),
        finished_at: c.finished_at.map(us),
        ..c.clone()
    };
    format!("{name} (alarm {alarm:?}) {c:?}")
}

fn decision_row(d: &DecisionRow, names: &Names) -> String {
    let alarm = names.alarm(d.alarm_id);
    let d = DecisionRow {
        alarm_id: 0,
        at: us(d.at),
        ..d.clone()
    };
    format!("{alarm} {d:?}")
}

/// Every field of `Recovered`, as comparable text: `(field, lines)`.
fn normalised(r: &Recovered, n: &Names) -> Vec<(&'static str, Vec<String>)> {
    let changes = |rows: &[ChangeRow]| rows.iter().map(|c| change_row(c, n)).collect();
    vec![
        (
            "pending_alarms",
            r.pending_alarms
                .iter()
                .map(|a| format!("{} {} {}", n.alarm(a.id), us(a.received_at), a.body))
                .collect(),
        ),
        ("open_changes", changes(&r.open_changes)),
        ("last_finished", changes(&r.last_finished)),
        ("last_finished_plans", changes(&r.last_finished_plans)),
        (
            "last_decisions",
            r.last_decisions
                .iter()
                .map(|d| decision_row(d, n))
                .collect(),
        ),
        (
            "instances",
            r.instances
                .iter()
                .map(|i| {
                    format!(
                        "{:?}",
                        InstanceRow {
                            updated_at: us(i.updated_at),
                            ..i.clone()
                        }
                    )
                })
                .collect(),
        ),
        (
            "baselines",
            r.baselines
                .iter()
                .map(|b| format!("{} {} {}", b.instance_id, b.plan, us(b.since)))
                .collect(),
        ),
        (
            "last_by_direction",
            r.last_by_direction
                .iter()
                .map(|(i, d, at)| format!("{i} {d:?} {}", us(*at)))
                .collect(),
        ),
        (
            "last_disk",
            r.last_disk
                .iter()
                .map(|(i, at, size)| format!("{i} {} {size:?}", us(*at)))
                .collect(),
        ),
        ("ups", changes(&r.ups)),
        (
            "last_alarms",
            r.last_alarms
                .iter()
                .map(|(i, at)| format!("{i} {}", us(*at)))
                .collect(),
        ),
        (
            "capacities",
            r.capacities
                .iter()
                .map(|c| {
                    format!(
                        "{:?}",
                        CapacityRow {
                            seen_at: us(c.seen_at),
                            ..c.clone()
                        }
                    )
                })
                .collect(),
        ),
        (
            "last_looks",
            r.last_looks
                .iter()
                .map(|l| {
                    format!(
                        "{:?}",
                        LookRow {
                            at: us(l.at),
                            ..l.clone()
                        }
                    )
                })
                .collect(),
        ),
        (
            "change_starts",
            r.change_starts
                .iter()
                .map(|(i, at)| format!("{i} {}", us(*at)))
                .collect(),
        ),
        (
            "schedule_runs",
            r.schedule_runs
                .iter()
                .map(|s| format!("{} {} {}", s.schedule, s.instance_id, us(s.opened_at)))
                .collect(),
        ),
        (
            "pauses",
            r.pauses
                .iter()
                .map(|p| {
                    format!(
                        "{:?}",
                        PauseRow {
                            created_at: us(p.created_at),
                            until: us(p.until),
                            ..p.clone()
                        }
                    )
                })
                .collect(),
        ),
        (
            "pending_deliveries",
            r.pending_deliveries
                .iter()
                .map(|d| {
                    format!(
                        "{} {} {:?} {} {} {}",
                        d.event_id,
                        d.sink,
                        d.instance_id,
                        us(d.at),
                        d.body,
                        d.attempts
                    )
                })
                .collect(),
        ),
        ("dropped_deliveries", vec![r.dropped_deliveries.to_string()]),
        (
            "notices",
            r.notices
                .iter()
                .map(|x| format!("{} {} {:?} {}", x.instance_id, x.kind, x.reason, us(x.at)))
                .collect(),
        ),
    ]
}

#[tokio::test]
async fn postgres_recovers_what_sqlite_recovers_from_the_same_history() {
    let history = history();
    let (from_sqlite, sqlite_names) = on_sqlite(&history).await;
    let db = TestDb::migrated().await;
    let pool = db.pool();
    let mut client = pool.get().await.unwrap();
    let (from_pg, pg_names) = on_postgres(&mut client, &history).await;

    let sqlite = normalised(&from_sqlite, &sqlite_names);
    let pg = normalised(&from_pg, &pg_names);
    for ((field, s), (_, p)) in sqlite.iter().zip(&pg) {
        // The history gives every field something to compare.
        assert!(!s.is_empty(), "{field}: SQLite recovered nothing");
        assert_eq!(p, s, "{field} differs (left PostgreSQL, right SQLite)");
    }

    // And what both recovered is what the history left, not only the same.
    let names =
        |rows: &[ChangeRow]| -> Vec<&str> { rows.iter().map(|c| pg_names.change(c.id)).collect() };
    // SQLite kept the nanoseconds, PostgreSQL the microseconds.
    assert_eq!(from_sqlite.open_changes[1].accepted_at, Some(t(712)));
    assert_ne!(t(712), us(t(712)));
    let pending: Vec<&str> = from_pg
        .pending_alarms
        .iter()
        .map(|a| pg_names.alarm(a.id))
        .collect();
    assert_eq!(pending, ["a9", "a10"]);
    assert_eq!(names(&from_pg.open_changes), ["c7", "c8"]);
    assert_eq!(from_pg.open_changes[1].phase, Phase::Submitted);
    assert_eq!(from_pg.open_changes[1].accepted_at, Some(us(t(712))));
    assert_eq!(names(&from_pg.last_finished), ["c1", "c6"]);
    assert_eq!(names(&from_pg.last_finished_plans), ["c1", "c6"]);
    assert_eq!(names(&from_pg.ups), ["c1"]);
    assert_eq!(
        from_pg.last_by_direction,
        [
            (7, Direction::Up, us(t(100))),
            (8, Direction::Down, us(t(650))),
            (8, Direction::Up, us(t(350)))
        ]
    );
    assert_eq!(from_pg.last_disk, [(8, us(t(520)), Some(100))]);
    let decided: Vec<(u64, &str)> = from_pg
        .last_decisions
        .iter()
        .map(|d| (d.instance_id, pg_names.alarm(d.alarm_id)))
        .collect();
    assert_eq!(decided, [(7, "a8"), (8, "a6"), (9, "a7")]);
    let pauses: Vec<&str> = from_pg.pauses.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(pauses, ["p3", "p1"]);
    assert_eq!(from_pg.dropped_deliveries, 1);
    assert_eq!(from_pg.pending_deliveries.len(), 2);
    assert_eq!(from_pg.pending_deliveries[1].attempts, 1);
}

#[tokio::test]
async fn an_empty_database_recovers_nothing() {
    let db = TestDb::migrated().await;
    let mut client = db.client().await;
    let r = recover(&mut client).await.unwrap();
    assert!(r.pending_alarms.is_empty() && r.open_changes.is_empty() && r.instances.is_empty());
    assert!(r.pauses.is_empty() && r.pending_deliveries.is_empty() && r.notices.is_empty());
    assert_eq!(r.dropped_deliveries, 0);
}
