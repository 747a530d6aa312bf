//! Plan changes through their phases, what a restart finds of them, and the latest
//! change and decision of each instance.

use std::time::Duration;

use cloudamqp_autoscaler::store::{InstanceRow, Phase, StoreError};

use super::support::{
    Backend, INSTANCE, alarm, at, change, change_decision, finish, intend_change, skip,
};

both!(
    a_change_goes_intended_submitted_completed_and_is_then_the_last_finished,
    changes_in_flight_are_open_after_a_crash,
    invalid_transitions_are_refused_and_change_nothing,
    a_submitted_change_cannot_be_submitted_twice,
    the_latest_finished_change_and_decision_of_each_instance,
    a_dry_run_change_and_a_sub_second_cooldown_round_trip,
    instances_keep_what_is_known,
    only_an_intended_change_is_marked_unsent_and_the_mark_survives_a_restart,
);

async fn a_change_goes_intended_submitted_completed_and_is_then_the_last_finished(
    backend: Backend,
) {
    let (store, _) = backend.open().await;
    let id = intend_change(&store, INSTANCE, "2026-11-26T17:00:00Z").await;

    let (store, recovered) = backend.restart(store).await;
    assert_eq!(recovered.open_changes.len(), 1);
    assert_eq!(recovered.open_changes[0].phase, Phase::Intended);

    backend
        .first_write_after_restart(&store, id, || {
            store.mark_submitted(id, at("2026-11-26T17:00:01Z"))
        })
        .await
        .unwrap();
    store
        .finish_change(id, finish(Phase::Completed, "2026-11-26T17:05:00.75Z"))
        .await
        .unwrap();

    let (store, recovered) = backend.restart(store).await;
    assert!(recovered.open_changes.is_empty());
    assert_eq!(recovered.last_finished.len(), 1);
    let row = &recovered.last_finished[0];
    assert_eq!(row.id, id);
    assert_eq!(row.instance_id, INSTANCE);
    assert!(row.alarm_id.is_some());
    assert_eq!(
        (row.from_plan.as_str(), row.to_plan.as_str()),
        ("bunny-1", "hare-1")
    );
    assert_eq!(row.rule, "memory-high");
    assert_eq!(row.cooldown, Duration::from_secs(1800));
    assert!(!row.dry_run);
    assert_eq!(row.phase, Phase::Completed);
    assert_eq!(row.intended_at, at("2026-11-26T17:00:00Z"));
    assert_eq!(row.accepted_at, Some(at("2026-11-26T17:00:01Z")));
    assert_eq!(row.finished_at, Some(at("2026-11-26T17:05:00.75Z")));
    assert_eq!(row.detail.as_deref(), Some("ended completed"));
    assert!(!row.needs_attention);

    let history = backend
        .row("SELECT phase, took_seconds FROM change_history")
        .await;
    assert_eq!((history[0].text(), history[1].int()), ("completed", 301));
    store.close().await;
}

async fn changes_in_flight_are_open_after_a_crash(backend: Backend) {
    let (store, _) = backend.open().await;
    let intended = intend_change(&store, 1, "2026-11-26T17:00:00Z").await;
    let submitted = intend_change(&store, 2, "2026-11-26T17:00:00Z").await;
    store
        .mark_submitted(submitted, at("2026-11-26T17:00:02Z"))
        .await
        .unwrap();
    let finished = intend_change(&store, 3, "2026-11-26T17:00:00Z").await;
    store
        .finish_change(finished, finish(Phase::Failed, "2026-11-26T17:00:03Z"))
        .await
        .unwrap();

    // SQLite: the files copied as they are now, the store still open, as a power cut
    // leaves them (every commit was fsync'd to the write-ahead log, no checkpoint ran).
    let copy = backend.power_cut_copy();
    // No close: dropped as a crashing process would leave it.
    drop(store);

    for backend in std::iter::once(&backend).chain(&copy) {
        let (store, recovered) = backend.open().await;
        let open: Vec<_> = recovered
            .open_changes
            .iter()
            .map(|row| (row.id, row.phase, row.accepted_at))
            .collect();
        assert_eq!(
            open,
            [
                (intended, Phase::Intended, None),
                (
                    submitted,
                    Phase::Submitted,
                    Some(at("2026-11-26T17:00:02Z"))
                ),
            ],
            "in {}",
            backend.location()
        );
        assert_eq!(recovered.last_finished.len(), 1);
        assert_eq!(recovered.last_finished[0].id, finished);
        assert!(recovered.last_finished[0].needs_attention);
        store.close().await;
    }
}

async fn invalid_transitions_are_refused_and_change_nothing(backend: Backend) {
    let (store, _) = backend.open().await;
    let id = intend_change(&store, INSTANCE, "2026-11-26T17:00:00Z").await;

    let err = store
        .finish_change(id, finish(Phase::Submitted, "2026-11-26T17:00:01Z"))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("completed, failed or timed_out"),
        "{err}"
    );

    store
        .finish_change(id, finish(Phase::TimedOut, "2026-11-26T18:00:00Z"))
        .await
        .unwrap();
    // A write on a change that is not open: SQLite refuses it with the reason; on
    // PostgreSQL no replica holds a finished (or an unknown) change, so it is refused as
    // not held.
    let refused = |err: StoreError, change: i64, reason: &str| {
        if backend.is_postgres() {
            assert!(
                matches!(err, StoreError::LeaseLost(lost) if lost == change),
                "{err:?}"
            );
        } else {
            assert!(matches!(err, StoreError::Write(_)), "{err:?}");
            assert!(err.to_string().contains(reason), "{err}");
        }
    };
    for err in [
        store
            .finish_change(id, finish(Phase::Completed, "2026-11-26T18:00:01Z"))
            .await
            .unwrap_err(),
        store
            .mark_submitted(id, at("2026-11-26T18:00:01Z"))
            .await
            .unwrap_err(),
    ] {
        refused(err, id, &format!("change {id} is timed_out"));
    }
    let err = store
        .mark_submitted(999, at("2026-11-26T18:00:01Z"))
        .await
        .unwrap_err();
    refused(err, 999, "no change 999");
    assert!(
        store.healthy(),
        "refusing a transition is not a storage failure"
    );

    let (store, recovered) = backend.restart(store).await;
    let row = &recovered.last_finished[0];
    assert_eq!(row.phase, Phase::TimedOut);
    assert_eq!(row.finished_at, Some(at("2026-11-26T18:00:00Z")));
    assert_eq!(row.accepted_at, None);
    assert_eq!(row.detail.as_deref(), Some("ended timed_out"));
    store.close().await;
}

async fn a_submitted_change_cannot_be_submitted_twice(backend: Backend) {
    let (store, _) = backend.open().await;
    let id = intend_change(&store, INSTANCE, "2026-11-26T17:00:00Z").await;
    store
        .mark_submitted(id, at("2026-11-26T17:00:01Z"))
        .await
        .unwrap();
    let err = store
        .mark_submitted(id, at("2026-11-26T17:00:09Z"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("is submitted"), "{err}");
    let accepted = backend.row("SELECT accepted_at FROM changes").await;
    assert_eq!(accepted[0].time(), at("2026-11-26T17:00:01Z"));
    store.close().await;
}

/// An instance has one open change at a time (PostgreSQL refuses a second, whichever
/// replica would open it), so each change here finishes before the next one opens.
async fn the_latest_finished_change_and_decision_of_each_instance(backend: Backend) {
    let (store, _) = backend.open().await;
    // Instance 1: the change recorded last finished earlier; the latest is by finish time.
    let early = intend_change(&store, 1, "2026-11-26T17:00:00Z").await;
    store
        .finish_change(early, finish(Phase::Completed, "2026-11-26T19:00:00Z"))
        .await
        .unwrap();
    let late = intend_change(&store, 1, "2026-11-26T17:00:00Z").await;
    store
        .finish_change(late, finish(Phase::Failed, "2026-11-26T18:00:00Z"))
        .await
        .unwrap();
    // Instance 2: two finished at the same time; the later id wins.
    let mut ids = Vec::new();
    for _ in 0..2 {
        let id = intend_change(&store, 2, "2026-11-26T17:00:00Z").await;
        store
            .finish_change(id, finish(Phase::Completed, "2026-11-26T18:30:00Z"))
            .await
            .unwrap();
        ids.push(id);
    }
    let second = ids[1];
    // Instance 3: one open change only, nothing finished.
    intend_change(&store, 3, "2026-11-26T17:00:00Z").await;

    // Decisions: instance 1's latest by time though recorded first; one without instance.
    let a = store.record_alarm(alarm("{}")).await.unwrap();
    let b = store.record_alarm(alarm("{}")).await.unwrap();
    let c = store.record_alarm(alarm("{}")).await.unwrap();
    store
        .record_decision(a, skip(Some(1), "2026-11-26T20:00:00Z"), None)
        .await
        .unwrap();
    store
        .record_decision(b, skip(Some(1), "2026-11-26T19:59:00Z"), None)
        .await
        .unwrap();
    store
        .record_decision(c, skip(None, "2026-11-26T21:00:00Z"), None)
        .await
        .unwrap();

    let (store, recovered) = backend.restart(store).await;
    let finished: Vec<_> = recovered
        .last_finished
        .iter()
        .map(|row| (row.instance_id, row.id))
        .collect();
    assert_eq!(finished, [(1, early), (2, second)]);
    let decisions: Vec<_> = recovered
        .last_decisions
        .iter()
        .map(|row| (row.instance_id, row.alarm_id, row.at))
        .collect();
    // Instances 1, 2 and 3 also got the change decisions of `intend_change`, at 17:00.
    assert_eq!(decisions.len(), 3);
    assert_eq!(decisions[0], (1, a, at("2026-11-26T20:00:00Z")));
    assert!(
        decisions
            .iter()
            .all(|(instance, ..)| [1, 2, 3].contains(instance))
    );
    store.close().await;
}

async fn a_dry_run_change_and_a_sub_second_cooldown_round_trip(backend: Backend) {
    let (store, _) = backend.open().await;
    let alarm_id = store.record_alarm(alarm("{}")).await.unwrap();
    let mut dry = change(&store, alarm_id, INSTANCE, "2026-11-26T17:00:00Z").await;
    dry.dry_run = true;
    dry.cooldown = Duration::from_millis(200);
    let mut decision = change_decision(INSTANCE, "2026-11-26T17:00:00Z");
    decision.kind = cloudamqp_autoscaler::store::DecisionKind::WouldChange;
    store
        .record_decision(alarm_id, decision, Some(dry))
        .await
        .unwrap();

    let (store, recovered) = backend.restart(store).await;
    let row = &recovered.open_changes[0];
    assert!(row.dry_run);
    assert_eq!(row.cooldown, Duration::from_millis(200));
    assert_eq!(
        recovered.last_decisions[0].kind,
        cloudamqp_autoscaler::store::DecisionKind::WouldChange
    );
    let word = backend.row("SELECT decision FROM decisions").await;
    assert_eq!(word[0].text(), "would_change");
    store.close().await;
}

async fn instances_keep_what_is_known(backend: Backend) {
    let (store, _) = backend.open().await;
    store
        .upsert_instance(InstanceRow {
            id: INSTANCE,
            name: Some("prod".into()),
            providerid: Some("5f1e2b9c-0000-4000-8000-000000000001".into()),
            plan: Some("bunny-1".into()),
            updated_at: at("2026-11-26T17:00:00Z"),
        })
        .await
        .unwrap();
    // Only the plan is known now: the name and UUID stay.
    store
        .upsert_instance(InstanceRow {
            id: INSTANCE,
            name: None,
            providerid: None,
            plan: Some("hare-1".into()),
            updated_at: at("2026-11-26T17:10:00Z"),
        })
        .await
        .unwrap();

    let (store, recovered) = backend.restart(store).await;
    assert_eq!(recovered.instances.len(), 1);
    let row = &recovered.instances[0];
    assert_eq!(row.name.as_deref(), Some("prod"));
    assert_eq!(
        row.providerid.as_deref(),
        Some("5f1e2b9c-0000-4000-8000-000000000001")
    );
    assert_eq!(row.plan.as_deref(), Some("hare-1"));
    assert_eq!(row.updated_at, at("2026-11-26T17:10:00Z"));
    assert_eq!(backend.count("instances").await, 1);
    store.close().await;
}

/// The "not sent" mark of an intended change survives a restart, can be taken back, and
/// only an intended change takes it.
async fn only_an_intended_change_is_marked_unsent_and_the_mark_survives_a_restart(
    backend: Backend,
) {
    let (store, _) = backend.open().await;
    let id = intend_change(&store, INSTANCE, "2026-11-26T17:00:00Z").await;
    store.mark_unsent(id, true).await.unwrap();

    let (store, recovered) = backend.restart(store).await;
    assert_eq!(recovered.open_changes.len(), 1);
    assert!(recovered.open_changes[0].unsent);
    backend
        .first_write_after_restart(&store, id, || store.mark_unsent(id, false))
        .await
        .unwrap();
    let (store, recovered) = backend.restart(store).await;
    assert!(!recovered.open_changes[0].unsent);

    backend
        .first_write_after_restart(&store, id, || {
            store.mark_submitted(id, at("2026-11-26T17:00:01Z"))
        })
        .await
        .unwrap();
    let err = store.mark_unsent(id, true).await.unwrap_err();
    assert!(matches!(err, StoreError::Write(_)));
    assert!(err.to_string().contains("is submitted"), "{err}");
    assert!(store.healthy());
    store.close().await;
}
