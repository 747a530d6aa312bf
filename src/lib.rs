//! cloudamqp-autoscaler keeps a CloudAMQP cluster on the right plan.
//!
//! The data path, one module per step:
//!
//! ```text
//! HTTP request ─▶ alarm ─▶ decide(rules, alarm, instance, now) ─▶ plan change ─▶ state
//!   (server)     (alarm)        (rules, decide: pure)           (cloudamqp)    (store)
//! ```
//!
//! Deciding is pure and shared by the daemon and `explain`; acting (API calls, tracking a
//! change to its end, recording it) is effectful and lives apart from it.

pub mod alarm;
pub mod cli;
pub mod clock;
pub mod cloudamqp;
pub mod commands;
pub mod decide;
pub mod duration;
pub mod executor;
pub mod fake;
pub mod guard;
pub mod instance;
pub mod live_rules;
pub mod metrics;
pub mod notify;
pub mod redact;
pub mod reload;
pub mod retention;
pub mod rules;
pub mod scale_down;
pub mod server;
pub mod settings;
pub mod setup;
pub mod signals;
pub mod startup;
pub mod store;
pub mod telemetry;
