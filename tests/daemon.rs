//! The daemon, black-box: the real application on port 0 against the in-process fake
//! CloudAMQP, over HTTP. Process-level tests (signals, kill -9) are in `daemon_process.rs`.

#[path = "notify_support/mod.rs"]
mod capture;
#[path = "state_query/mod.rs"]
mod state_query;
#[path = "daemon_support/mod.rs"]
mod support;

#[path = "daemon/changes.rs"]
mod changes;
#[path = "daemon/disk.rs"]
mod disk;
#[path = "daemon/failures.rs"]
mod failures;
#[path = "daemon/guardrails.rs"]
mod guardrails;
#[path = "daemon/history.rs"]
mod history;
#[path = "daemon/notify.rs"]
mod notify;
#[path = "daemon/pauses.rs"]
mod pauses;
#[path = "daemon/reload.rs"]
mod reload;
#[path = "daemon/restart.rs"]
mod restart;
#[path = "daemon/retention.rs"]
mod retention;
#[path = "daemon/scale_down.rs"]
mod scale_down;
#[path = "daemon/scale_down_floor.rs"]
mod scale_down_floor;
#[path = "daemon/schedules.rs"]
mod schedules;
#[path = "daemon/webhook.rs"]
mod webhook;
