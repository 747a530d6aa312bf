//! Delivery: one sender task per sink, one request in flight each, never in the way of
//! alarms or decisions (they only write the outbox; this reads what the store hands out).
//!
//! Per sink, one instance's events go out in the order they happened: an event waits while
//! an earlier one of the same instance is still pending (retrying), while other instances'
//! events go by. A failed attempt is retried with backoff and jitter, honouring
//! `Retry-After`, until a day after the event; a refusal (a 4xx other than 408 and 429) is
//! not retried. Every outcome is written to the store; a kill -9 loses nothing (pending
//! rows are handed out again at the next start: at least once).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::event::Event;
use super::send::{GIVE_UP_AFTER, Outcome, backoff, send};
use super::sink::Sink;
use crate::clock::SharedClock;
use crate::metrics::Metrics;
use crate::store::{DeliveryAttempt, DeliveryOutcome, PendingDelivery, Store};

/// What `/status` shows of the outbox.
#[derive(Debug, Default)]
pub struct OutboxCounts {
    pending: AtomicU64,
    dropped: AtomicU64,
}

impl OutboxCounts {
    /// Deliveries waiting (across sinks).
    pub fn pending(&self) -> u64 {
        self.pending.load(Ordering::Relaxed)
    }

    /// Deliveries given up (within retention, counted at start, and since).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// What the sender tasks need.
#[derive(Debug, Clone)]
pub struct Senders {
    pub sinks: Arc<[Sink]>,
    pub store: Store,
    /// `None` only when there is no sink (nothing is ever sent).
    pub client: Option<reqwest::Client>,
    pub clock: SharedClock,
    pub metrics: Metrics,
    pub counts: Arc<OutboxCounts>,
}

impl Senders {
    /// Starts a task per sink and the router that feeds them: first the deliveries left
    /// `pending` at the last stop, then each new one as its write commits (`outbox`).
    /// Deliveries for a sink no longer configured are dropped, with the reason recorded.
    pub fn spawn(
        self,
        recovered: Vec<PendingDelivery>,
        dropped_before: u64,
        mut outbox: mpsc::UnboundedReceiver<PendingDelivery>,
        stop: CancellationToken,
        tasks: &TaskTracker,
    ) {
        self.counts.dropped.store(dropped_before, Ordering::Relaxed);
        let mut queues = HashMap::new();
        for index in 0..self.sinks.len() {
            let (tx, rx) = mpsc::unbounded_channel();
            queues.insert(self.sinks[index].name(), tx);
            tasks.spawn(self.clone().sink_task(index, rx, stop.clone()));
        }
        let route = move |delivery: PendingDelivery| match queues.get(delivery.sink.as_str()) {
            Some(queue) => {
                self.counts.pending.fetch_add(1, Ordering::Relaxed);
                let _ = queue.send(delivery);
            }
            None => {
                self.counts.dropped.fetch_add(1, Ordering::Relaxed);
                self.metrics.notification(&delivery.sink, "dropped");
                tracing::warn!(sink = %delivery.sink, event = %delivery.event_id, "a pending notification's sink is no longer configured: dropped");
                let attempt = DeliveryAttempt {
                    event_id: delivery.event_id,
                    sink: delivery.sink,
                    at: self.clock.now(),
                    outcome: DeliveryOutcome::Dropped("its sink is no longer configured".into()),
                };
                let write = self.store.record_delivery(attempt);
                tokio::spawn(async move {
                    if let Err(error) = write.await {
                        tracing::warn!(%error, "could not record a dropped notification");
                    }
                });
            }
        };
        tasks.spawn(async move {
            for delivery in recovered {
                route(delivery);
            }
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    delivery = outbox.recv() => match delivery {
                        Some(delivery) => route(delivery),
                        None => return,
                    },
                }
            }
        });
    }

    /// Sends what comes for sink `index`, one request at a time, until `stop`.
    async fn sink_task(
        self,
        index: usize,
        mut incoming: mpsc::UnboundedReceiver<PendingDelivery>,
        stop: CancellationToken,
    ) {
        let sink = &self.sinks[index];
        let mut queue = Queue::default();
        loop {
            while let Ok(delivery) = incoming.try_recv() {
                queue.push(delivery);
            }
            let now = self.clock.now();
            match queue.next(now) {
                Next::Send(position) => {
                    let outcome = self.attempt(sink, &queue.items[position].delivery).await;
                    self.settle(sink, &mut queue, position, outcome).await;
                }
                Next::Wait(wait) => {
                    let sleep = match wait {
                        Some(wait) => self.clock.sleep(wait),
                        None => Box::pin(std::future::pending()),
                    };
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        delivery = incoming.recv() => match delivery {
                            Some(delivery) => queue.push(delivery),
                            None => return,
                        },
                        () = sleep => {}
                    }
                }
            }
            if stop.is_cancelled() {
                return;
            }
        }
    }

    /// One attempt: every request of the event (PagerDuty's resolves are two), in order.
    async fn attempt(&self, sink: &Sink, delivery: &PendingDelivery) -> Outcome {
        let event: Event = match serde_json::from_str(&delivery.body) {
            Ok(event) => event,
            Err(error) => {
                return Outcome::Refused {
                    why: format!("the stored event cannot be read: {error}"),
                };
            }
        };
        let Some(client) = &self.client else {
            return Outcome::Refused {
                why: "no HTTP client (no sink configured)".into(),
            };
        };
        for prepared in sink.requests(&event) {
            let outcome = send(client, &prepared).await;
            if outcome != Outcome::Sent {
                return outcome;
            }
        }
        Outcome::Sent
    }

    /// Records the attempt and takes the delivery off the queue, or schedules it again.
    async fn settle(&self, sink: &Sink, queue: &mut Queue, position: usize, outcome: Outcome) {
        let now = self.clock.now();
        let item = &mut queue.items[position];
        item.delivery.attempts += 1;
        let delivery = &item.delivery;
        let (recorded, done) = match outcome {
            Outcome::Sent => {
                self.metrics.notification(sink.name(), "sent");
                tracing::info!(sink = sink.name(), event = %delivery.event_id, attempts = delivery.attempts, "notification sent");
                (DeliveryOutcome::Sent, true)
            }
            Outcome::Refused { why } => {
                self.metrics.notification(sink.name(), "dropped");
                tracing::warn!(sink = sink.name(), event = %delivery.event_id, %why, "notification refused: not retried");
                (DeliveryOutcome::Dropped(why), true)
            }
            Outcome::Retry { after, why } => {
                let age = crate::clock::between(delivery.at, now);
                if age >= GIVE_UP_AFTER {
                    self.metrics.notification(sink.name(), "dropped");
                    tracing::warn!(sink = sink.name(), event = %delivery.event_id, %why, "notification still failing a day after its event: given up");
                    (
                        DeliveryOutcome::Dropped(format!("given up after 24h: {why}")),
                        true,
                    )
                } else {
                    self.metrics.notification(sink.name(), "failed");
                    let delay = backoff(delivery.attempts, after, fastrand::f64());
                    tracing::info!(sink = sink.name(), event = %delivery.event_id, %why, retry_in = %crate::duration::display(delay), "notification failed; trying again");
                    item.retry_at = Some(crate::clock::add(now, delay));
                    (DeliveryOutcome::Failed(why), false)
                }
            }
        };
        let attempt = DeliveryAttempt {
            event_id: delivery.event_id.clone(),
            sink: delivery.sink.clone(),
            at: now,
            outcome: recorded,
        };
        if done {
            queue.items.remove(position);
        }
        let dropped = matches!(attempt.outcome, DeliveryOutcome::Dropped(_));
        // A failed write only means it is sent again after a restart (at least once).
        if let Err(error) = self.store.record_delivery(attempt).await {
            tracing::warn!(sink = sink.name(), %error, "could not record a notification's delivery");
        }
        // Counted once recorded: `/status` says what the store says.
        if done {
            self.counts.pending.fetch_sub(1, Ordering::Relaxed);
            if dropped {
                self.counts.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// One sink's deliveries, in the order the events happened.
#[derive(Debug, Default)]
struct Queue {
    items: VecDeque<Item>,
}

#[derive(Debug)]
struct Item {
    delivery: PendingDelivery,
    /// `None`: due now.
    retry_at: Option<Timestamp>,
}

/// What a sink's task does next.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    /// Send the item at this position.
    Send(usize),
    /// Nothing due: wait this long (`None`: until something comes).
    Wait(Option<Duration>),
}

impl Queue {
    fn push(&mut self, delivery: PendingDelivery) {
        self.items.push_back(Item {
            delivery,
            retry_at: None,
        });
    }

    /// The first item that is due and is its instance's earliest; else how long until one
    /// of those heads is due.
    fn next(&self, now: Timestamp) -> Next {
        let mut blocked: Vec<Option<u64>> = Vec::new();
        let mut soonest: Option<Timestamp> = None;
        for (position, item) in self.items.iter().enumerate() {
            let instance = item.delivery.instance_id;
            // Events about no instance (a reload) keep no order among themselves.
            if instance.is_some() && blocked.contains(&instance) {
                continue;
            }
            match item.retry_at {
                Some(at) if at > now => {
                    soonest = Some(soonest.map_or(at, |s| s.min(at)));
                    if instance.is_some() {
                        blocked.push(instance);
                    }
                }
                _ => return Next::Send(position),
            }
        }
        Next::Wait(soonest.map(|at| crate::clock::between(now, at)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(event_id: &str, instance: Option<u64>) -> PendingDelivery {
        PendingDelivery {
            event_id: event_id.into(),
            sink: "webhook".into(),
            instance_id: instance,
            at: "2026-12-04T17:00:00Z".parse().unwrap(),
            body: "{}".into(),
            attempts: 0,
        }
    }

    #[test]
    fn one_instances_events_wait_for_its_earlier_ones_and_others_go_by() {
        let now: Timestamp = "2026-12-04T17:00:10Z".parse().unwrap();
        let mut queue = Queue::default();
        queue.push(delivery("a1", Some(1)));
        queue.push(delivery("a2", Some(1)));
        queue.push(delivery("b1", Some(2)));
        assert_eq!(queue.next(now), Next::Send(0));
        // a1 failed and waits 5 s: a2 waits behind it, b1 goes.
        queue.items[0].retry_at = Some(crate::clock::add(now, Duration::from_secs(5)));
        assert_eq!(queue.next(now), Next::Send(2));
        queue.items.remove(2);
        assert_eq!(queue.next(now), Next::Wait(Some(Duration::from_secs(5))));
        let later = crate::clock::add(now, Duration::from_secs(5));
        assert_eq!(queue.next(later), Next::Send(0));
        queue.items.clear();
        assert_eq!(queue.next(now), Next::Wait(None));
    }
}
