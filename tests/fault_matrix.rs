//! The fault matrix, in process: every CloudAMQP call the daemon makes, put through every
//! way the API is known (or feared) to fail, against the in-repo fake; plus CloudAMQP
//! unreachable at start-up and a state store that cannot write.
//!
//! | module | call |
//! |---|---|
//! | `read` | `GET /api/instances/{id}`, the read before deciding |
//! | `put` | `PUT /api/instances/{id}`, the plan change |
//! | `polling` | `GET /api/instances/{id}` and `…/nodes` while a change is followed |
//! | `resolve` | `GET /api/instances`, an alarm naming its instance by UUID |
//! | `catalogue` | `GET /api/plans` |
//! | `unreachable` | nothing listening at the API URL when the daemon starts |
//! | `store` | the state store full or read-only |
//!
//! Faults: 429 with and without `Retry-After`, 503, 423, 400 backend timeout (40099), 401,
//! an answer slower than `cloudamqp.request_timeout` (500 ms here), a malformed body, a
//! dropped connection (and a plain 400 / a 422 where they mean something). Each cell checks
//! the documented outcome, that no spike gets a second accepted change, and that a stream of
//! alarms for another instance keeps getting a prompt 202 while the fault plays out.
//! `cargo test --test fault_matrix -- put::` runs one call's row.

#[path = "state_query/mod.rs"]
mod state_query;
#[path = "daemon_support/mod.rs"]
mod support;

#[path = "fault_matrix/common.rs"]
mod common;

#[path = "fault_matrix/catalogue.rs"]
mod catalogue;
#[path = "fault_matrix/polling.rs"]
mod polling;
#[path = "fault_matrix/put.rs"]
mod put;
#[path = "fault_matrix/read.rs"]
mod read;
#[path = "fault_matrix/resolve.rs"]
mod resolve;
#[path = "fault_matrix/store.rs"]
mod store;
#[path = "fault_matrix/unreachable.rs"]
mod unreachable;
