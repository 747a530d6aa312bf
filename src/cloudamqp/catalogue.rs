//! The plan catalogue: which plans exist, what they cost, which moves CloudAMQP allows.
//!
//! Names come from `GET /api/plans` at run time, never from a list compiled in: the
//! catalogue differs between environments and changes over time.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;

use super::client::CloudAmqpClient;
use super::error::ApiError;
use super::model::Plan;
use crate::clock::add;

/// How long a fetched catalogue is used before it is fetched again.
pub const CATALOGUE_TTL: Duration = Duration::from_secs(3600);

/// Why CloudAMQP would refuse a plan change (cloudamqp-api.md, "Allowed moves").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoveRefusal {
    #[error("plan {plan:?} is not in the CloudAMQP catalogue")]
    UnknownPlan { plan: String },
    #[error("the instance is already on plan {plan:?}")]
    SamePlan { plan: String },
    #[error(
        "{from:?} ({from_backend}) -> {to:?} ({to_backend}) changes the backend, which CloudAMQP cannot do in place"
    )]
    BackendChange {
        from: String,
        to: String,
        from_backend: String,
        to_backend: String,
    },
    #[error(
        "{from:?} -> {to:?} moves a dedicated plan to a shared one, which CloudAMQP refuses; create a new instance instead"
    )]
    DedicatedToShared { from: String, to: String },
    #[error(
        "{from:?} -> {to:?} moves a RabbitMQ shared plan to a dedicated one, which CloudAMQP cannot do in place"
    )]
    SharedToDedicated { from: String, to: String },
}

/// The broker plans of one account, by name.
#[derive(Debug, Clone, Default)]
pub struct Catalogue {
    plans: Vec<Plan>,
    by_name: HashMap<String, usize>,
}

impl Catalogue {
    /// A catalogue of `plans` (the first entry wins if a name repeats).
    pub fn new(plans: Vec<Plan>) -> Self {
        let mut by_name = HashMap::new();
        for (index, plan) in plans.iter().enumerate() {
            by_name.entry(plan.name.clone()).or_insert(index);
        }
        Self { plans, by_name }
    }

    /// Every plan, in API order (cheapest first).
    pub fn plans(&self) -> &[Plan] {
        &self.plans
    }

    pub fn get(&self, name: &str) -> Option<&Plan> {
        self.by_name.get(name).map(|i| &self.plans[*i])
    }

    pub fn price(&self, name: &str) -> Option<f64> {
        self.get(name).map(|p| p.price)
    }

    /// Whether CloudAMQP changes `from` into `to` in place: dedicated ↔ dedicated within
    /// one backend, shared ↔ shared, and LavinMQ shared → LavinMQ dedicated.
    pub fn move_allowed(&self, from: &str, to: &str) -> Result<(), MoveRefusal> {
        let unknown = |plan: &str| MoveRefusal::UnknownPlan {
            plan: plan.to_owned(),
        };
        let source = self.get(from).ok_or_else(|| unknown(from))?;
        let target = self.get(to).ok_or_else(|| unknown(to))?;
        let (from, to) = (from.to_owned(), to.to_owned());
        if from == to {
            return Err(MoveRefusal::SamePlan { plan: from });
        }
        if !source.backend.eq_ignore_ascii_case(&target.backend) {
            return Err(MoveRefusal::BackendChange {
                from,
                to,
                from_backend: source.backend.clone(),
                to_backend: target.backend.clone(),
            });
        }
        match (source.shared, target.shared) {
            (false, true) => Err(MoveRefusal::DedicatedToShared { from, to }),
            (true, false) if !source.backend.eq_ignore_ascii_case("lavinmq") => {
                Err(MoveRefusal::SharedToDedicated { from, to })
            }
            _ => Ok(()),
        }
    }

    /// Warnings about ladder `name`: it mixes shared and dedicated plans, mixes backends,
    /// or is not strictly ascending by price. Plans not in the catalogue are skipped (they
    /// are errors of their own, see [`Catalogue::unknown_plans`]).
    pub fn lint_ladder(&self, name: &str, plans: &[String]) -> Vec<String> {
        let known: Vec<&Plan> = plans.iter().filter_map(|p| self.get(p)).collect();
        let mut warnings = Vec::new();
        let shared = known.iter().find(|p| p.shared);
        let dedicated = known.iter().find(|p| !p.shared);
        if let (Some(shared), Some(dedicated)) = (shared, dedicated) {
            warnings.push(format!(
                "ladder {name:?} mixes shared ({}) and dedicated ({}) plans; CloudAMQP cannot move between them in place",
                shared.name, dedicated.name
            ));
        }
        let mut backends: Vec<(String, &str)> = Vec::new();
        for plan in &known {
            let backend = plan.backend.to_ascii_lowercase();
            if !backends.iter().any(|(b, _)| *b == backend) {
                backends.push((backend, &plan.name));
            }
        }
        if backends.len() > 1 {
            let list: Vec<String> = backends
                .iter()
                .map(|(backend, plan)| format!("{backend} ({plan})"))
                .collect();
            warnings.push(format!(
                "ladder {name:?} mixes backends: {}; CloudAMQP cannot change the backend in place",
                list.join(", ")
            ));
        }
        for pair in known.windows(2) {
            let (lower, upper) = (pair[0], pair[1]);
            if upper.price <= lower.price {
                warnings.push(format!(
                    "ladder {name:?} is not ascending by price: {} (${}) comes after {} (${})",
                    upper.name,
                    format_price(upper.price),
                    lower.name,
                    format_price(lower.price)
                ));
            }
        }
        warnings
    }

    /// The names among `names` that the catalogue does not know, in order, each once.
    pub fn unknown_plans<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
        let mut unknown: Vec<&str> = Vec::new();
        for name in names {
            if self.get(name).is_none() && !unknown.contains(&name) {
                unknown.push(name);
            }
        }
        unknown
    }

    /// Up to `limit` known plan names closest to `name` (edit distance), the closest first;
    /// only names near enough to be a plausible typo.
    pub fn closest(&self, name: &str, limit: usize) -> Vec<&str> {
        let wanted = name.to_ascii_lowercase();
        let near_enough = (wanted.chars().count() / 2).max(2);
        let mut scored: Vec<(usize, &str)> = self
            .plans
            .iter()
            .map(|p| {
                (
                    edit_distance(&wanted, &p.name.to_ascii_lowercase()),
                    p.name.as_str(),
                )
            })
            .filter(|(distance, _)| *distance <= near_enough)
            .collect();
        // Stable: equal distances keep catalogue (price) order.
        scored.sort_by_key(|(distance, _)| *distance);
        scored.dedup_by_key(|(_, n)| *n);
        scored.into_iter().take(limit).map(|(_, n)| n).collect()
    }
}

/// A price as people read it: `99`, `19.5`.
pub fn format_price(price: f64) -> String {
    if price.fract() == 0.0 {
        format!("{price:.0}")
    } else {
        format!("{price:.2}")
    }
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

/// A catalogue fetched on demand and kept for a TTL. A failed refresh keeps serving the
/// previous catalogue for a while (plans rarely change; an API hiccup must not stop
/// decisions) and tries again after [`FAILED_REFRESH_RETRY`].
#[derive(Debug)]
pub struct CatalogueCache {
    client: CloudAmqpClient,
    ttl: Duration,
    /// The catalogue and when it is due for a refresh.
    state: tokio::sync::Mutex<Option<(Arc<Catalogue>, Timestamp)>>,
}

/// After a failed refresh, how long the previous catalogue is served before trying again.
pub const FAILED_REFRESH_RETRY: Duration = Duration::from_secs(60);

impl CatalogueCache {
    pub fn new(client: CloudAmqpClient, ttl: Duration) -> Self {
        Self {
            client,
            ttl,
            state: tokio::sync::Mutex::new(None),
        }
    }

    /// The catalogue, fetched if there is none yet or it is due.
    pub async fn get(&self) -> Result<Arc<Catalogue>, ApiError> {
        // Held across the fetch: concurrent callers wait for one fetch instead of each
        // making their own.
        let mut state = self.state.lock().await;
        let now = self.client.clock().now();
        if let Some((catalogue, due)) = state.as_ref()
            && now < *due
        {
            return Ok(catalogue.clone());
        }
        match self.client.plans().await {
            Ok(plans) => {
                let catalogue = Arc::new(Catalogue::new(plans));
                let now = self.client.clock().now();
                *state = Some((catalogue.clone(), add(now, self.ttl)));
                Ok(catalogue)
            }
            Err(error) => match state.take() {
                Some((stale, _)) => {
                    tracing::warn!(%error, "cannot refresh the plan catalogue; using the previous one");
                    let now = self.client.clock().now();
                    *state = Some((stale.clone(), add(now, FAILED_REFRESH_RETRY)));
                    Ok(stale)
                }
                None => Err(error),
            },
        }
    }

    /// Forgets the cached catalogue, so the next `get` fetches.
    pub async fn invalidate(&self) {
        *self.state.lock().await = None;
    }
}

impl crate::decide::PlanPrices for Catalogue {
    fn price(&self, plan: &str) -> Option<f64> {
        Catalogue::price(self, plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(edit_distance("bunny-2", "bunny-1"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("hare", "hare-1"), 2);
    }

    #[test]
    fn prices_print_like_people_write_them() {
        assert_eq!(format_price(99.0), "99");
        assert_eq!(format_price(19.5), "19.50");
    }
}
