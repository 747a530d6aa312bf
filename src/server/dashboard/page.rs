//! The dashboard's HTML, with maud: markup checked at compile time, every value escaped
//! (an instance named `<script>` is text). No external assets: the CSS is inline, the
//! charts are inline SVG, and nothing needs a script.

use jiff::Timestamp;
use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::chart;
use crate::server::view::InstanceView;
use crate::store::{HistoryEvent, PlanTimeline};

/// What a page shows of the daemon as a whole.
#[derive(Debug)]
pub struct Header<'a> {
    pub mode: &'a str,
    pub rules_path: &'a str,
    pub rules_hash: &'a str,
    pub now: Timestamp,
}

/// One instance's card: the view, and its chart's timeline (or why there is none).
#[derive(Debug)]
pub struct Card<'a> {
    pub view: &'a InstanceView,
    pub timeline: Result<&'a PlanTimeline, &'a str>,
    pub chart_from: Timestamp,
}

const CSS: &str = r#"
:root { --fg: #1d2330; --muted: #5b6475; --line: #d9dee7; --bg: #f5f7fa; --card: #fff;
  --accent: #2563eb; --ok: #15803d; --bad: #b91c1c; --warn: #b45309; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: var(--fg); background: var(--bg); }
header.top { background: #1d2330; color: #fff; padding: .8rem 1.2rem; display: flex;
  flex-wrap: wrap; gap: .4rem 1.2rem; align-items: baseline; }
header.top h1 { font-size: 1.15rem; margin: 0; }
header.top a { color: #fff; text-decoration: none; }
header.top .meta { color: #c6cbd6; font-size: .85rem; overflow-wrap: anywhere; }
main { max-width: 1100px; margin: 0 auto; padding: 1rem; }
.badge { display: inline-block; padding: .05rem .5rem; border-radius: 999px; font-size: .78rem;
  font-weight: 600; background: #e5e9f0; color: var(--fg); }
.badge.live { background: #dcfce7; color: var(--ok); }
.badge.dry-run { background: #fef3c7; color: var(--warn); }
.badge.bad { background: #fee2e2; color: var(--bad); }
.badge.busy { background: #dbeafe; color: var(--accent); }
section.instance { background: var(--card); border: 1px solid var(--line); border-radius: 10px;
  padding: 1rem 1.2rem; margin-bottom: 1rem; }
section.instance.attention { border: 2px solid var(--bad); box-shadow: 0 0 0 3px #fee2e2; }
.instance h2 { margin: 0 0 .6rem; font-size: 1.2rem; display: flex; flex-wrap: wrap;
  gap: .3rem .6rem; align-items: baseline; }
.instance h2 a { color: var(--fg); }
.instance h2 .id { color: var(--muted); font-weight: 400; font-size: .9rem; }
.alert { background: #fee2e2; color: var(--bad); border-radius: 6px; padding: .4rem .7rem;
  margin: 0 0 .7rem; font-weight: 600; }
dl.facts { display: grid; grid-template-columns: repeat(auto-fill, minmax(140px, 1fr));
  gap: .5rem 1rem; margin: 0 0 .8rem; }
dl.facts div { min-width: 0; }
dl.facts dt { color: var(--muted); font-size: .78rem; text-transform: uppercase;
  letter-spacing: .03em; }
dl.facts dd { margin: 0; font-weight: 600; overflow-wrap: anywhere; }
.rungs { display: flex; gap: 2px; margin-top: .25rem; }
.rungs span { flex: 1; height: 6px; background: var(--line); border-radius: 2px; }
.rungs span.on { background: var(--accent); }
.why { color: var(--muted); font-size: .9rem; margin: .2rem 0 .6rem; overflow-wrap: anywhere; }
/* On a phone the chart keeps a legible size and scrolls sideways, starting at its right
   end (now): an rtl box opens scrolled to its end, no script needed. */
.chart-wrap { overflow-x: auto; direction: rtl; }
svg.chart { direction: ltr; width: 100%; min-width: 540px; height: auto; display: block; background: #fbfcfe;
  border: 1px solid var(--line); border-radius: 6px; }
svg .rung { stroke: #eef1f5; }
svg .day { stroke: #e3e7ee; stroke-dasharray: 2 3; }
svg text { font: 11px system-ui, sans-serif; fill: var(--muted); }
svg .plan-line { fill: none; stroke: var(--accent); stroke-width: 2.5; }
svg line.change { stroke-width: 1.5; stroke-dasharray: 4 3; }
svg .completed { stroke: var(--ok); fill: var(--ok); }
svg .failed { stroke: var(--bad); fill: var(--bad); }
svg .in-flight { stroke: var(--accent); fill: var(--accent); }
svg .dry-run { stroke: #9aa3b2; fill: #9aa3b2; }
svg .alarm { fill: var(--warn); }
svg .alarm.resolved { fill: #9aa3b2; }
.legend { color: var(--muted); font-size: .8rem; margin: .35rem 0 0; }
.legend b { font-weight: 600; }
.legend .l-line { color: var(--accent); } .legend .l-alarm { color: var(--warn); }
.legend .l-ok { color: var(--ok); } .legend .l-bad { color: var(--bad); }
table.history { width: 100%; border-collapse: collapse; font-size: .9rem; }
table.history th, table.history td { text-align: left; padding: .35rem .5rem;
  border-bottom: 1px solid var(--line); vertical-align: top; }
table.history td.at { white-space: nowrap; color: var(--muted); }
table.history td { overflow-wrap: anywhere; }
.empty { color: var(--muted); }
@media (max-width: 640px) {
  main { padding: .6rem; }
  section.instance { padding: .8rem; }
  table.history thead { display: none; }
  table.history tr { display: block; border-bottom: 1px solid var(--line); padding: .3rem 0; }
  table.history td { display: block; border: 0; padding: .1rem 0; }
}
"#;

fn layout(title: &str, header: &Header<'_>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · cloudamqp-autoscaler" }
                style { (PreEscaped(CSS)) }
            }
            body {
                header.top {
                    h1 { a href="/" { "cloudamqp-autoscaler" } }
                    span class=(format!("badge {}", header.mode)) { (header.mode) }
                    span.meta {
                        "rules " (header.rules_path) " · " (short_hash(header.rules_hash))
                        " · " (header.now.strftime("%Y-%m-%d %H:%M:%S UTC"))
                    }
                }
                main { (body) }
            }
        }
    }
}

fn short_hash(hash: &str) -> &str {
    hash.get(..hash.len().min(19)).unwrap_or(hash)
}

/// `GET /`: every instance.
pub fn overview(header: &Header<'_>, cards: &[Card<'_>]) -> Markup {
    layout(
        "Instances",
        header,
        html! {
            @if cards.is_empty() {
                p.empty { "No instance known yet: the first alarm (or schedule) names one." }
            }
            @for card in cards { (instance_card(card, header.now, true)) }
        },
    )
}

/// `GET /instances/{id}`: one instance and its history.
pub fn instance(
    header: &Header<'_>,
    card: &Card<'_>,
    history: Result<&[HistoryEvent], &str>,
) -> Markup {
    let title = card
        .view
        .name
        .clone()
        .unwrap_or_else(|| card.view.id.to_string());
    layout(
        &title,
        header,
        html! {
            (instance_card(card, header.now, false))
            section.instance {
                h2 { "History" }
                @match history {
                    Err(why) => p.empty { "The history cannot be read now: " (why) },
                    Ok([]) => p.empty { "Nothing recorded yet." },
                    Ok(events) => (history_table(events)),
                }
            }
        },
    )
}

/// The 404 page of an instance the daemon does not know.
pub fn not_found(header: &Header<'_>, id: &str) -> Markup {
    layout(
        "Not found",
        header,
        html! {
            section.instance {
                h2 { "No such instance" }
                p { "The daemon knows no instance " code { (id) } "." }
                p { a href="/" { "All instances" } }
            }
        },
    )
}

fn instance_card(card: &Card<'_>, now: Timestamp, link: bool) -> Markup {
    let view = card.view;
    let name = view.name.as_deref().unwrap_or("(unnamed)");
    let attention = view.needs_attention();
    html! {
        section class=(if attention { "instance attention" } else { "instance" })
            id=(format!("instance-{}", view.id)) {
            h2 {
                @if link { a href=(format!("/instances/{}", view.id)) { (name) } } @else { (name) }
                span.id { "id " (view.id) }
                @if view.change.is_some() { span class="badge busy" { "change in flight" } }
                @if !view.pauses.is_empty() { span class="badge dry-run" { "paused" } }
                @if attention { span class="badge bad" { "needs attention" } }
            }
            @if let (true, Some(last)) = (attention, &view.last_change) {
                p.alert {
                    "Needs attention: the change " (last.from) " → " (last.to) " by " (last.rule)
                    " " (last.result.replace('_', " ")) " at " (time(last.finished_at)) "."
                }
            }
            dl.facts {
                div { dt { "Plan" } dd.plan { (view.plan.as_deref().unwrap_or("unknown")) } }
                div { dt { "Floor" } dd { (view.floor.as_deref().unwrap_or("-")) } }
                div {
                    dt { "Ladder" }
                    dd {
                        @match &view.ladder {
                            Some(l) => {
                                (l.rung + 1) " of " (l.plans.len()) " on " (l.name)
                                span.rungs title=(l.plans.join(" < ")) {
                                    @for rung in 0..l.plans.len() {
                                        span class=(if rung <= l.rung { "on" } else { "" }) {}
                                    }
                                }
                            },
                            None => "not on a ladder",
                        }
                    }
                }
                div {
                    dt { "Change in flight" }
                    dd {
                        @match &view.change {
                            Some(c) => { (c.from) " → " (c.to) " (" (c.direction.as_str()) ", " (c.phase) ")" },
                            None => "none",
                        }
                    }
                }
                div {
                    dt { "Cooldown" }
                    dd {
                        @match view.cooldown_until {
                            Some(until) if until > now => { "until " (time(until)) },
                            _ => "none",
                        }
                    }
                }
                div {
                    dt { "Pauses" }
                    dd {
                        @if view.pauses.is_empty() { "none" }
                        @for pause in &view.pauses {
                            div {
                                (pause.directions.as_str()) " until " (time(pause.until))
                                @if let Some(reason) = &pause.reason { ": " (reason) }
                            }
                        }
                    }
                }
                div {
                    dt { "Last change" }
                    dd {
                        @match &view.last_change {
                            Some(c) => { (c.from) " → " (c.to) ", " (c.result.replace('_', " ")) },
                            None => "none",
                        }
                    }
                }
                div {
                    dt { "Next step down" }
                    dd {
                        @match &view.scale_down {
                            Some(s) => { (s.to) @if let Some(at) = s.eligible_at { " after " (time(at)) } },
                            None => "none",
                        }
                    }
                }
            }
            @if let Some(d) = &view.last_decision {
                p.why {
                    "Last decision " (time(d.at)) ": " b { (d.decision) }
                    @if let Some(reason) = &d.reason { " (" (reason) ")" }
                    " — " (d.detail)
                }
            }
            @match card.timeline {
                Ok(timeline) => {
                    @let plans = chart::axis_plans(
                        view.ladder.as_ref().map(|l| l.plans.as_slice()),
                        view.plan.as_deref(),
                        timeline,
                    );
                    div.chart-wrap {
                        (chart::render(&chart::ChartInput {
                            from: card.chart_from,
                            to: now,
                            plans,
                            current_plan: view.plan.as_deref(),
                            timeline,
                        }))
                    }
                    p.legend {
                        "Last 7 days: " b.l-line { "━ plan" } " · " b.l-alarm { "▲ alarm" }
                        " · " b.l-ok { "┆ change completed" } " · " b.l-bad { "┆ failed" }
                    }
                },
                Err(why) => p.empty { "The chart cannot be drawn now: " (why) },
            }
        }
    }
}

fn history_table(events: &[HistoryEvent]) -> Markup {
    html! {
        table.history {
            thead { tr { th { "Time (UTC)" } th { "What" } th { "Why" } } }
            tbody {
                @for event in events {
                    tr class=(format!("event {}", event.what.name())) {
                        td.at { (time(event.at)) }
                        td { (event.what()) }
                        td { (event.why().unwrap_or_default()) }
                    }
                }
            }
        }
    }
}

fn time(at: Timestamp) -> String {
    at.strftime("%Y-%m-%d %H:%M:%S").to_string()
}
