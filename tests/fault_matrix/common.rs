//! What every cell of the matrix shares: the faults, the app they are played against, and
//! the stream of alarms for another instance that must keep getting 202 meanwhile.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cloudamqp_autoscaler::fake::{
    Fault, FaultRule, PathMatch, RecordedRequest, SeedInstance, Timeline,
};
use serde_json::Value;

pub use crate::support::until;
use crate::support::{ID, Spawn, TOKEN, TestApp, spawn_app};

/// Patience for any one outcome; retries after a 429 without `Retry-After` alone take 5 s.
pub const WITHIN: Duration = Duration::from_secs(30);
/// `cloudamqp.request_timeout` in the matrix, so that a slow answer outlasts it quickly.
pub const REQUEST_TIMEOUT: &str = "500ms";
/// How slow a `Slow` answer is: well past [`REQUEST_TIMEOUT`].
pub const SLOWER_THAN_THE_TIMEOUT: Duration = Duration::from_secs(2);
/// The other instance, whose alarms stream in while the faults play out.
pub const OTHER: u64 = 359_560;
/// A memory alarm for the other instance below every threshold: decided without an API
/// call, so it measures the webhook and the executor, not the fake.
const OTHER_ALARM: &str = r#"{"alarm_type":"memory","value":50,"instance_id":359560}"#;
/// The longest a streamed alarm may wait for its 202 while CloudAMQP misbehaves.
const PROMPT: Duration = Duration::from_secs(2);

/// The faults each call is put through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// 429 with `Retry-After: 1`.
    RateLimitedRetryAfter,
    /// 429 without `Retry-After`: the client backs off 5 s.
    RateLimited,
    /// 503 with an HTML body.
    Unavailable,
    /// 423 locked.
    Locked,
    /// 400 `Timeout talking to backend`, error code 40099.
    BackendTimeout,
    /// 401 `Not authorized`.
    Unauthorized,
    /// The normal answer, after [`SLOWER_THAN_THE_TIMEOUT`].
    SlowerThanTheTimeout,
    /// 200 whose body is not JSON.
    MalformedBody,
    /// The connection closed with no answer.
    DroppedConnection,
    /// A plain 400.
    BadRequest,
    /// 422 for a move CloudAMQP refuses.
    Refused,
}

impl Kind {
    pub fn fault(self) -> Fault {
        match self {
            Self::RateLimitedRetryAfter => Fault::TooManyRequests {
                retry_after: Some(1),
            },
            Self::RateLimited => Fault::TooManyRequests { retry_after: None },
            Self::Unavailable => Fault::ServiceUnavailable,
            Self::Locked => Fault::Locked,
            Self::BackendTimeout => Fault::BackendTimeout,
            Self::Unauthorized => Fault::Unauthorized,
            Self::SlowerThanTheTimeout => Fault::Slow(SLOWER_THAN_THE_TIMEOUT),
            Self::MalformedBody => Fault::MalformedBody,
            Self::DroppedConnection => Fault::DropConnection,
            Self::BadRequest => Fault::Respond {
                status: 400,
                body: serde_json::json!({"error": "Invalid request"}),
            },
            Self::Refused => Fault::Respond {
                status: 422,
                body: serde_json::json!({"error": "Sorry, you can't move to that plan automatically."}),
            },
        }
    }

    /// The status the fake records for the faulty request (0: no answer; a slow answer is
    /// recorded as the 200 it eventually sends, after the client gave up).
    pub fn recorded_status(self) -> u16 {
        match self {
            Self::RateLimitedRetryAfter | Self::RateLimited => 429,
            Self::Unavailable => 503,
            Self::Locked => 423,
            Self::BackendTimeout | Self::BadRequest => 400,
            Self::Unauthorized => 401,
            Self::SlowerThanTheTimeout | Self::MalformedBody => 200,
            Self::DroppedConnection => 0,
            Self::Refused => 422,
        }
    }

    /// Whether the client retries the call (README, "What happens when things fail").
    pub fn retried(self) -> bool {
        matches!(
            self,
            Self::RateLimitedRetryAfter
                | Self::RateLimited
                | Self::Unavailable
                | Self::Locked
                | Self::BackendTimeout
                | Self::SlowerThanTheTimeout
                | Self::DroppedConnection
        )
    }
}

/// One cell per fault: `cells!(runner)` makes a test per fault every call must survive
/// (named after it, running `runner(Kind::X)`); `cells!(runner; name: Kind::Y, ...)` adds
/// the faults only that call meets.
macro_rules! cells {
    ($runner:path $(; $($name:ident: $kind:expr),+ $(,)?)?) => {
        cells!(@each $runner {
            rate_limited_with_retry_after: Kind::RateLimitedRetryAfter,
            rate_limited_without_retry_after: Kind::RateLimited,
            unavailable_503: Kind::Unavailable,
            locked_423: Kind::Locked,
            backend_timeout_400_40099: Kind::BackendTimeout,
            unauthorized_401: Kind::Unauthorized,
            slower_than_the_client_timeout: Kind::SlowerThanTheTimeout,
            malformed_body: Kind::MalformedBody,
            dropped_connection: Kind::DroppedConnection,
            $($($name: $kind,)+)?
        });
    };
    (@each $runner:path { $($name:ident: $kind:expr,)* }) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                $runner($kind).await
            }
        )*
    };
}
pub(crate) use cells;

/// The app of the matrix: instance [`ID`] (acted on) and [`OTHER`] (streamed), both on
/// bunny-1; a 500 ms request timeout; everything else as the daemon tests have it.
pub async fn app(timeline: Timeline, change_timeout: &'static str) -> TestApp {
    spawn_app(spawn(timeline, change_timeout)).await
}

pub fn spawn(timeline: Timeline, change_timeout: &'static str) -> Spawn {
    Spawn {
        timeline,
        change_timeout,
        instances: vec![
            SeedInstance::new(ID, "prod", "bunny-1"),
            SeedInstance::new(OTHER, "other", "bunny-1"),
        ],
        ..Spawn::default()
    }
    .env("AUTOSCALER__CLOUDAMQP__REQUEST_TIMEOUT", REQUEST_TIMEOUT)
}

/// A fault on `GET path`, once.
pub fn on_get(path: &str, kind: Kind) -> FaultRule {
    FaultRule::once(kind.fault())
        .method("GET")
        .path(PathMatch::Exact(path.to_owned()))
}

pub fn instance_path() -> String {
    format!("/api/instances/{ID}")
}

/// Requests the fake received with this method and exact path.
pub fn requests(app: &TestApp, method: &str, path: &str) -> Vec<RecordedRequest> {
    app.fake
        .requests()
        .into_iter()
        .filter(|r| r.method == method && r.path == path)
        .collect()
}

pub fn statuses(requests: &[RecordedRequest]) -> Vec<u16> {
    requests.iter().map(|r| r.status).collect()
}

/// One integer out of the state store.
pub fn count(app: &TestApp, sql: &str) -> i64 {
    app.query(sql)[0][0].as_i64().unwrap()
}

/// The reason of the decision recorded for alarm `id` (by the id its 202 gave), once there.
pub async fn decision_of(app: &TestApp, response: reqwest::Response) -> Value {
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    let id: i64 = body["alarm_id"].as_str().unwrap().parse().unwrap();
    let sql = format!("SELECT reason FROM decisions WHERE alarm_id = {id}");
    until("the alarm's decision", || !app.query(&sql).is_empty()).await;
    app.query(&sql)[0][0].clone()
}

/// The end of every cell whose fault the daemon gets over: exactly one PUT, the one plan
/// change of the spike, every streamed alarm accepted; then the app stops.
pub async fn one_change_and_the_stream_held(app: TestApp, stream: Stream) {
    assert_eq!(app.fake.put_attempts(), 1);
    assert_eq!(app.fake.plan_changes(), vec![(ID, "hare-1".to_owned())]);
    stream.finish(&app).await;
    app.stop().await;
}

/// A reminder for the same spike: asserts it meets the cooldown and sends nothing.
pub async fn reminder_is_cooled_down(app: &TestApp) {
    let puts = app.fake.put_attempts();
    let reason = decision_of(app, app.alarm(crate::support::MEMORY_85).await).await;
    assert_eq!(reason, "cooldown");
    assert_eq!(app.fake.put_attempts(), puts, "a reminder sends nothing");
}

/// Alarms for [`OTHER`], one every 50 ms, from before a fault is injected until after its
/// outcome: the webhook must keep answering 202, promptly, whatever CloudAMQP does.
pub struct Stream {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<Vec<(u16, Duration)>>,
}

impl Stream {
    pub fn start(app: &TestApp) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let http = app.http.clone();
        let url = format!("{}/cloudamqp/alarm?token={TOKEN}", app.base);
        let stopped = Arc::clone(&stop);
        let sent = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&sent);
        let task = tokio::spawn(async move {
            let mut answers = Vec::new();
            while !stopped.load(Ordering::Relaxed) {
                let sent = Instant::now();
                let status = match http.post(&url).body(OTHER_ALARM).send().await {
                    Ok(response) => response.status().as_u16(),
                    Err(_) => 0,
                };
                answers.push((status, sent.elapsed()));
                counter.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            answers
        });
        Self { stop, sent, task }
    }

    /// Stops the stream; every alarm got a prompt 202 and gets decided.
    pub async fn finish(self, app: &TestApp) {
        // A cell can be over quickly: the stream still sends its five alarms at least.
        until("five streamed alarms", || {
            self.sent.load(Ordering::Relaxed) >= 5
        })
        .await;
        self.stop.store(true, Ordering::Relaxed);
        let answers = self.task.await.unwrap();
        assert!(answers.len() >= 5, "the stream ran: {answers:?}");
        let refused: Vec<_> = answers.iter().filter(|(s, _)| *s != 202).collect();
        assert!(refused.is_empty(), "alarms not accepted: {refused:?}");
        let slowest = answers.iter().map(|(_, t)| *t).max().unwrap();
        assert!(slowest < PROMPT, "a 202 took {slowest:?}");
        let sent = answers.len() as i64;
        let sql = format!("SELECT count(*) FROM decisions WHERE instance_id = {OTHER}");
        until("every streamed alarm decided", || count(app, &sql) == sent).await;
    }
}
