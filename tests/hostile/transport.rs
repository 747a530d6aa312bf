//! How a body arrives: its size (64 KiB is the limit, inclusive), its framing
//! (Content-Length, chunked, both, lying) and its pace (a sender that trickles).

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::support::{MEMORY_85, TestApp};
use crate::{
    HARMLESS, alarms, app, assert_nothing_recorded, assert_unharmed, post, post_head, raw,
    read_response, refused, socket_addr,
};

const LIMIT: usize = 64 * 1024;

/// A harmless alarm padded to exactly `size` bytes.
fn body_of(size: usize) -> String {
    let empty = r#"{"alarm_type":"notice","note":""}"#;
    let body = format!(
        r#"{{"alarm_type":"notice","note":"{}"}}"#,
        "x".repeat(size - empty.len())
    );
    assert_eq!(body.len(), size);
    body
}

/// `body` sent chunked (no Content-Length), in pieces of 10 000 bytes.
fn chunked(body: &str) -> reqwest::Body {
    let pieces: Vec<Result<Vec<u8>, std::io::Error>> = body
        .as_bytes()
        .chunks(10_000)
        .map(|c| Ok(c.to_vec()))
        .collect();
    reqwest::Body::wrap_stream(futures_util::stream::iter(pieces))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_size_limit_is_64_kib_inclusive_declared_or_chunked() {
    let app = app().await;
    let exact = body_of(LIMIT);
    let over = body_of(LIMIT + 1);
    for (case, body) in [
        ("64 KiB + 1, declared", reqwest::Body::from(over.clone())),
        ("64 KiB + 1, chunked", chunked(&over)),
        ("256 KiB, chunked", chunked(&body_of(256 * 1024))),
    ] {
        let message = refused(post(&app, body).await, StatusCode::PAYLOAD_TOO_LARGE, case).await;
        assert!(message.contains("64 KiB"), "{case}: {message}");
        assert_nothing_recorded(&app, 0, case);
    }
    // A declared length over the limit is refused before a byte of the body is read, so a
    // sender that never sends the body gets its answer at once.
    for length in ["65537", "10000000000", "18446744073709551615"] {
        let case = format!("Content-Length {length}, no body sent");
        let started = Instant::now();
        let answer = raw(
            &app,
            post_head(&format!("Content-Length: {length}\r\n")).as_bytes(),
        )
        .await
        .unwrap_or_else(|| panic!("{case}: no answer"));
        answer.refused(413, &case);
        assert!(started.elapsed() < Duration::from_secs(3), "{case}");
        assert_nothing_recorded(&app, 0, &case);
    }
    for (case, body) in [
        (
            "exactly 64 KiB, declared",
            reqwest::Body::from(exact.clone()),
        ),
        ("exactly 64 KiB, chunked", chunked(&exact)),
    ] {
        assert_eq!(
            post(&app, body).await.status(),
            StatusCode::ACCEPTED,
            "{case}"
        );
    }
    assert_eq!(alarms(&app), 2);
    assert_unharmed(&app).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_framing_is_refused_and_nothing_recorded() {
    let app = app().await;
    // Framing the HTTP layer refuses before the application sees the request: `400` with
    // an empty body (actix-http answers these itself), and the connection is closed.
    let protocol_errors = [
        (
            "a Content-Length over u64",
            "Content-Length: 99999999999999999999999\r\n",
        ),
        ("a negative Content-Length", "Content-Length: -1\r\n"),
        ("a Content-Length with a sign", "Content-Length: +5\r\n"),
        ("a Content-Length that is text", "Content-Length: five\r\n"),
        (
            "two Content-Lengths",
            "Content-Length: 5\r\nContent-Length: 6\r\n",
        ),
        (
            "Content-Length and chunked (request smuggling)",
            "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
        ),
        ("an unknown transfer coding", "Transfer-Encoding: gzip\r\n"),
    ];
    for (case, headers) in protocol_errors {
        let request = post_head(headers) + "0\r\n\r\n";
        let answer = raw(&app, request.as_bytes())
            .await
            .unwrap_or_else(|| panic!("{case}: no answer"));
        assert_eq!(answer.status, 400, "{case}: {answer:?}");
        assert_nothing_recorded(&app, 0, case);
    }
    // Chunked bodies that break while the application reads them: `400` with a JSON error.
    let chunked = "Transfer-Encoding: chunked\r\n";
    let body = HARMLESS;
    let bad_chunks = [
        (
            "a chunk size that is not hex",
            format!("ZZ\r\n{body}\r\n0\r\n\r\n"),
        ),
        (
            "a chunk size over u64",
            format!("FFFFFFFFFFFFFFFFFFFF\r\n{body}\r\n0\r\n\r\n"),
        ),
        (
            "a chunk longer than its size",
            format!("5\r\n{body}\r\n0\r\n\r\n"),
        ),
    ];
    for (case, chunks) in bad_chunks {
        let request = post_head(chunked) + &chunks;
        let answer = raw(&app, request.as_bytes())
            .await
            .unwrap_or_else(|| panic!("{case}: no answer"));
        let message = answer.refused(400, case);
        assert!(
            message.contains("cannot read the body"),
            "{case}: {message}"
        );
        assert_nothing_recorded(&app, 0, case);
    }
    // A body shorter than declared, then the sender gives up (closes its side).
    let mut stream = TcpStream::connect(socket_addr(&app)).await.unwrap();
    let request = post_head("Content-Length: 100\r\n") + &HARMLESS[..20];
    stream.write_all(request.as_bytes()).await.unwrap();
    stream.shutdown().await.unwrap();
    let answer = read_response(&mut stream).await.expect("an answer");
    let message = answer.refused(400, "a body cut short");
    assert!(message.contains("cannot read the body"), "{message}");
    assert_nothing_recorded(&app, 0, "a body cut short");
    // A well-formed chunked body is fine.
    let request = format!(
        "{}{:x}\r\n{body}\r\n0\r\n\r\n",
        post_head(chunked),
        body.len()
    );
    let answer = raw(&app, request.as_bytes()).await.unwrap();
    assert_eq!(answer.status, 202, "{answer:?}");
    assert_eq!(alarms(&app), 1);
    assert_unharmed(&app).await;
    app.stop().await;
}

/// Sends a head declaring a body, then trickles the body one byte a second.
async fn trickle(app: &TestApp) -> TcpStream {
    let mut stream = TcpStream::connect(socket_addr(app)).await.unwrap();
    let head = post_head(&format!("Content-Length: {}\r\n", MEMORY_85.len()));
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_body_is_408_after_10_s_and_blocks_nobody_meanwhile() {
    let app = app().await;
    let started = Instant::now();
    // Twenty slow senders at once (the daemon runs one HTTP worker in this harness).
    let mut slow = Vec::new();
    for _ in 0..20 {
        let mut stream = trickle(&app).await;
        slow.push(tokio::spawn(async move {
            let (mut read, mut write) = stream.split();
            let dribble = async {
                for byte in MEMORY_85.bytes() {
                    if write.write_all(&[byte]).await.is_err() {
                        break;
                    }
                    // The deliberate trickle: one byte per second.
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            };
            tokio::select! {
                answer = read_half_response(&mut read) => answer,
                () = dribble => None,
            }
        }));
    }
    // Meanwhile a good alarm is answered at once, and so is the health check.
    let quick = Instant::now();
    assert_eq!(post(&app, HARMLESS).await.status(), StatusCode::ACCEPTED);
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
    assert!(
        quick.elapsed() < Duration::from_secs(2),
        "a good request waited {:?} behind slow senders",
        quick.elapsed()
    );
    for sender in slow {
        let answer = sender
            .await
            .unwrap()
            .expect("the slow sender got an answer before its body was complete");
        let message = answer.refused(408, "a slow body");
        assert!(message.contains("in time"), "{message}");
    }
    let took = started.elapsed();
    assert!(
        (Duration::from_millis(9_500)..Duration::from_secs(15)).contains(&took),
        "the slow bodies were cut after {took:?}"
    );
    assert_eq!(alarms(&app), 1, "only the good alarm is recorded");
    assert_unharmed(&app).await;
    app.stop().await;
}

async fn read_half_response(
    read: &mut tokio::net::tcp::ReadHalf<'_>,
) -> Option<crate::RawResponse> {
    use tokio::io::AsyncReadExt;
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match read.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..at + 4]).into_owned();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap_or(0))
                })
                .unwrap_or(0);
            if buffer.len() >= at + 4 + length {
                return Some(crate::RawResponse {
                    status: head.split(' ').nth(1)?.parse().ok()?,
                    head,
                    body: buffer[at + 4..at + 4 + length].to_vec(),
                });
            }
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_head_is_cut_after_5_s_and_blocks_nobody_meanwhile() {
    let app = app().await;
    let started = Instant::now();
    let mut stream = TcpStream::connect(socket_addr(&app)).await.unwrap();
    stream
        .write_all(b"POST /cloudamqp/alarm?token=")
        .await
        .unwrap();
    let mut idle = TcpStream::connect(socket_addr(&app)).await.unwrap();
    assert_eq!(post(&app, HARMLESS).await.status(), StatusCode::ACCEPTED);
    assert!(started.elapsed() < Duration::from_secs(2));
    // actix-http answers a head that is not complete in time with an empty-bodied 408.
    let answer = read_response(&mut stream).await;
    let took = started.elapsed();
    assert_eq!(answer.map(|a| a.status), Some(408));
    assert!(
        (Duration::from_millis(4_500)..Duration::from_secs(9)).contains(&took),
        "{took:?}"
    );
    // So is a connection that never sends a byte.
    let answer = read_response(&mut idle).await;
    assert_eq!(answer.map(|a| a.status), Some(408));
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(alarms(&app), 1);
    assert_unharmed(&app).await;
    app.stop().await;
}
