//! Library side of the `plans` and `check --online` commands; `cli.rs` only prints.

use super::catalogue::{Catalogue, format_price};
use super::client::CloudAmqpClient;
use super::error::ApiError;
use super::model::Plan;
use crate::clock::SharedClock;
use crate::settings::CloudAmqpSettings;

/// How many near names an unknown-plan error suggests.
const SUGGESTIONS: usize = 3;

/// The broker plans of the live catalogue, for `plans`.
pub async fn plans_report(
    settings: &CloudAmqpSettings,
    clock: SharedClock,
) -> Result<Vec<Plan>, ApiError> {
    CloudAmqpClient::new(settings, clock)?.plans().await
}

/// `plans --format text`: an aligned table, one plan a line.
pub fn format_plans_text(plans: &[Plan]) -> String {
    let header = ["NAME", "PRICE", "BACKEND", "SHARED"];
    let rows: Vec<[String; 4]> = plans
        .iter()
        .map(|p| {
            [
                p.name.clone(),
                format!("${}", format_price(p.price)),
                p.backend.clone(),
                if p.shared { "yes" } else { "no" }.to_owned(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 4]| {
        // Price right-aligned, the rest left-aligned; no trailing spaces.
        format!(
            "{:<w0$}  {:>w1$}  {:<w2$}  {}",
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
        )
    };
    let mut out = line(header);
    out.push('\n');
    for row in &rows {
        out.push_str(&line([&row[0], &row[1], &row[2], &row[3]]));
        out.push('\n');
    }
    out
}

/// `plans --format json`: an array of `{"name","price","backend","shared"}` objects.
pub fn format_plans_json(plans: &[Plan]) -> String {
    // Serialising plain strings, numbers and booleans cannot fail.
    serde_json::to_string_pretty(plans).unwrap_or_else(|_| "[]".to_owned())
}

/// What `check --online` found beyond the offline checks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OnlineCheck {
    /// Unknown plans, each naming where it was written.
    pub errors: Vec<String>,
    /// Ladder lint.
    pub warnings: Vec<String>,
}

/// Checks every plan the rules mention against the live catalogue, and lints ladders.
///
/// `plan_mentions` holds each plan name with a location prefix such as
/// `"rules.toml:3:10: ladder single"`; an unknown plan becomes an error starting with that
/// prefix and suggesting the closest known names.
pub fn check_rules_online(
    catalogue: &Catalogue,
    ladders: &[(String, Vec<String>)],
    plan_mentions: &[(String, String)],
) -> OnlineCheck {
    let mut check = OnlineCheck::default();
    for (plan, location) in plan_mentions {
        if catalogue.get(plan).is_some() {
            continue;
        }
        let near = catalogue.closest(plan, SUGGESTIONS);
        let hint = if near.is_empty() {
            "run `cloudamqp-autoscaler plans` to list the known plans".to_owned()
        } else {
            format!("did you mean {}?", near.join(", "))
        };
        check.errors.push(format!(
            "{location}: plan {plan:?} is not in the CloudAMQP catalogue; {hint}"
        ));
    }
    for (name, plans) in ladders {
        check.warnings.extend(catalogue.lint_ladder(name, plans));
    }
    check
}
