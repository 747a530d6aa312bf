//! The plan catalogue the fake serves on `GET /api/plans`, and what a plan name means.
//!
//! The RabbitMQ dedicated prices are production's (Nov 2025). LavinMQ dedicated prices and
//! the shared LavinMQ prices are not documented anywhere we could check: they are plausible
//! placeholders, kept in the same order of magnitude so "cheapest plan that fits" logic sees
//! a realistic spread. Two `vpc`/`vpn` entries are included on purpose: production lists
//! them next to the broker plans and a client must filter them out.

use serde::Serialize;

/// The RabbitMQ broker backend, as `GET /api/plans` and `GET /api/instances/{id}` name it.
pub const RABBITMQ: &str = "rabbitmq";
/// The LavinMQ broker backend.
pub const LAVINMQ: &str = "lavinmq";

/// One entry of `GET /api/plans`, serialised exactly as production does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FakePlan {
    /// The plan name a `PUT /api/instances/{id}` takes, e.g. `hare-3`.
    pub name: String,
    /// Monthly price in USD.
    pub price: u32,
    /// `rabbitmq`, `lavinmq`, or a non-broker backend such as `vpc`.
    pub backend: String,
    /// Shared plans run on shared servers and have no `nodes`.
    pub shared: bool,
}

impl FakePlan {
    /// A catalogue entry.
    pub fn new(name: &str, price: u32, backend: &str, shared: bool) -> Self {
        Self {
            name: name.to_owned(),
            price,
            backend: backend.to_owned(),
            shared,
        }
    }

    /// Whether an instance can run on this plan (`vpc`/`vpn` entries are add-ons, not plans).
    pub fn is_broker(&self) -> bool {
        self.backend == RABBITMQ || self.backend == LAVINMQ
    }
}

/// RabbitMQ dedicated families with their `-1` price; `-3` is three times it and `-5` five.
const RABBITMQ_FAMILIES: &[(&str, u32, &[u32])] = &[
    ("squirrel", 50, &[1]),
    ("bunny", 99, &[1, 3]),
    ("hare", 199, &[1, 3]),
    ("rabbit", 299, &[1, 3, 5]),
    ("panda", 499, &[1, 3, 5]),
    ("ape", 999, &[1, 3, 5]),
    ("hippo", 1999, &[1, 3, 5]),
    ("lion", 3499, &[1, 3, 5]),
    ("rhino", 5499, &[1, 3, 5]),
];

/// LavinMQ dedicated families (prices are placeholders, see the module comment).
const LAVINMQ_FAMILIES: &[(&str, u32, &[u32])] = &[
    ("puffin", 39, &[1, 3]),
    ("penguin", 79, &[1, 3]),
    ("fox", 149, &[1, 3]),
    ("lynx", 249, &[1, 3]),
    ("leopard", 449, &[1, 3]),
    ("wolverine", 899, &[1, 3]),
    ("reindeer", 1799, &[1, 3]),
    ("bear", 3299, &[1, 3]),
    ("orca", 5199, &[1, 3]),
];

const RABBITMQ_SHARED: &[(&str, u32)] = &[("lemur", 0), ("tiger", 19)];
const LAVINMQ_SHARED: &[(&str, u32)] = &[("lemming", 0), ("ermine", 19)];

/// The production catalogue, cheapest first (ties by name, so the order is deterministic).
pub fn production_plans() -> Vec<FakePlan> {
    let mut plans = Vec::new();
    for (backend, families) in [(RABBITMQ, RABBITMQ_FAMILIES), (LAVINMQ, LAVINMQ_FAMILIES)] {
        for &(family, price, sizes) in families {
            for &nodes in sizes {
                plans.push(FakePlan::new(
                    &format!("{family}-{nodes}"),
                    price * nodes,
                    backend,
                    false,
                ));
            }
        }
    }
    for (backend, shared) in [(RABBITMQ, RABBITMQ_SHARED), (LAVINMQ, LAVINMQ_SHARED)] {
        for &(name, price) in shared {
            plans.push(FakePlan::new(name, price, backend, true));
        }
    }
    plans.push(FakePlan::new("vpc", 0, "vpc", false));
    plans.push(FakePlan::new("vpn", 49, "vpn", false));
    sort_by_price(&mut plans);
    plans
}

/// Sorts the way `GET /api/plans` answers: by price, then by name.
pub(crate) fn sort_by_price(plans: &mut [FakePlan]) {
    plans.sort_by(|a, b| a.price.cmp(&b.price).then_with(|| a.name.cmp(&b.name)));
}

/// What the fake needs to know about a plan to apply the move rules and size the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PlanKind {
    pub backend: String,
    pub shared: bool,
    /// The `-N` suffix; `None` for shared plans and legacy unsuffixed names.
    pub suffix_nodes: Option<u32>,
}

impl PlanKind {
    /// Node count once a change to this plan is done: shared plans have none, suffixed
    /// plans have their suffix, and legacy unsuffixed plans keep the count they had.
    pub fn nodes_after(&self, previous: u32) -> u32 {
        if self.shared {
            0
        } else {
            self.suffix_nodes.unwrap_or(previous.max(1))
        }
    }
}

/// The node count in a plan name's `-N` suffix (`hare-3` → 3), if any.
pub(crate) fn suffix_nodes(name: &str) -> Option<u32> {
    let (_, suffix) = name.rsplit_once('-')?;
    suffix.parse().ok().filter(|&n| n > 0)
}

/// A plan a `PUT` may move to: only broker plans of the catalogue.
pub(crate) fn target_kind(plans: &[FakePlan], name: &str) -> Option<PlanKind> {
    plans
        .iter()
        .find(|plan| plan.name == name && plan.is_broker())
        .map(|plan| PlanKind {
            backend: plan.backend.clone(),
            shared: plan.shared,
            suffix_nodes: if plan.shared {
                None
            } else {
                suffix_nodes(name)
            },
        })
}

/// What an instance's current plan is, even when the catalogue no longer lists it.
///
/// Old instances still run legacy names (`bunny`, `rabbit`) that `GET /api/plans` does not
/// show; they are recognised by family. A name nobody knows is taken as RabbitMQ dedicated,
/// the commonest case, so a test that seeds an odd name still gets a working instance.
pub(crate) fn current_kind(plans: &[FakePlan], name: &str) -> PlanKind {
    if let Some(kind) = target_kind(plans, name) {
        return kind;
    }
    let family = family(name);
    let listed = |families: &[(&str, u32, &[u32])]| families.iter().any(|f| f.0 == family);
    let shared_in = |names: &[(&str, u32)]| names.iter().any(|s| s.0 == family);
    let (backend, shared) = if shared_in(RABBITMQ_SHARED) {
        (RABBITMQ, true)
    } else if shared_in(LAVINMQ_SHARED) {
        (LAVINMQ, true)
    } else if listed(LAVINMQ_FAMILIES) {
        (LAVINMQ, false)
    } else {
        (RABBITMQ, false)
    };
    PlanKind {
        backend: backend.to_owned(),
        shared,
        suffix_nodes: if shared { None } else { suffix_nodes(name) },
    }
}

/// A plan name without its `-N` suffix (`hare-3` → `hare`; `bunny` stays `bunny`).
fn family(name: &str) -> &str {
    match name.rsplit_once('-') {
        Some((family, suffix)) if suffix.parse::<u32>().is_ok() => family,
        _ => name,
    }
}

const GIB: u64 = 1 << 30;

/// RAM per node in GiB, by dedicated family.
///
/// CloudAMQP publishes no RAM, CPU or disk figures per plan (its API has none, and a plan's
/// capacity can only be learned by reading `mem_limit` on an instance running it): these
/// are plausible figures, not facts. What matters to the daemon is that a bigger family has
/// more memory and that the figure changes with the plan.
const RAM_GIB: &[(&str, u64)] = &[
    ("squirrel", 1),
    ("bunny", 2),
    ("hare", 4),
    ("rabbit", 8),
    ("panda", 16),
    ("ape", 32),
    ("hippo", 64),
    ("lion", 128),
    ("rhino", 256),
    ("puffin", 1),
    ("penguin", 2),
    ("fox", 4),
    ("lynx", 8),
    ("leopard", 16),
    ("wolverine", 32),
    ("reindeer", 64),
    ("bear", 128),
    ("orca", 256),
];

/// The RAM of one node of a plan, in bytes, from [`RAM_GIB`] (plausible, not facts).
/// Legacy unsuffixed names (`rabbit`) have their family's figure. A name the table does
/// not know is sized like the smallest family (1 GiB), so a test that seeds an odd name
/// still gets a working management API, as [`current_kind`] gives it a working instance.
pub(crate) fn ram_bytes(plan: &str) -> u64 {
    let family = family(plan);
    RAM_GIB
        .iter()
        .find(|(name, _)| *name == family)
        .map_or(GIB, |&(_, gib)| gib * GIB)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_matches_production_prices_and_is_sorted() {
        let plans = production_plans();
        let price = |name: &str| plans.iter().find(|p| p.name == name).map(|p| p.price);
        assert_eq!(price("squirrel-1"), Some(50));
        assert_eq!(price("bunny-3"), Some(297));
        assert_eq!(price("rabbit-5"), Some(1495));
        assert_eq!(price("rhino-5"), Some(27495));
        assert_eq!(price("bunny-2"), None);
        assert!(plans.windows(2).all(|w| w[0].price <= w[1].price));
        assert!(plans.iter().any(|p| !p.is_broker()));
    }

    #[test]
    fn kinds_from_names() {
        let plans = production_plans();
        assert_eq!(suffix_nodes("hare-3"), Some(3));
        assert_eq!(suffix_nodes("bunny"), None);
        assert!(target_kind(&plans, "vpc").is_none());
        assert!(target_kind(&plans, "bunny").is_none());
        let legacy = current_kind(&plans, "rabbit");
        assert_eq!((legacy.backend.as_str(), legacy.shared), (RABBITMQ, false));
        assert_eq!(legacy.nodes_after(3), 3);
        assert!(current_kind(&plans, "lemming").shared);
        assert_eq!(current_kind(&plans, "orca-3").backend, LAVINMQ);
    }

    #[test]
    fn ram_by_family_legacy_names_included() {
        assert_eq!(ram_bytes("squirrel-1"), GIB);
        assert_eq!(ram_bytes("bunny-3"), 2 * GIB);
        assert_eq!(ram_bytes("bunny"), 2 * GIB);
        assert_eq!(ram_bytes("rabbit"), 8 * GIB);
        assert_eq!(ram_bytes("rhino-5"), 256 * GIB);
        assert_eq!(ram_bytes("fox-1"), 4 * GIB);
        assert_eq!(ram_bytes("orca-3"), 256 * GIB);
        assert_eq!(ram_bytes("no-such-family-1"), GIB);
        // Every dedicated family of the catalogue has a figure.
        for (family, _, _) in RABBITMQ_FAMILIES.iter().chain(LAVINMQ_FAMILIES) {
            assert!(RAM_GIB.iter().any(|(name, _)| name == family), "{family}");
        }
    }
}
