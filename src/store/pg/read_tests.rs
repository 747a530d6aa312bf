//! The history reads against the real PostgreSQL, in parity with the SQLite `Reader`: one
//! history applied to both backends (SQLite through the public [`Store`] API, PostgreSQL
//! through [`record_alarms`], the lease functions and plain INSERTs, as `recover_tests`
//! does), then both backends' answers to the same queries compared, ids replaced by the
//! history's names for them and timestamps cut to the microsecond.

use std::collections::HashMap;
use std::time::Duration;

use jiff::Timestamp;

use super::accept::{AcceptItem, record_alarms};
use super::lease::{Held, finish, mark_submitted, open_change};
use super::read::{first_alarm_since, history, plan_timeline};
use super::rows::{db_instance_id, db_time};
use super::testdb::TestDb;
use crate::decide::{ChangeKind, Direction};
use crate::store::read::{
    EventKind, HistoryEvent, HistoryQuery, MAX_HISTORY_LIMIT, MAX_TIMELINE_ALARMS, PlanTimeline,
    Reader,
};
use crate::store::{
    AlarmId, ChangeFinish, ChangeId, DecisionKind, InstanceRow, NewAlarm, NewChange, NewDecision,
    NewLook, NewScheduleRun, Phase, Store,
};

const LEASE: Duration = Duration::from_secs(600);

/// One step of the history. Alarms and changes are named (`a1`, `c1`); a step refers to
/// an earlier one by its name, and each backend keeps its own ids for them.
enum Op {
    Instance(InstanceRow),
    Alarm(&'static str, NewAlarm, Option<NewDecision>),
    /// The decision on a named alarm, and the change it starts (its `alarm_id` is filled
    /// in with the alarm's).
    Decide(&'static str, NewDecision, Option<(&'static str, NewChange)>),
    Submit(&'static str, Timestamp),
    Finish(&'static str, ChangeFinish),
    Look(NewLook, Option<(&'static str, NewChange)>),
    ScheduleRun(NewScheduleRun, Option<(&'static str, NewChange)>),
}

/// Seconds after a fixed moment, with a nanosecond part SQLite keeps and PostgreSQL cuts.
fn t(seconds: i64) -> Timestamp {
    Timestamp::from_nanosecond(i128::from(1_796_000_000 + seconds) * 1_000_000_000 + 123_456_789)
        .unwrap()
}

/// A timestamp cut to the microsecond (PostgreSQL's precision).
fn us(at: Timestamp) -> Timestamp {
    Timestamp::from_microsecond(at.as_microsecond()).unwrap()
}

fn alarm(at: i64, instance: Option<&str>, resolved: bool) -> NewAlarm {
    NewAlarm {
        received_at: t(at),
        remote_addr: Some("10.0.0.1".into()),
        body: format!("{{\"instance\":{instance:?},\"at\":{at}}}"),
        kind: if at % 2 == 0 { "memory" } else { "cpu" }.into(),
        value: (at % 3 != 0).then_some(91.5),
        instance: instance.map(str::to_owned),
        resolved,
        message: Some("memory high".into()),
        triggered_at: None,
    }
}

fn decision(
    at: i64,
    instance: Option<u64>,
    kind: DecisionKind,
    reason: Option<&str>,
) -> NewDecision {
    NewDecision {
        at: t(at),
        instance_id: instance,
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
        detail: (phase != Phase::Completed).then(|| format!("{} at {at}", phase.as_str())),
        needs_attention: phase == Phase::Failed,
    }
}

fn look(instance_id: u64, at: i64, kind: DecisionKind, reason: Option<&str>) -> NewLook {
    NewLook {
        instance_id,
        at: t(at),
        plan: "hare-1".into(),
        to_plan: Some("bunny-1".into()),
        passed: kind != DecisionKind::Skip,
        reason: reason.map(str::to_owned),
        detail: format!("looked at {at}"),
        projected_memory_percent: Some(42.5),
        kind,
    }
}

fn run(instance_id: u64, at: i64, kind: DecisionKind, reason: Option<&str>) -> NewScheduleRun {
    NewScheduleRun {
        schedule: "nightly".into(),
        instance_id,
        opened_at: t(at - 1),
        at: t(at),
        plan: "bunny-1".into(),
        to_plan: "hare-1".into(),
        kind,
        reason: reason.map(str::to_owned),
        detail: format!("nightly at {at}"),
    }
}

/// Every kind of event `history` shows, and what it leaves out: alarms decided on arrival
/// and later, undecided (naming an instance by id, by UUID, or none), resolved; decisions
/// of alarms (with and without a rule), of looks (steps down and guardrails; a skip for a
/// cooldown is left out) and of schedules; changes of plans and disks, dry runs, failed,
/// in flight; ties at one instant; and an alarm received out of id order (the `since`
/// floor's binary search).
fn history_ops() -> Vec<Op> {
    use ChangeKind::{Disk, Plan};
    use DecisionKind::{Change, Skip, WouldChange};
    use Direction::{Down, Up};
    let instance = |id: u64, name: Option<&str>, plan: &str| {
        Op::Instance(InstanceRow {
            id,
            name: name.map(str::to_owned),
            providerid: Some(format!("00000000-0000-0000-0000-00000000000{id}")),
            plan: Some(plan.into()),
            updated_at: t(id as i64),
        })
    };
    let no_rule = NewDecision {
        rule: None,
        ..decision(301, Some(8), Skip, Some("no_rule"))
    };
    vec![
        instance(7, Some("rabbit-7"), "bunny-1"),
        instance(8, Some("rabbit-8"), "hare-1"),
        instance(9, None, "bunny-1"),
        // 7: up, completed; the change at its decision's instant.
        Op::Alarm("a1", alarm(10, Some("7"), false), None),
        Op::Decide(
            "a1",
            decision(11, Some(7), Change, None),
            Some(("c1", change(7, 11, Up, Plan, "bunny-1", "hare-1", false))),
        ),
        Op::Submit("c1", t(12)),
        Op::Finish("c1", finished(Phase::Completed, 100)),
        // 7: decided on arrival, a skip at the alarm's instant.
        Op::Alarm(
            "a2",
            alarm(200, Some("7"), false),
            Some(decision(200, Some(7), Skip, Some("cooldown"))),
        ),
        // 8: a skip with no rule in play (no direction).
        Op::Alarm("a3", alarm(300, Some("8"), false), None),
        Op::Decide("a3", no_rule, None),
        // 8: a disk change, failed.
        Op::Alarm("a4", alarm(400, Some("8"), false), None),
        Op::Decide(
            "a4",
            decision(401, Some(8), Change, None),
            Some(("c4", change(8, 401, Up, Disk, "0", "100", false))),
        ),
        Op::Submit("c4", t(402)),
        Op::Finish("c4", finished(Phase::Failed, 450)),
        // 8: a dry run's plan change.
        Op::Alarm("a5", alarm(500, Some("8"), false), None),
        Op::Decide(
            "a5",
            decision(501, Some(8), WouldChange, None),
            Some(("c5", change(8, 501, Up, Plan, "hare-1", "rabbit-1", true))),
        ),
        Op::Finish("c5", finished(Phase::Completed, 520)),
        // 7: a look steps down; a later one skips for a cooldown (left out).
        Op::Look(
            look(7, 600, Change, None),
            Some(("c6", change(7, 600, Down, Plan, "hare-1", "bunny-1", false))),
        ),
        Op::Submit("c6", t(602)),
        Op::Finish("c6", finished(Phase::Completed, 650)),
        Op::Look(look(7, 700, Skip, Some("cooldown")), None),
        // 8: looks held by guardrails (shown).
        Op::Look(look(8, 710, Skip, Some("paused")), None),
        Op::Look(look(8, 720, Skip, Some("frozen")), None),
        Op::Look(look(8, 730, Skip, Some("max_changes")), None),
        Op::Look(look(8, 740, WouldChange, None), None),
        // 9: a schedule's opening starts a change, left intended; 8: one skipped.
        Op::ScheduleRun(
            run(9, 800, Change, None),
            Some(("c7", change(9, 800, Up, Plan, "bunny-1", "hare-1", false))),
        ),
        Op::ScheduleRun(run(8, 810, Skip, Some("paused")), None),
        // Undecided: naming 9 by id, an instance by UUID, nothing.
        Op::Alarm("a6", alarm(820, Some("9"), false), None),
        Op::Alarm(
            "a7",
            alarm(830, Some("00000000-0000-0000-0000-000000000008"), false),
            None,
        ),
        Op::Alarm("a8", alarm(840, None, false), None),
        // Decided with no instance.
        Op::Alarm(
            "a9",
            alarm(850, None, false),
            Some(decision(851, None, Skip, Some("unknown_instance"))),
        ),
        // Received before the ones above, stored after them.
        Op::Alarm("a10", alarm(250, Some("7"), false), None),
        // 7: up, submitted (in flight).
        Op::Alarm("a11", alarm(900, Some("7"), false), None),
        Op::Decide(
            "a11",
            decision(901, Some(7), Change, None),
            Some(("c8", change(7, 901, Up, Plan, "bunny-1", "hare-1", false))),
        ),
        Op::Submit("c8", t(902)),
        // 8: resolved.
        Op::Alarm(
            "a12",
            alarm(910, Some("8"), true),
            Some(decision(910, Some(8), Skip, Some("resolved"))),
        ),
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

/// Applies the history to a store in `dir`, closed when done.
async fn on_sqlite(dir: &std::path::Path, ops: &[Op]) -> Names {
    let mut names = Names::default();
    let (store, _) = Store::open(dir).unwrap();
    for op in ops {
        match op {
            Op::Instance(row) => store.upsert_instance(row.clone()).await.unwrap(),
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
            Op::Look(look, change) => {
                let id = store
                    .record_look(look.clone(), change.as_ref().map(|(_, c)| c.clone()))
                    .await
                    .unwrap();
                if let Some((cname, _)) = change {
                    names.changes.insert(cname, id.unwrap());
                }
            }
            Op::ScheduleRun(run, change) => {
                let id = store
                    .record_schedule_run(run.clone(), change.as_ref().map(|(_, c)| c.clone()))
                    .await
                    .unwrap();
                if let Some((cname, _)) = change {
                    names.changes.insert(cname, id.unwrap());
                }
            }
        }
    }
    store.close().await;
    names
}

async fn on_postgres(client: &mut deadpool_postgres::Object, ops: &[Op]) -> Names {
    let mut names = Names::default();
    let mut held: HashMap<&'static str, Held> = HashMap::new();
    for op in ops {
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
            Op::Look(look, change) => {
                let tx = client.transaction().await.unwrap();
                let mut change_id = None;
                if let Some((cname, c)) = change {
                    let h = open_change(&tx, c, "replica-a", LEASE).await.unwrap();
                    change_id = Some(h.change_id);
                    names.changes.insert(cname, h.change_id);
                    held.insert(cname, h);
                }
                tx.execute(
                    "INSERT INTO looks (instance_id, at, plan, to_plan, passed, reason, \
                     detail, projected_memory_percent, decision, change_id) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
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
                        &change_id,
                    ],
                )
                .await
                .unwrap();
                tx.commit().await.unwrap();
            }
            Op::ScheduleRun(run, change) => {
                let tx = client.transaction().await.unwrap();
                let mut change_id = None;
                if let Some((cname, c)) = change {
                    let h = open_change(&tx, c, "replica-a", LEASE).await.unwrap();
                    change_id = Some(h.change_id);
                    names.changes.insert(cname, h.change_id);
                    held.insert(cname, h);
                }
                tx.execute(
                    "INSERT INTO schedule_runs (schedule, instance_id, opened_at, at, plan, \
                     to_plan, decision, reason, detail, change_id) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
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
                        &change_id,
                    ],
                )
                .await
                .unwrap();
                tx.commit().await.unwrap();
            }
        }
    }
    names
}

/// An event as comparable text: its name in the history, its texts (`history`'s
/// timeline), then every field, ids replaced by names and timestamps cut to the
/// microsecond.
fn line(event: &HistoryEvent, names: &Names) -> String {
    let mut e = event.clone();
    e.at = us(e.at);
    let name = match &mut e.what {
        EventKind::Alarm { alarm_id, .. } => std::mem::take(alarm_id),
        EventKind::Decision { alarm_id, .. } => alarm_id.as_mut().map_or(0, std::mem::take),
        EventKind::Change {
            change_id,
            finished_at,
            ..
        } => {
            *finished_at = finished_at.map(us);
            -std::mem::take(change_id)
        }
    };
    let name = match name {
        0 => "-",
        id if id < 0 => names.change(-id),
        id => names.alarm(id),
    };
    format!(
        "{name} {} | {} | {:?} | {e:?}",
        e.instance_label(),
        e.what(),
        e.why()
    )
}

fn timeline(t: &PlanTimeline) -> PlanTimeline {
    let mut t = t.clone();
    for c in &mut t.changes {
        c.at = us(c.at);
        c.finished_at = c.finished_at.map(us);
    }
    for a in &mut t.alarms {
        a.at = us(a.at);
    }
    t
}

fn query(instance: Option<u64>, since: Option<i64>, limit: usize) -> HistoryQuery {
    HistoryQuery {
        instance,
        since: since.map(t),
        limit,
    }
}

#[tokio::test]
async fn postgres_history_is_sqlite_history_for_the_same_writes() {
    let ops = history_ops();
    let dir = tempfile::tempdir().unwrap();
    let sqlite_names = on_sqlite(dir.path(), &ops).await;
    let reader = Reader::open(dir.path()).unwrap();
    let db = TestDb::migrated().await;
    let pool = db.pool();
    let mut client = pool.get().await.unwrap();
    let pg_names = on_postgres(&mut client, &ops).await;

    let all = HistoryQuery::default().limit;
    let queries = [
        HistoryQuery::default(),
        query(Some(7), None, all),
        query(Some(8), None, all),
        query(Some(9), None, all),
        query(Some(10), None, all),
        query(Some(u64::MAX), None, all),
        query(None, Some(240), all),
        query(None, Some(400), all),
        query(None, Some(605), all),
        query(None, Some(851), all),
        query(None, Some(5000), all),
        query(Some(7), Some(240), all),
        query(Some(8), Some(400), all),
        query(Some(8), Some(731), all),
        query(None, None, 0),
        query(None, None, 1),
        query(None, None, 3),
        query(None, None, 10),
        query(Some(7), None, 2),
        query(Some(8), Some(300), 4),
        query(None, Some(240), 5),
        query(None, None, MAX_HISTORY_LIMIT + 1),
    ];
    let mut lengths = Vec::new();
    for q in &queries {
        let from_sqlite: Vec<String> = reader
            .history(q)
            .unwrap()
            .iter()
            .map(|e| line(e, &sqlite_names))
            .collect();
        let from_pg: Vec<String> = history(&mut client, q)
            .await
            .unwrap()
            .iter()
            .map(|e| line(e, &pg_names))
            .collect();
        assert_eq!(
            from_pg, from_sqlite,
            "{q:?} differs (left PostgreSQL, right SQLite)"
        );
        lengths.push(from_pg.len());
    }
    // Each query selects what the history says (most something, a few nothing).
    assert_eq!(
        lengths,
        [
            33, 10, 15, 2, 0, 0, 28, 25, 17, 5, 0, 5, 13, 4, 0, 1, 3, 10, 2, 4, 5, 33
        ]
    );

    // And what both answered is what the history holds, not only the same.
    let every = history(&mut client, &HistoryQuery::default())
        .await
        .unwrap();
    let mut kinds: Vec<(&str, &str)> = every
        .iter()
        .map(|e| match &e.what {
            EventKind::Decision { source, .. } => ("decision", *source),
            what => (what.name(), ""),
        })
        .collect();
    kinds.sort_unstable();
    kinds.dedup();
    assert_eq!(
        kinds,
        [
            ("alarm", ""),
            ("change", ""),
            ("decision", "alarm"),
            ("decision", "look"),
            ("decision", "schedule")
        ]
    );
    // 12 alarms, 8 of them decided, 5 looks of 6 (the cooldown's skip left out), 2
    // schedule runs, 6 changes.
    assert_eq!(every.len(), 12 + 8 + 5 + 2 + 6);
    let texts: Vec<(String, String)> = every
        .iter()
        .map(|e| (e.instance_label(), e.what()))
        .collect();
    let has = |label: &str, what: &str| texts.iter().any(|(l, w)| l == label && w == what);
    assert!(
        has("rabbit-7 (7)", "change up bunny-1 -> hare-1: submitted"),
        "{texts:?}"
    );
    assert!(
        has("9", "change up bunny-1 -> hare-1: intended"),
        "{texts:?}"
    );
    assert!(has(
        "rabbit-8 (8)",
        "change up hare-1 -> rabbit-1: completed (dry run)"
    ));
    assert!(has("-", "alarm memory"), "{texts:?}");
    assert!(has("-", "skip (unknown_instance)"), "{texts:?}");
    assert!(has("rabbit-8 (8)", "skip (paused)"), "{texts:?}");
    assert!(
        has("rabbit-8 (8)", "alarm memory 91.5 resolved"),
        "{texts:?}"
    );
    assert!(!every.iter().any(|e| matches!(
        &e.what,
        EventKind::Decision { source: "look", reason: Some(r), .. } if r == "cooldown"
    )));
    let no_rule = every
        .iter()
        .find(|e| matches!(&e.what, EventKind::Decision { reason: Some(r), .. } if r == "no_rule"))
        .unwrap();
    assert!(matches!(
        no_rule.what,
        EventKind::Decision {
            direction: None,
            ..
        }
    ));
    // Newest first; at one instant a change before its decision before its alarm.
    assert!(every.windows(2).all(|w| w[0].at >= w[1].at));
    let at_11: Vec<&str> = every
        .iter()
        .filter(|e| us(e.at) == us(t(11)))
        .map(|e| e.what.name())
        .collect();
    assert_eq!(at_11, ["change", "decision"]);
    let limited = history(&mut client, &query(None, None, 3)).await.unwrap();
    assert_eq!(limited, every[..3]);

    // The `since` floor's binary search lands where SQLite's does, out-of-order alarm
    // included.
    let conn = rusqlite::Connection::open_with_flags(
        reader.path(),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    for seconds in [
        -1, 0, 10, 11, 200, 240, 250, 251, 300, 500, 829, 830, 850, 900, 911, 5000,
    ] {
        let since = t(seconds);
        let from_sqlite = crate::store::read::first_alarm_since(
            &conn,
            &crate::store::rows::timestamp_text(since),
        )
        .unwrap();
        let from_pg = first_alarm_since(&client, db_time(since).unwrap())
            .await
            .unwrap();
        assert_eq!(from_pg, from_sqlite, "the floor for since t({seconds})");
    }

    // The plan timelines.
    for (instance, since) in [
        (7, -1),
        (7, 11),
        (7, 12),
        (7, 605),
        (8, -1),
        (8, 460),
        (9, 0),
        (42, 0),
        (7, 5000),
    ] {
        let from_sqlite = reader.plan_timeline(instance, t(since)).unwrap();
        let from_pg = plan_timeline(&mut client, instance, t(since))
            .await
            .unwrap();
        assert_eq!(
            timeline(&from_pg),
            timeline(&from_sqlite),
            "plan timeline of {instance} since t({since}) differs (left PostgreSQL, right SQLite)"
        );
    }
    let seven = plan_timeline(&mut client, 7, t(-1)).await.unwrap();
    assert_eq!(seven.plan_at_start.as_deref(), Some("bunny-1"));
    assert_eq!(seven.changes.len(), 3);
    assert!(!seven.alarms.is_empty());
    assert!(seven.alarms.windows(2).all(|w| w[0].at <= w[1].at));

    // A row no writer makes: an undecided alarm with an instance id. SQLite orders it
    // after the decided ones by `decided_at DESC` (NULL last); so does PostgreSQL.
    let sqlite = rusqlite::Connection::open(reader.path()).unwrap();
    sqlite
        .execute(
            "INSERT INTO alarms (received_at, kind, resolved, body, instance_id) \
             VALUES (?1, 'disk', 0, '{}', 7)",
            [crate::store::rows::timestamp_text(t(960))],
        )
        .unwrap();
    let raw = client
        .query_one(
            "INSERT INTO alarms (received_at, kind, resolved, body, instance_id) \
             VALUES ($1, 'disk', false, '{}', 7) RETURNING id",
            &[&db_time(t(960)).unwrap()],
        )
        .await
        .unwrap()
        .get::<_, i64>(0);
    let mut pg_names = pg_names;
    pg_names.alarms.insert("raw", raw);
    let mut sqlite_names = sqlite_names;
    sqlite_names
        .alarms
        .insert("raw", sqlite.last_insert_rowid());
    for q in [
        query(Some(7), None, all),
        query(Some(7), None, 3),
        query(Some(7), None, 4),
        query(Some(7), Some(905), all),
        query(None, None, 2),
    ] {
        let from_sqlite: Vec<String> = reader
            .history(&q)
            .unwrap()
            .iter()
            .map(|e| line(e, &sqlite_names))
            .collect();
        let from_pg: Vec<String> = history(&mut client, &q)
            .await
            .unwrap()
            .iter()
            .map(|e| line(e, &pg_names))
            .collect();
        assert_eq!(
            from_pg, from_sqlite,
            "{q:?} differs (left PostgreSQL, right SQLite)"
        );
    }
    // Newest by its own time once read, but read last of the instance's alarms: a limit
    // leaves it out first.
    let is_raw =
        |e: &HistoryEvent| matches!(e.what, EventKind::Alarm { alarm_id, .. } if alarm_id == raw);
    let seven = history(&mut client, &query(Some(7), None, all))
        .await
        .unwrap();
    assert_eq!(seven.len(), 11);
    assert!(is_raw(&seven[0]));
    let three = history(&mut client, &query(Some(7), None, 3))
        .await
        .unwrap();
    assert!(!three.iter().any(is_raw));
}

#[tokio::test]
async fn an_empty_database_has_no_history() {
    let db = TestDb::migrated().await;
    let pool = db.pool();
    let mut client = pool.get().await.unwrap();
    for q in [
        HistoryQuery::default(),
        query(Some(7), None, 10),
        query(None, Some(0), 10),
        query(Some(7), Some(0), MAX_HISTORY_LIMIT),
    ] {
        assert_eq!(history(&mut client, &q).await.unwrap(), []);
    }
    assert_eq!(
        plan_timeline(&mut client, 7, t(0)).await.unwrap(),
        PlanTimeline::default()
    );
    assert_eq!(
        first_alarm_since(&client, db_time(t(0)).unwrap())
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn history_answers_at_most_the_limit_newest_first() {
    let db = TestDb::migrated().await;
    let pool = db.pool();
    let mut client = pool.get().await.unwrap();
    // 1200 alarms on instance 7, one a second, each decided (a skip) a second later: 2400
    // events, more than either cap.
    client
        .execute(
            "INSERT INTO alarms (received_at, kind, value, instance, resolved, body, \
             decided_at, instance_id, decision, reason, rule, detail) \
             SELECT $1::timestamptz + make_interval(secs => n), 'memory', 90, '7', false, '{}', \
                    $1::timestamptz + make_interval(secs => n + 1), 7, 'skip', 'cooldown', \
                    'memory-high', 'in cooldown' \
               FROM generate_series(1, 1200) AS n",
            &[&db_time(t(0)).unwrap()],
        )
        .await
        .unwrap();

    assert_eq!(
        history(&mut client, &query(None, None, 0)).await.unwrap(),
        []
    );
    let three = history(&mut client, &query(None, None, 3)).await.unwrap();
    let what: Vec<(&str, Timestamp)> = three.iter().map(|e| (e.what.name(), e.at)).collect();
    assert_eq!(
        what,
        [
            ("decision", us(t(1201))),
            ("decision", us(t(1200))),
            ("alarm", us(t(1200)))
        ]
    );
    let ids: Vec<i64> = three
        .iter()
        .map(|e| match e.what {
            EventKind::Alarm { alarm_id, .. } => alarm_id,
            EventKind::Decision { alarm_id, .. } => alarm_id.unwrap(),
            EventKind::Change { change_id, .. } => change_id,
        })
        .collect();
    assert_eq!(ids, [1200, 1199, 1200]);
    for q in [
        query(None, None, MAX_HISTORY_LIMIT + 500),
        query(Some(7), None, usize::MAX),
        query(None, Some(0), MAX_HISTORY_LIMIT),
    ] {
        let events = history(&mut client, &q).await.unwrap();
        assert_eq!(events.len(), MAX_HISTORY_LIMIT, "{q:?}");
        assert_eq!(events[0].at, us(t(1201)));
        assert!(events.windows(2).all(|w| w[0].at >= w[1].at));
    }
    // Since the 1101st second: 100 alarms and their 100 decisions; the 1100th alarm's
    // decision (at 1101) is below the alarms' id floor, as in SQLite, but an instance's
    // alarms are read by decision time: 101 decisions then.
    let recent = history(&mut client, &query(None, Some(1101), 500))
        .await
        .unwrap();
    assert_eq!(recent.len(), 100 + 100);
    let by_seven = history(&mut client, &query(Some(7), Some(1101), 500))
        .await
        .unwrap();
    assert_eq!(by_seven.len(), 100 + 101);

    // A plan timeline marks the newest alarms only, oldest first.
    let chart = plan_timeline(&mut client, 7, t(0)).await.unwrap();
    assert_eq!(chart.alarms.len(), MAX_TIMELINE_ALARMS);
    assert_eq!(
        chart.alarms[0].at,
        us(t(1200 - MAX_TIMELINE_ALARMS as i64 + 1))
    );
    assert_eq!(chart.alarms.last().unwrap().at, us(t(1200)));
    assert!(chart.changes.is_empty() && chart.plan_at_start.is_none());
}
