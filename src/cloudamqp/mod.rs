//! The CloudAMQP Customer API client: typed calls, error classification, retries, rate
//! limit, plan-change tracking, instance UUID resolution and the plan catalogue.
//!
//! Every outbound call goes through one [`CloudAmqpClient`]: a timeout, a client-side rate
//! limit, and retries only for failures classified as transient ([`ApiError::is_transient`]),
//! all timed on the injected clock. What the API does is described in
//! `cloudamqp-api.md`; this module follows it, not the old how-to.

pub mod alarms;
pub mod catalogue;
pub mod client;
pub mod commands;
pub mod error;
pub mod management;
pub mod model;
mod rate;
pub mod resolve;
pub mod retry;
pub mod tracking;

pub use alarms::{AlarmConfig, AlarmSpec, PostError, Recipient};
pub use catalogue::{CATALOGUE_TTL, Catalogue, CatalogueCache, MoveRefusal};
pub use client::{CallObserver, CloudAmqpClient, PutProgress, USER_AGENT};
pub use commands::{
    OnlineCheck, check_rules_online, format_plans_json, format_plans_text, plans_report,
};
pub use error::ApiError;
pub use management::{BrokerNode, ManagementAccess, MetricsError};
pub use model::{Instance, InstanceSummary, Node, Plan, extra_disk};
pub use resolve::{InstanceResolver, ResolveError};
pub use tracking::{
    DiskChange, PlanChange, TrackEvent, TrackOptions, TrackOutcome, track_change, track_disk_change,
};
