//! Each instance's own management API (`GET /management/{id}/api/nodes` on the fake's
//! server): RabbitMQ's and LavinMQ's node lists as the daemon's parser reads them, opened
//! only by the instance's own user and password, sized by the plan the instance shows,
//! scriptable per instance, faulty on demand, and read end to end by the daemon's client.

use std::time::{Duration, Instant};

use base64::Engine as _;
use cloudamqp_autoscaler::clock::ManualClock;
use cloudamqp_autoscaler::cloudamqp::CloudAmqpClient;
use cloudamqp_autoscaler::cloudamqp::management::{
    BrokerNode, MANAGEMENT_RETRY_AFTER, ManagementAccess, MetricsError, parse_nodes,
};
use cloudamqp_autoscaler::fake::{
    DEFAULT_MEM_USED, Fault, FaultRule, PathMatch, SECRET_MARKER, SeedInstance,
};
use cloudamqp_autoscaler::settings::CloudAmqpSettings;
use reqwest::Method;
use secrecy::SecretString;
use serde_json::{Value, json};

use super::support::{Harness, ID, KEY, TIMELINE, spawn, spawn_on_manual_clock, status_and_json};

const GIB: u64 = 1 << 30;
/// A three-node RabbitMQ instance on `rabbit-3` (8 GiB per node).
const CLUSTER: u64 = 3;
/// A three-node LavinMQ instance on `fox-3` (4 GiB per node).
const LAVIN: u64 = 8;
/// A RabbitMQ instance on the shared `lemur` plan.
const SHARED: u64 = 7;

/// A fake with [`ID`] on `bunny-1` and the instances above.
async fn spawn_all() -> Harness {
    spawn(|config| {
        config.instances.extend([
            SeedInstance::new(CLUSTER, "Big Cluster", "rabbit-3"),
            SeedInstance::new(LAVIN, "lavin", "fox-3"),
            SeedInstance::new(SHARED, "tiny", "lemur"),
        ]);
    })
    .await
}

/// `0.81` of `ram`, rounded down: CloudAMQP's default RabbitMQ watermark.
fn watermark(ram: u64) -> u64 {
    ram * 81 / 100
}

/// The instance's own user and password, read from its `url` as the daemon reads them.
async fn own_credentials(h: &Harness, id: u64) -> (String, String) {
    let (status, body) = h.get(&format!("/instances/{id}")).await;
    assert_eq!(status, 200, "{body}");
    let url = reqwest::Url::parse(body["url"].as_str().expect("a url")).expect("a URL");
    let password = url.password().expect("a password").to_owned();
    (url.username().to_owned(), password)
}

/// `{management_url}/nodes` of instance `id`.
fn nodes_url(h: &Harness, id: u64) -> String {
    let base = h.running.management_url().replace("{id}", &id.to_string());
    format!("{base}/nodes")
}

/// `GET /api/nodes` of instance `id` as its own user: the status and the raw body.
async fn read_nodes(h: &Harness, id: u64) -> (u16, Vec<u8>) {
    let (user, password) = own_credentials(h, id).await;
    let response = h
        .http
        .get(nodes_url(h, id))
        .basic_auth(user, Some(password))
        .send()
        .await
        .expect("an answer");
    let status = response.status().as_u16();
    (status, response.bytes().await.expect("a body").to_vec())
}

/// The node list of instance `id` as JSON, asserting a 200.
async fn node_list(h: &Harness, id: u64) -> Vec<Value> {
    let (status, body) = read_nodes(h, id).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let json: Value = serde_json::from_slice(&body).expect("JSON");
    json.as_array().expect("an array").clone()
}

/// The node list of instance `id` as the daemon's parser reads it.
async fn parsed(h: &Harness, id: u64) -> Vec<BrokerNode> {
    let (status, body) = read_nodes(h, id).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    parse_nodes(&body).expect("the daemon's parser reads it")
}

/// The Customer API's node names of instance `id`.
async fn customer_api_node_names(h: &Harness, id: u64) -> Vec<String> {
    let (status, body) = h.get(&format!("/instances/{id}/nodes")).await;
    assert_eq!(status, 200, "{body}");
    body.as_array()
        .expect("an array")
        .iter()
        .map(|node| node["name"].as_str().expect("a name").to_owned())
        .collect()
}

#[tokio::test]
async fn rabbitmq_reports_every_node_with_the_fields_the_daemon_reads() {
    let h = spawn_all().await;
    let list = node_list(&h, CLUSTER).await;
    assert_eq!(list.len(), 3, "one per node: {list:?}");
    let names: Vec<String> = customer_api_node_names(&h, CLUSTER)
        .await
        .iter()
        .map(|name| format!("rabbit@{name}"))
        .collect();
    assert_eq!(
        names,
        [
            "rabbit@big-cluster-01",
            "rabbit@big-cluster-02",
            "rabbit@big-cluster-03"
        ]
    );
    let limit = watermark(8 * GIB);
    for (node, name) in list.iter().zip(&names) {
        assert_eq!(node["name"], json!(name));
        assert_eq!(node["type"], json!("disc"));
        assert_eq!(node["running"], json!(true));
        assert_eq!(node["mem_used"], json!(DEFAULT_MEM_USED));
        assert_eq!(node["mem_limit"], json!(limit));
        assert_eq!(node["mem_alarm"], json!(false));
        assert_eq!(node["disk_free_alarm"], json!(false));
        for count in [
            "disk_free",
            "disk_free_limit",
            "fd_used",
            "fd_total",
            "sockets_used",
            "sockets_total",
            "proc_used",
            "proc_total",
            "run_queue",
            "processors",
            "uptime",
        ] {
            assert!(node[count].is_u64(), "{count} is a count: {node}");
        }
        assert!(node["disk_free"].as_u64() > node["disk_free_limit"].as_u64());
        assert!(node["fd_used"].as_u64() < node["fd_total"].as_u64());
    }
    let nodes = parsed(&h, CLUSTER).await;
    assert_eq!(nodes.len(), 3);
    assert!(
        nodes
            .iter()
            .all(|n| n.running && !n.mem_alarm && !n.disk_free_alarm)
    );
    assert!(
        nodes
            .iter()
            .all(|n| (n.mem_used, n.mem_limit) == (DEFAULT_MEM_USED, limit))
    );
    assert_eq!(h.fake.mem_limit(CLUSTER), Some(limit));
    h.running.stop().await;
}

#[tokio::test]
async fn lavinmq_reports_the_answering_node_its_ram_and_no_mem_alarm() {
    let h = spawn_all().await;
    let list = node_list(&h, LAVIN).await;
    assert_eq!(list.len(), 1, "only the node that answers: {list:?}");
    let node = &list[0];
    assert_eq!(
        node["name"].as_str(),
        customer_api_node_names(&h, LAVIN)
            .await
            .first()
            .map(String::as_str),
        "LavinMQ names a node by its host name"
    );
    assert_eq!(node["running"], json!(true));
    assert_eq!(node["mem_limit"], json!(4 * GIB), "the RAM, no watermark");
    assert_eq!(node["mem_used"], json!(DEFAULT_MEM_USED));
    assert_eq!(node["run_queue"], json!(0));
    assert!(node.get("mem_alarm").is_none(), "{node}");
    let nodes = parsed(&h, LAVIN).await;
    assert_eq!((nodes[0].mem_limit, nodes[0].mem_alarm), (4 * GIB, false));
    assert_eq!(h.fake.mem_limit(LAVIN), Some(4 * GIB));
    h.running.stop().await;
}

#[tokio::test]
async fn only_the_instances_own_credentials_open_it() {
    let h = spawn_all().await;
    let (user, password) = own_credentials(&h, ID).await;
    let (other_user, other_password) = own_credentials(&h, CLUSTER).await;
    let url = nodes_url(&h, ID);
    let attempts = [
        (
            "own",
            h.http.get(&url).basic_auth(&user, Some(&password)),
            200,
        ),
        (
            "wrong password",
            h.http.get(&url).basic_auth(&user, Some("nope")),
            401,
        ),
        (
            "another instance's",
            h.http
                .get(&url)
                .basic_auth(&other_user, Some(&other_password)),
            401,
        ),
        ("none", h.http.get(&url), 401),
        (
            "Customer API key",
            h.http.get(&url).basic_auth("", Some(KEY)),
            401,
        ),
        ("bearer", h.http.get(&url).bearer_auth(&password), 401),
    ];
    for (what, request, expected) in attempts {
        let response = request.send().await.expect("an answer");
        let challenge = response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap_or_default().to_owned());
        let (status, body) = status_and_json(response).await;
        assert_eq!(status, expected, "{what}: {body}");
        if expected == 401 {
            assert_eq!(
                body,
                json!({"error": "not_authorized", "reason": "Login failed"}),
                "{what}"
            );
            assert_eq!(
                challenge.as_deref(),
                Some(r#"Basic realm="RabbitMQ Management""#),
                "{what}"
            );
        }
    }
    // The instance's credentials do not open the Customer API either.
    let customer = h
        .http
        .get(h.url("/instances"))
        .basic_auth(&user, Some(&password))
        .send()
        .await
        .expect("an answer");
    assert_eq!(customer.status().as_u16(), 401);

    let log = h.fake.management_requests();
    let authorized: Vec<bool> = log.iter().map(|r| r.authorized).collect();
    assert_eq!(authorized, [true, false, false, false, false, false]);
    let statuses: Vec<u16> = log.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 401, 401, 401, 401, 401]);
    let schemes: Vec<Option<&str>> = log.iter().map(|r| r.auth_scheme.as_deref()).collect();
    assert_eq!(
        schemes,
        [
            Some("Basic"),
            Some("Basic"),
            Some("Basic"),
            None,
            Some("Basic"),
            Some("Bearer")
        ]
    );
    let printed = format!("{:?}", h.fake.requests());
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    for secret in [password.as_str(), SECRET_MARKER, encoded.as_str()] {
        assert!(!printed.contains(secret), "{secret} in {printed}");
    }
    h.running.stop().await;
}

#[tokio::test]
async fn lavinmq_refuses_a_login_with_a_bare_401() {
    let h = spawn_all().await;
    let response = h
        .http
        .get(nodes_url(&h, LAVIN))
        .basic_auth("fake-user-8", Some("nope"))
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status().as_u16(), 401);
    assert_eq!(
        response
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("Basic")
    );
    assert!(response.bytes().await.expect("a body").is_empty());
    h.running.stop().await;
}

#[tokio::test]
async fn unknown_instances_paths_and_methods_and_shared_plans() {
    let h = spawn_all().await;
    let (user, password) = own_credentials(&h, ID).await;
    let not_found = json!({"error": "Object Not Found", "reason": "Not Found"});
    let management = h.running.management_url();
    for (what, id, tail) in [
        ("unknown instance", "999", "/nodes"),
        ("id not an integer", "x", "/nodes"),
        ("another endpoint", "359559", "/overview"),
        ("one node", "359559", "/nodes/rabbit@bunny1-test-01"),
    ] {
        let url = format!("{}{tail}", management.replace("{id}", id));
        let response = h
            .http
            .get(&url)
            .basic_auth(&user, Some(&password))
            .send()
            .await
            .expect("an answer");
        assert_eq!(
            status_and_json(response).await,
            (404, not_found.clone()),
            "{what}"
        );
    }
    let unknown = h.fake.management_requests();
    assert!(
        !unknown[0].authorized,
        "no instance, no right credentials: {unknown:?}"
    );

    let post = h
        .http
        .request(Method::POST, nodes_url(&h, ID))
        .basic_auth(&user, Some(&password))
        .send()
        .await
        .expect("an answer");
    assert_eq!(post.status().as_u16(), 405);
    assert_eq!(
        post.headers().get("allow").and_then(|v| v.to_str().ok()),
        Some("GET")
    );

    let (status, body) = read_nodes(&h, SHARED).await;
    assert_eq!(status, 403);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).expect("JSON"),
        json!({"error": "not_authorised", "reason": "Not management user"})
    );
    assert_eq!(h.fake.mem_limit(SHARED), None);
    let wrong = h
        .http
        .get(nodes_url(&h, SHARED))
        .basic_auth("fake-user-7", Some("nope"))
        .send()
        .await
        .expect("an answer");
    assert_eq!(wrong.status().as_u16(), 401, "the login comes first");
    h.running.stop().await;
}

#[tokio::test]
async fn mem_limit_follows_the_plan_once_a_change_is_done() {
    let h = spawn(|_| {}).await;
    let before = parsed(&h, ID).await[0].mem_limit;
    assert_eq!(before, watermark(2 * GIB));
    assert_eq!(h.put_plan(ID, "hare-1").await.0, 200);
    let after = parsed(&h, ID).await[0].mem_limit;
    assert_eq!(after, watermark(4 * GIB));
    assert!(
        after / 2 == before || after / 2 == before + 1,
        "doubles: {before} → {after}"
    );
    assert_eq!(h.fake.mem_limit(ID), Some(after));
    h.running.stop().await;
}

#[tokio::test]
async fn mem_limit_and_node_count_change_with_the_timeline() {
    let (h, clock) = spawn_on_manual_clock(TIMELINE).await;
    let uptime = |list: &[Value]| list[0]["uptime"].as_u64().expect("uptime");
    clock.advance(Duration::from_secs(60));
    assert_eq!(uptime(&node_list(&h, ID).await), 60_000);
    assert_eq!(h.put_plan(ID, "hare-3").await.0, 200);
    // The lag: the old plan still shows, and its figure with it.
    assert_eq!(h.fake.mem_limit(ID), Some(watermark(2 * GIB)));
    assert_eq!(node_list(&h, ID).await.len(), 1);
    // Done: three nodes of the new plan, restarted when the change finished.
    clock.advance(Duration::from_secs(30 + 180 + 5));
    let list = node_list(&h, ID).await;
    assert_eq!(list.len(), 3);
    assert!(
        list.iter()
            .all(|n| n["mem_limit"] == json!(watermark(4 * GIB)))
    );
    assert_eq!(uptime(&list), 5_000);
    h.running.stop().await;
}

#[tokio::test]
async fn setters_change_what_the_nodes_report() {
    let h = spawn(|config| {
        config
            .instances
            .push(SeedInstance::new(CLUSTER, "big", "rabbit-3").with_mem_used(GIB));
    })
    .await;
    assert!(parsed(&h, CLUSTER).await.iter().all(|n| n.mem_used == GIB));

    let limit = watermark(2 * GIB);
    assert!(h.fake.set_mem_used(ID, GIB));
    let node = &parsed(&h, ID).await[0];
    assert_eq!((node.mem_used, node.mem_alarm), (GIB, false));
    assert!(h.fake.set_mem_used(ID, limit + 1));
    assert!(
        parsed(&h, ID).await[0].mem_alarm,
        "on by itself above the limit"
    );
    assert!(h.fake.set_mem_used(ID, DEFAULT_MEM_USED));
    assert!(!parsed(&h, ID).await[0].mem_alarm);
    assert!(h.fake.set_mem_alarm(ID, true));
    assert!(parsed(&h, ID).await[0].mem_alarm, "forced");
    assert!(h.fake.set_mem_alarm(ID, false));

    assert!(h.fake.set_disk_alarm(ID, true));
    let node = &node_list(&h, ID).await[0];
    assert_eq!(node["disk_free_alarm"], json!(true));
    assert!(
        node["disk_free"].as_u64() < node["disk_free_limit"].as_u64(),
        "{node}"
    );
    assert!(parsed(&h, ID).await[0].disk_free_alarm);

    assert!(h.fake.set_running(CLUSTER, false));
    let list = node_list(&h, CLUSTER).await;
    assert_eq!(list[0]["running"], json!(true));
    assert_eq!(list[1]["running"], json!(true));
    assert_eq!(
        list[2],
        json!({"name": "rabbit@big-03", "type": "disc", "running": false}),
        "a stopped node reports nothing else"
    );
    let nodes = parsed(&h, CLUSTER).await;
    assert_eq!(
        nodes.iter().map(|n| n.running).collect::<Vec<_>>(),
        [true, true, false]
    );
    let (_, customer) = h.get(&format!("/instances/{CLUSTER}/nodes")).await;
    assert_eq!(customer[2]["running"], json!(false), "{customer}");
    assert!(h.fake.set_running(CLUSTER, true));
    assert!(parsed(&h, CLUSTER).await.iter().all(|n| n.running));

    for unknown in [
        h.fake.set_mem_used(999, 1),
        h.fake.set_mem_alarm(999, true),
        h.fake.set_disk_alarm(999, true),
        h.fake.set_running(999, false),
    ] {
        assert!(!unknown);
    }
    assert_eq!(h.fake.mem_limit(999), None);
    h.running.stop().await;
}

#[tokio::test]
async fn faults_hit_management_paths() {
    let h = spawn(|_| {}).await;
    let (user, password) = own_credentials(&h, ID).await;
    let get = || {
        h.http
            .get(nodes_url(&h, ID))
            .basic_auth(&user, Some(&password))
    };
    let prefix = || PathMatch::Prefix("/management/".into());

    h.fake
        .inject(FaultRule::once(Fault::Unauthorized).path(prefix()));
    assert_eq!(
        h.get("/instances").await.0,
        200,
        "the Customer API is not hit"
    );
    assert_eq!(
        get().send().await.expect("an answer").status().as_u16(),
        401
    );

    h.fake.inject(FaultRule::management(Fault::Respond {
        status: 403,
        body: json!({"error": "not_authorised", "reason": "Not management user"}),
    }));
    assert_eq!(
        get().send().await.expect("an answer").status().as_u16(),
        403
    );

    h.fake
        .inject(FaultRule::management(Fault::ServiceUnavailable).times(2));
    for _ in 0..2 {
        assert_eq!(
            get().send().await.expect("an answer").status().as_u16(),
            503
        );
    }

    h.fake.inject(FaultRule::management(Fault::MalformedBody));
    let malformed = get().send().await.expect("an answer");
    assert_eq!(malformed.status().as_u16(), 200);
    let body = malformed.bytes().await.expect("a body");
    assert!(matches!(
        parse_nodes(&body),
        Err(MetricsError::Malformed(_))
    ));

    h.fake.inject(FaultRule::management(Fault::DropConnection));
    let dropped = get().send().await.expect_err("no HTTP answer at all");
    assert!(
        dropped.status().is_none() && !dropped.is_timeout(),
        "{dropped:?}"
    );

    let delay = Duration::from_millis(300);
    h.fake.inject(FaultRule::management(Fault::Slow(delay)));
    let started = Instant::now();
    assert_eq!(
        get().send().await.expect("an answer").status().as_u16(),
        200
    );
    assert!(started.elapsed() >= delay, "{:?}", started.elapsed());

    assert_eq!(h.fake.pending_faults(), 0);
    let statuses: Vec<u16> = h
        .fake
        .management_requests()
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [401, 403, 503, 503, 200, 0, 200]);
    assert!(
        h.fake.management_requests().iter().all(|r| r.authorized),
        "the credentials were right every time"
    );
    h.running.stop().await;
}

#[tokio::test]
async fn the_put_trap_leaves_management_reads_alone() {
    let h = spawn(|_| {}).await;
    let (user, password) = own_credentials(&h, ID).await;
    h.fake.unauthorized_once_after_put();
    assert_eq!(h.put_plan(ID, "hare-1").await.0, 200);
    let management = h
        .http
        .get(nodes_url(&h, ID))
        .basic_auth(user, Some(password))
        .send()
        .await
        .expect("an answer");
    assert_eq!(
        management.status().as_u16(),
        200,
        "the management API is another server"
    );
    assert_eq!(h.get(&format!("/instances/{ID}")).await.0, 401);
    h.running.stop().await;
}

/// The daemon's client for `h`, its management timeout `management_timeout`, on a manual
/// clock (its one retry's pause passes at once).
fn client(
    h: &Harness,
    management_timeout: Duration,
) -> (CloudAmqpClient, std::sync::Arc<ManualClock>) {
    let settings = CloudAmqpSettings {
        api_url: h.running.base_url(),
        api_key: Some(SecretString::from(KEY)),
        default_instance: None,
        poll_interval: Duration::from_secs(15),
        change_timeout: Duration::from_secs(3600),
        connect_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(10),
        retry_deadline: Duration::from_secs(300),
        requests_per_second: 10_000,
        management_url: h.running.management_url(),
        management_timeout,
    };
    let clock = ManualClock::new("2026-11-26T17:00:00Z".parse().expect("a timestamp"));
    let client = CloudAmqpClient::new(&settings, clock.clone()).expect("a client");
    (client, clock)
}

/// The management access the daemon builds for instance `id` from its instance object.
async fn access(client: &CloudAmqpClient, id: u64) -> ManagementAccess {
    let instance = client.instance(id).await.expect("the instance");
    let url = instance.url.as_ref().expect("the instance has a url");
    ManagementAccess::new(client.management_url(), id, url).expect("an access")
}

#[tokio::test]
async fn the_daemons_client_reads_the_figures() {
    let h = spawn_all().await;
    let (client, _) = client(&h, Duration::from_secs(10));
    assert_eq!(client.management_url(), h.running.management_url());
    h.fake.set_mem_used(CLUSTER, 5 * GIB);
    let cluster = access(&client, CLUSTER).await;
    assert_eq!(cluster.nodes_url, nodes_url(&h, CLUSTER));
    let nodes = client.management_nodes(&cluster).await.expect("the nodes");
    assert_eq!(nodes.len(), 3);
    for node in &nodes {
        assert!(
            node.running && !node.mem_alarm && !node.disk_free_alarm,
            "{node:?}"
        );
        assert_eq!(
            (node.mem_used, node.mem_limit),
            (5 * GIB, watermark(8 * GIB))
        );
    }
    assert_eq!(nodes[0].name, "rabbit@big-cluster-01");

    let lavin = client
        .management_nodes(&access(&client, LAVIN).await)
        .await
        .expect("the node");
    assert_eq!(lavin.len(), 1);
    assert_eq!(lavin[0].mem_limit, 4 * GIB);

    h.fake.set_mem_used(ID, 3 * GIB);
    let bunny = client
        .management_nodes(&access(&client, ID).await)
        .await
        .expect("the node");
    assert!(bunny[0].mem_alarm, "3 GiB is above bunny's limit");

    let log = h.fake.management_requests();
    assert_eq!(log.len(), 3);
    assert!(
        log.iter()
            .all(|r| r.authorized && r.status == 200 && r.method == "GET")
    );
    assert!(
        log.iter()
            .all(|r| r.user_agent.as_deref() == Some(cloudamqp_autoscaler::cloudamqp::USER_AGENT))
    );
    h.running.stop().await;
}

#[tokio::test]
async fn the_client_maps_management_faults_to_metrics_errors() {
    let h = spawn_all().await;
    let (client, clock) = client(&h, Duration::from_millis(200));
    let own = access(&client, ID).await;
    let read = || client.management_nodes(&own);
    let mut errors = Vec::new();

    h.fake.inject(FaultRule::management(Fault::Unauthorized));
    assert_eq!(read().await, Err(MetricsError::Refused(401)));
    h.fake.inject(FaultRule::management(Fault::Respond {
        status: 403,
        body: json!({"error": "not_authorised", "reason": "Not management user"}),
    }));
    assert_eq!(read().await, Err(MetricsError::Refused(403)));
    h.fake.inject(FaultRule::management(Fault::MalformedBody));
    assert!(matches!(read().await, Err(MetricsError::Malformed(_))));
    assert_eq!(
        h.fake.management_requests().len(),
        3,
        "none of those is retried"
    );

    // A gateway error is tried once more: one 503 is survived, two are not.
    h.fake
        .inject(FaultRule::management(Fault::ServiceUnavailable));
    assert_eq!(read().await.expect("the retry succeeds").len(), 1);
    h.fake
        .inject(FaultRule::management(Fault::ServiceUnavailable).times(2));
    let gateway = read().await;
    assert!(
        matches!(gateway, Err(MetricsError::Unreachable(_))),
        "{gateway:?}"
    );
    errors.push(gateway);
    h.fake
        .inject(FaultRule::management(Fault::DropConnection).times(2));
    let dropped = read().await;
    assert!(
        matches!(dropped, Err(MetricsError::Unreachable(_))),
        "{dropped:?}"
    );
    errors.push(dropped);
    let pauses = clock
        .sleeps()
        .into_iter()
        .filter(|pause| *pause == MANAGEMENT_RETRY_AFTER)
        .count();
    assert_eq!(pauses, 3, "one pause before each retry");

    h.fake
        .inject(FaultRule::management(Fault::Slow(Duration::from_secs(1))));
    let slow = read().await;
    assert!(matches!(slow, Err(MetricsError::Timeout(_))), "{slow:?}");
    errors.push(slow);
    assert_eq!(h.fake.pending_faults(), 0);

    // The fake's own refusals, no fault injected.
    let shared = access(&client, SHARED).await;
    assert_eq!(
        client.management_nodes(&shared).await,
        Err(MetricsError::Refused(403))
    );
    let wrong = ManagementAccess::new(
        client.management_url(),
        ID,
        &SecretString::from(format!(
            "amqps://fake-user-{ID}:nope@bunny1-test.rmq.cloudamqp.com/x"
        )),
    )
    .expect("an access");
    assert_eq!(
        client.management_nodes(&wrong).await,
        Err(MetricsError::Refused(401))
    );
    let unknown = ManagementAccess::new(
        client.management_url(),
        999,
        &SecretString::from("amqps://u:p@h/v".to_owned()),
    )
    .expect("an access");
    assert_eq!(
        client.management_nodes(&unknown).await,
        Err(MetricsError::Status(404))
    );
    // No error the client gave names the instance's password.
    for error in errors.iter().filter_map(|e| e.as_ref().err()) {
        assert!(!error.to_string().contains(SECRET_MARKER), "{error}");
    }
    h.running.stop().await;
}
