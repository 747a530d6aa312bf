//! Wrong methods, unknown and traversal-looking paths, oversized URLs and headers, and
//! bytes that are not HTTP at all.

use reqwest::{Method, StatusCode};

use crate::support::TOKEN;
use crate::{
    HARMLESS, alarm_url, alarms, app, assert_nothing_recorded, assert_unharmed, post_head, raw,
    refused,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_path_with_another_method_is_405_with_allow() {
    let app = app().await;
    let mut sent = 0;
    let endpoints = [
        ("/cloudamqp/alarm", "POST"),
        ("/healthz", "GET"),
        ("/readyz", "GET"),
        ("/metrics", "GET"),
        ("/status", "GET"),
    ];
    for (path, allowed) in endpoints {
        for method in ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"] {
            if method == allowed {
                continue;
            }
            let case = format!("{method} {path}");
            let url = if path == "/cloudamqp/alarm" {
                alarm_url(&app)
            } else {
                format!("{}{path}", app.base)
            };
            let response = app
                .http
                .request(Method::from_bytes(method.as_bytes()).unwrap(), url)
                .body(HARMLESS)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED, "{case}");
            assert_eq!(response.headers()["allow"], allowed, "{case}");
            if method != "HEAD" {
                let message = refused(response, StatusCode::METHOD_NOT_ALLOWED, &case).await;
                assert!(message.contains(allowed), "{case}: {message}");
            }
            assert_nothing_recorded(&app, 0, &case);
            sent += 1;
        }
    }
    assert_eq!(sent, 30);
    // A method the daemon has never heard of.
    let answer = raw(
        &app,
        format!(
            "BREW /cloudamqp/alarm?token={TOKEN} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    answer.refused(405, "BREW");
    assert_eq!(answer.header("allow").as_deref(), Some("POST"));
    assert_nothing_recorded(&app, 0, "BREW");
    // Invented methods share one metrics series: a client cannot grow /metrics without end.
    for method in ["BREW", "WHEN"] {
        raw(
            &app,
            format!("{method} /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap()
        .refused(405, method);
    }
    let metrics = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !metrics.contains("BREW") && !metrics.contains("WHEN"),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"method="other",route="/healthz",status="405""#),
        "{metrics}"
    );
    assert_unharmed(&app).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_traversal_looking_paths_are_404() {
    let app = app().await;
    // Sent raw: an HTTP client would normalise `..` away before sending.
    // (`/` is the dashboard: a POST there is a 405, as on every known path.)
    let paths = [
        "/cloudamqp",
        "/cloudamqp/alarm/",
        "/cloudamqp/alarm/extra",
        "/CLOUDAMQP/ALARM",
        "/cloudamqp/alarm.json",
        "//cloudamqp/alarm",
        "/cloudamqp//alarm",
        "/cloudamqp/./alarm",
        "/x/../cloudamqp/alarm",
        "/cloudamqp/alarm/..",
        "/cloudamqp/../../../etc/passwd",
        "/..%2f..%2f..%2fetc%2fpasswd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/cloudamqp%2Falarm",
        "/cloudamqp/alarm%00",
        "/cloudamqp/alarm;token=x",
        "/healthz/../status",
        "/state/autoscaler.sqlite3",
        "/.env",
    ];
    for path in paths {
        let separator = if path.contains('?') { '&' } else { '?' };
        let request = format!(
            "POST {path}{separator}token={TOKEN} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{HARMLESS}",
            HARMLESS.len()
        );
        let answer = raw(&app, request.as_bytes())
            .await
            .unwrap_or_else(|| panic!("{path}: no answer"));
        answer.refused(404, path);
        let get = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let answer = raw(&app, get.as_bytes()).await.unwrap();
        answer.refused(404, path);
        assert_nothing_recorded(&app, 0, path);
    }
    // A very long path: still 404, and the answer does not echo it whole.
    let long = format!("/{}", "a/".repeat(8 * 1024));
    let response = app.get(&long).await;
    let message = refused(response, StatusCode::NOT_FOUND, "a 16 KiB path").await;
    assert!(message.len() < 300, "{} bytes echoed", message.len());
    assert_unharmed(&app).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_urls_and_headers_get_a_4xx_and_the_daemon_stays_up() {
    let app = app().await;
    // Under the 128 KiB head limit of the HTTP layer, a long query string and a long
    // header are just ignored: the alarm is judged on its token and body. (60 KiB: the
    // client's own limit on a URL is 64 KiB.)
    let padding = "p".repeat(60 * 1024);
    let response = app
        .http
        .post(format!("{}&pad={padding}", alarm_url(&app)))
        .body(HARMLESS)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED, "60 KiB query");
    let response = app
        .http
        .post(format!(
            "{}/cloudamqp/alarm?pad={padding}&token=wrong",
            app.base
        ))
        .body(HARMLESS)
        .send()
        .await
        .unwrap();
    refused(
        response,
        StatusCode::UNAUTHORIZED,
        "60 KiB query, wrong token",
    )
    .await;
    let response = app
        .http
        .post(alarm_url(&app))
        .header("X-Padding", &padding)
        .body(HARMLESS)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED, "a 60 KiB header");
    assert_eq!(alarms(&app), 2);

    // Beyond it, or with more headers than it parses, the HTTP layer refuses the request
    // itself (an empty-bodied 431 or 400) and closes the connection.
    let huge = "h".repeat(200 * 1024);
    let many: String = (0..100).map(|i| format!("X-Header-{i}: {i}\r\n")).collect();
    let cases = [
        (
            "a 200 KiB query string",
            format!("POST /cloudamqp/alarm?token={TOKEN}&pad={huge} HTTP/1.1\r\nHost: x\r\n\r\n"),
            431,
        ),
        (
            "a 200 KiB header value",
            post_head(&format!("X-Huge: {huge}\r\n")),
            431,
        ),
        ("100 headers", post_head(&many), 431),
        (
            "a header without a colon",
            post_head("this is not a header\r\n"),
            400,
        ),
        (
            "a header with a control byte",
            post_head("X-Bad: a\u{1}b\r\n"),
            400,
        ),
        ("two Host headers", post_head("Host: y\r\n"), 400),
        (
            "an invalid request line",
            "POST  /cloudamqp/alarm HTTP/1.1 extra\r\n\r\n".to_owned(),
            400,
        ),
        (
            "an unknown HTTP version",
            format!("POST /cloudamqp/alarm?token={TOKEN} HTTP/9.9\r\nHost: x\r\n\r\n"),
            400,
        ),
    ];
    for (case, request, status) in cases {
        let answer = raw(&app, request.as_bytes())
            .await
            .unwrap_or_else(|| panic!("{case}: no answer"));
        assert_eq!(answer.status, status, "{case}: {answer:?}");
        assert_nothing_recorded(&app, 2, case);
    }
    // Bytes that are not HTTP/1 at all: a TLS ClientHello, the HTTP/2 preface, noise.
    // The daemon closes the connection (with or without a 400) and serves on.
    let not_http: [(&str, &[u8]); 3] = [
        (
            "a TLS ClientHello",
            b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\x00\x01\x02\x03\r\n\r\n",
        ),
        ("the HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
        (
            "random bytes",
            &[0x00, 0xff, 0x13, 0x37, 0x0d, 0x0a, 0x0d, 0x0a],
        ),
    ];
    for (case, bytes) in not_http {
        let answer = raw(&app, bytes).await;
        assert!(
            answer.as_ref().is_none_or(|a| a.status == 400),
            "{case}: {answer:?}"
        );
        assert_nothing_recorded(&app, 2, case);
    }
    assert_unharmed(&app).await;
    app.stop().await;
}
