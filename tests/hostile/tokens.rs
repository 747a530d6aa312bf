//! The webhook token: every near miss is `401`, only the exact token in `?token=` or
//! `Authorization: Bearer` gets in, and an address that keeps guessing is throttled.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::HeaderValue;

use crate::support::TOKEN;
use crate::{
    HARMLESS, alarms, app, assert_nothing_recorded, assert_unharmed, client_from, refused,
};

/// How a request presents (or fails to present) the token.
struct Attempt {
    case: String,
    /// The query string after `?`, if any.
    query: Option<String>,
    /// Extra headers.
    headers: Vec<(&'static str, HeaderValue)>,
    body: String,
}

fn attempt(case: &str, query: Option<String>, headers: Vec<(&'static str, &str)>) -> Attempt {
    Attempt {
        case: case.to_owned(),
        query,
        headers: headers
            .into_iter()
            .map(|(name, value)| (name, HeaderValue::from_str(value).unwrap()))
            .collect(),
        body: HARMLESS.to_owned(),
    }
}

fn query(token: &str) -> Option<String> {
    Some(format!("token={token}"))
}

/// `TOKEN` with the character at `index` changed.
fn differing_at(index: usize) -> String {
    let mut token: Vec<char> = TOKEN.chars().collect();
    token[index] = if token[index] == 'x' { 'y' } else { 'x' };
    token.into_iter().collect()
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    let credentials =
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {credentials}")
}

async fn send(
    app: &crate::support::TestApp,
    client: &reqwest::Client,
    a: &Attempt,
) -> reqwest::Response {
    let mut url = format!("{}/cloudamqp/alarm", app.base);
    if let Some(query) = &a.query {
        url = format!("{url}?{query}");
    }
    let mut request = client.post(url).body(a.body.clone());
    for (name, value) in &a.headers {
        request = request.header(*name, value.clone());
    }
    request.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_near_miss_of_the_token_is_401_and_records_nothing() {
    let app = app().await;
    let last = TOKEN.len() - 1;
    let upper = TOKEN.to_uppercase();
    let bearer_right = format!("Bearer {TOKEN}");
    let mut wrong = vec![
        attempt("no token", None, vec![]),
        attempt("an empty token", query(""), vec![]),
        attempt("a wrong token", query("wrong"), vec![]),
        attempt(
            "the first character differs",
            query(&differing_at(0)),
            vec![],
        ),
        attempt(
            "a middle character differs",
            query(&differing_at(last / 2)),
            vec![],
        ),
        attempt(
            "the last character differs",
            query(&differing_at(last)),
            vec![],
        ),
        attempt("one character short", query(&TOKEN[..last]), vec![]),
        attempt("one character more", query(&format!("{TOKEN}x")), vec![]),
        attempt("a trailing space", query(&format!("{TOKEN}%20")), vec![]),
        attempt(
            "a trailing `+` (a space)",
            query(&format!("{TOKEN}+")),
            vec![],
        ),
        attempt("a trailing newline", query(&format!("{TOKEN}%0A")), vec![]),
        attempt("a leading space", query(&format!("%20{TOKEN}")), vec![]),
        attempt("a trailing NUL", query(&format!("{TOKEN}%00")), vec![]),
        attempt("upper case", query(&upper), vec![]),
        attempt(
            "the key in upper case",
            Some(format!("TOKEN={TOKEN}")),
            vec![],
        ),
        attempt(
            "the key as an array",
            Some(format!("token[]={TOKEN}")),
            vec![],
        ),
        // serde_urlencoded refuses a repeated field, so neither value is taken.
        attempt(
            "a wrong and the right token in the query",
            Some(format!("token=wrong&token={TOKEN}")),
            vec![],
        ),
        attempt(
            "the right token twice in the query",
            Some(format!("token={TOKEN}&token={TOKEN}")),
            vec![],
        ),
        attempt(
            "Basic, token as password",
            None,
            vec![("authorization", &basic("", TOKEN))],
        ),
        attempt(
            "Basic, token as user",
            None,
            vec![("authorization", &basic(TOKEN, ""))],
        ),
        attempt(
            "Bearer, wrong token",
            None,
            vec![("authorization", "Bearer wrong")],
        ),
        attempt(
            "Bearer, one character differs",
            None,
            vec![("authorization", &format!("Bearer {}", differing_at(last)))],
        ),
        // Only `Bearer ` and `bearer ` are read as the scheme (fails closed).
        attempt(
            "BEARER in capitals",
            None,
            vec![("authorization", &format!("BEARER {TOKEN}"))],
        ),
        attempt(
            "Bearer without a space",
            None,
            vec![("authorization", &format!("Bearer{TOKEN}"))],
        ),
        attempt(
            "Bearer: with a colon",
            None,
            vec![("authorization", &format!("Bearer:{TOKEN}"))],
        ),
        attempt(
            "Bearer, the token then more",
            None,
            vec![("authorization", &format!("Bearer {TOKEN} {TOKEN}"))],
        ),
        attempt(
            "another scheme",
            None,
            vec![("authorization", &format!("Token {TOKEN}"))],
        ),
        attempt("the token alone", None, vec![("authorization", TOKEN)]),
        attempt("another header", None, vec![("x-webhook-token", TOKEN)]),
        attempt(
            "a cookie",
            None,
            vec![("cookie", &format!("token={TOKEN}"))],
        ),
        attempt(
            "Bearer in a second Authorization header",
            None,
            vec![
                ("authorization", "Basic Zm9vOmJhcg=="),
                ("authorization", &bearer_right),
            ],
        ),
    ];
    wrong.push(Attempt {
        body: format!(r#"{{"alarm_type":"notice","token":"{TOKEN}"}}"#),
        ..attempt("the token in the body", None, vec![])
    });
    wrong.push(Attempt {
        headers: vec![(
            "authorization",
            HeaderValue::from_bytes(format!("Bearer {TOKEN}\u{e9}").as_bytes()).unwrap(),
        )],
        ..attempt("a non-ASCII Bearer value", None, vec![])
    });
    // Authentication comes first: a wrong token never gets its body read or judged.
    wrong.push(Attempt {
        body: "not json".to_owned(),
        ..attempt("a wrong token and a broken body", query("wrong"), vec![])
    });
    wrong.push(Attempt {
        body: "x".repeat(100 * 1024),
        ..attempt(
            "a wrong token and a body over 64 KiB",
            query("wrong"),
            vec![],
        )
    });
    for (i, a) in wrong.iter().enumerate() {
        // Each from its own address, so that the guessing throttle stays out of the way.
        let client = client_from(&format!("127.0.1.{}", i + 1));
        let message = refused(
            send(&app, &client, a).await,
            StatusCode::UNAUTHORIZED,
            &a.case,
        )
        .await;
        assert!(message.contains("token"), "{}: {message}", a.case);
        assert_nothing_recorded(&app, 0, &a.case);
    }
    let metrics = app.metrics().await;
    let unauthorized: u64 = metrics
        .lines()
        .filter(|l| {
            l.starts_with("autoscaler_alarms_received_total")
                && l.contains(r#"outcome="unauthorized""#)
        })
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(unauthorized, wrong.len() as u64, "{metrics}");

    // What does get in: the exact token, in the query or as a Bearer token.
    let right = [
        attempt(
            "Bearer with extra spaces",
            None,
            vec![("authorization", &format!("Bearer    {TOKEN}   "))],
        ),
        attempt(
            "bearer in lower case",
            None,
            vec![("authorization", &format!("bearer {TOKEN}"))],
        ),
        attempt(
            "a wrong query, the right header",
            query("wrong"),
            vec![("authorization", &bearer_right)],
        ),
        attempt(
            "the right query, a wrong header",
            query(TOKEN),
            vec![("authorization", "Bearer wrong")],
        ),
        attempt(
            "the right token percent-encoded",
            query(
                &TOKEN
                    .bytes()
                    .map(|b| format!("%{b:02X}"))
                    .collect::<String>(),
            ),
            vec![],
        ),
        attempt(
            "other parameters around it",
            Some(format!("a=1&token={TOKEN}&b=2")),
            vec![],
        ),
    ];
    for (i, a) in right.iter().enumerate() {
        let client = client_from(&format!("127.0.2.{}", i + 1));
        assert_eq!(
            send(&app, &client, a).await.status(),
            StatusCode::ACCEPTED,
            "{}",
            a.case
        );
    }
    assert_eq!(alarms(&app), right.len() as i64);
    assert_unharmed(&app).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_address_gets_429_for_wrong_tokens_until_retry_after_but_the_right_token_gets_in()
 {
    let app = app().await;
    let guesser = client_from("127.0.0.1");
    let url = format!("{}/cloudamqp/alarm", app.base);
    let guess = || {
        guesser
            .post(format!("{url}?token=guess"))
            .body(HARMLESS)
            .send()
    };
    for i in 0..20 {
        refused(
            guess().await.unwrap(),
            StatusCode::UNAUTHORIZED,
            &format!("guess {i}"),
        )
        .await;
    }
    let response = guess().await.unwrap();
    assert!(response.headers().contains_key("retry-after"));
    refused(response, StatusCode::TOO_MANY_REQUESTS, "guess 21").await;

    // Its wrong tokens stay refused until Retry-After, without counting again.
    let response = guess().await.unwrap();
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    refused(
        response,
        StatusCode::TOO_MANY_REQUESTS,
        "guess 22, throttled",
    )
    .await;
    assert_nothing_recorded(&app, 0, "throttled");

    // The right token, either way it may come, still gets in from that address: behind a
    // reverse proxy every sender has the proxy's address, and CloudAMQP must not be shut
    // out by whoever guesses.
    for (how, request) in [
        ("in the query", guesser.post(format!("{url}?token={TOKEN}"))),
        ("as Bearer", guesser.post(&url).bearer_auth(TOKEN)),
    ] {
        let response = request.body(HARMLESS).send().await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::ACCEPTED,
            "the right token {how}, throttled address"
        );
    }
    assert_eq!(alarms(&app), 2);
    // The throttle guards the webhook only: the address may still check health.
    assert_eq!(
        guesser
            .get(format!("{}/healthz", app.base))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );

    // Another address is not affected: its wrong token is a 401, not a 429.
    let other = client_from("127.0.0.2");
    let response = other
        .post(format!("{url}?token=guess"))
        .body(HARMLESS)
        .send()
        .await
        .unwrap();
    refused(
        response,
        StatusCode::UNAUTHORIZED,
        "a wrong token from another address",
    )
    .await;

    // Retry-After is honest: waiting exactly that long is enough for a wrong token to be
    // judged again (a 401, and counted). (A deliberate wait: the throttle is a time window.)
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    refused(
        guess().await.unwrap(),
        StatusCode::UNAUTHORIZED,
        "a guess after Retry-After",
    )
    .await;
    assert_eq!(alarms(&app), 2);
    assert_unharmed(&app).await;
    app.stop().await;
}
