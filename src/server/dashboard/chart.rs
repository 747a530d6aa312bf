//! An instance's plan over a window, as inline SVG: a step line over its ladder's plans
//! (moved by each completed change), every change marked where it started (coloured by
//! its result), every alarm marked along the bottom. `<title>`s give the details on hover
//! and to screen readers; no script.

use jiff::{SignedDuration, Timestamp};
use maud::{Markup, html};

use crate::store::{PlanTimeline, TimelineChange};

const WIDTH: f64 = 720.0;
/// Left margin: the plan names.
const LEFT: f64 = 70.0;
const RIGHT: f64 = 10.0;
const TOP: f64 = 10.0;
const ROW: f64 = 20.0;
/// Below the rungs: the alarm strip, then the day labels.
const ALARM_STRIP: f64 = 18.0;
const AXIS: f64 = 18.0;

/// What the chart draws: the window, the plans of the y axis (smallest first) and where
/// the instance is now.
#[derive(Debug)]
pub struct ChartInput<'a> {
    pub from: Timestamp,
    pub to: Timestamp,
    /// The y axis, smallest first: its ladder, plus any plan of its changes off it.
    pub plans: Vec<String>,
    pub current_plan: Option<&'a str>,
    pub timeline: &'a PlanTimeline,
}

/// The y axis: the ladder's plans, plus the plans of the changes not on it (at the end),
/// plus the current plan when it is on neither.
pub fn axis_plans(
    ladder: Option<&[String]>,
    current: Option<&str>,
    timeline: &PlanTimeline,
) -> Vec<String> {
    let mut plans: Vec<String> = ladder.map(<[String]>::to_vec).unwrap_or_default();
    let mentioned = timeline
        .plan_at_start
        .iter()
        .map(String::as_str)
        .chain(
            timeline
                .changes
                .iter()
                .flat_map(|c| [c.from.as_str(), c.to.as_str()]),
        )
        .chain(current);
    for plan in mentioned {
        if !plans.iter().any(|p| p == plan) {
            plans.push(plan.to_owned());
        }
    }
    plans
}

pub fn render(input: &ChartInput<'_>) -> Markup {
    let rows = input.plans.len().max(1);
    let plot_bottom = TOP + ROW * rows as f64;
    let height = plot_bottom + ALARM_STRIP + AXIS;
    let span = input.to.duration_since(input.from).as_secs_f64().max(1.0);
    let x = |at: Timestamp| {
        let t = at.duration_since(input.from).as_secs_f64().clamp(0.0, span);
        LEFT + (WIDTH - LEFT - RIGHT) * t / span
    };
    let rung_y = |plan: &str| {
        input.plans.iter().position(|p| p == plan).map(|rung| {
            // The smallest plan at the bottom.
            plot_bottom - ROW * (rung as f64 + 0.5)
        })
    };
    let path = step_path(input, &x, &rung_y);
    let days = day_ticks(input.from, input.to);
    let label = format!(
        "Plan from {} to {}: {} changes, {} alarms",
        input.from.strftime("%Y-%m-%d %H:%M UTC"),
        input.to.strftime("%Y-%m-%d %H:%M UTC"),
        input.timeline.changes.len(),
        input.timeline.alarms.len()
    );
    html! {
        svg class="chart" xmlns="http://www.w3.org/2000/svg" role="img" aria-label=(label)
            viewBox=(format!("0 0 {WIDTH} {height}")) preserveAspectRatio="xMinYMin meet" {
            title { (label) }
            @for (rung, plan) in input.plans.iter().enumerate() {
                @let y = plot_bottom - ROW * (rung as f64 + 0.5);
                line class="rung" x1=(LEFT) x2=(WIDTH - RIGHT) y1=(y) y2=(y) {}
                text class="plan-label" x=(LEFT - 6.0) y=(y + 4.0) text-anchor="end" { (plan) }
            }
            @for (at, name) in &days {
                @let tick = x(*at);
                line class="day" x1=(tick) x2=(tick) y1=(TOP) y2=(plot_bottom + ALARM_STRIP) {}
                // A label that would run off the right edge is left out.
                @if tick < WIDTH - RIGHT - 40.0 {
                    text class="day-label" x=(tick + 3.0) y=(height - 5.0) { (name) }
                }
            }
            @if let Some(d) = &path {
                path class="plan-line" d=(d) {}
            }
            @for change in &input.timeline.changes {
                @let cx = x(change.at);
                line class=(format!("mark change {}", change_class(change))) x1=(cx) x2=(cx)
                    y1=(TOP) y2=(plot_bottom) {
                    title { (change_title(change)) }
                }
                @if let Some(cy) = rung_y(&change.to) {
                    circle class=(format!("mark change-dot {}", change_class(change)))
                        cx=(cx) cy=(cy) r="4" {
                        title { (change_title(change)) }
                    }
                }
            }
            @for alarm in &input.timeline.alarms {
                @let ax = x(alarm.at);
                @let ay = plot_bottom + ALARM_STRIP / 2.0;
                path class=(if alarm.resolved { "mark alarm resolved" } else { "mark alarm" })
                    d=(format!("M{:.1},{:.1} l5,8 h-10 z", ax, ay - 5.0)) {
                    title {
                        (alarm.at.strftime("%Y-%m-%d %H:%M:%S UTC")) ": " (alarm.alarm_type)
                        @if let Some(value) = alarm.value { " " (value) }
                        @if alarm.resolved { " (resolved)" }
                    }
                }
            }
            @if path.is_none() {
                text class="empty" x=(LEFT + 8.0) y=(TOP + 14.0) { "plan not known yet" }
            }
        }
    }
}

/// The step line: the plan at the window's start, moved at each completed change's finish.
fn step_path(
    input: &ChartInput<'_>,
    x: &dyn Fn(Timestamp) -> f64,
    rung_y: &dyn Fn(&str) -> Option<f64>,
) -> Option<String> {
    let start = input
        .timeline
        .plan_at_start
        .as_deref()
        .or(input.current_plan)?;
    let mut y = rung_y(start)?;
    let mut d = format!("M{:.1},{:.1}", x(input.from), y);
    for change in input.timeline.changes.iter().filter(|c| c.moved_plan()) {
        let Some(next) = rung_y(&change.to) else {
            continue;
        };
        let at = x(change.finished_at.unwrap_or(change.at));
        d.push_str(&format!(" H{at:.1} V{next:.1}"));
        y = next;
    }
    // The plan now (changed outside the daemon, or a change we did not see finish).
    let end = x(input.to);
    d.push_str(&format!(" H{end:.1}"));
    if let Some(now) = input.current_plan.and_then(rung_y)
        && (now - y).abs() > f64::EPSILON
    {
        d.push_str(&format!(" V{now:.1}"));
    }
    Some(d)
}

fn change_class(change: &TimelineChange) -> &'static str {
    use crate::store::Phase;
    match change.phase {
        _ if change.dry_run => "dry-run",
        Phase::Completed => "completed",
        Phase::Failed | Phase::TimedOut => "failed",
        Phase::Intended | Phase::Submitted => "in-flight",
    }
}

fn change_title(change: &TimelineChange) -> String {
    format!(
        "{}: {} {} -> {} by {} ({}{})",
        change.at.strftime("%Y-%m-%d %H:%M:%S UTC"),
        change.direction.as_str(),
        change.from,
        change.to,
        change.rule,
        change.phase.as_str(),
        if change.dry_run { ", dry run" } else { "" }
    )
}

/// A tick at each UTC midnight inside the window, labelled like `Thu 26`.
fn day_ticks(from: Timestamp, to: Timestamp) -> Vec<(Timestamp, String)> {
    let utc = jiff::tz::TimeZone::UTC;
    let Ok(start) = from.to_zoned_datetime(utc.clone()).start_of_day() else {
        return Vec::new();
    };
    let mut ticks = Vec::new();
    let mut day = start.timestamp();
    for _ in 0..32 {
        if day >= to {
            break;
        }
        if day > from {
            ticks.push((
                day,
                day.to_zoned_datetime(utc.clone())
                    .strftime("%a %d")
                    .to_string(),
            ));
        }
        match day.checked_add(SignedDuration::from_hours(24)) {
            Ok(next) => day = next,
            Err(_) => break,
        }
    }
    ticks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::Direction;
    use crate::store::{Phase, TimelineAlarm};

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn the_line_steps_at_each_completed_change_and_marks_every_one() {
        let timeline = PlanTimeline {
            plan_at_start: Some("bunny-1".into()),
            changes: vec![TimelineChange {
                at: at("2026-11-25T12:00:00Z"),
                finished_at: Some(at("2026-11-25T12:05:00Z")),
                from: "bunny-1".into(),
                to: "hare-1".into(),
                direction: Direction::Up,
                rule: "memory-high".into(),
                phase: Phase::Completed,
                dry_run: false,
            }],
            alarms: vec![TimelineAlarm {
                at: at("2026-11-25T11:59:00Z"),
                alarm_type: "memory".into(),
                value: Some(85.0),
                resolved: false,
            }],
        };
        let ladder = ["bunny-1".to_owned(), "hare-1".into(), "rabbit-1".into()];
        let plans = axis_plans(Some(&ladder), Some("hare-1"), &timeline);
        assert_eq!(plans, ladder);
        let svg = render(&ChartInput {
            from: at("2026-11-20T00:00:00Z"),
            to: at("2026-11-27T00:00:00Z"),
            plans,
            current_plan: Some("hare-1"),
            timeline: &timeline,
        })
        .into_string();
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains(r#"class="plan-line""#), "{svg}");
        assert!(svg.contains(r#"class="mark change completed""#), "{svg}");
        assert!(svg.contains(r#"class="mark alarm""#), "{svg}");
        assert!(svg.contains("memory 85"), "{svg}");
        // Seven midnights after the start, the first is not drawn (it is the edge).
        assert_eq!(svg.matches(r#"class="day""#).count(), 6, "{svg}");
        // Down from bunny-1 (the bottom row) at the start ...
        assert!(svg.contains("M70.0,"), "{svg}");
    }

    #[test]
    fn plans_off_the_ladder_are_added_and_no_plan_draws_no_line() {
        let timeline = PlanTimeline::default();
        assert_eq!(axis_plans(None, Some("lemur"), &timeline), ["lemur"]);
        let svg = render(&ChartInput {
            from: at("2026-11-20T00:00:00Z"),
            to: at("2026-11-27T00:00:00Z"),
            plans: Vec::new(),
            current_plan: None,
            timeline: &timeline,
        })
        .into_string();
        assert!(svg.contains("plan not known yet"));
        assert!(!svg.contains("plan-line"));
    }
}
