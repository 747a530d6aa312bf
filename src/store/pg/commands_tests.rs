//! The PostgreSQL commands against the real PostgreSQL: each test runs commands as the
//! writer does (in a transaction, committed on success, rolled back on a failure) and
//! asserts what the database holds afterwards.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use deadpool_postgres::Pool;
use jiff::Timestamp;

use super::commands::{PgFailure, WriterCtx, execute};
use super::testdb::{TestDb, new_change};
use crate::decide::Directions;
use crate::store::commands::{Command, Done};
use crate::store::{
    AlarmId, BaselineRow, CapacityRow, ChangeFinish, ChangeId, DecisionKind, DeliveryAttempt,
    DeliveryOutcome, InstanceRow, NewAlarm, NewChange, NewDecision, NewLook, NewNotification,
    NewScheduleRun, PauseRow, Phase, Prune,
};

fn ctx(owner: &str) -> WriterCtx {
    WriterCtx {
        owner: owner.into(),
        lease: Duration::from_secs(30),
        held: HashMap::new(),
        left: false,
    }
}

fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

/// Runs `command` in its own transaction: committed if it succeeded, rolled back if not
/// (as the writer does).
async fn run(pool: &Pool, command: Command, ctx: &mut WriterCtx) -> Result<Done, PgFailure> {
    let mut client = pool.get().await.unwrap();
    let tx = client.transaction().await.unwrap();
    let done = execute(&tx, &command, ctx).await;
    if done.is_ok() {
        tx.commit().await.unwrap();
    } else {
        tx.rollback().await.unwrap();
    }
    done
}

/// The one value `sql` selects.
async fn one<T>(pool: &Pool, sql: &str) -> T
where
    T: for<'a> tokio_postgres::types::FromSql<'a>,
{
    let client = pool.get().await.unwrap();
    client.query_one(sql, &[]).await.unwrap().get(0)
}

async fn count(pool: &Pool, sql: &str) -> i64 {
    one(pool, sql).await
}

/// The shared state's version now: what a fresh decision rests on.
async fn world(pool: &Pool) -> Option<i64> {
    Some(one(pool, "SELECT version FROM world").await)
}

fn alarm(received_at: &str) -> NewAlarm {
    NewAlarm {
        received_at: at(received_at),
        remote_addr: Some("10.0.0.1".into()),
        body: "{\"instance\":\"7\"}".into(),
        kind: "memory".into(),
        value: Some(91.5),
        instance: Some("7".into()),
        resolved: false,
        message: Some("memory high".into()),
        triggered_at: None,
    }
}

fn decision(when: &str, kind: DecisionKind) -> NewDecision {
    NewDecision {
        at: at(when),
        instance_id: Some(7),
        plan: Some("bunny-1".into()),
        kind,
        reason: (kind == DecisionKind::Skip).then(|| "cooldown".to_owned()),
        rule: Some("memory-high".into()),
        from_plan: (kind != DecisionKind::Skip).then(|| "bunny-1".to_owned()),
        to_plan: (kind != DecisionKind::Skip).then(|| "hare-1".to_owned()),
        detail: format!("decided at {when}"),
    }
}

/// A change of `instance_id` caused by `alarm_id`, resting on `world`.
fn change(instance_id: u64, alarm_id: Option<AlarmId>, world: Option<i64>) -> NewChange {
    NewChange {
        alarm_id,
        world,
        intended_at: at("2026-01-01T10:00:00Z"),
        ..new_change(instance_id)
    }
}

fn finished(phase: Phase, when: &str) -> ChangeFinish {
    ChangeFinish {
        phase,
        finished_at: at(when),
        detail: Some(format!("{} at {when}", phase.as_str())),
        needs_attention: false,
    }
}

fn note(event_id: &str, kind: &str, when: &str, sinks: &[&str]) -> NewNotification {
    NewNotification {
        event_id: event_id.into(),
        kind: kind.into(),
        instance_id: Some(7),
        reason: Some("frozen".into()),
        at: at(when),
        body: format!("{{\"id\":\"{event_id}\"}}"),
        sinks: sinks.iter().map(|s| (*s).to_owned()).collect(),
    }
}

async fn record_alarm(pool: &Pool, ctx: &mut WriterCtx, when: &str) -> AlarmId {
    run(pool, Command::RecordAlarm(alarm(when)), ctx)
        .await
        .unwrap()
        .unwrap()
}

/// An alarm of instance 7 decided with a change resting on the current world.
async fn decided_change(pool: &Pool, ctx: &mut WriterCtx, when: &str) -> ChangeId {
    let alarm_id = record_alarm(pool, ctx, when).await;
    let change = NewChange {
        intended_at: at(when),
        ..change(7, Some(alarm_id), world(pool).await)
    };
    let command =
        Command::RecordDecision(alarm_id, decision(when, DecisionKind::Change), Some(change));
    run(pool, command, ctx).await.unwrap().unwrap()
}

fn refusal(failure: Result<Done, PgFailure>) -> String {
    match failure {
        Err(PgFailure::Refused(message)) => message,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn staleness(failure: Result<Done, PgFailure>) -> String {
    match failure {
        Err(PgFailure::Stale(message)) => message,
        other => panic!("expected stale, got {other:?}"),
    }
}

#[tokio::test]
async fn an_alarm_is_claimed_by_this_replica_and_a_decided_one_holds_its_decision() {
    let db = TestDb::migrated().await;
    let pool = db.pool();
    let mut a = ctx("a");
    let undecided = record_alarm(&pool, &mut a, "2026-01-01T10:00:00Z").await;
    let command = Command::RecordDecidedAlarm(
        alarm("2026-01-01T10:00:01Z"),
        decision("2026-01-01T10:00:02Z", DecisionKind::WouldChange),
    );
    let decided = run(&pool, command, &mut a).await.unwrap().unwrap();
    assert!(decided > undecided);

    let client = pool.get().await.unwrap();
    let row = client
        .query_one(
            "SELECT owner, claimed_until > clock_timestamp() AS claimed, fence IS NOT NULL AS \
             fenced, decided_at, body, value FROM alarms WHERE id = $1",
            &[&undecided],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, Option<String>>("owner").as_deref(), Some("a"));
    assert!(row.get::<_, bool>("claimed"));
    assert!(row.get::<_, bool>("fenced"));
    assert_eq!(row.get::<_, Option<SystemTime>>("decided_at"), None);
    assert_eq!(row.get::<_, String>("body"), "{\"instance\":\"7\"}");
    assert_eq!(row.get::<_, Option<f64>>("value"), Some(91.5));

    let row = client
        .query_one(
            "SELECT owner, claimed_until, fence, decision, instance_id, to_plan, detail \
             FROM alarms WHERE id = $1",
            &[&decided],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, Option<String>>("owner"), None);
    assert_eq!(row.get::<_, Option<SystemTime>>("claimed_until"), None);
    assert_eq!(row.get::<_, Option<i64>>("fence"), None);
    assert_eq!(row.get::<_, &str>("decision"), "would_change");
    assert_eq!(row.get::<_, Option<i64>>("instance_id"), Some(7));
    assert_eq!(row.get::<_, Option<&str>>("to_plan"), Some("hare-1"));
    assert_eq!(
        row.get::<_, &str>("detail"),
        "decided at 2026-01-01T10:00:02Z"
    );
}

#[tokio::test]
async fn a_decision_opens_its_change_held_by_this_replica() {
    let db = TestDb::migrated().await;
    let pool = db.pool();
    let mut a = ctx("a");
    let alarm_id = record_alarm(&pool, &mut a, "2026-01-01T10:00:00Z").await;
    let command = Command::RecordDecision(
        alarm_id,
        decision("2026-01-01T10:00:01Z", DecisionKind::Change),
        Some(change(7, Some(alarm_id), world(&pool).await)),
    );
    let change_id = run(&pool, command, &mut a).await.unwrap().unwrap();
    assert_eq!(a.held[&change_id].owner, "a");

    let client = pool.get().await.unwrap();
    let row = client
        .query_one(
            "SELECT phase, owner, fence, alarm_id, instance_id, to_plan, cooldown_seconds \
             FROM changes WHERE id = $1",
            &[&change_id],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, &str>("phase"), "intended");
    assert_eq!(row.get::<_, &str>("owner"), "a");
    assert_eq!(row.get::<_, i64>("fence"), a.held[&change_id].fence);
    assert_eq!(row.get::<_, Option<i64>>("alarm_id"), Some(alarm_id));
    assert_eq!(row.get::<_, i64>("instance_id"), 7);
    assert_eq!(row.get::<_, &str>("to_plan"), "hare-1");
    assert_eq!(row.get::<_, f64>("cooldown_seconds"), 1800.0);
    let decided: (Option<String>, Option<SystemTime>) = client
        .query_one(
            "SELECT decision, decided_at FROM alarms WHERE id = $1",
            &[&alarm_id],
        )
        .await
        .map(|row| (row.get(0), row.get(1)))
        .unwrap();
    assert_eq!(decided.0.as_deref(), Some("change"));
    assert_eq!(
        decided.1,
        Some(SystemTime::try_from(at("2026-01-01T10:00:01Z")).unwrap())
    );

    // A skip opens nothing and answers no id.
    let other = record_alarm(&pool, &mut a, "2026-01-01T10:00:02Z").await;
    let command = Command::RecordDecision(
        other,
        decision("2026-01-01T10:00:03Z", DecisionKind::Skip),
        None,
    );
    assert_eq!(run(&pool, command, &mut a).await.unwrap(), None);
    assert_eq!(count(&pool, "SELECT count(*) FROM changes").await, 1);
}

/// After a clean leave the replica starts no change: the decision is refused whole (the
/// alarm stays undecided, for another replica), and nothing is opened.
#[tokio::test]
async fn a_replica_that_left_opens_no_change() {
    let db = TestDb::migrated().await;
    let pool = db.pool();
    let mut a = ctx("a");
    let when = "2026-01-01T10:00:00Z";
    let alarm_id = record_alarm(&pool, &mut a, when).await;
    a.left = true;
    let change = NewChange {
        intended_at: at(when),
        ..change(7, Some(alarm_id), world(&pool).await)
    };
    let command =
        Command::RecordDecision(alarm_id, decision(when, DecisionKind::Change), Some(change));
    assert!(refusal(run(&pool, command, &mut a).await).contains("stopping"));
    assert_eq!(count(&pool, "SELECT count(*) FROM changes").await, 0);
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM alarms WHERE decided_at IS NULL"
        )
        .await,
        1
    );
    assert!(a.held.is_empty());
}

#[tokio::test]
async fn a_decision_on_a_decided_or_unknown_alarm_is_refused_and_writes_nothing() {
    let db = TestDb::migrated().await;
    let pool = db.pool();
    let mut a = ctx("a");
    let alarm_id = record_alarm(&pool, &mut a, "2026-01-01T10:00:00Z").await;
    let skip = Command::RecordDecision(
        alarm_id,
        decision("2026-01-01T10:00:01Z", DecisionKind::Skip),
        None,
    );
    run(&pool, skip, &mut a).await.unwrap();

    // By another replica, with a change: refused before the change is opened.
    let mut b = ctx("b");
    let again = Command::RecordDecision(
        alarm_id,
        decision("2026-01-01T10:00:02Z", DecisionKind::Change),
        Some(change(7, Some(alarm_id), world(&pool).await)),
    );
    assert_eq!(
        refusal(run(&pool, again, &mut b).await),
        format!("alarm {alarm_id} is already decided")
    );
    assert!(b.held.is_empty());
    assert_eq!(count(&pool, "SELECT count(*) FROM changes").await, 0);
    let detail: String = one(&pool, "SELECT detail FROM alarms").await;
    assert_eq!(
        detail, "decided at 2026-01-01T10:00:01Z",
        "the first decision"
    );

    // Refused before the change is opened even in the transaction itself (committed).
    let mut client = pool.get().await.unwrap();
    let tx = client.transaction().await.unwrap();
    let again = Command::RecordDecision(
        alarm_id,
        decision("2026-01-01T10:00:02Z", DecisionKind::Change),
        Some(change(7, Some(alarm_id), world(&pool).await)),
    );
    assert!(matches!(
        execute(&tx, &again, &mut b).await,
        Err(PgFailure::Refused(_))
    ));
    tx.commit().await.unwrap();
    assert_eq!(count(&pool, "SELECT count(*) FROM changes").await, 0);

    let unknown = Command::RecordDecision(
        alarm_id + 100,
        decision("2026-01-01T10:00:02Z", DecisionKind::Skip),
        None,
    );
    assert_eq!(
        refusal(run(&pool, unknown, &mut a).await),
        format!("no alarm {} to record a decision for", alarm_id + 100)
    );
}

#[tokio::test]
async fn a_change_resting_on_a_stale_world_is_stale_and_nothing_is_kept() {
    let db = TestDb::migrated().await;
    let pool = db.pool();
    let mut a = ctx("a");
    let alarm_id = record_alarm(&pool, &mut a, "2026-01-01T10:00:00Z").await;
    // Another replica's write moved the shared state since the decision read it.
    let version = world(&pool).await.unwrap();
    run(&pool, Command::AddPause(pause("p1", None)), &mut a)
        .await
        .unwrap();
    assert!(world(&pool).await.unwrap() > version);

    let command = Command::RecordDecision(
        alarm_id,
        decision("2026-01-01T10:00:01Z", DecisionKind::Change),
        Some(change(7, Some(alarm_id), Some(version))),
    );
    let message = staleness(run(&pool, command, &mut a).await);
    assert!(message.contains("the shared state moved"), "{message}");
    assert!(a.held.is_empty());
    assert_eq!(count(&pool, "SELECT count(*) FROM changes").await, 0);
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM alarms WHERE decided_at IS NULL"
        )
        .await,
        1,
        "the writer's rollback takes the decision back"
    );

    // No version at all (a decision that never read one) is stale too.
    let command = Command::RecordDecision(
        alarm_id,
        decision("2026-01-01T10:00:01Z", DecisionKind::Change),
        Some(change(7, Some(alarm_id), None)),
    );
    staleness(run(&pool, command, &mut a).await);
    assert_eq!(count(&pool, "SELECT count(*) FROM changes").await, 0);
}

#[tokio::test]
async fn two_replicas_changing_one_instance_the_second_is_stale() {
    let db = TestDb::migrated().await;
    let pool = db.pool();
    let (mut a, mut b) = (ctx("a"), ctx("b"));
    let first = record_alarm(&pool, &mut a, "2026-01-01T10:00:00Z").await;
    let second = record_alarm(&pool, &mut b, "2026-01-01T10:00:01Z").await;
    let by_a = Command::RecordDecision(
        first,
        decision("2026-01-01T10:00:02Z", DecisionKind::Change),
        Some(change(7, Some(first), world(&pool).await)),
    );
    let held_by_a = run(&pool, by_a, &mut a).await.unwrap().unwrap();
    // b read the world after a's change: the version is fresh, the instance busy.
    let by_b = Command::RecordDecision(
        second,
        decision("2026-01-01T10:00:03Z", DecisionKind::Change),
        Some(change(7, Some(second), world(&pool).await)),
    );
    let message = staleness(run(&pool, by_b, &mut b).await);
    assert_eq!(message, "instance 7 has a change in flight already");
    assert!(b.held.is_empty());
    assert_eq!(a.held.keys().copied().collect::<Vec<_>>(), [held_by_a]);
    let owners: String = one(
        &pool,
        "SELECT string_agg(owner || ':' || alarm_id, ',') FROM changes",
    )
    .await;
    assert_eq!(owners, format!("a:{first}"));
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM alarms WHERE decided_at IS NULL"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn the_holder_submits_marks_and_finishes_its_change() {
    let db = TestDb::migrated().await;
    let pool = db.pool();
    let mut a = ctx("a");
    let id = decided_change(&pool, &mut a, "2026-01-01T10:00:00Z").await;

    run(&pool, Command::MarkUnsent(id, true), &mut a)
        .await
        .unwrap();
    assert!(one::<bool>(&pool, "SELECT unsent FROM changes").await);
    run(&pool, Command::MarkUnsent(id, false), &mut a)
        .await
        .unwrap();
    assert!(!one::<bool>(&pool, "SELECT unsent FROM changes").await);
    let accepted = at("2026-01-01T10:00:05Z");
    assert_eq!(
        run(&pool, Command::MarkSubmitted(id, accepted), &mut a)
            .await
            .unwrap(),
        None
    );
    let (phase, accepted_at): (String, Option<SystemTime>) = {
        let client = pool.get().await.unwrap();
        let row = client
            .query_one("SELECT phase, accepted_at FROM changes", &[])
            .await
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!(phase, "submitted");
    assert_eq!(accepted_at, Some(SystemTime::try_from(accepted).unwrap()));

    // The wrong transitions are refused as on SQLite; the lease stays held.
    assert_eq!(
        refusal(run(&pool, Command::MarkUnsent(id, true), &mut a).await),
        format!(
            "change {id} is submitted; it cannot be marked unsent (only an intended change is)"
        )
    );
    assert_eq!(
        refusal(run(&pool, Command::MarkSubmitted(id, accepted), &mut a).await),
        format!("change {id} is submitted; it cannot be submitted")
    );
    let not_final = Command::FinishChange(id, finished(Phase::Submitted, "2026-01-01T10:01:00Z"));
    assert!(
        refusal(run(&pool, not_final, &mut a).await)
            .starts_with(&format!("cannot finish change {id} in phase submitted"))
    );
    assert!(a.held.contains_key(&id));

    let finish = Command::FinishChange(id, finished(Phase::Completed, "2026-01-01T10:10:00Z"));
    assert_eq!(run(&pool, finish, &mut a).await.unwrap(), None);
    assert!(a.held.is_empty(), "a finished change is no longer held");
    let client = pool.get().await.unwrap();
    let row = client
        .query_one("SELECT phase, finished_at, detail, owner FROM changes", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, &str>("phase"), "completed");
    assert_eq!(
        row.get::<_, Option<SystemTime>>("finished_at"),
        Some(SystemTime::try_from(at("2026-01-01T10:10:00Z")).unwrap())
    );
    assert_eq!(
        row.get::<_, Option<&str>>("detail"),
        Some("completed at 2026-01-01T10:10:00Z")
    );
    assert_eq!(row.get::<_, &str>("owner"), "a");
}

#[tokio::test]
async fn writes_to_a_change_this_replica_does_not_hold_are_lease_lost() {
    let db = TestDb::migrated().await;
    let pool = db.pool();
    let mut a = ctx("a");
    let id = decided_change(&pool, &mut a, "2026-01-01T10:00:00Z").await;
    let mut b = ctx("b");
    let now = at("2026-01-01T10:00:05Z");
    for command in [
        Command::MarkSubmitted(id, now),
        Command::MarkUnsent(id, true),
        Command::FinishChange(id, finished(Phase::Failed, "2026-01-01T10:01:00Z")),
        Command::MarkSubmitted(id + 100, now),
    ] {
        let name = command.name();
        let result = run(&pool, command, &mut b).await;
        assert!(
            matches!(result, Err(PgFailure::LeaseLost(lost)) if lost == id || lost == id + 100),
            "{name}: {result:?}"
        );
    }
    let client = pool.get().await.unwrap();
    let row = client
        .query_one("SELECT phase, unsent, owner FROM changes", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, &str>("phase"), "intended");
    assert!(!row.get::<_, bool>("unsent"));
    assert_eq!(row.get::<_, &str>("owner"), "a");
}

#[tokio::test]
async fn a_finish_after_a_takeover_is_lease_lost_and_changes_nothing() {
    let db = TestDb::migrated().await;
    let pool = db.pool();
    let mut a = ctx("a");
    let id = decided_change(&pool, &mut a, "2026-01-01T10:00:00Z").await;
    let client = pool.get().await.unwrap();
    client
        .execute(
            "UPDATE changes SET owner = 'b', fence = nextval('fences') WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    let before: (i64, String) = client
        .query_one("SELECT fence, phase FROM changes", &[])
        .await
        .map(|row| (row.get(0), row.get(1)))
        .unwrap();

    let finish = Command::FinishChange(id, finished(Phase::Completed, "2026-01-01T10:10:00Z"));
    let result = run(&pool, finish, &mut a).await;
    assert!(
        matches!(result, Err(PgFailure::LeaseLost(lost)) if lost == id),
        "{result:?}"
    );
    assert!(a.held.is_empty(), "a lost lease is forgotten");
    let row = client
        .query_one(
            "SELECT fence, phase, owner, finished_at, detail FROM changes",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, i64>("fence"), row.get::<_, String>("phase")),
        before
    );
    assert_eq!(row.get::<_, &str>("owner"), "b");
    assert_eq!(row.get::<_, Option<SystemTime>>("finished_at"), None);
    assert_eq!(row.get::<_, Option<&str>>("detail"), None);
}

fn look(when: &str, kind: DecisionKind) -> NewLook {
    NewLook {
        instance_id: 7,
        at: at(when),
        plan: "hare-1".into(),
        to_plan: Some("bunny-1".into()),
        passed: kind != DecisionKind::Skip,
        reason: (kind == DecisionKind::Skip).then(|| "busy".to_owned()),
        detail: format!("look at {when}"),
        projected_memory_percent: Some(f64::NAN),
        kind,
    }
}

#[tokio::test]
async fn a_look_opens_its_change_and_links_it() {
    let db = TestDb::migrated().await;
    let pool = db.pool();
    let mut a = ctx("a");
    let skip = Command::RecordLook(look("2026-01-01T10:00:00Z", DecisionKind::Skip), None);
    assert_eq!(run(&pool, skip, &mut a).await.unwrap(), None);

    // Stale: neither the look nor the change is kept.
    let stale = Command::RecordLook(
        look("2026-01-01T10:01:00Z", DecisionKind::Change),
        Some(change(7, None, Some(world(&pool).await.unwrap() - 1))),
    );
    staleness(run(&pool, stale, &mut a).await);
    assert_eq!(count(&pool, "SELECT count(*) FROM looks").await, 1);

    let step = Command::RecordLook(
        look("2026-01-01T10:02:00Z", DecisionKind::Change),
        Some(change(7, None, world(&pool).await)),
    );
    let id = run(&pool, step, &mut a).await.unwrap().unwrap();
    assert!(a.held.contains_key(&id));
    let client = pool.get().await.unwrap();
    let rows: Vec<(Option<i64>, String, Option<f64>)> = client
        .query(
            "SELECT change_id, decision, projected_memory_percent FROM looks ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect();
    assert_eq!(
        rows,
        [
            (None, "skip".to_owned(), None),
            (Some(id), "change".to_owned(), None)
        ]
    );
    let alarm_id: Option<i64> = one(&pool, "SELECT alarm_id FROM changes").await;
    assert_eq!(alarm_id, None);
}

fn schedule_run(instance_id: u64, kind: DecisionKind) -> NewScheduleRun {
    NewScheduleRun {
        schedule: "weekday-morning".into(),
        instance_id,
        opened_at: at("2026-01-05T07:00:00Z"),
        at: at("2026-01-05T07:00:03Z"),
        plan: "bunny-1".into(),
        to_plan: "hare-1".into(),
        kind,
        reason: (kind == DecisionKind::Skip).then(|| "paused".to_owned()),
        detail: "schedule".into(),
    }
}

#[tokio::test]
async fn a_schedule_opening_makes_one_change_whichever_replica_records_it() {
    let db = TestDb::migrated().await;
    let pool = db.pool();
    let (mut a, mut b) = (ctx("a"), ctx("b"));
    // A skip first: it takes nothing from the opening.
    let skip = Command::RecordScheduleRun(schedule_run(7, DecisionKind::Skip), None);
    assert_eq!(run(&pool, skip, &mut b).await.unwrap(), None);

    let first = Command::RecordScheduleRun(
        schedule_run(7, DecisionKind::Change),
        Some(change(7, None, world(&pool).await)),
    );
    let id = run(&pool, first, &mut a).await.unwrap().unwrap();
    assert!(a.held.contains_key(&id));
    let linked: Option<i64> = one(
        &pool,
        "SELECT change_id FROM schedule_runs WHERE decision = 'change'",
    )
    .await;
    assert_eq!(linked, Some(id));

    // The instance is free again, the world fresh: only the opening is taken.
    let finish = Command::FinishChange(id, finished(Phase::Completed, "2026-01-05T07:10:00Z"));
    run(&pool, finish, &mut a).await.unwrap();
    let second = Command::RecordScheduleRun(
        schedule_run(7, DecisionKind::Change),
        Some(change(7, None, world(&pool).await)),
    );
    let message = staleness(run(&pool, second, &mut b).await);
    assert_eq!(
        message,
        "schedule \"weekday-morning\" opening 2026-01-05T07:00:00Z on instance 7 made a \
         change already"
    );
    assert!(b.held.is_empty());
    // Without a change, too; a skip for it still goes in; so does another instance's run.
    let dry = Command::RecordScheduleRun(schedule_run(7, DecisionKind::WouldChange), None);
    staleness(run(&pool, dry, &mut b).await);
    let skip = Command::RecordScheduleRun(schedule_run(7, DecisionKind::Skip), None);
    run(&pool, skip, &mut b).await.unwrap();
    let other = Command::RecordScheduleRun(
        schedule_run(8, DecisionKind::Change),
        Some(change(8, None, world(&pool).await)),
    );
    let other = run(&pool, other, &mut b).await.unwrap().unwrap();

    assert_eq!(count(&pool, "SELECT count(*) FROM changes").await, 2);
    let runs: String = one(
        &pool,
        "SELECT string_agg(instance_id || ':' || decision || ':' || \
         coalesce(change_id::text, '-'), ',' ORDER BY id) FROM schedule_runs",
    )
    .await;
    assert_eq!(
        runs,
        format!("7:skip:-,7:change:{id},7:skip:-,8:change:{other}")
    );
}

#[tokio::test]
async fn instances_baselines_and_capacities_are_upserted() {
    let db = TestDb::migrated().await;
    let pool = db.pool();
    let mut a = ctx("a");
    let instance = |name: Option<&str>, plan: Option<&str>, when: &str| {
        Command::UpsertInstance(InstanceRow {
            id: 7,
            name: name.map(str::to_owned),
            providerid: name.map(|_| "uuid-7".to_owned()),
            plan: plan.map(str::to_owned),
            updated_at: at(when),
        })
    };
    run(
        &pool,
        instance(Some("orders"), Some("bunny-1"), "2026-01-01T10:00:00Z"),
        &mut a,
    )
    .await
    .unwrap();
    // Knowing only the plan keeps the name.
    run(
        &pool,
        instance(None, Some("hare-1"), "2026-01-01T11:00:00Z"),
        &mut a,
    )
    .await
    .unwrap();
    let baseline = |plan: &str, id: u64| {
        Command::SetBaseline(BaselineRow {
            instance_id: id,
            plan: plan.into(),
            since: at("2026-01-01T12:00:00Z"),
        })
    };
    run(&pool, baseline("bunny-1", 7), &mut a).await.unwrap();
    // An instance with no row gets one.
    run(&pool, baseline("lemur", 8), &mut a).await.unwrap();
    let rows: String = one(
        &pool,
        "SELECT string_agg(concat_ws(':', id, name, providerid, plan, baseline, \
         to_char(updated_at AT TIME ZONE 'UTC', 'HH24:MI'), \
         to_char(baseline_since AT TIME ZONE 'UTC', 'HH24:MI')), ',' ORDER BY id) \
         FROM instances",
    )
    .await;
    assert_eq!(
        rows,
        "7:orders:uuid-7:hare-1:bunny-1:11:00:12:00,8:lemur:12:00:12:00"
    );

    let capacity = |mem_limit: u64, when: &str| {
        Command::RecordCapacity(CapacityRow {
            instance_id: 7,
            plan: "bunny-1".into(),
            mem_limit,
            nodes: 3,
            seen_at: at(when),
        })
    };
    run(&pool, capacity(1 << 30, "2026-01-01T10:00:00Z"), &mut a)
        .await
        .unwrap();
    run(&pool, capacity(2 << 30, "2026-01-01T11:00:00Z"), &mut a)
        .await
        .unwrap();
    let stored: String = one(
        &pool,
        "SELECT string_agg(concat_ws(':', plan, mem_limit, nodes), ',') FROM capacities",
    )
    .await;
    assert_eq!(stored, format!("bunny-1:{}:3", 2u64 << 30));
    let too_large = refusal(run(&pool, capacity(u64::MAX, "2026-01-01T12:00:00Z"), &mut a).await);
    assert_eq!(too_large, format!("memory limit {} is too large", u64::MAX));
}

fn pause(id: &str, until: Option<&str>) -> PauseRow {
    PauseRow {
        id: id.into(),
        created_at: at("2026-01-01T10:00:00Z"),
        until: at(until.unwrap_or("2026-01-01T12:00:00Z")),
        directions: Directions::BOTH,
        instances: vec!["7".into(), "orders-*".into()],
        reason: Some("maintenance".into()),
    }
}

#[tokio::test]
async fn pauses_are_added_and_ended_with_a_count() {
    let db = TestDb::migrated().await;
    let pool = db.pool();
    let mut a = ctx("a");
    for id in ["p1", "p2", "p3"] {
        run(&pool, Command::AddPause(pause(id, None)), &mut a)
            .await
            .unwrap();
    }
    let instances: String = one(&pool, "SELECT instances::text FROM pauses WHERE id = 'p1'").await;
    assert_eq!(instances, "[\"7\", \"orders-*\"]");
    // The same id twice: a constraint, refused.
    refusal(run(&pool, Command::AddPause(pause("p1", None)), &mut a).await);

    let end =
        |id: Option<&str>| Command::EndPauses(id.map(str::to_owned), at("2026-01-01T11:00:00Z"));
    assert_eq!(run(&pool, end(Some("p2")), &mut a).await.unwrap(), Some(1));
    assert_eq!(run(&pool, end(Some("p2")), &mut a).await.unwrap(), Some(0));
    assert_eq!(
        run(&pool, end(Some("nope")), &mut a).await.unwrap(),
        Some(0)
    );
    assert_eq!(run(&pool, end(None), &mut a).await.unwrap(), Some(2));
    assert_eq!(run(&pool, end(None), &mut a).await.unwrap(), Some(0));
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM pauses WHERE ended_at = '2026-01-01T11:00:00Z'"
        )
        .await,
        3
    );
}

#[tokio::test]
async fn notes_are_written_with_their_command_or_not_at_all() {
    let db = TestDb::migrated().await;
    let pool = db.pool();
    let mut a = ctx("a");
    let notes = vec![
        note(
            "e1",
            "change.blocked",
            "2026-01-01T10:00:00Z",
            &["webhook", "slack"],
        ),
        note("e2", "ladder.top", "2026-01-01T10:00:00Z", &["slack"]),
    ];
    // A refused write takes its notes with it.
    let refused = Command::Notifying(
        Box::new(Command::RecordDecision(
            999,
            decision("2026-01-01T10:00:00Z", DecisionKind::Skip),
            None,
        )),
        notes.clone(),
    );
    refusal(run(&pool, refused, &mut a).await);
    assert_eq!(count(&pool, "SELECT count(*) FROM notifications").await, 0);

    let with_alarm = Command::Notifying(
        Box::new(Command::RecordAlarm(alarm("2026-01-01T10:00:00Z"))),
        notes,
    );
    let alarm_id = run(&pool, with_alarm, &mut a).await.unwrap();
    assert!(alarm_id.is_some(), "the inner command's answer");
    let deliveries: String = one(
        &pool,
        "SELECT string_agg(n.event_id || ':' || d.sink || ':' || d.state || ':' || d.attempts, \
         ',' ORDER BY n.id, d.sink) FROM deliveries AS d \
         JOIN notifications AS n ON n.id = d.notification_id",
    )
    .await;
    assert_eq!(
        deliveries,
        "e1:slack:pending:0,e1:webhook:pending:0,e2:slack:pending:0"
    );
    let body: String = one(
        &pool,
        "SELECT body::text FROM notifications WHERE event_id = 'e1'",
    )
    .await;
    assert_eq!(body, "{\"id\":\"e1\"}");

    // To no sink, or a body that is not JSON: refused, nothing kept.
    let nowhere = Command::Notify(vec![
        note("e3", "change.started", "2026-01-01T10:00:00Z", &["webhook"]),
        note("e4", "change.started", "2026-01-01T10:00:00Z", &[]),
    ]);
    assert_eq!(
        refusal(run(&pool, nowhere, &mut a).await),
        "event e4 goes to no sink"
    );
    let not_json = Command::Notify(vec![NewNotification {
        body: "not json".into(),
        ..note("e5", "change.started", "2026-01-01T10:00:00Z", &["webhook"])
    }]);
    refusal(run(&pool, not_json, &mut a).await);
    // The same event twice: refused.
    let twice = Command::Notify(vec![note(
        "e1",
        "change.started",
        "2026-01-01T10:00:00Z",
        &["webhook"],
    )]);
    refusal(run(&pool, twice, &mut a).await);
    assert_eq!(count(&pool, "SELECT count(*) FROM notifications").await, 2);
    let plain = Command::Notify(vec![note(
        "e6",
        "rules.reload_failed",
        "2026-01-01T10:00:00Z",
        &["webhook"],
    )]);
    assert_eq!(run(&pool, plain, &mut a).await.unwrap(), None);
    assert_eq!(count(&pool, "SELECT count(*) FROM deliveries").await, 4);
}

#[tokio::test]
async fn delivery_attempts_are_recorded_on_pending_deliveries_only() {
    let db = TestDb::migrated().await;
    let pool = db.pool();
    let mut a = ctx("a");
    let notes = vec![
        note(
            "e1",
            "change.blocked",
            "2026-01-01T10:00:00Z",
            &["webhook", "slack"],
        ),
        note("e2", "change.blocked", "2026-01-01T10:00:00Z", &["slack"]),
    ];
    run(&pool, Command::Notify(notes), &mut a).await.unwrap();
    let attempt = |id: &str, sink: &str, outcome| {
        Command::RecordDelivery(DeliveryAttempt {
            event_id: id.into(),
            sink: sink.into(),
            at: at("2026-01-01T10:00:01Z"),
            outcome,
        })
    };
    for command in [
        attempt("e1", "webhook", DeliveryOutcome::Sent),
        attempt("e1", "slack", DeliveryOutcome::Failed("503".into())),
        attempt("e2", "slack", DeliveryOutcome::Dropped("400".into())),
        // Sent is final: a late attempt changes nothing.
        attempt("e1", "webhook", DeliveryOutcome::Failed("x".into())),
    ] {
        assert_eq!(run(&pool, command, &mut a).await.unwrap(), None);
    }
    assert_eq!(
        refusal(
            run(
                &pool,
                attempt("zzz", "webhook", DeliveryOutcome::Sent),
                &mut a
            )
            .await
        ),
        "no delivery of event zzz to webhook"
    );
    let rows: String = one(
        &pool,
        "SELECT string_agg(concat_ws(':', n.event_id, d.sink, d.state, d.attempts, \
         coalesce(d.last_error, '-'), d.finished_at IS NOT NULL, d.last_attempt_at IS NOT NULL), \
         ',' ORDER BY n.id, d.sink) FROM deliveries AS d \
         JOIN notifications AS n ON n.id = d.notification_id",
    )
    .await;
    assert_eq!(
        rows,
        "e1:slack:pending:1:503:f:t,e1:webhook:sent:1:-:t:t,e2:slack:dropped:1:400:t:t"
    );
}

/// Runs retention as `Store::prune` does: batches until one finds less than a batch.
async fn prune_all(pool: &Pool, ctx: &mut WriterCtx, prune: Prune) -> (u64, u64) {
    let (mut rows, mut batches) = (0, 0);
    loop {
        let deleted = run(pool, Command::Prune(prune), ctx)
            .await
            .unwrap()
            .unwrap()
            .unsigned_abs();
        rows += deleted;
        batches += 1;
        if deleted < u64::from(prune.batch) {
            return (rows, batches);
        }
    }
}

/// An alarm at `when` that made a change up, finished a minute later.
async fn change_up(pool: &Pool, ctx: &mut WriterCtx, when: &str, phase: Phase) -> ChangeId {
    let id = decided_change(pool, ctx, when).await;
    let finish = ChangeFinish {
        phase,
        finished_at: crate::clock::add(at(when), Duration::from_secs(60)),
        detail: None,
        needs_attention: false,
    };
    run(pool, Command::FinishChange(id, finish), ctx)
        .await
        .unwrap();
    id
}

#[tokio::test]
async fn prune_deletes_old_rows_in_batches_and_keeps_open_changes_and_what_rules_count() {
    let db = TestDb::migrated().await;
    let pool = db.pool();
    let mut a = ctx("a");
    // 30 old decided alarms (skips), one old undecided alarm.
    for minute in 0..30 {
        let when = format!("2026-01-01T10:{minute:02}:00Z");
        let id = record_alarm(&pool, &mut a, &when).await;
        let skip = Command::RecordDecision(id, decision(&when, DecisionKind::Skip), None);
        run(&pool, skip, &mut a).await.unwrap();
    }
    record_alarm(&pool, &mut a, "2026-01-01T11:00:00Z").await;
    // Three old changes up (the last of them is the last up: it stays, with its alarm),
    // an old change still open (it stays, with its alarm), and a recent alarm.
    change_up(&pool, &mut a, "2026-01-02T10:00:00Z", Phase::Failed).await;
    change_up(&pool, &mut a, "2026-01-03T10:00:00Z", Phase::Failed).await;
    let last_up = change_up(&pool, &mut a, "2026-01-04T10:00:00Z", Phase::Failed).await;
    let open = decided_change(&pool, &mut a, "2026-01-05T10:00:00Z").await;
    record_alarm(&pool, &mut a, "2026-12-01T10:00:00Z").await;

    // The window reaches back before every change: the changes and their alarms stay.
    let keep_changes = Prune {
        before: at("2026-06-01T00:00:00Z"),
        keep_changes_since: at("2026-01-01T00:00:00Z"),
        batch: 100,
    };
    assert_eq!(prune_all(&pool, &mut a, keep_changes).await, (30, 1));
    assert_eq!(count(&pool, "SELECT count(*) FROM changes").await, 4);

    let prune = Prune {
        keep_changes_since: at("2026-06-01T00:00:00Z"),
        batch: 1,
        ..keep_changes
    };
    // 2 changes and their 2 alarms, one at a time.
    assert_eq!(prune_all(&pool, &mut a, prune).await, (4, 5));
    let changes: String = one(
        &pool,
        "SELECT string_agg(id || ':' || phase, ',' ORDER BY id) FROM changes",
    )
    .await;
    assert_eq!(changes, format!("{last_up}:failed,{open}:intended"));
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM alarms WHERE decided_at IS NULL"
        )
        .await,
        2
    );
    assert_eq!(count(&pool, "SELECT count(*) FROM alarms").await, 4);
    assert_eq!(prune_all(&pool, &mut a, prune).await, (0, 1));
}

#[tokio::test]
async fn prune_keeps_pending_notifications_each_latest_notice_and_ended_pauses_go() {
    let db = TestDb::migrated().await;
    let pool = db.pool();
    let mut a = ctx("a");
    let notes = vec![
        note("a", "change.blocked", "2026-01-01T10:00:00Z", &["webhook"]),
        note("b", "change.started", "2026-01-01T10:01:00Z", &["webhook"]),
        note("c", "change.blocked", "2026-01-01T10:02:00Z", &["webhook"]),
        note(
            "d",
            "change.completed",
            "2026-01-01T10:03:00Z",
            &["webhook"],
        ),
    ];
    run(&pool, Command::Notify(notes), &mut a).await.unwrap();
    for id in ["a", "b", "c"] {
        let attempt = DeliveryAttempt {
            event_id: id.into(),
            sink: "webhook".into(),
            at: at("2026-01-01T11:00:00Z"),
            outcome: DeliveryOutcome::Sent,
        };
        run(&pool, Command::RecordDelivery(attempt), &mut a)
            .await
            .unwrap();
    }
    // Looks: each instance's latest stays. Pauses: an ended one goes, a running one stays.
    for minute in ["10:00", "10:01"] {
        let old = look(&format!("2026-01-01T{minute}:00Z"), DecisionKind::Skip);
        run(&pool, Command::RecordLook(old, None), &mut a)
            .await
            .unwrap();
    }
    run(
        &pool,
        Command::AddPause(pause("old", Some("2026-01-01T12:00:00Z"))),
        &mut a,
    )
    .await
    .unwrap();
    run(
        &pool,
        Command::AddPause(pause("running", Some("2026-12-01T12:00:00Z"))),
        &mut a,
    )
    .await
    .unwrap();
    let prune = Prune {
        before: at("2026-06-01T00:00:00Z"),
        keep_changes_since: at("2026-06-01T00:00:00Z"),
        batch: 100,
    };
    // a and b and their deliveries, c's delivery (sent: c stays as the latest blocked), a
    // look, a pause.
    assert_eq!(prune_all(&pool, &mut a, prune).await, (7, 1));
    let kept: String = one(
        &pool,
        "SELECT string_agg(event_id, ',' ORDER BY id) FROM notifications",
    )
    .await;
    assert_eq!(kept, "c,d");
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM deliveries WHERE state = 'pending'"
        )
        .await,
        1
    );
    assert_eq!(count(&pool, "SELECT count(*) FROM looks").await, 1);
    let pauses: String = one(&pool, "SELECT string_agg(id, ',') FROM pauses").await;
    assert_eq!(pauses, "running");
}

/// Seconds after a fixed moment (whole seconds: both backends keep them exactly).
fn t(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_796_000_000 + seconds).unwrap()
}

/// A history of every command but the refused ones, for both backends. Ids are the
/// order of creation on both (1, 2, ...: nothing in it fails or rolls back).
fn parity_history() -> Vec<Command> {
    use crate::decide::Direction;
    let instance = |id: u64, name: &str, plan: &str| {
        Command::UpsertInstance(InstanceRow {
            id,
            name: Some(name.into()),
            providerid: None,
            plan: Some(plan.into()),
            updated_at: t(0),
        })
    };
    let alarm_at = |s: i64, instance: &str| NewAlarm {
        received_at: t(s),
        body: format!("{{\"instance\":\"{instance}\",\"at\":{s}}}"),
        instance: Some(instance.into()),
        ..alarm("2026-01-01T10:00:00Z")
    };
    let decide = |s: i64, instance: u64, kind| NewDecision {
        at: t(s),
        instance_id: Some(instance),
        ..decision("2026-01-01T10:00:00Z", kind)
    };
    let change_at = |s: i64, instance: u64, alarm_id: Option<AlarmId>, direction| NewChange {
        intended_at: t(s),
        direction,
        ..change(instance, alarm_id, None)
    };
    let finish = |phase: Phase, s: i64| ChangeFinish {
        phase,
        finished_at: t(s),
        detail: Some(format!("{} at {s}", phase.as_str())),
        needs_attention: phase == Phase::Failed,
    };
    let note_at = |id: &str, kind: &str, instance: u64, s: i64, sinks: &[&str]| NewNotification {
        instance_id: Some(instance),
        at: t(s),
        ..note(id, kind, "2026-01-01T10:00:00Z", sinks)
    };
    let attempt = |id: &str, sink: &str, s: i64, outcome| DeliveryAttempt {
        event_id: id.into(),
        sink: sink.into(),
        at: t(s),
        outcome,
    };
    let look_at = |s: i64, instance: u64, kind| NewLook {
        instance_id: instance,
        at: t(s),
        projected_memory_percent: Some(40.0),
        ..look("2026-01-01T10:00:00Z", kind)
    };
    let pause_at = |id: &str, until: i64| PauseRow {
        created_at: t(10),
        until: t(until),
        ..pause(id, None)
    };
    vec![
        instance(7, "orders", "bunny-1"),
        instance(8, "billing", "hare-1"),
        Command::SetBaseline(BaselineRow {
            instance_id: 7,
            plan: "bunny-1".into(),
            since: t(5),
        }),
        Command::RecordCapacity(CapacityRow {
            instance_id: 7,
            plan: "bunny-1".into(),
            mem_limit: 1 << 30,
            nodes: 1,
            seen_at: t(6),
        }),
        // Alarm 1 changes instance 7 up: change 1, completed.
        Command::RecordAlarm(alarm_at(100, "7")),
        Command::RecordDecision(
            1,
            decide(101, 7, DecisionKind::Change),
            Some(change_at(101, 7, Some(1), Direction::Up)),
        ),
        Command::MarkUnsent(1, false),
        Command::MarkSubmitted(1, t(102)),
        Command::FinishChange(1, finish(Phase::Completed, 160)),
        // Alarm 2 decided on arrival, alarm 3 left undecided.
        Command::RecordDecidedAlarm(alarm_at(200, "7"), decide(200, 7, DecisionKind::Skip)),
        Command::RecordAlarm(alarm_at(210, "8")),
        // A look steps instance 8 down: change 2, failed; a look of 7 passes nothing.
        Command::RecordLook(
            look_at(300, 8, DecisionKind::Change),
            Some(change_at(300, 8, None, Direction::Down)),
        ),
        Command::FinishChange(2, finish(Phase::Failed, 360)),
        Command::RecordLook(look_at(310, 7, DecisionKind::Skip), None),
        // A schedule's opening changes instance 7: change 3, still open (submitted).
        Command::RecordScheduleRun(
            NewScheduleRun {
                opened_at: t(400),
                at: t(401),
                ..schedule_run(7, DecisionKind::Change)
            },
            Some(change_at(401, 7, None, Direction::Up)),
        ),
        Command::MarkSubmitted(3, t(402)),
        Command::AddPause(pause_at("p1", 9_000)),
        Command::AddPause(pause_at("p2", 8_000)),
        Command::EndPauses(Some("p1".into()), t(500)),
        Command::Notify(vec![note_at(
            "e1",
            "change.blocked",
            7,
            510,
            &["webhook", "slack"],
        )]),
        Command::RecordDelivery(attempt("e1", "webhook", 511, DeliveryOutcome::Sent)),
        Command::RecordDelivery(attempt(
            "e1",
            "slack",
            512,
            DeliveryOutcome::Failed("503".into()),
        )),
        // Alarm 4 decided with a note.
        Command::RecordAlarm(alarm_at(600, "8")),
        Command::Notifying(
            Box::new(Command::RecordDecision(
                4,
                decide(601, 8, DecisionKind::Skip),
                None,
            )),
            vec![note_at("e2", "ladder.top", 8, 601, &["webhook"])],
        ),
        Command::Notify(vec![note_at("e3", "change.started", 8, 602, &["webhook"])]),
        Command::RecordDelivery(attempt(
            "e3",
            "webhook",
            603,
            DeliveryOutcome::Dropped("400".into()),
        )),
        // Retention up to 250: the skip of alarm 2 goes, what the rules count stays.
        Command::Prune(Prune {
            before: t(250),
            keep_changes_since: t(250),
            batch: 100,
        }),
    ]
}

/// On PostgreSQL, a change rests on the world as it is (SQLite ignores the version).
fn rest_on(command: &mut Command, version: Option<i64>) {
    match command {
        Command::RecordDecision(_, _, Some(change))
        | Command::RecordLook(_, Some(change))
        | Command::RecordScheduleRun(_, Some(change)) => change.world = version,
        Command::Notifying(inner, _) => rest_on(inner, version),
        _ => {}
    }
}

#[tokio::test]
async fn the_same_commands_leave_what_sqlite_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let mut sqlite_done = Vec::new();
    {
        let (store, _) = crate::store::Store::open(dir.path()).unwrap();
        for command in parity_history() {
            let name = command.name();
            sqlite_done.push(
                store
                    .submit(command)
                    .await
                    .unwrap_or_else(|err| panic!("{name} on SQLite: {err}")),
            );
        }
        store.close().await;
    }
    let (store, from_sqlite) = crate::store::Store::open(dir.path()).unwrap();
    store.close().await;

    let db = TestDb::migrated().await;
    let pool = db.pool();
    let mut a = ctx("a");
    let mut pg_done = Vec::new();
    for mut command in parity_history() {
        rest_on(&mut command, world(&pool).await);
        let name = command.name();
        pg_done.push(
            run(&pool, command, &mut a)
                .await
                .unwrap_or_else(|err| panic!("{name} on PostgreSQL: {err:?}")),
        );
    }
    let mut client = pool.get().await.unwrap();
    let mut from_pg = super::recover::recover(&mut client).await.unwrap();
    // The shared state's version is PostgreSQL's alone.
    assert!(from_pg.world.is_some_and(|version| version > 0));
    from_pg.world = None;

    assert_eq!(pg_done, sqlite_done, "what each command answered");
    // Alarms 1..4, changes 1..3, one pause ended, one row pruned (alarm 2's skip).
    assert_eq!(
        pg_done.iter().flatten().copied().collect::<Vec<_>>(),
        [1, 1, 2, 3, 2, 3, 1, 4, 1]
    );
    assert_eq!(from_pg.pending_alarms.len(), 1);
    assert_eq!(from_pg.pending_alarms[0].id, 3);
    assert_eq!(a.held.keys().copied().collect::<Vec<_>>(), [3]);
    // Every field has something in it, so the comparison compares something.
    let (sqlite, pg) = (format!("{from_sqlite:#?}"), format!("{from_pg:#?}"));
    assert!(!from_sqlite.pending_alarms.is_empty() && !from_sqlite.open_changes.is_empty());
    assert!(!from_sqlite.last_looks.is_empty() && !from_sqlite.schedule_runs.is_empty());
    assert!(!from_sqlite.pending_deliveries.is_empty() && !from_sqlite.notices.is_empty());
    assert!(!from_sqlite.ups.is_empty() && !from_sqlite.pauses.is_empty());
    assert_eq!(from_sqlite.dropped_deliveries, 1);
    for (line, (p, s)) in pg.lines().zip(sqlite.lines()).enumerate() {
        assert_eq!(
            p, s,
            "line {line} differs (left PostgreSQL, right SQLite):\n{pg}"
        );
    }
    assert_eq!(pg.lines().count(), sqlite.lines().count(), "{pg}\n{sqlite}");
}
