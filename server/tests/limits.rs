//! The limits: a device over its rate gets 429 with Retry-After and other
//! devices do not notice; requests over the concurrency cap get 503 at once;
//! a request past its deadline gets 408.

use std::time::Duration;

use axum::http::{Method, StatusCode, header};
use jiff::SignedDuration;
use shipshape_core::wire::Receipt;
use shipshape_server::api::ApiSettings;
use shipshape_server::config::{Limits, RateLimit};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::support::{Server, Signed, leaky_submission, random_bytes};

fn settings() -> ApiSettings {
    ApiSettings {
        stale_after: SignedDuration::from_hours(48),
        public_url: None,
        tls: false,
    }
}

async fn with_limits(limits: Limits) -> Server {
    Server::start_limited(settings(), limits).await
}

/// `server`'s router on a real socket on loopback; its address.
async fn listen(server: &Server) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let router = server.router.clone();
    tokio::spawn(async move { axum::serve(listener, router).await });
    address
}

/// Waits until `check` holds, for at most 10 seconds.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_device_over_its_rate_gets_429_and_others_do_not_notice() {
    let server = with_limits(Limits {
        rate: Some(RateLimit {
            per_minute: 1,
            burst: 3,
        }),
        ..Limits::NONE
    })
    .await;
    let ada = server.enroll("ada-laptop").await;
    let eve = server.enroll("eve-laptop").await;

    // Requests under ada's id that do not verify spend nothing of hers.
    for _ in 0..5 {
        let mut forged = Signed::new(
            &ada,
            Method::POST,
            "/v1/reports",
            serde_json::to_vec(&leaky_submission("ada-laptop")).unwrap(),
        );
        forged.key = ed25519_dalek::SigningKey::from_bytes(&random_bytes());
        assert_eq!(
            server.send(forged.request()).await.status,
            StatusCode::UNAUTHORIZED
        );
    }

    for _ in 0..3 {
        let answer = server.report(&ada, &leaky_submission("ada-laptop")).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    }
    let over = leaky_submission("ada-laptop");
    let answer = server.report(&ada, &over).await;
    assert_eq!(
        answer.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        answer.text()
    );
    let wait: u64 = answer
        .header(header::RETRY_AFTER)
        .expect("a Retry-After header")
        .parse()
        .expect("whole seconds");
    assert!((1..=60).contains(&wait), "{wait}");
    assert!(answer.error().error.contains("Retry-After"));

    // Every signed endpoint shares the device's bucket.
    let policy = Signed::new(&ada, Method::GET, "/v1/policy", Vec::new());
    assert_eq!(
        server.send(policy.request()).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Another device is not affected, nor are unsigned routes.
    let answer = server.report(&eve, &leaky_submission("eve-laptop")).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(server.get("/healthz").await.status, StatusCode::OK);

    let detail = server.detail(&ada).await.unwrap();
    assert_eq!(detail.reports.len(), 3, "nothing stored over the limit");
    assert!(detail.reports.iter().all(|report| report.id != over.id));

    let metrics = server.get("/metrics").await.text();
    assert!(
        metrics
            .lines()
            .any(|line| line == "shipshape_requests_refused_total{limit=\"rate_limited\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|line| line == "shipshape_reports_rejected_total{reason=\"rate_limited\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn the_rate_refills() {
    let server = with_limits(Limits {
        rate: Some(RateLimit {
            per_minute: 60,
            burst: 1,
        }),
        ..Limits::NONE
    })
    .await;
    let ada = server.enroll("ada-laptop").await;
    let first: Receipt = server
        .report(&ada, &leaky_submission("ada-laptop"))
        .await
        .json();
    assert_eq!(
        server
            .report(&ada, &leaky_submission("ada-laptop"))
            .await
            .status,
        StatusCode::TOO_MANY_REQUESTS
    );
    // 60 a minute: a new request every second.
    tokio::time::sleep(Duration::from_millis(1050)).await;
    let answer = server.report(&ada, &leaky_submission("ada-laptop")).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_ne!(answer.json::<Receipt>().report_id, first.report_id);
}

/// The head of a signed-looking POST whose body is still to come.
fn unfinished_post(address: std::net::SocketAddr, length: usize) -> String {
    format!(
        "POST /v1/reports HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Content-Length: {length}\r\nExpect: 100-continue\r\n\r\n"
    )
}

/// Reads until what arrived contains `needle`, or else until the peer
/// closes the connection; what was read.
async fn read_until(stream: &mut TcpStream, needle: Option<&str>) -> String {
    let mut received = Vec::new();
    let mut buffer = [0; 4096];
    let read = async {
        loop {
            let count = stream.read(&mut buffer).await.unwrap_or(0);
            received.extend_from_slice(&buffer[..count]);
            let found =
                needle.is_some_and(|needle| String::from_utf8_lossy(&received).contains(needle));
            if count == 0 || found {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("an answer within 10 s");
    String::from_utf8_lossy(&received).into_owned()
}

#[tokio::test]
async fn requests_over_the_concurrency_cap_are_refused_at_once() {
    let server = with_limits(Limits {
        max_concurrent_requests: Some(1),
        ..Limits::NONE
    })
    .await;
    let address = listen(&server).await;
    let client = reqwest::Client::new();
    let healthz = format!("http://{address}/healthz");

    // A request whose handler waits for a body that does not come: the
    // server's 100 Continue says it is in the handler, holding the permit.
    let mut slow = TcpStream::connect(address).await.unwrap();
    slow.write_all(unfinished_post(address, 100).as_bytes())
        .await
        .unwrap();
    let interim = read_until(&mut slow, Some("\r\n\r\n")).await;
    assert!(interim.starts_with("HTTP/1.1 100"), "{interim}");

    let answer = client.get(&healthz).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        answer
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok()),
        Some("1")
    );
    let error: shipshape_core::wire::ApiError = answer.json().await.unwrap();
    assert!(error.error.contains("try again"), "{error:?}");

    // The slow client goes away: its permit comes back.
    drop(slow);
    eventually("the server answers again", || async {
        client
            .get(&healthz)
            .send()
            .await
            .is_ok_and(|answer| answer.status() == StatusCode::OK)
    })
    .await;
    let metrics = client
        .get(format!("http://{address}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|line| line == "shipshape_requests_refused_total{limit=\"overloaded\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_request_past_its_deadline_gets_408_and_a_closed_connection() {
    let server = with_limits(Limits {
        request_timeout: Some(Duration::from_millis(300)),
        ..Limits::NONE
    })
    .await;
    let address = listen(&server).await;
    let mut slow = TcpStream::connect(address).await.unwrap();
    slow.write_all(unfinished_post(address, 100).as_bytes())
        .await
        .unwrap();
    slow.write_all(b"{\"id\":").await.unwrap();
    let started = std::time::Instant::now();
    let answer = read_until(&mut slow, None).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let final_answer = answer
        .split("\r\n\r\n")
        .skip_while(|part| part.starts_with("HTTP/1.1 100"))
        .collect::<Vec<_>>()
        .join("\r\n\r\n");
    assert!(final_answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        final_answer.to_lowercase().contains("connection: close"),
        "{answer}"
    );
    assert!(final_answer.contains("send it again"), "{answer}");

    let metrics = server.get("/metrics").await.text();
    assert!(
        metrics
            .lines()
            .any(|line| line == "shipshape_requests_refused_total{limit=\"timed_out\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn no_limits_unless_asked() {
    let server = Server::start().await;
    let ada = server.enroll("ada-laptop").await;
    for _ in 0..20 {
        let answer = server.report(&ada, &leaky_submission("ada-laptop")).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    }
}
