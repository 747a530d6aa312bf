//! Notifications: events to operators' webhooks, Slack and PagerDuty.
//!
//! ```text
//! Event ─▶ Sink::requests (pure: bodies, signature, dedup keys) ─▶ send (one attempt,
//!          classified Sent / Retry / Refused) ─▶ backoff (when to try again)
//! ```
//!
//! What the daemon emits is built in `compose` (pure) and written to the store's outbox with
//! the decision or change that causes it; `deliver` runs a sender task per sink over it.

pub mod compose;
pub mod deliver;
pub mod event;
pub mod send;
pub mod settings;
pub mod sink;

pub use compose::{About, ChangeOf, Notifier, Repeats};
pub use deliver::{OutboxCounts, Senders};
pub use event::{Event, EventChange, EventInstance, EventKind, Mode};
pub use send::{GIVE_UP_AFTER, Outcome, backoff, client, send};
pub use settings::{NotifySettings, PagerDutySettings, SlackSettings, WebhookSettings};
pub use sink::{Prepared, Sink, sinks};
