//! The JSON shapes production answers with, rendered from an [`InstanceSnapshot`].
//!
//! The full instance object carries credentials (`url`, `urls`, `apikey`) exactly where
//! production does. Their fake values all contain [`SECRET_MARKER`] so a test can search
//! logs, stored state and error messages for it and prove nothing leaked. The user and
//! password of `url` come from [`instance_credentials`], which the management API's login
//! check uses too.

use serde_json::{Value, json};

use super::catalogue::LAVINMQ;
use super::state::InstanceSnapshot;

/// Every credential value the fake hands out contains this text.
pub const SECRET_MARKER: &str = "fake-secret-";

const REGION: &str = "amazon-web-services::us-east-1";
const ZONES: &[&str] = &["use1-az1", "use1-az2", "use1-az4"];

/// An entry of `GET /api/instances`: no credentials, no readiness.
pub(crate) fn list_entry(instance: &InstanceSnapshot) -> Value {
    json!({
        "id": instance.id,
        "name": instance.name,
        "plan": instance.plan,
        "region": REGION,
        "tags": ["fake"],
        "providerid": instance.providerid,
        "vpc_id": null,
    })
}

/// The user and password of an instance's `url`, which also open its management API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InstanceCredentials {
    pub user: String,
    pub password: String,
}

/// The one place an instance's own credentials are made: the `url` of the instance view
/// and the management API's login check both use this.
pub(crate) fn instance_credentials(id: u64) -> InstanceCredentials {
    InstanceCredentials {
        user: format!("fake-user-{id}"),
        password: format!("{SECRET_MARKER}password-{id}"),
    }
}

/// `GET /api/instances/{id}`. `nodes` only for dedicated plans; no `status` field.
pub(crate) fn full(instance: &InstanceSnapshot) -> Value {
    let host = host(instance);
    let InstanceCredentials { user, password } = instance_credentials(instance.id);
    let url = |host: &str| format!("amqps://{user}:{password}@{host}/{user}");
    let internal_host = host.replacen('.', ".in.", 1);
    let mut object = json!({
        "id": instance.id,
        "name": instance.name,
        "plan": instance.plan,
        "region": REGION,
        "tags": ["fake"],
        "providerid": instance.providerid,
        "vpc_id": null,
        "url": url(&host),
        "urls": {"external": url(&host), "internal": url(&internal_host)},
        "apikey": format!("{SECRET_MARKER}apikey-{}", instance.id),
        "ready": instance.ready,
        "backend": instance.backend,
        "hostname_external": host,
        "hostname_internal": internal_host,
    });
    if let Some(fields) = object.as_object_mut() {
        let version_field = if instance.backend == LAVINMQ {
            "lavinmq_version"
        } else {
            "rmq_version"
        };
        fields.insert(version_field.to_owned(), json!(version(instance)));
        if instance.dedicated {
            fields.insert("nodes".to_owned(), json!(instance.node_count()));
        }
    }
    object
}

/// `GET /api/instances/{id}/nodes`: one entry per node (none for shared plans).
/// `last_running: false` shows the last node not running, as the management API does
/// (`FakeCloudAmqp::set_running`).
pub(crate) fn nodes(instance: &InstanceSnapshot, last_running: bool) -> Value {
    let count = instance.node_count();
    let nodes: Vec<Value> = instance
        .configured
        .iter()
        .enumerate()
        .map(|(index, &configured)| {
            let name = node_host(&instance.name, index);
            json!({
                "name": name,
                "hostname": format!("{name}.{}", domain(instance)),
                "configured": configured,
                "running": last_running || index + 1 < count,
                "rabbitmq_version": version(instance),
                "erlang_version": "26.2.5",
                "disk_size": 10,
                "additional_disk_size": instance.additional_disk_size.get(index).copied().unwrap_or(0),
                "availability_zone": ZONES[index % ZONES.len()],
            })
        })
        .collect();
    Value::Array(nodes)
}

/// The short host name of node `index` (from 0): `{name as a DNS label}-01`, `-02`, …; the
/// Customer API's node names and the management API's node names both derive from it.
pub(crate) fn node_host(instance_name: &str, index: usize) -> String {
    format!("{}-{:02}", slug(instance_name), index + 1)
}

fn version(instance: &InstanceSnapshot) -> &'static str {
    if instance.backend == LAVINMQ {
        "2.4.2"
    } else {
        "4.1.4"
    }
}

fn domain(instance: &InstanceSnapshot) -> &'static str {
    if instance.backend == LAVINMQ {
        "lmq.cloudamqp.com"
    } else {
        "rmq.cloudamqp.com"
    }
}

fn host(instance: &InstanceSnapshot) -> String {
    format!("{}.{}", slug(&instance.name), domain(instance))
}

/// The instance name as a DNS label: lowercase letters, digits and dashes.
fn slug(name: &str) -> String {
    let slug: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    if slug.is_empty() {
        "instance".to_owned()
    } else {
        slug
    }
}
