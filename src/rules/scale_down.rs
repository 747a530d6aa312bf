//! `[scale_down]`: when and how far the daemon takes back what it added.
//!
//! The section is optional: without it the daemon never moves a plan down. Its values are
//! validated with the rest of the file (every problem at once, file, line, column); the
//! maintenance `hours` are real wall-clock hours in an IANA time zone (see [`Hours`]).

use std::collections::HashMap;
use std::time::Duration;

use super::Selector;
use super::hours::Hours;

/// `quiet_for` when the section sets none.
pub const DEFAULT_QUIET_FOR: Duration = Duration::from_secs(2 * 60 * 60);
/// `after_up` when the section sets none.
pub const DEFAULT_AFTER_UP: Duration = Duration::from_secs(6 * 60 * 60);
/// `after_down` when the section sets none.
pub const DEFAULT_AFTER_DOWN: Duration = Duration::from_secs(24 * 60 * 60);
/// `check_every` when the section sets none.
pub const DEFAULT_CHECK_EVERY: Duration = Duration::from_secs(5 * 60);
/// `window` when the section sets none.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(60 * 60);
/// `memory_headroom` (percent) when the section sets none.
pub const DEFAULT_MEMORY_HEADROOM: f64 = 60.0;

/// A validated `[scale_down]` section.
#[derive(Debug, Clone)]
pub struct ScaleDown {
    /// Which instances may be stepped down; empty means every instance.
    pub selectors: Vec<Selector>,
    /// No alarm for the instance (resolves aside) for this long.
    pub quiet_for: Duration,
    /// At least this long after the instance's last upward change finished.
    pub after_up: Duration,
    /// At least this long after the instance's last downward change finished.
    pub after_down: Duration,
    /// How often each instance above its floor is looked at.
    pub check_every: Duration,
    /// Every look over this long must have passed before a step down (at least two looks).
    pub window: Duration,
    /// Percent (1–100) of the smaller plan's per-node memory limit the projection may use.
    pub memory_headroom: f64,
    /// Never below this plan (raises the floor when it is higher on the same ladder).
    pub min_plan: Option<String>,
    /// Per-node memory limits, in bytes, of plans the daemon has never seen an instance on.
    pub memory_limits: HashMap<String, u64>,
    /// When set, a step down is only made inside these hours.
    pub hours: Option<Hours>,
}

impl ScaleDown {
    /// The section with every default and no selectors, limits or hours: what an empty
    /// `[scale_down]` table means.
    pub fn with_defaults() -> Self {
        Self {
            selectors: Vec::new(),
            quiet_for: DEFAULT_QUIET_FOR,
            after_up: DEFAULT_AFTER_UP,
            after_down: DEFAULT_AFTER_DOWN,
            check_every: DEFAULT_CHECK_EVERY,
            window: DEFAULT_WINDOW,
            memory_headroom: DEFAULT_MEMORY_HEADROOM,
            min_plan: None,
            memory_limits: HashMap::new(),
            hours: None,
        }
    }

    /// Whether the section selects the instance with these names.
    pub fn selects(&self, names: &super::InstanceNames<'_>) -> bool {
        super::any_picks(&self.selectors, names)
    }
}
