//! The plan catalogue (moves, ladder lint, cache) and the `plans` / `check --online`
//! helpers, on the catalogue the fake serves (production's).

mod cloudamqp_support;

use std::time::Duration;

use cloudamqp_autoscaler::clock::SharedClock;
use cloudamqp_autoscaler::cloudamqp::{
    CATALOGUE_TTL, Catalogue, CatalogueCache, MoveRefusal, Plan, check_rules_online,
    format_plans_json, format_plans_text, plans_report,
};
use cloudamqp_autoscaler::fake::{Fault, FaultRule, Timeline};
use cloudamqp_support::Harness;

async fn live_catalogue() -> (Harness, Catalogue) {
    let h = Harness::new(Timeline::instant()).await;
    let catalogue = Catalogue::new(h.client.plans().await.unwrap());
    (h, catalogue)
}

fn ladder(plans: &[&str]) -> Vec<String> {
    plans.iter().map(|p| (*p).to_owned()).collect()
}

#[tokio::test]
async fn moves_follow_cloudamqps_rules() {
    let (_h, c) = live_catalogue().await;
    // Allowed: dedicated <-> dedicated within a backend, shared <-> shared,
    // LavinMQ shared -> LavinMQ dedicated.
    for (from, to) in [
        ("bunny-1", "hare-1"),
        ("hare-3", "bunny-1"),
        ("bunny-1", "rabbit-5"),
        ("lemur", "tiger"),
        ("tiger", "lemur"),
        ("lemming", "ermine"),
        ("lemming", "penguin-1"),
        ("puffin-1", "fox-3"),
    ] {
        assert_eq!(c.move_allowed(from, to), Ok(()), "{from} -> {to}");
    }
    let refused = |from: &str, to: &str| c.move_allowed(from, to).unwrap_err();
    assert!(matches!(
        refused("lemur", "bunny-1"),
        MoveRefusal::SharedToDedicated { .. }
    ));
    assert!(matches!(
        refused("bunny-1", "lemur"),
        MoveRefusal::DedicatedToShared { .. }
    ));
    assert!(matches!(
        refused("penguin-1", "lemming"),
        MoveRefusal::DedicatedToShared { .. }
    ));
    assert!(matches!(
        refused("bunny-1", "penguin-1"),
        MoveRefusal::BackendChange { .. }
    ));
    assert!(matches!(
        refused("lemur", "lemming"),
        MoveRefusal::BackendChange { .. }
    ));
    assert_eq!(
        refused("bunny-1", "bunny-2"),
        MoveRefusal::UnknownPlan {
            plan: "bunny-2".into()
        }
    );
    assert_eq!(
        refused("vpc", "bunny-1"),
        MoveRefusal::UnknownPlan { plan: "vpc".into() }
    );
    assert!(matches!(
        refused("hare-1", "hare-1"),
        MoveRefusal::SamePlan { .. }
    ));
    // Every refusal reads as a sentence naming the plans.
    let text = refused("bunny-1", "penguin-1").to_string();
    assert!(
        text.contains("bunny-1") && text.contains("penguin-1") && text.contains("backend"),
        "{text}"
    );
    assert!(refused("x-9", "bunny-1").to_string().contains("\"x-9\""));
}

#[tokio::test]
async fn prices_and_lookups() {
    let (_h, c) = live_catalogue().await;
    assert_eq!(c.price("hare-1"), Some(199.0));
    assert_eq!(c.price("nope"), None);
    assert!(c.get("lemur").unwrap().shared);
    assert_eq!(
        c.unknown_plans(["bunny-1", "bunny-2", "hare-1", "bunny-2", "giraffe-1"]),
        vec!["bunny-2", "giraffe-1"]
    );
}

#[tokio::test]
async fn ladders_are_linted() {
    let (_h, c) = live_catalogue().await;
    assert!(
        c.lint_ladder(
            "single",
            &ladder(&["bunny-1", "hare-1", "rabbit-1", "panda-1"])
        )
        .is_empty()
    );
    let mixed = c.lint_ladder("mixed", &ladder(&["tiger", "bunny-1"]));
    assert_eq!(mixed.len(), 1, "{mixed:?}");
    assert!(mixed[0].contains("shared") && mixed[0].contains("\"mixed\""));
    let backends = c.lint_ladder("two", &ladder(&["puffin-1", "bunny-1"]));
    assert_eq!(backends.len(), 1, "{backends:?}");
    assert!(backends[0].contains("lavinmq") && backends[0].contains("rabbitmq"));
    let descending = c.lint_ladder("down", &ladder(&["hare-1", "bunny-1", "rabbit-1"]));
    assert_eq!(descending.len(), 1, "{descending:?}");
    assert!(descending[0].contains("not ascending") && descending[0].contains("bunny-1"));
    // Unknown names are left to `unknown_plans`, not linted.
    assert!(
        c.lint_ladder("x", &ladder(&["bunny-1", "bunny-2", "hare-1"]))
            .is_empty()
    );
}

#[tokio::test]
async fn check_online_reports_unknown_plans_with_location_and_suggestions() {
    let (_h, c) = live_catalogue().await;
    let ladders = vec![
        (
            "single".to_owned(),
            ladder(&["bunny-1", "bunny-2", "hare-1"]),
        ),
        ("mixed".to_owned(), ladder(&["tiger", "bunny-1"])),
    ];
    let mentions = vec![
        (
            "bunny-1".to_owned(),
            "rules.toml:3:11: ladder single".to_owned(),
        ),
        (
            "bunny-2".to_owned(),
            "rules.toml:3:22: ladder single".to_owned(),
        ),
        (
            "zzzzzzzzzzzz".to_owned(),
            "rules.toml:9:1: rule cpu".to_owned(),
        ),
    ];
    let check = check_rules_online(&c, &ladders, &mentions);
    assert_eq!(check.errors.len(), 2, "{:?}", check.errors);
    assert!(
        check.errors[0].starts_with("rules.toml:3:22: ladder single: plan \"bunny-2\""),
        "{}",
        check.errors[0]
    );
    assert!(check.errors[0].contains("did you mean bunny-1, bunny-3"));
    assert!(check.errors[1].starts_with("rules.toml:9:1: rule cpu:"));
    assert!(check.errors[1].contains("cloudamqp-autoscaler plans"));
    assert_eq!(check.warnings.len(), 1, "{:?}", check.warnings);
    assert!(check.warnings[0].contains("\"mixed\""));
}

#[tokio::test]
async fn the_cache_fetches_once_per_ttl_and_serves_the_old_catalogue_on_failure() {
    let h = Harness::new(Timeline::instant()).await;
    let cache = CatalogueCache::new(h.client.clone(), CATALOGUE_TTL);
    assert!(cache.get().await.unwrap().get("hare-1").is_some());
    cache.get().await.unwrap();
    assert_eq!(h.requests_to("GET", "/plans").len(), 1);
    h.clock.advance(CATALOGUE_TTL);
    cache.get().await.unwrap();
    assert_eq!(h.requests_to("GET", "/plans").len(), 2);
    h.clock.advance(CATALOGUE_TTL);
    h.fake.inject(FaultRule::once(Fault::Unauthorized));
    assert!(cache.get().await.unwrap().get("hare-1").is_some());
    // The failure is not retried on every call: the old catalogue serves for a minute.
    cache.get().await.unwrap();
    assert_eq!(h.requests_to("GET", "/plans").len(), 3);
    h.clock.advance(Duration::from_secs(60));
    cache.get().await.unwrap();
    assert_eq!(h.requests_to("GET", "/plans").len(), 4);
}

#[tokio::test]
async fn plans_report_and_its_formats() {
    let h = Harness::new(Timeline::instant()).await;
    let clock: SharedClock = h.clock.clone();
    let plans = plans_report(&h.settings, clock).await.unwrap();
    assert!(plans.iter().all(Plan::is_broker));

    let text = format_plans_text(&plans);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), plans.len() + 1);
    assert!(lines[0].starts_with("NAME"));
    // Aligned: every column starts at the same offset on every line.
    let column = |line: &str, n: usize| {
        let mut offset = 0;
        let mut fields = 0;
        let bytes = line.as_bytes();
        while fields < n {
            while bytes[offset] != b' ' {
                offset += 1;
            }
            while bytes[offset] == b' ' {
                offset += 1;
            }
            fields += 1;
        }
        offset
    };
    let backend_col = lines[0].find("BACKEND").unwrap();
    assert!(lines.iter().all(|l| !l.ends_with(' ')));
    assert!(
        lines[1..]
            .iter()
            .all(|l| column(l, 2) == backend_col && (l.ends_with("yes") || l.ends_with("no")))
    );
    let hare = lines.iter().find(|l| l.starts_with("hare-1 ")).unwrap();
    assert!(hare.contains("$199") && hare.contains("rabbitmq") && hare.ends_with("no"));

    let json: serde_json::Value = serde_json::from_str(&format_plans_json(&plans)).unwrap();
    let array = json.as_array().unwrap();
    assert_eq!(array.len(), plans.len());
    for entry in array {
        let mut keys: Vec<&str> = entry
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        keys.sort_unstable();
        assert_eq!(keys, ["backend", "name", "price", "shared"]);
    }
    assert!(array.contains(&serde_json::json!(
        {"name": "hare-1", "price": 199, "backend": "rabbitmq", "shared": false}
    )));
}
