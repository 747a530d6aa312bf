//! `state.retention`: at start and every minute, the store deletes what is older than the
//! retention, in small batches ([`crate::store::Prune`]), keeping what the rules still count
//! (the changes inside the longest `max_changes` window among them).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::clock::SharedClock;
use crate::live_rules::LiveRules;
use crate::store::{Prune, Store};

/// How often retention runs.
pub const EVERY: Duration = Duration::from_secs(60);
/// The most rows one transaction deletes: a few milliseconds of the writer's time.
pub const BATCH: u32 = 500;

/// The batch for `now`: older than `retention` goes, but no change inside `rules`'
/// `max_changes` window.
pub fn prune_at(now: jiff::Timestamp, retention: Duration, rules: &crate::rules::RuleSet) -> Prune {
    let before = crate::clock::sub(now, retention);
    let window = rules
        .limits()
        .max_changes
        .map_or(Duration::ZERO, |max| max.per);
    Prune {
        before,
        keep_changes_since: before.min(crate::clock::sub(now, window)),
        batch: BATCH,
    }
}

/// Runs retention until `stop`.
pub async fn run(
    store: Store,
    retention: Duration,
    rules: Arc<LiveRules>,
    clock: SharedClock,
    stop: CancellationToken,
) {
    loop {
        let prune = prune_at(clock.now(), retention, &rules.snapshot().rules);
        // Replicas: one pruner at a time.
        let pruned = if store.on_duty(crate::store::Duty::Retention) {
            store.prune(prune).await
        } else {
            Ok(crate::store::Pruned::default())
        };
        match pruned {
            Ok(pruned) if pruned.rows > 0 => tracing::info!(
                rows = pruned.rows,
                batches = pruned.batches,
                before = %prune.before,
                "retention: deleted what is older than state.retention"
            ),
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(%error, "retention could not delete old rows; trying again in a minute")
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            () = clock.sleep(EVERY) => {}
        }
    }
}
