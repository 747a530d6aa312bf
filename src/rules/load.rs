//! Reading and validating `rules.toml`, reporting every problem of the file at once.
//!
//! The file is parsed into a span-preserving tree (toml-span) and walked by hand rather
//! than through serde: serde stops at the first problem, and a user fixing a file before
//! a Friday-evening spike wants all of them, each with its line, its rule and a fix.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use sha2::{Digest, Sha256};
use toml_span::value::{Table, Value, ValueInner};
use toml_span::{Span, Spanned};

use super::error::{Location, RuleError, RulesFailure};
use super::selector::Selector;
use super::{
    ALARM_TYPES, Action, DEFAULT_COOLDOWN, Ladder, Limits, PlanMention, Rule, RuleSet, Source,
    Threshold, TypeIndex,
};

const TOP_KEYS: &[&str] = &[
    "defaults",
    "ladders",
    "rules",
    "scale_down",
    "limits",
    "freeze",
    "schedules",
    "alarms",
];
const DEFAULTS_KEYS: &[&str] = &["cooldown"];
const RULE_KEYS: &[&str] = &[
    "name",
    "alarm",
    "above",
    "below",
    "ladder",
    "steps",
    "max_plan",
    "targets",
    "disk_sizes",
    "cooldown",
    "instances",
];
/// RabbitMQ families; none of them has a `-2` plan (cloudamqp-api.md, "Plans").
const RABBITMQ_FAMILIES: &[&str] = &[
    "squirrel", "bunny", "hare", "rabbit", "panda", "ape", "hippo", "lion", "rhino",
];

/// Reads and validates the rules file at `path`.
pub fn load_file(path: &Path) -> Result<RuleSet, RulesFailure> {
    let bytes = std::fs::read(path).map_err(|source| RulesFailure::Io {
        path: path.to_owned(),
        source,
    })?;
    let file = path.display().to_string();
    match String::from_utf8(bytes) {
        Ok(text) => parse(&file, &text),
        Err(e) => Err(RulesFailure::Invalid {
            errors: vec![RuleError {
                location: Location::of_offset(&file, "", 0),
                context: None,
                message: format!(
                    "the file is not UTF-8 (invalid byte at offset {}); save it as UTF-8",
                    e.utf8_error().valid_up_to()
                ),
            }],
            file,
        }),
    }
}

/// Validates rules `text`, naming it `file` in every message.
pub fn parse(file: &str, text: &str) -> Result<RuleSet, RulesFailure> {
    let mut loader = Loader {
        file,
        text,
        errors: Vec::new(),
        warnings: Vec::new(),
        mentions: Vec::new(),
    };
    let rule_set = loader.load();
    if loader.errors.is_empty()
        && let Some(mut rule_set) = rule_set
    {
        rule_set.warnings = loader.warnings;
        rule_set.plan_mentions = loader.mentions;
        return Ok(rule_set);
    }
    let mut errors = loader.errors;
    errors.sort_by_key(|e| (e.location.line, e.location.column));
    Err(RulesFailure::Invalid {
        file: file.to_owned(),
        errors,
    })
}

pub(super) struct Loader<'t> {
    file: &'t str,
    text: &'t str,
    errors: Vec<RuleError>,
    warnings: Vec<RuleError>,
    mentions: Vec<PlanMention>,
}

/// A ladder as read, with the span of each plan for later messages.
pub(super) struct RawLadder {
    pub(super) name: String,
    pub(super) plans: Vec<Spanned<String>>,
}

impl Loader<'_> {
    /// How many errors have been found so far.
    pub(super) fn errors_len(&self) -> usize {
        self.errors.len()
    }

    fn problem(&self, span: Span, context: Option<&str>, message: String) -> RuleError {
        RuleError {
            location: Location::of_offset(self.file, self.text, span.start),
            context: context.map(str::to_owned),
            message,
        }
    }

    pub(super) fn error(&mut self, span: Span, context: Option<&str>, message: impl Into<String>) {
        let problem = self.problem(span, context, message.into());
        self.errors.push(problem);
    }

    pub(super) fn warn(&mut self, span: Span, context: Option<&str>, message: impl Into<String>) {
        let problem = self.problem(span, context, message.into());
        self.warnings.push(problem);
    }

    pub(super) fn mention(&mut self, plan: &Spanned<String>, context: String) {
        self.mentions.push(PlanMention {
            plan: plan.value.clone(),
            location: Location::of_offset(self.file, self.text, plan.span.start),
            context,
        });
        if let Some((family, nodes)) = plan.value.rsplit_once('-')
            && nodes == "2"
            && RABBITMQ_FAMILIES.contains(&family)
        {
            self.warn(
                plan.span,
                None,
                format!(
                    "CloudAMQP has no plan {:?}: RabbitMQ plans come with 1, 3 or 5 nodes \
                     (e.g. \"{family}-1\", \"{family}-3\"); run `check --online` to compare \
                     with the live catalogue",
                    plan.value
                ),
            );
        }
    }

    fn load(&mut self) -> Option<RuleSet> {
        let mut root = match toml_span::parse(self.text) {
            Ok(root) => root,
            Err(e) => {
                self.error(e.span, None, format!("{e}; fix the TOML syntax"));
                return None;
            }
        };
        let mut table = match root.take() {
            ValueInner::Table(table) => table,
            _ => return None,
        };
        let default_cooldown = match table.remove("defaults") {
            Some(value) => self.defaults(value),
            None => DEFAULT_COOLDOWN,
        };
        let ladders = match table.remove("ladders") {
            Some(value) => self.ladders(value),
            None => Vec::new(),
        };
        let rules = match table.remove("rules") {
            Some(value) => self.rules(value, &ladders),
            None => Vec::new(),
        };
        let scale_down = table
            .remove("scale_down")
            .and_then(|value| self.scale_down(value, &ladders));
        let limits = match table.remove("limits") {
            Some(value) => self.limits(value),
            None => Limits::default(),
        };
        let freezes = match table.remove("freeze") {
            Some(value) => self.freezes(value),
            None => Vec::new(),
        };
        let rule_names: std::collections::HashSet<String> =
            rules.iter().map(|rule| rule.name.clone()).collect();
        let schedules = match table.remove("schedules") {
            Some(value) => self.schedules(value, &ladders, &rule_names),
            None => Vec::new(),
        };
        let alarms = table
            .remove("alarms")
            .map(|v| self.alarm_sections(v, scale_down.as_ref()));
        self.unknown_keys(table, TOP_KEYS, None, "at the top level");
        if rules.is_empty() && self.errors.is_empty() {
            self.warn(
                Span::new(0, 0),
                None,
                "the file has no [[rules]]: every alarm will be skipped with no_matching_rule",
            );
        }
        let ladders: Vec<Ladder> = ladders
            .into_iter()
            .map(|raw| Ladder::new(raw.name, raw.plans.into_iter().map(|p| p.value).collect()))
            .collect();
        let by_type = index(&rules, &ladders);
        Some(RuleSet {
            source: Source {
                path: self.file.to_owned(),
                hash: format!(
                    "sha256:{}",
                    hex::encode(Sha256::digest(self.text.as_bytes()))
                ),
            },
            default_cooldown,
            ladders,
            rules,
            by_type,
            plan_mentions: Vec::new(),
            warnings: Vec::new(),
            scale_down,
            limits,
            freezes,
            schedules,
            alarms: alarms.unwrap_or_default(),
        })
    }

    pub(super) fn unknown_keys(
        &mut self,
        table: Table<'_>,
        known: &[&str],
        context: Option<&str>,
        place: &str,
    ) {
        let mut keys: Vec<_> = table.into_keys().collect();
        keys.sort_by_key(|k| k.span.start);
        for key in keys {
            let hint = match closest(&key.name, known.iter().copied()) {
                Some(near) => format!("did you mean {near:?}?"),
                None => format!("the keys allowed here are {}", quoted(known)),
            };
            self.error(
                key.span,
                context,
                format!("unknown key {:?} {place}; {hint}", key.name.as_ref()),
            );
        }
    }

    pub(super) fn table<'de>(
        &mut self,
        mut value: Value<'de>,
        context: &str,
        what: &str,
    ) -> Option<Table<'de>> {
        let span = value.span;
        match value.take() {
            ValueInner::Table(table) => Some(table),
            other => {
                self.error(
                    span,
                    Some(context),
                    format!("{what} must be a table, not {}", article(&other)),
                );
                None
            }
        }
    }

    fn defaults(&mut self, value: Value<'_>) -> Duration {
        const CONTEXT: &str = "[defaults]";
        let Some(mut table) = self.table(value, CONTEXT, "[defaults]") else {
            return DEFAULT_COOLDOWN;
        };
        let cooldown = table
            .remove("cooldown")
            .and_then(|v| self.duration(v, CONTEXT, "cooldown"))
            .unwrap_or(DEFAULT_COOLDOWN);
        self.unknown_keys(table, DEFAULTS_KEYS, Some(CONTEXT), "in [defaults]");
        cooldown
    }

    fn ladders(&mut self, value: Value<'_>) -> Vec<RawLadder> {
        let Some(table) = self.table(value, "[ladders]", "[ladders]") else {
            return Vec::new();
        };
        let mut entries: Vec<_> = table.into_iter().collect();
        entries.sort_by_key(|(key, _)| key.span.start);
        let mut ladders = Vec::new();
        for (key, mut value) in entries {
            let context = format!("ladder {:?}", key.name.as_ref());
            let span = value.span;
            let ValueInner::Array(items) = value.take() else {
                self.error(
                    span,
                    Some(&context),
                    "a ladder must be a list of plan names, smallest first, e.g. [\"bunny-1\", \"hare-1\"]",
                );
                continue;
            };
            if items.is_empty() {
                self.error(
                    span,
                    Some(&context),
                    "the ladder is empty; list its plans, smallest first",
                );
            }
            let mut plans: Vec<Spanned<String>> = Vec::new();
            for item in items {
                let Some(plan) = self.plan_name(item, &context, "a ladder entry") else {
                    continue;
                };
                if let Some(first) = plans.iter().find(|p| p.value == plan.value) {
                    let line = Location::of_offset(self.file, self.text, first.span.start).line;
                    self.error(
                        plan.span,
                        Some(&context),
                        format!(
                            "plan {:?} is twice in the ladder (first on line {line}); a plan \
                             can be on a ladder once, remove one",
                            plan.value
                        ),
                    );
                    continue;
                }
                self.mention(&plan, context.clone());
                plans.push(plan);
            }
            ladders.push(RawLadder {
                name: key.name.into_owned(),
                plans,
            });
        }
        ladders
    }

    fn rules(&mut self, mut value: Value<'_>, ladders: &[RawLadder]) -> Vec<Rule> {
        let span = value.span;
        let ValueInner::Array(items) = value.take() else {
            self.error(span, None, "rules must be written as [[rules]] tables");
            return Vec::new();
        };
        let mut rules = Vec::new();
        let mut names: HashMap<String, usize> = HashMap::new();
        for (position, item) in items.into_iter().enumerate() {
            let item_span = item.span;
            let fallback = format!("rule #{}", position + 1);
            let Some(table) = self.table(item, &fallback, "a [[rules]] entry") else {
                continue;
            };
            let errors_before = self.errors.len();
            match self.rule(table, item_span, &fallback, ladders, &mut names) {
                Some(rule) => rules.push(rule),
                // A rule is only ever left out with a reason the user sees.
                None if self.errors.len() == errors_before => {
                    debug_assert!(false, "{fallback} dropped without an error");
                    self.error(item_span, Some(&fallback), "the rule is invalid");
                }
                None => {}
            }
        }
        rules
    }

    fn rule(
        &mut self,
        mut table: Table<'_>,
        span: Span,
        fallback: &str,
        ladders: &[RawLadder],
        names: &mut HashMap<String, usize>,
    ) -> Option<Rule> {
        let name = match table.remove("name") {
            Some(value) => self.string(value, fallback, "name"),
            None => {
                self.error(
                    span,
                    Some(fallback),
                    "the rule has no name; add name = \"…\" (unique in the file)",
                );
                None
            }
        };
        let context = match &name {
            Some(name) => format!("rule {:?}", name.value),
            None => fallback.to_owned(),
        };
        let ctx = context.as_str();
        if let Some(name) = &name {
            let line = Location::of_offset(self.file, self.text, name.span.start).line;
            if let Some(first) = names.get(&name.value) {
                self.error(
                    name.span,
                    Some(ctx),
                    format!("a rule named {:?} already exists on line {first}; rule names must be unique, rename one", name.value),
                );
            } else {
                names.insert(name.value.clone(), line);
            }
        }
        let alarm = match table.remove("alarm") {
            Some(value) => self.alarm_type(value, ctx),
            None => {
                self.error(
                    span,
                    Some(ctx),
                    format!(
                        "the rule has no alarm type; add alarm = \"memory\" (one of {})",
                        quoted(ALARM_TYPES)
                    ),
                );
                None
            }
        };
        let threshold = self.threshold(&mut table, ctx);
        let cooldown = table
            .remove("cooldown")
            .and_then(|v| self.duration(v, ctx, "cooldown"));
        let selectors = table
            .remove("instances")
            .map_or(Some(Vec::new()), |v| self.selectors(v, ctx));
        let action = self.action(&mut table, span, ctx, ladders);
        if let (Some(kind), Some(Action::Disk(_))) = (&alarm, &action)
            && kind != "disk"
        {
            self.warn(
                span,
                Some(ctx),
                format!("a `disk_sizes` rule acts on {kind:?} alarms: it grows the disk when that alarm comes; a disk that fills up raises the \"disk\" alarm"),
            );
        }
        self.unknown_keys(table, RULE_KEYS, Some(ctx), "in the rule");
        Some(Rule {
            name: name?.value,
            alarm: alarm?,
            threshold: threshold?,
            action: action?,
            cooldown,
            selectors: selectors?,
        })
    }

    /// `above`/`below`: `Some(None)` when the rule has none, `None` when invalid.
    fn threshold(&mut self, table: &mut Table<'_>, ctx: &str) -> Option<Option<Threshold>> {
        let above = table
            .remove("above")
            .map(|v| (v.span, self.number(v, ctx, "above")));
        let below = table
            .remove("below")
            .map(|v| (v.span, self.number(v, ctx, "below")));
        match (above, below) {
            (Some(_), Some((span, _))) => {
                self.error(
                    span,
                    Some(ctx),
                    "a rule has either `above` or `below`, not both; split it into two rules",
                );
                None
            }
            (Some((_, value)), None) => Some(Some(Threshold::Above(value?))),
            (None, Some((_, value))) => Some(Some(Threshold::Below(value?))),
            (None, None) => Some(None),
        }
    }

    fn action(
        &mut self,
        table: &mut Table<'_>,
        span: Span,
        ctx: &str,
        ladders: &[RawLadder],
    ) -> Option<Action> {
        let ladder = table.remove("ladder");
        let targets = table.remove("targets");
        let steps = table.remove("steps");
        let max_plan = table.remove("max_plan");
        if let Some(sizes) = table.remove("disk_sizes") {
            let mut valid = true;
            for (key, value) in [("ladder", &ladder), ("targets", &targets)] {
                if let Some(value) = value {
                    self.error(
                        value.span,
                        Some(ctx),
                        format!("a rule has either `disk_sizes` or `{key}`, not both: a disk rule grows the disk, a plan rule changes the plan; split it into two rules"),
                    );
                    valid = false;
                }
            }
            for (key, value) in [("steps", &steps), ("max_plan", &max_plan)] {
                if let Some(value) = value {
                    self.error(
                        value.span,
                        Some(ctx),
                        format!("`{key}` applies to ladder rules only; a disk rule grows one size at a time up to the last of `disk_sizes`"),
                    );
                    valid = false;
                }
            }
            let sizes = self.disk_sizes(sizes, ctx);
            return sizes.filter(|_| valid).map(Action::Disk);
        }
        match (ladder, targets) {
            (Some(_), Some(targets)) => {
                self.error(
                    targets.span,
                    Some(ctx),
                    "a rule has either `ladder` or `targets`, not both; keep one",
                );
                None
            }
            (None, None) => {
                self.error(
                    span,
                    Some(ctx),
                    "the rule says nothing about where to go; add `ladder = \"…\"` (with `steps`), a [rules.targets] table, or `disk_sizes = [25, 50, …]`",
                );
                None
            }
            (None, Some(targets)) => {
                for (key, value) in [("steps", steps), ("max_plan", max_plan)] {
                    if let Some(value) = value {
                        self.error(
                            value.span,
                            Some(ctx),
                            format!(
                                "`{key}` applies to ladder rules only; remove it or use `ladder`"
                            ),
                        );
                    }
                }
                self.targets(targets, ctx).map(Action::Targets)
            }
            (Some(ladder), None) => self.ladder_action(ladder, steps, max_plan, ctx, ladders),
        }
    }

    fn ladder_action(
        &mut self,
        ladder: Value<'_>,
        steps: Option<Value<'_>>,
        max_plan: Option<Value<'_>>,
        ctx: &str,
        ladders: &[RawLadder],
    ) -> Option<Action> {
        let steps = match steps {
            None => Some(1),
            Some(value) => {
                let span = value.span;
                match value.as_ref() {
                    ValueInner::Integer(n) if *n >= 1 => usize::try_from(*n).ok(),
                    ValueInner::Integer(n) => {
                        self.error(
                            span,
                            Some(ctx),
                            format!("`steps` is {n}; it must be 1 or more (rungs to climb)"),
                        );
                        None
                    }
                    other => {
                        self.error(
                            span,
                            Some(ctx),
                            format!("`steps` must be a whole number, not {}", article(other)),
                        );
                        None
                    }
                }
            }
        };
        let name = self.string(ladder, ctx, "ladder")?;
        let Some(index) = ladders.iter().position(|l| l.name == name.value) else {
            let hint = match closest(&name.value, ladders.iter().map(|l| l.name.as_str())) {
                Some(near) => format!("did you mean {near:?}?"),
                None if ladders.is_empty() => "define it under [ladders]".to_owned(),
                None => format!(
                    "the ladders are {}",
                    quoted(&ladders.iter().map(|l| l.name.as_str()).collect::<Vec<_>>())
                ),
            };
            self.error(
                name.span,
                Some(ctx),
                format!("unknown ladder {:?}; {hint}", name.value),
            );
            return None;
        };
        let plans = &ladders[index].plans;
        let cap = match max_plan {
            None => plans.len().saturating_sub(1),
            Some(value) => {
                let plan = self.plan_name(value, ctx, "`max_plan`")?;
                self.mention(&plan, format!("{ctx}: max_plan"));
                match plans.iter().position(|p| p.value == plan.value) {
                    Some(rung) => rung,
                    None => {
                        self.error(
                            plan.span,
                            Some(ctx),
                            format!(
                                "max_plan {:?} is not on ladder {:?}; use one of its plans or add it to the ladder",
                                plan.value, name.value
                            ),
                        );
                        return None;
                    }
                }
            }
        };
        Some(Action::Ladder {
            ladder: index,
            steps: steps?,
            cap,
        })
    }

    fn targets(&mut self, value: Value<'_>, ctx: &str) -> Option<HashMap<String, String>> {
        let table_span = value.span;
        let table = self.table(value, ctx, "`targets`")?;
        if table.is_empty() {
            self.error(table_span, Some(ctx), "`targets` is empty; map each current plan to its target, e.g. \"bunny-1\" = \"hare-1\"");
            return None;
        }
        let mut entries: Vec<_> = table.into_iter().collect();
        entries.sort_by_key(|(key, _)| key.span.start);
        let mut map = HashMap::new();
        let mut spans = HashMap::new();
        let mut valid = true;
        for (key, value) in entries {
            let from = Spanned::with_span(key.name.to_string(), key.span);
            let Some(to) = self.plan_name(value, ctx, "a target") else {
                valid = false;
                continue;
            };
            self.mention(&from, format!("{ctx}: targets"));
            self.mention(&to, format!("{ctx}: targets"));
            if from.value == to.value {
                self.error(
                    from.span,
                    Some(ctx),
                    format!(
                        "targets maps {:?} to itself; map it to a larger plan or remove the entry",
                        from.value
                    ),
                );
                valid = false;
            }
            spans.insert(from.value.clone(), from.span);
            map.insert(from.value, to.value);
        }
        for cycle in cycles(&map) {
            self.error(
                spans[&cycle[0]],
                Some(ctx),
                format!(
                    "targets loop: {} -> {}; a targets map must never lead back to a plan it moved from",
                    cycle.join(" -> "),
                    cycle[0]
                ),
            );
            valid = false;
        }
        valid.then_some(map)
    }

    pub(super) fn selectors(&mut self, mut value: Value<'_>, ctx: &str) -> Option<Vec<Selector>> {
        let span = value.span;
        let ValueInner::Array(items) = value.take() else {
            self.error(
                span,
                Some(ctx),
                "`instances` must be a list, e.g. [\"*\"] or [\"359559\", \"prod-*\"]",
            );
            return None;
        };
        if items.is_empty() {
            self.error(span, Some(ctx), "`instances` is empty, so the rule selects no instance; remove the key to select all, or list ids, UUIDs or names");
            return None;
        }
        let mut selectors = Vec::new();
        let mut valid = true;
        for item in items {
            let text = match item.as_ref() {
                ValueInner::String(s) if !s.trim().is_empty() => s.trim().to_owned(),
                ValueInner::Integer(n) if *n >= 0 => n.to_string(),
                other => {
                    self.error(item.span, Some(ctx), format!("an `instances` entry must be an id, a UUID or a name (a non-empty string), not {}", article(other)));
                    valid = false;
                    continue;
                }
            };
            selectors.push(Selector::new(&text));
        }
        valid.then_some(selectors)
    }

    fn alarm_type(&mut self, value: Value<'_>, ctx: &str) -> Option<String> {
        let kind = self.string(value, ctx, "alarm")?;
        if ALARM_TYPES.contains(&kind.value.as_str()) {
            return Some(kind.value);
        }
        let hint = match closest(&kind.value.to_lowercase(), ALARM_TYPES.iter().copied()) {
            Some(near) => format!("did you mean {near:?}?"),
            None => format!("use one of {}", quoted(ALARM_TYPES)),
        };
        self.error(
            kind.span,
            Some(ctx),
            format!("unknown alarm type {:?}; {hint}", kind.value),
        );
        None
    }

    pub(super) fn plan_name(
        &mut self,
        value: Value<'_>,
        ctx: &str,
        what: &str,
    ) -> Option<Spanned<String>> {
        let plan = self.string(value, ctx, what)?;
        if plan.value.trim().is_empty() || plan.value.trim() != plan.value {
            self.error(
                plan.span,
                Some(ctx),
                format!(
                    "{what} {:?} is not a plan name; write it like \"bunny-1\"",
                    plan.value
                ),
            );
            return None;
        }
        Some(plan)
    }

    pub(super) fn string(
        &mut self,
        value: Value<'_>,
        ctx: &str,
        key: &str,
    ) -> Option<Spanned<String>> {
        match value.as_ref() {
            ValueInner::String(s) if !s.is_empty() => {
                Some(Spanned::with_span(s.to_string(), value.span))
            }
            ValueInner::String(_) => {
                self.error(value.span, Some(ctx), format!("`{key}` is empty"));
                None
            }
            other => {
                self.error(
                    value.span,
                    Some(ctx),
                    format!("`{key}` must be a string, not {}", article(other)),
                );
                None
            }
        }
    }

    pub(super) fn number(&mut self, value: Value<'_>, ctx: &str, key: &str) -> Option<f64> {
        let number = match value.as_ref() {
            ValueInner::Integer(n) => Some(*n as f64),
            ValueInner::Float(f) if f.is_finite() => Some(*f),
            ValueInner::Float(_) => {
                self.error(
                    value.span,
                    Some(ctx),
                    format!("`{key}` must be a finite number"),
                );
                return None;
            }
            _ => None,
        };
        if number.is_none() {
            self.error(
                value.span,
                Some(ctx),
                format!(
                    "`{key}` must be a number such as 80, not {}",
                    article(value.as_ref())
                ),
            );
        }
        number
    }

    pub(super) fn duration(&mut self, value: Value<'_>, ctx: &str, key: &str) -> Option<Duration> {
        let text = self.string(value, ctx, key)?;
        match crate::duration::parse(&text.value) {
            Ok(duration) => Some(duration),
            Err(why) => {
                self.error(text.span, Some(ctx), format!("`{key}`: {why}"));
                None
            }
        }
    }
}

/// Each loop of a targets map once, starting from its first plan in name order.
fn cycles(map: &HashMap<String, String>) -> Vec<Vec<String>> {
    let mut starts: Vec<&String> = map.keys().collect();
    starts.sort();
    let mut found: Vec<Vec<String>> = Vec::new();
    for start in starts {
        let mut path = vec![start.clone()];
        let mut at = start;
        while let Some(next) = map.get(at) {
            if next == start && path.len() > 1 {
                if !found.iter().any(|c| c.contains(start)) {
                    found.push(path);
                }
                break;
            }
            if path.contains(next) {
                break;
            }
            path.push(next.clone());
            at = next;
        }
    }
    found
}

fn index(rules: &[Rule], ladders: &[Ladder]) -> HashMap<String, TypeIndex> {
    let mut by_type: HashMap<String, TypeIndex> = HashMap::new();
    for (i, rule) in rules.iter().enumerate() {
        let index = by_type.entry(rule.alarm.clone()).or_default();
        index.all.push(i);
        match &rule.action {
            Action::Ladder { ladder, cap, .. } => {
                for (rung, plan) in ladders[*ladder].plans.iter().enumerate() {
                    let bucket = if rung < *cap {
                        &mut index.actionable
                    } else {
                        &mut index.capped
                    };
                    bucket.entry(plan.clone()).or_default().push(i);
                }
            }
            Action::Targets(map) => {
                for plan in map.keys() {
                    index.actionable.entry(plan.clone()).or_default().push(i);
                }
            }
            Action::Disk(_) => index.disk.push(i),
        }
    }
    by_type
}

pub(super) fn closest<'a>(
    word: &str,
    candidates: impl Iterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        .filter(|(distance, c)| *distance <= 2.max(c.len() / 3))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, c)| c)
}

pub(super) fn quoted(words: &[&str]) -> String {
    words
        .iter()
        .map(|w| format!("{w:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn article(value: &ValueInner<'_>) -> &'static str {
    match value {
        ValueInner::String(_) => "a string",
        ValueInner::Integer(_) => "an integer",
        ValueInner::Float(_) => "a float",
        ValueInner::Boolean(_) => "a boolean",
        ValueInner::Array(_) => "a list",
        ValueInner::Table(_) => "a table",
    }
}
