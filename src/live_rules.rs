//! The rules in force, swapped whole on reload.
//!
//! A reload validates the entire file first; only a valid file replaces the rules, in one
//! atomic swap, so no alarm is ever decided with half a file. An invalid file is refused
//! whole, the old rules stay, and the failure is logged, counted and shown in `/status`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use jiff::Timestamp;

use crate::clock::SharedClock;
use crate::metrics::Metrics;
use crate::rules::{RuleSet, RulesFailure};

/// A rule set and when it was loaded.
#[derive(Debug)]
pub struct Loaded {
    pub rules: RuleSet,
    pub loaded_at: Timestamp,
}

/// The outcome of the last reload attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadReport {
    pub at: Timestamp,
    pub ok: bool,
    /// Every problem of a refused file, one line each.
    pub errors: Vec<String>,
}

/// The rules the daemon decides with.
#[derive(Debug)]
pub struct LiveRules {
    path: PathBuf,
    current: ArcSwap<Loaded>,
    last_reload: Mutex<Option<ReloadReport>>,
    clock: SharedClock,
    metrics: Metrics,
    /// Counts the rule sets swapped in; subscribers wake on each.
    swapped: tokio::sync::watch::Sender<u64>,
}

impl LiveRules {
    /// Loads the rules file for the first time; an invalid file refuses the start.
    pub fn load(path: &Path, clock: SharedClock, metrics: Metrics) -> Result<Self, RulesFailure> {
        let rules = RuleSet::load(path)?;
        let loaded_at = clock.now();
        metrics.rules_loaded(loaded_at);
        Ok(Self {
            path: path.to_owned(),
            current: ArcSwap::from_pointee(Loaded { rules, loaded_at }),
            last_reload: Mutex::new(None),
            clock,
            metrics,
            swapped: tokio::sync::watch::Sender::new(0),
        })
    }

    /// The rules in force: one snapshot per alarm, never re-read mid-decision.
    pub fn snapshot(&self) -> Arc<Loaded> {
        self.current.load_full()
    }

    /// A receiver that sees every later reload that swaps new rules in.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.swapped.subscribe()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Re-reads and validates the file; swaps it in only if it is valid.
    pub fn reload(&self) -> ReloadReport {
        let at = self.clock.now();
        let report = match RuleSet::load(&self.path) {
            Ok(rules) => {
                let hash = rules.source().hash.clone();
                let count = rules.rules().len();
                self.current.store(Arc::new(Loaded {
                    rules,
                    loaded_at: at,
                }));
                self.metrics.rules_loaded(at);
                self.swapped.send_modify(|count| *count += 1);
                tracing::info!(path = %self.path.display(), %hash, rules = count, "rules reloaded");
                ReloadReport {
                    at,
                    ok: true,
                    errors: Vec::new(),
                }
            }
            Err(failure) => {
                let errors = failure.lines();
                tracing::error!(
                    path = %self.path.display(),
                    problems = errors.len(),
                    errors = %errors.join("\n"),
                    "rules reload refused: the previous rules stay in force"
                );
                ReloadReport {
                    at,
                    ok: false,
                    errors,
                }
            }
        };
        self.metrics.rules_reload(report.ok, at);
        *self
            .last_reload
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(report.clone());
        report
    }

    /// The last reload attempt; `None` before the first.
    pub fn last_reload(&self) -> Option<ReloadReport> {
        self.last_reload
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl RulesFailure {
    /// Whether the file could not be read at all (as opposed to being invalid).
    pub fn is_io(&self) -> bool {
        matches!(self, Self::Io { .. })
    }
}
