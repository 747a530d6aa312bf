//! `setup`: make CloudAMQP send the daemon the alarms its rules act on (contract, Part 5),
//! and `check --online`'s view of how far the live alarms have drifted from that.
//!
//! ```text
//! GET instances, plans ─▶ per instance: GET recipients, alarms ─▶ plan (PURE) ─▶ apply
//! ```
//!
//! `plan` decides from the rules and what CloudAMQP shows, `apply` writes, `drift` compares
//! for `check`. The webhook's token is compared and sent, never shown.

pub mod apply;
pub mod drift;
pub mod plan;

use secrecy::SecretString;

use crate::cloudamqp::{ApiError, Catalogue, CloudAmqpClient, InstanceSummary};
use crate::rules::{InstanceNames, RuleSet, Selector};

pub use apply::{Applied, is_fatal, refusal};
pub use plan::{
    InstancePlan, KNOWN_SHARED_PLANS, RECIPIENT_NAME, Step, WantedAlarm, plan, scrub, shown_url,
    url_with_token,
};

/// What a `setup` run is asked to do.
#[derive(Debug)]
pub struct SetupRequest<'a> {
    /// `--instance`; empty: the instances the rules manage.
    pub selectors: &'a [Selector],
    /// `--apply`: write; else only print the plan.
    pub apply: bool,
    /// Our recipient's value, token included.
    pub url: &'a SecretString,
}

/// What a run printed and how many problems it met.
#[derive(Debug, Default)]
pub struct SetupReport {
    pub lines: Vec<String>,
    pub problems: usize,
    /// Instances selected.
    pub instances: usize,
    /// Writes planned (without `--apply`) or done (with it).
    pub writes: usize,
    /// A [fatal](is_fatal) error that stopped the run after `lines` (the key refused, the
    /// API out of reach): the instances after it were not set up.
    pub fatal: Option<ApiError>,
}

/// Whether the plan `name` is shared: as the catalogue says, else by its known name.
pub fn is_shared(catalogue: &Catalogue, plan: &str) -> bool {
    catalogue
        .get(plan)
        .map_or_else(|| KNOWN_SHARED_PLANS.contains(&plan), |p| p.shared)
}

/// The instances of the account `selectors` pick (empty: those the rules manage).
pub fn select<'a>(
    rules: &RuleSet,
    selectors: &[Selector],
    instances: &'a [InstanceSummary],
) -> Vec<&'a InstanceSummary> {
    instances
        .iter()
        .filter(|instance| {
            let id = instance.id.to_string();
            let names = InstanceNames {
                id: Some(&id),
                uuid: instance.providerid.as_deref(),
                name: Some(&instance.name),
            };
            if selectors.is_empty() {
                rules.manages(&names)
            } else {
                selectors.iter().any(|s| s.matches(&names))
            }
        })
        .collect()
}

/// Runs `setup` over the selected instances. `Err` only when no instance can be set up
/// ([`is_fatal`]: the key refused, the API out of reach); every other failure is a problem
/// of its instance, and the others are still done.
pub async fn run(
    client: &CloudAmqpClient,
    rules: &RuleSet,
    request: &SetupRequest<'_>,
) -> Result<SetupReport, ApiError> {
    let mut report = SetupReport::default();
    let instances = client.list_instances().await?;
    let selected = select(rules, request.selectors, &instances);
    report.instances = selected.len();
    if selected.is_empty() {
        return Ok(report);
    }
    let catalogue = Catalogue::new(client.plans().await?);
    let shown = shown_url(secrecy::ExposeSecret::expose_secret(request.url));
    for instance in selected {
        report.lines.push(format!(
            "instance {} {} ({}):",
            instance.id, instance.name, instance.plan
        ));
        let live = read_live(client, instance.id).await;
        let (recipients, alarms) = match live {
            Ok(live) => live,
            Err(error) if is_fatal(&error) => {
                report.fatal = Some(error);
                break;
            }
            Err(error) => {
                report.problems += 1;
                report
                    .lines
                    .push(format!("! cannot read its alarms: {}", refusal(&error)));
                continue;
            }
        };
        let planned = plan(
            rules,
            instance,
            is_shared(&catalogue, &instance.plan),
            &recipients,
            &alarms,
            request.url,
        );
        if planned.steps.is_empty() && planned.problems.is_empty() && planned.notes.is_empty() {
            report
                .lines
                .push("= nothing to set up: no rule selecting it acts on an alarm".to_owned());
        }
        report
            .lines
            .extend(planned.steps.iter().map(|step| step.line(&shown)));
        report
            .lines
            .extend(planned.notes.iter().map(|note| format!("note: {note}")));
        report.lines.extend(
            planned
                .problems
                .iter()
                .map(|problem| format!("! {problem}")),
        );
        report.problems += planned.problems.len();
        let writes = planned.steps.iter().filter(|s| s.writes()).count();
        if !request.apply || writes == 0 {
            report.writes += writes;
            continue;
        }
        let applied = apply::apply(client, instance.id, &planned, request.url).await;
        report.writes += applied.lines.len();
        report
            .lines
            .extend(applied.lines.iter().map(|l| format!("done: {l}")));
        report.lines.extend(
            applied
                .problems
                .iter()
                .map(|problem| format!("! {problem}")),
        );
        report.problems += applied.problems.len();
        if let Some(error) = applied.fatal {
            report.fatal = Some(error);
            break;
        }
    }
    for line in &mut report.lines {
        *line = scrub(line);
    }
    Ok(report)
}

/// The recipients and the alarms of instance `id`, as CloudAMQP shows them now.
async fn read_live(
    client: &CloudAmqpClient,
    id: u64,
) -> Result<
    (
        Vec<crate::cloudamqp::alarms::Recipient>,
        Vec<crate::cloudamqp::alarms::AlarmConfig>,
    ),
    ApiError,
> {
    Ok((client.recipients(id).await?, client.alarms(id).await?))
}

/// `check --online`'s drift warnings for every instance the rules manage.
pub async fn drift_report(
    client: &CloudAmqpClient,
    rules: &RuleSet,
    catalogue: &Catalogue,
) -> Result<Vec<String>, ApiError> {
    let instances = client.list_instances().await?;
    let mut warnings = Vec::new();
    for instance in select(rules, &[], &instances) {
        let live = read_live(client, instance.id).await;
        let (recipients, alarms) = match live {
            Ok(live) => live,
            Err(error) if is_fatal(&error) => return Err(error),
            // One instance that cannot be read is its own warning, not the run's end.
            Err(error) => {
                warnings.push(format!(
                    "instance {} {}: its alarms could not be read: {}",
                    instance.id,
                    instance.name,
                    refusal(&error)
                ));
                continue;
            }
        };
        warnings.extend(drift::drift(
            rules,
            instance,
            is_shared(catalogue, &instance.plan),
            &recipients,
            &alarms,
        ));
    }
    Ok(warnings)
}
