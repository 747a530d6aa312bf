//! `src/cloudamqp/management.rs` against a REAL RabbitMQ: a throwaway node with the
//! management plugin (tests/rabbitmq_support), started once for the whole file. Needs
//! RabbitMQ installed (`.ci/run` installs it); without it this test fails and says what to
//! run.
//!
//! What the real broker (Debian's 3.10.8) answers, pinned here: `GET /api/nodes` for a user
//! without the `monitoring` tag is 401 (no tag: "Not management user"; `management` only:
//! "Not monitor user"), as is a wrong password ("Login failed"); `monitoring` is enough. For
//! a second or two after the management API first answers, a running node is listed
//! without its memory (5 keys instead of ~93), which the parser calls malformed: no
//! evidence, so no step down, until the statistics arrive.

mod cloudamqp_support;
mod rabbitmq_support;

use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use cloudamqp_autoscaler::clock::SystemClock;
use cloudamqp_autoscaler::cloudamqp::CloudAmqpClient;
use cloudamqp_autoscaler::cloudamqp::management::{
    BrokerNode, ManagementAccess, MetricsError, parse_nodes,
};
use rabbitmq_support::Rabbit;
use secrecy::SecretString;
use serde_json::Value;
use tracing_subscriber::util::SubscriberInitExt as _;

/// The user the test creates without the monitoring tag, and its password.
const USER: &str = "autoscaler-no-tag";
const USER_PASSWORD: &str = "no-tag-pw-5d81c7e2";
/// A wrong password for `guest`.
const WRONG_PASSWORD: &str = "wrong-pw-93a4f0b6";

/// How long a freshly started node may list itself without memory figures.
const STATISTICS_WITHIN: Duration = Duration::from_secs(30);

#[test]
fn the_management_client_reads_a_real_rabbitmq() {
    let began = Instant::now();
    let rabbit = Rabbit::start();
    let started = began.elapsed();
    let logs = LogCapture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(logs.clone())
        .finish();
    // Global, with `log` records (reqwest's) forwarded: the file's only test.
    subscriber
        .try_init()
        .expect("the only logger of this test binary");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = client(&rabbit);
    let template = format!("http://{{host}}:{}/api", rabbit.management_port);
    let access = |user: &str, password: &str| {
        ManagementAccess::new(
            &template,
            1,
            &SecretString::from(format!("amqp://{user}:{password}@127.0.0.1/%2f")),
        )
        .unwrap()
    };
    let guest = access("guest", "guest");
    assert_eq!(
        guest.nodes_url,
        format!("{}/nodes", rabbit.management_api())
    );

    // The node as the client reads it, once the statistics are in.
    let (nodes, waited) = runtime.block_on(nodes_with_statistics(&client, &guest));
    assert!(!nodes.is_empty(), "no node listed");
    let node = nodes
        .iter()
        .find(|n| n.name == rabbit.node)
        .unwrap_or_else(|| panic!("{} not among {nodes:?}", rabbit.node));
    // On CloudAMQP a node is `rabbit@host`; this throwaway one has its own name, since
    // `rabbit@localhost` is the system broker's. Either way: `alive@host`.
    assert!(node.name.contains('@'), "{}", node.name);
    assert!(node.running, "{node:?}");
    assert!(node.mem_used > 0, "{node:?}");
    assert!(node.mem_limit > 0, "{node:?}");

    // The raw answer: the documented fields with the documented types, and the parser reads
    // exactly them.
    let (status, body) = runtime.block_on(raw_get(&rabbit, "guest", "guest"));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let raw: Vec<Value> = serde_json::from_slice(&body).unwrap();
    let raw_node = raw
        .iter()
        .find(|n| n["name"] == rabbit.node.as_str())
        .expect("the node in the raw answer");
    let field = |key: &str| {
        raw_node
            .get(key)
            .unwrap_or_else(|| panic!("no {key} in {raw_node}"))
    };
    let expected = BrokerNode {
        name: field("name").as_str().expect("name is a string").to_owned(),
        running: field("running").as_bool().expect("running is a boolean"),
        mem_used: field("mem_used").as_u64().expect("mem_used is an integer"),
        mem_limit: field("mem_limit")
            .as_u64()
            .expect("mem_limit is an integer"),
        mem_alarm: field("mem_alarm")
            .as_bool()
            .expect("mem_alarm is a boolean"),
        disk_free_alarm: field("disk_free_alarm")
            .as_bool()
            .expect("disk_free_alarm is a boolean"),
    };
    let parsed = parse_nodes(&body).expect("parse_nodes reads the real answer");
    assert_eq!(parsed.len(), raw.len());
    assert!(parsed.contains(&expected), "{parsed:?} vs {expected:?}");
    // The client's read of a moment earlier is the same node (mem_used moves on).
    assert_eq!(
        BrokerNode {
            mem_used: expected.mem_used,
            ..node.clone()
        },
        expected
    );

    // A wrong password: refused, 401, as the broker says "Login failed".
    let wrong = access("guest", WRONG_PASSWORD);
    let err = runtime
        .block_on(client.management_nodes(&wrong))
        .unwrap_err();
    assert_eq!(err, MetricsError::Refused(401));
    assert_no_secret(
        "the wrong-password error",
        &format!("{err} {err:?} {wrong:?}"),
    );
    let (status, body) = runtime.block_on(raw_get(&rabbit, "guest", WRONG_PASSWORD));
    assert_eq!((status, reason(&body).as_str()), (401, "Login failed"));

    // A user who may log in but lacks the monitoring tag: the broker answers 401 (not 403),
    // with no tag and with `management` alone; `monitoring` is what it takes.
    rabbit.ctl(&["add_user", USER, USER_PASSWORD]);
    rabbit.ctl(&["set_permissions", "-p", "/", USER, ".*", ".*", ".*"]);
    let user = access(USER, USER_PASSWORD);
    for (tags, why) in [
        (None, "Not management user"),
        (Some("management"), "Not monitor user"),
    ] {
        if let Some(tags) = tags {
            rabbit.ctl(&["set_user_tags", USER, tags]);
        }
        let err = runtime
            .block_on(client.management_nodes(&user))
            .unwrap_err();
        assert_eq!(err, MetricsError::Refused(401), "tags {tags:?}");
        assert!(err.to_string().contains("monitoring tag"), "{err}");
        assert_no_secret(
            "the no-monitoring error",
            &format!("{err} {err:?} {user:?}"),
        );
        let (status, body) = runtime.block_on(raw_get(&rabbit, USER, USER_PASSWORD));
        assert_eq!(
            (status, reason(&body).as_str()),
            (401, why),
            "tags {tags:?}"
        );
    }
    rabbit.ctl(&["set_user_tags", USER, "monitoring"]);
    let nodes = runtime
        .block_on(client.management_nodes(&user))
        .expect("a monitoring user reads /api/nodes");
    assert!(nodes.iter().any(|n| n.name == rabbit.node), "{nodes:?}");

    // Nothing the client or reqwest logged, even at TRACE, holds a password (plain or in an
    // Authorization header).
    let logged = logs.text();
    assert!(
        logged.contains("reqwest::"),
        "the log capture heard nothing"
    );
    assert_no_secret("the logs", &logged);
    for (user, password) in [("guest", WRONG_PASSWORD), (USER, USER_PASSWORD)] {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        assert!(
            !logged.contains(&token),
            "an Authorization header was logged"
        );
    }

    drop(runtime);
    let checked = began.elapsed();
    drop(rabbit);
    eprintln!(
        "real RabbitMQ: up in {started:.1?}, statistics after {waited:.1?} more, all checked \
         at {checked:.1?}, stopped at {:.1?}",
        began.elapsed()
    );
}

/// A client as the daemon builds it, on the real clock (the Customer API is never called).
fn client(rabbit: &Rabbit) -> CloudAmqpClient {
    let mut settings = cloudamqp_support::settings("http://127.0.0.1:9/api");
    settings.management_url = rabbit.management_api();
    settings.management_timeout = Duration::from_secs(10);
    CloudAmqpClient::new(&settings, SystemClock::shared()).unwrap()
}

/// `management_nodes` until the node reports its memory: right after start RabbitMQ lists a
/// running node without it, which is malformed (no evidence) and nothing else is allowed.
async fn nodes_with_statistics(
    client: &CloudAmqpClient,
    access: &ManagementAccess,
) -> (Vec<BrokerNode>, Duration) {
    let began = Instant::now();
    loop {
        match client.management_nodes(access).await {
            Ok(nodes) => return (nodes, began.elapsed()),
            Err(MetricsError::Malformed(why))
                if why.contains("reports no mem_used") && began.elapsed() < STATISTICS_WITHIN =>
            {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(err) => panic!("management_nodes: {err}"),
        }
    }
}

/// A plain `GET /api/nodes` with Basic auth.
async fn raw_get(rabbit: &Rabbit, user: &str, password: &str) -> (u16, Vec<u8>) {
    let response = reqwest::Client::new()
        .get(format!("{}/nodes", rabbit.management_api()))
        .basic_auth(user, Some(password))
        .send()
        .await
        .expect("GET /api/nodes");
    let status = response.status().as_u16();
    (status, response.bytes().await.unwrap().to_vec())
}

/// The `reason` of a RabbitMQ error body.
fn reason(body: &[u8]) -> String {
    let value: Value = serde_json::from_slice(body)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(body)));
    value["reason"].as_str().unwrap_or_default().to_owned()
}

/// Fails, without showing the text (it would print the password), when `text` holds one.
fn assert_no_secret(what: &str, text: &str) {
    for secret in [WRONG_PASSWORD, USER_PASSWORD] {
        assert!(!text.contains(secret), "a password shows in {what}");
    }
}

/// Everything logged, as text.
#[derive(Clone, Default)]
struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogCapture {
    type Writer = Self;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}
