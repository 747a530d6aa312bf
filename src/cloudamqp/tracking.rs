//! Following an accepted plan change to its end.
//!
//! A 200 to the PUT only means CloudAMQP started; the cluster reconfigures for up to ~10
//! minutes, and for a while the API may still show the old plan as if nothing happened.
//! So a change is done only when all of these hold at once (cloudamqp-api.md): the
//! instance shows the target plan, it is `ready`, every node is `configured`, and there
//! are as many nodes as the plan's `-N` suffix says.
//!
//! Polling is deliberately patient with errors: production once answered 401 right after a
//! PUT, and a 503 mid-change is no reason to call a change failed. Only a run of errors, a
//! 404, or the instance settling on a third plan ends tracking early.

use std::time::Duration;

use jiff::Timestamp;
use tracing::Instrument;

use super::client::CloudAmqpClient;
use super::error::ApiError;
use super::model::Plan;
use crate::clock::{add, between};
use crate::settings::CloudAmqpSettings;

/// Consecutive failed polls tolerated before a change is declared failed.
pub const MAX_CONSECUTIVE_POLL_ERRORS: u32 = 5;

/// The change being followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanChange {
    pub instance_id: u64,
    pub from_plan: String,
    pub to_plan: String,
    /// When CloudAMQP accepted the PUT. The timeout counts from here, so a restarted
    /// daemon resuming a change keeps the original start.
    pub accepted_at: Timestamp,
}

/// How to poll; usually [`TrackOptions::from_settings`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackOptions {
    pub poll_interval: Duration,
    pub change_timeout: Duration,
    pub max_consecutive_errors: u32,
}

impl TrackOptions {
    pub fn from_settings(settings: &CloudAmqpSettings) -> Self {
        Self {
            poll_interval: settings.poll_interval,
            change_timeout: settings.change_timeout,
            max_consecutive_errors: MAX_CONSECUTIVE_POLL_ERRORS,
        }
    }
}

/// How tracking ended. `at` is the clock's time when that was established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrackOutcome {
    Completed {
        at: Timestamp,
    },
    /// Not done by `accepted_at + change_timeout`: a human must look.
    TimedOut {
        at: Timestamp,
    },
    Failed {
        reason: String,
        at: Timestamp,
    },
}

/// What one poll saw; for logs and `/status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrackEvent {
    /// The API still shows the plan we left (CloudAMQP lags) and the cluster is ready.
    StillOldPlan {
        plan: String,
    },
    /// Something is changing but it is not done yet.
    Reconfiguring {
        plan: String,
        ready: bool,
        configured: usize,
        total: usize,
    },
    Done,
    /// A poll failed; `consecutive` counts the current run of failures.
    PollError {
        error: ApiError,
        consecutive: u32,
    },
}

/// Polls every `poll_interval` until the change is done, has timed out, or failed.
/// `on_event` hears every poll's result.
pub async fn track_change(
    client: &CloudAmqpClient,
    change: &PlanChange,
    options: TrackOptions,
    on_event: impl FnMut(&TrackEvent) + Send,
) -> TrackOutcome {
    let span = tracing::info_span!(
        "track_change",
        instance = change.instance_id,
        from = %change.from_plan,
        to = %change.to_plan
    );
    track(client, change, options, on_event)
        .instrument(span)
        .await
}

async fn track(
    client: &CloudAmqpClient,
    change: &PlanChange,
    options: TrackOptions,
    mut on_event: impl FnMut(&TrackEvent) + Send,
) -> TrackOutcome {
    let clock = client.clock().clone();
    let deadline = add(change.accepted_at, options.change_timeout);
    let mut consecutive_errors = 0;
    loop {
        // Sleep first: right after the PUT there is nothing to see yet. The last sleep is
        // cut short so that the final poll happens exactly at the deadline.
        let now = clock.now();
        if now < deadline {
            clock
                .sleep(options.poll_interval.min(between(now, deadline)))
                .await;
        }
        let event = match poll(client, change, deadline).await {
            Ok(Seen::Done) => {
                tracing::info!("plan change completed");
                on_event(&TrackEvent::Done);
                return TrackOutcome::Completed { at: clock.now() };
            }
            Ok(Seen::Progress(event)) => {
                consecutive_errors = 0;
                event
            }
            Ok(Seen::OtherPlan(plan)) => {
                let reason = format!(
                    "the instance settled on plan {plan:?}, neither {:?} nor {:?}: someone else changed it",
                    change.from_plan, change.to_plan
                );
                tracing::warn!(%reason, "plan change failed");
                return TrackOutcome::Failed {
                    reason,
                    at: clock.now(),
                };
            }
            Err(error @ (ApiError::NotFound { .. } | ApiError::MissingApiKey)) => {
                let reason = format!("the instance can no longer be read: {error}");
                tracing::warn!(%reason, "plan change failed");
                return TrackOutcome::Failed {
                    reason,
                    at: clock.now(),
                };
            }
            Err(error) => {
                consecutive_errors += 1;
                tracing::warn!(%error, consecutive_errors, "polling the plan change failed");
                if consecutive_errors >= options.max_consecutive_errors {
                    let event = TrackEvent::PollError {
                        error: error.clone(),
                        consecutive: consecutive_errors,
                    };
                    on_event(&event);
                    return TrackOutcome::Failed {
                        reason: format!(
                            "{consecutive_errors} polls in a row failed, the last with: {error}"
                        ),
                        at: clock.now(),
                    };
                }
                TrackEvent::PollError {
                    error,
                    consecutive: consecutive_errors,
                }
            }
        };
        tracing::debug!(?event, "plan change not done yet");
        on_event(&event);
        let now = clock.now();
        if now >= deadline {
            tracing::warn!("plan change timed out");
            return TrackOutcome::TimedOut { at: now };
        }
    }
}

enum Seen {
    Done,
    Progress(TrackEvent),
    OtherPlan(String),
}

/// One look at the instance; reads its nodes only once the plan and readiness look done,
/// so a lagging change costs one call per poll. Failed calls are retried only until
/// `deadline` (each call still makes one attempt), so a change is declared timed out at
/// `change_timeout`, not a whole `retry_deadline` later.
async fn poll(
    client: &CloudAmqpClient,
    change: &PlanChange,
    deadline: Timestamp,
) -> Result<Seen, ApiError> {
    let left = || between(client.clock().now(), deadline);
    let instance = client.instance_within(change.instance_id, left()).await?;
    if instance.plan != change.to_plan {
        if instance.plan == change.from_plan {
            return Ok(Seen::Progress(if instance.ready {
                TrackEvent::StillOldPlan {
                    plan: instance.plan,
                }
            } else {
                TrackEvent::Reconfiguring {
                    plan: instance.plan,
                    ready: false,
                    configured: 0,
                    total: instance.nodes.unwrap_or(0) as usize,
                }
            }));
        }
        if instance.ready {
            return Ok(Seen::OtherPlan(instance.plan));
        }
        // A third plan while not ready may be a passing state; look again.
        return Ok(Seen::Progress(TrackEvent::Reconfiguring {
            plan: instance.plan,
            ready: false,
            configured: 0,
            total: 0,
        }));
    }
    let nodes = client.nodes_within(change.instance_id, left()).await?;
    let configured = nodes.iter().filter(|n| n.configured).count();
    let count_ok = Plan::node_count(&change.to_plan).is_none_or(|n| nodes.len() == n as usize);
    if instance.ready && configured == nodes.len() && count_ok {
        return Ok(Seen::Done);
    }
    Ok(Seen::Progress(TrackEvent::Reconfiguring {
        plan: instance.plan,
        ready: instance.ready,
        configured,
        total: nodes.len(),
    }))
}
