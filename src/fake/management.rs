//! Each instance's own management HTTP API, as far as the daemon reads it before a step
//! down: `GET /api/nodes`.
//!
//! In production it lives at `https://<instance host>/api/…` and opens with the user and
//! password of the instance's `url`. The fake serves every instance's on its one server,
//! under `/management/{id}/api/…` ([`super::RunningFake::management_url`] is the template
//! the daemon's `cloudamqp.management_url` takes), and checks the same credentials the
//! instance view hands out (`views::instance_credentials`). The Customer API key does not
//! open it.
//!
//! Order of the checks, after the recorded request and any queued fault (as for every
//! path): unknown instance or path 404, method 405, credentials 401, shared plan 403, then
//! the node list. 404 and 405 come before the login as in RabbitMQ, whose router answers
//! unknown paths itself and whose REST handlers check the method before authenticating.
//!
//! What the nodes report follows the instance as `GET /api/instances/{id}` shows it now
//! (node count, plan, backend) plus the figures a test sets on it ([`Figures`]). Facts:
//! the RabbitMQ field names and types (checked against RabbitMQ 3.10), CloudAMQP's default
//! watermark of 0.81 of RAM, LavinMQ's field set and its 401 (its source). Plausible, not
//! facts: every RAM figure (`catalogue::ram_bytes`), the counts (descriptors, sockets,
//! processes, processors), disk sizes, and the 403 of a shared plan.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderMap};
use serde_json::{Value, json};

use super::Shared;
use super::catalogue::{LAVINMQ, ram_bytes};
use super::record::Credentials;
use super::state::{BrokerSnapshot, InstanceSnapshot, Instances};
use super::views;

/// Every management path starts with this; the instance id follows.
pub(crate) const PREFIX: &str = "/management/";

const MIB: u64 = 1 << 20;

/// The `mem_used` every node reports unless a test sets another.
pub const DEFAULT_MEM_USED: u64 = 300 * MIB;

/// CloudAMQP's default RabbitMQ memory high watermark, in hundredths of the RAM (0.81;
/// settable 0.4-0.9 in production, fixed here). LavinMQ has none: its limit is the RAM.
const WATERMARK_PERCENT: u64 = 81;

/// Each node's disk, as the Customer API's `disk_size: 10` (GB) says.
const DISK_TOTAL: u64 = 10_000_000_000;
const DISK_FREE: u64 = 8_200_000_000;
/// RabbitMQ's default `disk_free_limit` (50 MB); CloudAMQP's own setting is unknown.
const DISK_FREE_LIMIT: u64 = 50_000_000;
/// Below the limit: what a node in disk alarm reports free.
const DISK_FREE_IN_ALARM: u64 = 40_000_000;
const FD_USED: u64 = 64;
const FD_TOTAL: u64 = 1_048_576;
const SOCKETS_USED: u64 = 4;
/// RabbitMQ allows 0.9 of the descriptors for sockets.
const SOCKETS_TOTAL: u64 = 943_629;
const PROC_USED: u64 = 612;
const PROC_TOTAL: u64 = 1_048_576;
const PROCESSORS: u64 = 2;

/// What a test sets on one instance's nodes; the rest of their answer derives from the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Figures {
    /// Bytes every node reports in use.
    pub mem_used: u64,
    /// Forced `mem_alarm` (RabbitMQ); it is also on whenever `mem_used` passes `mem_limit`.
    pub mem_alarm: bool,
    /// `disk_free_alarm` (RabbitMQ), with `disk_free` below the limit (both backends).
    pub disk_alarm: bool,
    /// `false`: the instance's last node does not run. One switch, not one per node, which
    /// is all a "not every node runs, no evidence" test needs.
    pub running: bool,
}

impl Figures {
    pub fn new(mem_used: u64) -> Self {
        Self {
            mem_used,
            mem_alarm: false,
            disk_alarm: false,
            running: true,
        }
    }
}

/// A request to a management path: which instance, which endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Target {
    /// `None`: the path's id is not an integer.
    pub id: Option<u64>,
    /// Whether the path is `…/api/nodes` (the only endpoint the fake serves).
    pub nodes: bool,
}

impl Target {
    /// The management request `path` makes, or `None` for a Customer API path.
    pub fn parse(path: &str) -> Option<Self> {
        let rest = path.strip_prefix(PREFIX)?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let mut segments = rest.split('/');
        let id = segments.next().and_then(|id| id.parse::<u64>().ok());
        let nodes = segments.eq(["api", "nodes"]);
        Some(Self { id, nodes })
    }

    /// Checks the request's Basic credentials against the instance's own user and password;
    /// an instance the fake does not hold accepts nothing.
    pub fn credentials(&self, headers: &HeaderMap, instances: &Instances) -> Credentials {
        let own = self
            .id
            .filter(|&id| instances.contains(id))
            .map(views::instance_credentials);
        Credentials::check_basic(
            headers,
            own.as_ref()
                .map(|own| (own.user.as_str(), own.password.as_str())),
        )
    }
}

/// The normal answer to a management request, once faults are out of the way.
pub(crate) fn answer(
    shared: &Shared,
    target: Target,
    method: &str,
    authorized: bool,
) -> HttpResponse {
    let now = shared.clock.now();
    let broker = target
        .id
        .and_then(|id| shared.lock().instances.broker(id, now));
    // In production an unknown instance is an unknown host; a 404 is the nearest answer.
    let Some(broker) = broker.filter(|_| target.nodes) else {
        return not_found();
    };
    if method != "GET" {
        // cowboy's 405: an `Allow` header and no body.
        return HttpResponse::MethodNotAllowed()
            .insert_header((header::ALLOW, "GET"))
            .finish();
    }
    let lavinmq = broker.instance.backend == LAVINMQ;
    if !authorized {
        return unauthorized(lavinmq);
    }
    if !broker.instance.dedicated {
        return not_management_user();
    }
    HttpResponse::Ok().json(nodes(&broker))
}

/// What every node's `mem_limit` is now: the RabbitMQ watermark of the plan's RAM, or
/// LavinMQ's RAM itself; `None` for a shared plan (no nodes of its own).
pub(crate) fn mem_limit(instance: &InstanceSnapshot) -> Option<u64> {
    if !instance.dedicated {
        return None;
    }
    let ram = ram_bytes(&instance.plan);
    Some(if instance.backend == LAVINMQ {
        ram
    } else {
        // Rounded down, as RabbitMQ does; no overflow below 2^57 bytes of RAM.
        ram * WATERMARK_PERCENT / 100
    })
}

/// `GET /api/nodes`: RabbitMQ reports every node of the cluster, LavinMQ only the node that
/// answers (the first).
fn nodes(broker: &BrokerSnapshot) -> Value {
    let instance = &broker.instance;
    let count = instance.node_count();
    let lavinmq = instance.backend == LAVINMQ;
    let shown = if lavinmq { count.min(1) } else { count };
    let limit = mem_limit(instance).unwrap_or(0);
    let uptime = u64::try_from(broker.uptime.as_millis()).unwrap_or(u64::MAX);
    let nodes = (0..shown)
        .map(|index| {
            let host = views::node_host(&instance.name, index);
            let running = broker.figures.running || index + 1 < count;
            let node = Node {
                figures: &broker.figures,
                limit,
                uptime,
            };
            match (lavinmq, running) {
                (false, true) => node.rabbitmq(&host),
                // RabbitMQ's answer for a node that does not run: no figures at all.
                (false, false) => {
                    json!({"name": format!("rabbit@{host}"), "type": "disc", "running": false})
                }
                (true, true) => node.lavinmq(&host),
                // Only a one-node LavinMQ cluster shows its stopped node. A stopped LavinMQ
                // cannot answer at all; this keeps the setter visible (plausible, not a fact).
                (true, false) => json!({"name": host, "running": false}),
            }
        })
        .collect();
    Value::Array(nodes)
}

/// The figures of one running node.
struct Node<'a> {
    figures: &'a Figures,
    limit: u64,
    uptime: u64,
}

impl Node<'_> {
    fn disk_free(&self) -> u64 {
        if self.figures.disk_alarm {
            DISK_FREE_IN_ALARM
        } else {
            DISK_FREE
        }
    }

    /// RabbitMQ's node object, reduced to the fields the API notes name (a real one has ~90).
    fn rabbitmq(&self, host: &str) -> Value {
        let figures = self.figures;
        json!({
            "name": format!("rabbit@{host}"),
            "type": "disc",
            "running": true,
            "mem_used": figures.mem_used,
            "mem_limit": self.limit,
            "mem_alarm": figures.mem_alarm || figures.mem_used > self.limit,
            "disk_free": self.disk_free(),
            "disk_free_limit": DISK_FREE_LIMIT,
            "disk_free_alarm": figures.disk_alarm,
            "fd_used": FD_USED,
            "fd_total": FD_TOTAL,
            "sockets_used": SOCKETS_USED,
            "sockets_total": SOCKETS_TOTAL,
            "proc_used": PROC_USED,
            "proc_total": PROC_TOTAL,
            "run_queue": 1,
            "processors": PROCESSORS,
            "uptime": self.uptime,
        })
    }

    /// LavinMQ's node object as its source builds it for an administrator: the host name
    /// as `name`, the RAM as `mem_limit`, no `type`, no alarms (so no `mem_alarm` and no
    /// `disk_free_alarm`: a disk alarm shows only as little `disk_free`), `run_queue` 0.
    fn lavinmq(&self, host: &str) -> Value {
        json!({
            "name": host,
            "running": true,
            "uptime": self.uptime,
            "mem_used": self.figures.mem_used,
            "mem_limit": self.limit,
            "disk_total": DISK_TOTAL,
            "disk_free": self.disk_free(),
            "fd_used": FD_USED,
            "fd_total": FD_TOTAL,
            "sockets_used": SOCKETS_USED,
            "proc_used": PROC_USED,
            "run_queue": 0,
            "processors": PROCESSORS,
        })
    }
}

/// RabbitMQ's 404 for an unknown path (and the fake's for an unknown instance).
fn not_found() -> HttpResponse {
    HttpResponse::NotFound().json(json!({"error": "Object Not Found", "reason": "Not Found"}))
}

/// A failed login: RabbitMQ's JSON and realm, or LavinMQ's bare 401 (its source sends no
/// body and `WWW-Authenticate: Basic`).
fn unauthorized(lavinmq: bool) -> HttpResponse {
    if lavinmq {
        return HttpResponse::Unauthorized()
            .insert_header((header::WWW_AUTHENTICATE, "Basic"))
            .finish();
    }
    HttpResponse::Unauthorized()
        .insert_header((
            header::WWW_AUTHENTICATE,
            r#"Basic realm="RabbitMQ Management""#,
        ))
        .json(json!({"error": "not_authorized", "reason": "Login failed"}))
}

/// A shared plan's user logs in but may not read the nodes of a server it shares.
///
/// Plausible, not a fact: nobody has recorded what a shared plan's management API says to
/// `/api/nodes`. RabbitMQ answers this shape to a user without a management tag.
fn not_management_user() -> HttpResponse {
    HttpResponse::build(StatusCode::FORBIDDEN)
        .json(json!({"error": "not_authorised", "reason": "Not management user"}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::RABBITMQ;

    const GIB: u64 = 1 << 30;

    fn snapshot(plan: &str, backend: &str, nodes: usize) -> InstanceSnapshot {
        InstanceSnapshot {
            id: 7,
            name: "My App".to_owned(),
            providerid: uuid::Uuid::nil(),
            plan: plan.to_owned(),
            backend: backend.to_owned(),
            dedicated: nodes > 0,
            ready: true,
            configured: vec![true; nodes],
            changing_to: None,
            additional_disk_size: vec![0; nodes],
            disk_resizing_to: None,
        }
    }

    fn broker(instance: InstanceSnapshot, figures: Figures) -> BrokerSnapshot {
        BrokerSnapshot {
            instance,
            figures,
            uptime: std::time::Duration::from_secs(3600),
        }
    }

    #[test]
    fn paths() {
        let nodes = |id| Some(Target { id, nodes: true });
        assert_eq!(Target::parse("/management/7/api/nodes"), nodes(Some(7)));
        assert_eq!(Target::parse("/management/7/api/nodes/"), nodes(Some(7)));
        assert_eq!(Target::parse("/management/x/api/nodes"), nodes(None));
        for other in [
            "/management/7/api",
            "/management/7/api/overview",
            "/management/7/api/nodes/rabbit@a-01",
            "/management/7",
            "/management/",
        ] {
            assert_eq!(
                Target::parse(other).map(|t| t.nodes),
                Some(false),
                "{other}"
            );
        }
        assert_eq!(Target::parse("/api/nodes"), None);
        assert_eq!(Target::parse("/managementx/7/api/nodes"), None);
    }

    #[test]
    fn mem_limit_is_the_watermark_of_the_plans_ram() {
        let limit = |plan, backend| mem_limit(&snapshot(plan, backend, 1));
        // 0.81 of 2 GiB, rounded down as RabbitMQ does.
        assert_eq!(limit("bunny-1", RABBITMQ), Some(1_739_461_754));
        assert_eq!(limit("hare-3", RABBITMQ), Some(4 * GIB * 81 / 100));
        assert_eq!(limit("rhino-5", RABBITMQ), Some(256 * GIB * 81 / 100));
        assert_eq!(limit("fox-1", LAVINMQ), Some(4 * GIB));
        assert_eq!(mem_limit(&snapshot("lemur", RABBITMQ, 0)), None);
    }

    #[test]
    fn rabbitmq_reports_every_node_and_a_stopped_one_bare() {
        let mut figures = Figures::new(DEFAULT_MEM_USED);
        figures.running = false;
        let body = nodes(&broker(snapshot("hare-3", RABBITMQ, 3), figures));
        let list = body.as_array().unwrap();
        assert_eq!(list.len(), 3);
        assert_eq!(list[0]["name"], json!("rabbit@my-app-01"));
        assert_eq!(list[0]["uptime"], json!(3_600_000));
        assert_eq!(list[1]["running"], json!(true));
        assert_eq!(
            list[2],
            json!({"name": "rabbit@my-app-03", "type": "disc", "running": false})
        );
    }

    #[test]
    fn the_memory_alarm_goes_off_above_the_limit() {
        let alarm = |used| {
            nodes(&broker(
                snapshot("bunny-1", RABBITMQ, 1),
                Figures::new(used),
            ))[0]["mem_alarm"]
                .clone()
        };
        assert_eq!(alarm(1_739_461_754), json!(false));
        assert_eq!(alarm(1_739_461_755), json!(true));
    }

    #[test]
    fn lavinmq_reports_the_answering_node_without_alarms() {
        let body = nodes(&broker(
            snapshot("fox-3", LAVINMQ, 3),
            Figures::new(DEFAULT_MEM_USED),
        ));
        let list = body.as_array().unwrap();
        assert_eq!(list.len(), 1);
        let node = &list[0];
        assert_eq!(node["name"], json!("my-app-01"));
        assert_eq!(node["mem_limit"], json!(4 * GIB));
        assert_eq!(node["run_queue"], json!(0));
        assert!(node.get("mem_alarm").is_none() && node.get("disk_free_alarm").is_none());
    }
}
