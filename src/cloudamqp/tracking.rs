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

/// An accepted disk resize being followed: done when every node is `configured` with
/// `additional_disk_size` = `to_gb`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskChange {
    pub instance_id: u64,
    pub from_gb: u32,
    pub to_gb: u32,
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
    track(
        client,
        change.accepted_at,
        options,
        |deadline| poll(client, change, deadline),
        on_event,
    )
    .instrument(span)
    .await
}

/// [`track_change`] for a disk resize: polls `GET /instances/{id}/nodes` until every node
/// is `configured` with the new size, with the same patience, timeout and events (the
/// `plan` of an event is the size in GB).
pub async fn track_disk_change(
    client: &CloudAmqpClient,
    change: &DiskChange,
    options: TrackOptions,
    on_event: impl FnMut(&TrackEvent) + Send,
) -> TrackOutcome {
    let span = tracing::info_span!(
        "track_disk_change",
        instance = change.instance_id,
        from_gb = change.from_gb,
        to_gb = change.to_gb
    );
    track(
        client,
        change.accepted_at,
        options,
        |deadline| poll_disk(client, change, deadline),
        on_event,
    )
    .instrument(span)
    .await
}

async fn track<F: Future<Output = Result<Seen, ApiError>>>(
    client: &CloudAmqpClient,
    accepted_at: Timestamp,
    options: TrackOptions,
    poll: impl Fn(Timestamp) -> F,
    mut on_event: impl FnMut(&TrackEvent) + Send,
) -> TrackOutcome {
    let clock = client.clock().clone();
    let deadline = add(accepted_at, options.change_timeout);
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
        let event = match poll(deadline).await {
            Ok(Seen::Done) => {
                tracing::info!("change completed");
                on_event(&TrackEvent::Done);
                return TrackOutcome::Completed { at: clock.now() };
            }
            Ok(Seen::Progress(event)) => {
                consecutive_errors = 0;
                event
            }
            Ok(Seen::Other(reason)) => {
                tracing::warn!(%reason, "change failed");
                return TrackOutcome::Failed {
                    reason,
                    at: clock.now(),
                };
            }
            Err(error @ (ApiError::NotFound { .. } | ApiError::MissingApiKey)) => {
                let reason = format!("the instance can no longer be read: {error}");
                tracing::warn!(%reason, "change failed");
                return TrackOutcome::Failed {
                    reason,
                    at: clock.now(),
                };
            }
            Err(error) => {
                consecutive_errors += 1;
                tracing::warn!(%error, consecutive_errors, "polling the change failed");
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
        tracing::debug!(?event, "change not done yet");
        on_event(&event);
        let now = clock.now();
        if now >= deadline {
            tracing::warn!("change timed out");
            return TrackOutcome::TimedOut { at: now };
        }
    }
}

enum Seen {
    Done,
    Progress(TrackEvent),
    /// The instance settled somewhere neither the change left nor the one it went to: why.
    Other(String),
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
            return Ok(Seen::Other(format!(
                "the instance settled on plan {:?}, neither {:?} nor {:?}: someone else changed it",
                instance.plan, change.from_plan, change.to_plan
            )));
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

/// One look at the nodes of an instance growing its extra disk. Nodes are resized one by
/// one: a mix of the old and the new size is progress; every node configured on the new
/// size is done; every node configured on one other size (or shrunk) is someone else's doing.
async fn poll_disk(
    client: &CloudAmqpClient,
    change: &DiskChange,
    deadline: Timestamp,
) -> Result<Seen, ApiError> {
    let left = between(client.clock().now(), deadline);
    let nodes = client.nodes_within(change.instance_id, left).await?;
    let size = |node: &super::model::Node| node.additional_disk_size.unwrap_or(0);
    let configured = nodes.iter().filter(|n| n.configured).count();
    let on_target = nodes.iter().filter(|n| size(n) == change.to_gb).count();
    let progress = |ready| {
        Seen::Progress(TrackEvent::Reconfiguring {
            plan: format!("{} GB", change.to_gb),
            ready,
            configured,
            total: nodes.len(),
        })
    };
    if nodes.is_empty() {
        return Ok(progress(false));
    }
    if configured == nodes.len() {
        if on_target == nodes.len() {
            return Ok(Seen::Done);
        }
        if nodes.iter().all(|n| size(n) == change.from_gb) {
            return Ok(Seen::Progress(TrackEvent::StillOldPlan {
                plan: format!("{} GB", change.from_gb),
            }));
        }
        if let Some(other) = nodes
            .iter()
            .map(size)
            .find(|&gb| gb != change.from_gb && gb != change.to_gb)
        {
            return Ok(Seen::Other(format!(
                "a node settled on an extra disk of {other} GB, neither {} nor {} GB: someone else changed it",
                change.from_gb, change.to_gb
            )));
        }
    }
    Ok(progress(configured == nodes.len()))
}
