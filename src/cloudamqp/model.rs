//! The wire types: only the fields the autoscaler reads.
//!
//! CloudAMQP's instance object also carries `url`, `urls` and `apikey`, which are
//! credentials. `urls` and `apikey` are deliberately absent here: serde skips unknown fields,
//! so those values are never deserialised into anything. `url` is read, as a `SecretString`
//! (its `Debug` shows nothing), because its user and password open the instance's management
//! API (a step down needs its figures); it is exposed only to build that request.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize, Serializer};

/// One entry of `GET /api/instances`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct InstanceSummary {
    /// The integer id every API path takes.
    pub id: u64,
    pub name: String,
    pub plan: String,
    /// The instance UUID alarms may carry; kept as text so that an odd value does not make
    /// the whole list unreadable.
    #[serde(default)]
    pub providerid: Option<String>,
}

/// `GET /api/instances/{id}`, reduced to what a decision and change tracking need.
#[derive(Debug, Clone, Deserialize)]
pub struct Instance {
    pub id: u64,
    pub name: String,
    pub plan: String,
    /// The only readiness flag CloudAMQP has (there is no `status`).
    pub ready: bool,
    /// `rabbitmq` or `lavinmq`; empty if the API left it out.
    #[serde(default)]
    pub backend: String,
    /// Present for dedicated plans only.
    #[serde(default)]
    pub nodes: Option<u32>,
    #[serde(default)]
    pub providerid: Option<String>,
    /// `amqps://user:password@host/vhost`: a credential (see the module's note).
    #[serde(default)]
    pub url: Option<secrecy::SecretString>,
}

/// One entry of `GET /api/instances/{id}/nodes`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Node {
    pub name: String,
    /// False while the node is being reconfigured; Terraform waits for all to be true.
    pub configured: bool,
    #[serde(default)]
    pub running: bool,
    /// The node's extra disk in GB (0 or absent: none).
    #[serde(default)]
    pub additional_disk_size: Option<u32>,
}

/// One broker plan of `GET /api/plans`.
///
/// Serialises to exactly `name`, `price`, `backend`, `shared`: the JSON of the `plans`
/// command.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Plan {
    pub name: String,
    /// US dollars per month.
    #[serde(serialize_with = "price_as_written")]
    pub price: f64,
    pub backend: String,
    pub shared: bool,
}

impl Plan {
    /// Whether this is a broker plan (the list also holds `vpc`/`vpn` add-ons).
    pub fn is_broker(&self) -> bool {
        !matches!(self.backend.to_ascii_lowercase().as_str(), "vpc" | "vpn")
    }

    /// The node count the plan name promises: the `-N` suffix (`hare-3` → 3). Legacy
    /// unsuffixed names (`bunny`) and shared plans promise nothing.
    pub fn node_count(name: &str) -> Option<u32> {
        let (_, suffix) = name.rsplit_once('-')?;
        if suffix.is_empty() || !suffix.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        suffix.parse().ok().filter(|n| *n > 0)
    }
}

/// CloudAMQP writes whole-dollar prices as integers; print them the same way (`99`, not
/// `99.0`), so scripts reading our JSON see what the API says.
fn price_as_written<S: Serializer>(price: &f64, serializer: S) -> Result<S::Ok, S::Error> {
    if price.fract() == 0.0 && price.abs() < 1e15 {
        // Exact: whole numbers of this size are represented exactly in an f64.
        #[allow(clippy::cast_possible_truncation)]
        serializer.serialize_i64(*price as i64)
    } else {
        serializer.serialize_f64(*price)
    }
}

/// Decodes a JSON array entry by entry, skipping entries that do not fit `T`.
///
/// A list endpoint answering one odd entry (a new plan kind, an instance without a field)
/// must not make every other entry unusable. Returns the skipped count so the caller can
/// log it; the entries themselves are never logged, they may hold credentials.
pub(crate) fn decode_list<T: DeserializeOwned>(
    body: &[u8],
) -> Result<(Vec<T>, usize), serde_json::Error> {
    let raw: Vec<serde_json::Value> = serde_json::from_slice(body)?;
    let total = raw.len();
    let items: Vec<T> = raw
        .into_iter()
        .filter_map(|value| serde_json::from_value(value).ok())
        .collect();
    let skipped = total - items.len();
    Ok((items, skipped))
}

/// The extra disk of an instance as its nodes show it: the largest any node has (a resize
/// goes node by node; asking for less than a node has would be a shrink). `None` for no
/// nodes.
pub fn extra_disk(nodes: &[Node]) -> Option<u32> {
    nodes
        .iter()
        .map(|node| node.additional_disk_size.unwrap_or(0))
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_count_reads_the_suffix_only() {
        assert_eq!(Plan::node_count("hare-3"), Some(3));
        assert_eq!(Plan::node_count("bunny-1"), Some(1));
        assert_eq!(Plan::node_count("bunny"), None);
        assert_eq!(Plan::node_count("lemur"), None);
        assert_eq!(Plan::node_count("x-"), None);
        assert_eq!(Plan::node_count("x-0"), None);
        assert_eq!(Plan::node_count("x-a1"), None);
    }

    #[test]
    fn credentials_are_not_read_from_the_instance_object() {
        let body = br#"{"id":1,"name":"n","plan":"bunny-1","ready":true,"backend":"rabbitmq",
            "nodes":1,"providerid":"4e683759-5eb9-41b3-8794-26f751de5699",
            "url":"amqps://USER:PASS@host/vhost","urls":{"external":"amqps://U:P@h"},
            "apikey":"instance-secret"}"#;
        let instance: Instance = serde_json::from_slice(body).unwrap();
        let debug = format!("{instance:?}");
        for secret in ["PASS", "instance-secret", "amqps"] {
            assert!(!debug.contains(secret), "{debug}");
        }
    }

    #[test]
    fn plans_serialise_to_exactly_four_fields_with_whole_prices() {
        let plan = Plan {
            name: "bunny-1".into(),
            price: 99.0,
            backend: "rabbitmq".into(),
            shared: false,
        };
        assert_eq!(
            serde_json::to_string(&plan).unwrap(),
            r#"{"name":"bunny-1","price":99,"backend":"rabbitmq","shared":false}"#
        );
    }

    #[test]
    fn lists_skip_entries_that_do_not_fit() {
        let (plans, skipped) = decode_list::<Plan>(
            br#"[{"name":"a","price":1,"backend":"rabbitmq","shared":true},{"name":"b"}]"#,
        )
        .unwrap();
        assert_eq!((plans.len(), skipped), (1, 1));
        assert!(decode_list::<Plan>(b"{}").is_err());
    }
}
