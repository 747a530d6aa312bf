//! What SIGHUP (and `AppHandle::reload`) does: reload the rules file; a refused file
//! leaves the rules in force and is a `rules.reload_failed` notification.

use std::sync::Arc;

use crate::live_rules::{LiveRules, ReloadReport};
use crate::notify::{Notifier, compose};
use crate::store::Store;

#[derive(Debug, Clone)]
pub struct Reloader {
    pub rules: Arc<LiveRules>,
    pub store: Store,
    pub notifier: Notifier,
}

impl Reloader {
    /// Reloads (file I/O: call it off the async workers).
    pub fn reload(&self) -> ReloadReport {
        let report = self.rules.reload();
        if report.ok
            && self.store.replica().is_some()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            // Replicas: `/status` on any of them shows each one's rules.
            let hash = self.rules.snapshot().rules.source().hash.clone();
            let written = self.store.set_rules_hash(hash);
            runtime.spawn(async move {
                if let Err(error) = written.await {
                    tracing::warn!(%error, "cannot record this replica's new rules hash");
                }
            });
        }
        if !report.ok {
            let event = compose::reload_failed(self.notifier.mode(), report.at, &report.errors);
            let notes = self.notifier.notes([event]);
            if !notes.is_empty() {
                // Queued now: the write happens whether or not anyone awaits it.
                drop(self.store.record_notifications(notes));
            }
        }
        report
    }
}
