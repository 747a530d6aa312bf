//! The CloudAMQP client against the fake: calls, auth, error classes, retries, deadline,
//! timeouts, rate limit. Delays are asserted from the manual clock; request counts from
//! the fake's log.

mod cloudamqp_support;

use std::time::Duration;

use cloudamqp_autoscaler::clock::{ManualClock, SharedClock};
use cloudamqp_autoscaler::cloudamqp::{ApiError, CloudAmqpClient, PutProgress, USER_AGENT};
use cloudamqp_autoscaler::fake::{Fault, FaultRule, PathMatch, Timeline};
use cloudamqp_support::{Harness, ID, secs, settings, start_time};

fn on_instance(fault: Fault) -> FaultRule {
    FaultRule::once(fault)
        .method("GET")
        .path(PathMatch::Exact(format!("/api/instances/{ID}")))
}

#[tokio::test]
async fn typed_calls_read_the_api_and_send_basic_auth_with_our_user_agent() {
    let h = Harness::new(Timeline::instant()).await;

    let list = h.client.list_instances().await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!((list[0].id, list[0].plan.as_str()), (ID, "bunny-1"));
    assert!(list[0].providerid.is_some());

    let instance = h.client.instance(ID).await.unwrap();
    assert_eq!(instance.plan, "bunny-1");
    assert!(instance.ready);
    assert_eq!(instance.backend, "rabbitmq");
    assert_eq!(instance.nodes, Some(1));

    let nodes = h.client.nodes(ID).await.unwrap();
    assert_eq!(nodes.len(), 1);
    assert!(nodes[0].configured && nodes[0].running);

    let plans = h.client.plans().await.unwrap();
    assert!(plans.iter().any(|p| p.name == "hare-1" && p.price == 199.0));
    assert!(
        plans
            .iter()
            .all(|p| p.backend == "rabbitmq" || p.backend == "lavinmq"),
        "vpc/vpn entries must be dropped"
    );
    assert!(h.fake.plans().iter().any(|p| !p.is_broker()));

    h.client.change_plan(ID, "hare-1").await.unwrap();
    assert_eq!(h.fake.plan_changes(), vec![(ID, "hare-1".to_owned())]);
    let puts = h.requests_to("PUT", &format!("/instances/{ID}"));
    assert_eq!(puts.len(), 1);
    assert_eq!(puts[0].plan(), Some("hare-1"));

    let requests = h.fake.requests();
    assert_eq!(requests.len(), 5);
    for request in &requests {
        assert!(request.authorized, "{request:?}");
        assert_eq!(request.auth_scheme.as_deref(), Some("Basic"));
        assert_eq!(request.user_agent.as_deref(), Some(USER_AGENT));
        assert!(!request.path.contains("/actions/"), "{}", request.path);
    }
    assert!(USER_AGENT.starts_with("cloudamqp-autoscaler/"));
    assert!(h.clock.sleeps().is_empty());
}

#[tokio::test]
async fn no_key_is_refused_with_a_message_naming_both_ways_to_set_it() {
    let mut s = settings("http://127.0.0.1:9/api");
    s.api_key = None;
    let clock: SharedClock = ManualClock::new(start_time());
    let err = CloudAmqpClient::new(&s, clock.clone()).unwrap_err();
    assert_eq!(err, ApiError::MissingApiKey);
    assert!(
        err.to_string()
            .contains("set cloudamqp.api_key or CLOUDAMQP_API_KEY")
    );
    s.api_key = Some("  ".into());
    assert_eq!(
        CloudAmqpClient::new(&s, clock).unwrap_err(),
        ApiError::MissingApiKey
    );
}

#[tokio::test]
async fn rate_limited_without_retry_after_backs_off_from_five_seconds() {
    let h = Harness::new(Timeline::instant()).await;
    h.fake
        .inject(on_instance(Fault::TooManyRequests { retry_after: None }).times(3));
    assert!(h.client.instance(ID).await.is_ok());
    assert_eq!(h.clock.sleeps(), secs(&[5, 10, 20]));
    assert_eq!(h.statuses(), vec![429, 429, 429, 200]);
}

#[tokio::test]
async fn rate_limited_with_retry_after_waits_as_told() {
    let h = Harness::new(Timeline::instant()).await;
    h.fake.inject(on_instance(Fault::TooManyRequests {
        retry_after: Some(42),
    }));
    assert!(h.client.instance(ID).await.is_ok());
    assert_eq!(h.clock.sleeps(), secs(&[42]));
    assert_eq!(h.statuses(), vec![429, 200]);
}

#[tokio::test]
async fn unavailable_locked_and_backend_timeout_are_retried_after_a_delay() {
    for (fault, status) in [
        (Fault::ServiceUnavailable, 503),
        (Fault::Locked, 423),
        (Fault::BackendTimeout, 400),
    ] {
        let h = Harness::new(Timeline::instant()).await;
        h.fake.inject(on_instance(fault).times(2));
        assert!(h.client.instance(ID).await.is_ok());
        assert_eq!(h.clock.sleeps(), secs(&[1, 2]), "{status}");
        assert_eq!(h.statuses(), vec![status, status, 200]);
    }
}

#[tokio::test]
async fn a_dropped_connection_is_retried() {
    let h = Harness::new(Timeline::instant()).await;
    h.fake.inject(on_instance(Fault::DropConnection));
    assert!(h.client.instance(ID).await.is_ok());
    assert_eq!(h.clock.sleeps(), secs(&[1]));
    assert_eq!(h.statuses(), vec![0, 200]);
}

#[tokio::test]
async fn an_answer_slower_than_the_request_timeout_is_a_retried_timeout() {
    let h = Harness::with(Timeline::instant(), |s| {
        s.request_timeout = Duration::from_millis(500);
    })
    .await;
    h.fake
        .inject(on_instance(Fault::Slow(Duration::from_secs(5))).times(2));
    // Two slow answers then a fast one; only the manual clock records the backoff.
    assert!(h.client.instance(ID).await.is_ok());
    assert_eq!(h.clock.sleeps(), secs(&[1, 2]));
    assert_eq!(h.fake.requests().len(), 3);
}

#[tokio::test]
async fn a_slow_answer_every_time_ends_at_the_deadline_as_a_timeout() {
    let h = Harness::with(Timeline::instant(), |s| {
        s.request_timeout = Duration::from_millis(500);
        s.retry_deadline = Duration::from_secs(2);
    })
    .await;
    h.fake
        .inject(on_instance(Fault::Slow(Duration::from_secs(5))).times(10));
    let err = h.client.instance(ID).await.unwrap_err();
    let ApiError::DeadlineExceeded { attempts, last } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(*attempts, 2);
    assert!(
        matches!(&**last, ApiError::Transient { what } if what.contains("500ms")),
        "{last:?}"
    );
    assert_eq!(h.clock.sleeps(), secs(&[1]));
}

#[tokio::test]
async fn retries_stop_when_the_next_delay_would_pass_the_deadline() {
    let h = Harness::with(Timeline::instant(), |s| {
        s.retry_deadline = Duration::from_secs(30);
    })
    .await;
    h.fake
        .inject(on_instance(Fault::ServiceUnavailable).times(100));
    let err = h.client.instance(ID).await.unwrap_err();
    // 1 + 2 + 4 + 8 = 15 s fit in 30 s; 16 more would not.
    assert_eq!(h.clock.sleeps(), secs(&[1, 2, 4, 8]));
    assert_eq!(h.fake.requests().len(), 5);
    assert!(
        matches!(&err, ApiError::DeadlineExceeded { attempts: 5, last } if last.is_transient()),
        "{err:?}"
    );
    assert!(err.is_transient());
    assert!(err.to_string().contains("503"), "{err}");
}

#[tokio::test]
async fn a_wrong_key_is_unauthorized_and_not_retried() {
    let h = Harness::with(Timeline::instant(), |s| {
        s.api_key = Some("not-the-key".into());
    })
    .await;
    assert_eq!(
        h.client.instance(ID).await.unwrap_err(),
        ApiError::Unauthorized
    );
    assert_eq!(h.statuses(), vec![401]);
    assert!(!h.fake.requests()[0].authorized);
    assert!(h.clock.sleeps().is_empty());
}

#[tokio::test]
async fn an_unknown_instance_is_not_found_and_not_retried() {
    let h = Harness::new(Timeline::instant()).await;
    let err = h.client.instance(1).await.unwrap_err();
    assert!(matches!(&err, ApiError::NotFound { message } if message == "Invalid ID"));
    assert_eq!(h.statuses(), vec![404]);
}

#[tokio::test]
async fn a_refused_move_is_not_retried() {
    let h = Harness::new(Timeline::instant()).await;
    let err = h.client.change_plan(ID, "lemur").await.unwrap_err();
    assert!(
        matches!(&err, ApiError::MoveRefused { message } if message.contains("shared plan")),
        "{err:?}"
    );
    assert!(!err.is_transient());
    assert_eq!(h.fake.put_attempts(), 1);
    assert!(h.fake.plan_changes().is_empty());
    assert!(h.clock.sleeps().is_empty());
}

#[tokio::test]
async fn a_second_change_while_one_runs_is_busy_and_not_retried() {
    let h = Harness::new(Timeline::realistic()).await;
    h.client.change_plan(ID, "hare-1").await.unwrap();
    let err = h.client.change_plan(ID, "rabbit-1").await.unwrap_err();
    assert!(matches!(err, ApiError::InstanceBusy { .. }), "{err:?}");
    assert_eq!(h.fake.put_attempts(), 2);
    assert_eq!(h.fake.plan_changes(), vec![(ID, "hare-1".to_owned())]);
}

#[tokio::test]
async fn a_plain_bad_request_is_not_retried_and_its_message_is_kept() {
    let h = Harness::new(Timeline::instant()).await;
    let err = h.client.change_plan(ID, "bunny-2").await.unwrap_err();
    assert!(
        matches!(&err, ApiError::BadRequest { message } if message.contains("bunny-2")),
        "{err:?}"
    );
    assert_eq!(h.fake.put_attempts(), 1);

    // The `errors` array shape, with an error code.
    h.fake.inject(on_instance(Fault::Respond {
        status: 400,
        body: serde_json::json!({"errors": [{"message": "tags invalid"}, "try again"], "error_code": 12}),
    }));
    let err = h.client.instance(ID).await.unwrap_err();
    assert_eq!(
        err,
        ApiError::BadRequest {
            message: "tags invalid; try again (error_code 12)".into()
        }
    );
    assert!(h.clock.sleeps().is_empty());
}

#[tokio::test]
async fn an_unreadable_success_body_is_malformed_and_not_retried() {
    let h = Harness::new(Timeline::instant()).await;
    h.fake.inject(on_instance(Fault::MalformedBody));
    let err = h.client.instance(ID).await.unwrap_err();
    assert!(matches!(err, ApiError::Malformed { .. }), "{err:?}");
    assert_eq!(h.statuses(), vec![200]);
    assert!(h.clock.sleeps().is_empty());
}

#[tokio::test]
async fn a_change_whose_answer_never_came_is_not_sent_again() {
    // The slow PUT takes effect before its answer, which the client gives up waiting for.
    // Sending it again could change the plan twice (here: a second accepted change once
    // the first has finished), so the call ends with the timeout and the caller looks.
    let h = Harness::with(Timeline::instant(), |s| {
        s.request_timeout = Duration::from_millis(500);
    })
    .await;
    h.fake.inject(
        FaultRule::once(Fault::Slow(Duration::from_secs(5)))
            .method("PUT")
            .path(PathMatch::Prefix("/api/instances/".into())),
    );
    let err = h.client.change_plan(ID, "hare-1").await.unwrap_err();
    assert!(
        matches!(&err, ApiError::Transient { what } if what.starts_with("no answer within")),
        "{err:?}"
    );
    assert_eq!(h.fake.put_attempts(), 1);
    assert_eq!(h.fake.plan_changes(), vec![(ID, "hare-1".to_owned())]);
    assert!(h.clock.sleeps().is_empty());
}

#[tokio::test]
async fn a_change_whose_connection_dropped_is_not_sent_again() {
    let h = Harness::new(Timeline::instant()).await;
    h.fake
        .inject(FaultRule::once(Fault::DropConnection).method("PUT"));
    let err = h.client.change_plan(ID, "hare-1").await.unwrap_err();
    assert!(matches!(err, ApiError::Transient { .. }), "{err:?}");
    assert_eq!(h.fake.put_attempts(), 1);
    assert!(h.fake.plan_changes().is_empty());
    assert!(h.clock.sleeps().is_empty());
}

#[tokio::test]
async fn a_busy_answer_after_a_gateway_timeout_counts_as_accepted_not_as_busy() {
    // A 504 may have passed the PUT on; the retry then meets "Please wait…" for the change
    // that first attempt started.
    let h = Harness::new(Timeline::instant()).await;
    h.fake.inject(
        FaultRule::once(Fault::Respond {
            status: 504,
            body: serde_json::json!({"error": "Gateway Timeout"}),
        })
        .method("PUT"),
    );
    h.fake.inject(
        FaultRule::once(Fault::Respond {
            status: 422,
            body: serde_json::json!({"error": "Please wait for your cluster to be configured before trying to update it"}),
        })
        .method("PUT"),
    );
    h.client.change_plan(ID, "hare-1").await.unwrap();
    assert_eq!(h.fake.put_attempts(), 2);
    assert_eq!(h.clock.sleeps(), secs(&[1]));
}

#[tokio::test]
async fn a_busy_answer_after_a_refusal_is_busy_not_accepted() {
    // A 423 (locked) or a 503 refused the PUT before anything began: the "Please wait…" of
    // the retry is about another change (here one already running), not ours.
    for refusal in [Fault::Locked, Fault::ServiceUnavailable] {
        let h = Harness::new(Timeline::realistic()).await;
        h.client.change_plan(ID, "hare-1").await.unwrap();
        h.fake
            .inject(FaultRule::once(refusal.clone()).method("PUT"));
        let err = h.client.change_plan(ID, "rabbit-1").await.unwrap_err();
        assert!(
            matches!(err, ApiError::InstanceBusy { .. }),
            "after {refusal:?}: {err:?}"
        );
        assert_eq!(h.fake.put_attempts(), 3);
        assert_eq!(h.fake.plan_changes(), vec![(ID, "hare-1".to_owned())]);
    }
}

#[tokio::test]
async fn a_change_refused_until_the_deadline_is_refused_unless_an_attempt_may_have_got_through() {
    // Every attempt refused outright (423 locked): nothing can have started.
    let h = Harness::with(Timeline::instant(), |s| {
        s.retry_deadline = Duration::from_secs(30);
    })
    .await;
    h.fake
        .inject(FaultRule::once(Fault::Locked).method("PUT").times(100));
    let progress = PutProgress::default();
    assert!(progress.never_sent());
    let err = h
        .client
        .change_plan_reporting(ID, "hare-1", &progress)
        .await
        .unwrap_err();
    // What a stop would have seen: nothing can have reached CloudAMQP, and once the call
    // has ended its outcome is the caller's to record, not a stop's.
    assert!(!progress.may_have_reached());
    assert!(!progress.never_sent());
    assert!(
        matches!(&err, ApiError::ChangeRefused(deadline)
            if matches!(**deadline, ApiError::DeadlineExceeded { attempts: 5, .. })),
        "{err:?}"
    );
    assert!(err.to_string().contains("423"), "{err}");
    assert!(h.fake.plan_changes().is_empty());

    // A 504 first (it may have been passed on), then refusals: the deadline proves nothing.
    let h = Harness::with(Timeline::instant(), |s| {
        s.retry_deadline = Duration::from_secs(30);
    })
    .await;
    h.fake.inject(
        FaultRule::once(Fault::Respond {
            status: 504,
            body: serde_json::json!({"error": "Gateway Timeout"}),
        })
        .method("PUT"),
    );
    h.fake
        .inject(FaultRule::once(Fault::Locked).method("PUT").times(100));
    let progress = PutProgress::default();
    let err = h
        .client
        .change_plan_reporting(ID, "hare-1", &progress)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ApiError::DeadlineExceeded { attempts: 5, .. }),
        "{err:?}"
    );
    assert!(
        progress.may_have_reached(),
        "the 504's attempt may have got through"
    );
}

#[tokio::test]
async fn the_client_side_rate_limit_spaces_requests_on_the_clock() {
    let h = Harness::with(Timeline::instant(), |s| s.requests_per_second = 2).await;
    for _ in 0..4 {
        h.client.plans().await.unwrap();
    }
    // A burst of two, then one every 500 ms; clones share the limit.
    let clone = h.client.clone();
    clone.plans().await.unwrap();
    assert_eq!(
        h.clock.sleeps(),
        vec![Duration::from_millis(500); 3],
        "{:?}",
        h.clock.sleeps()
    );
    assert_eq!(h.fake.requests().len(), 5);
}

#[tokio::test]
async fn an_unreachable_api_is_a_transient_connection_error() {
    // Bind then drop a listener: the port is (very likely) closed for the test's length.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut s = settings(&format!("http://127.0.0.1:{port}/api"));
    s.retry_deadline = Duration::from_secs(3);
    let clock = ManualClock::new(start_time());
    let client = CloudAmqpClient::new(&s, clock.clone()).unwrap();
    let err = client.plans().await.unwrap_err();
    assert!(
        matches!(err.root(), ApiError::Transient { what } if what.starts_with("cannot connect")),
        "{err:?}"
    );
    assert_eq!(clock.sleeps(), secs(&[1, 2]));
}
