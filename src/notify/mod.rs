//! Notifications: events to operators' webhooks, Slack and PagerDuty.
//!
//! ```text
//! Event ─▶ Sink::requests (pure: bodies, signature, dedup keys) ─▶ send (one attempt,
//!          classified Sent / Retry / Refused) ─▶ backoff (when to try again)
//! ```
//!
//! Queueing, ordering and marking delivered belong to the outbox, which calls these.

pub mod event;
pub mod send;
pub mod settings;
pub mod sink;

pub use event::{Event, EventChange, EventInstance, EventKind, Mode};
pub use send::{GIVE_UP_AFTER, Outcome, backoff, client, send};
pub use settings::{NotifySettings, PagerDutySettings, SlackSettings, WebhookSettings};
pub use sink::{Prepared, Sink, sinks};
