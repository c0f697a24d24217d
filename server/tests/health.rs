//! `/healthz`, `/metrics`, and the JSON errors of unknown routes.

use axum::body::Body;
use axum::http::{Method, StatusCode};

use crate::support::{Server, leaky_submission, request};

#[tokio::test]
async fn healthz_answers_when_the_store_does() {
    let server = Server::start().await;
    let answer = server.get("/healthz").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.text(), "ok\n");
}

#[tokio::test]
async fn metrics_count_requests_enrollments_and_the_fleet() {
    let server = Server::start().await;
    let device = server.enroll("ada-laptop").await;
    server
        .report(&device, &leaky_submission("ada-laptop"))
        .await;
    server.get("/v1/fleet").await;
    let answer = server.get("/metrics").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(
        answer.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = answer.text();
    for line in [
        "shipshape_enrollments_total{outcome=\"enrolled\"} 1",
        "shipshape_reports_total{outcome=\"stored\"} 1",
        "shipshape_http_requests_total{class=\"2xx\"} 2",
        "shipshape_http_requests_total{class=\"4xx\"} 1",
        "# TYPE shipshape_fleet_devices gauge",
        "shipshape_fleet_devices{status=\"leaky\"} 1",
        "shipshape_fleet_devices{status=\"compliant\"} 0",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
    }
    assert!(text.contains(&format!(
        "shipshape_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    )));
}

#[tokio::test]
async fn unknown_routes_and_methods_are_json_errors() {
    let server = Server::start().await;
    let answer = server.get("/v2/nothing").await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert!(answer.error().error.contains("/openapi.json"));
    let answer = server
        .send(
            request(Method::DELETE, "/v1/reports")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(
        answer
            .error()
            .error
            .starts_with("DELETE is not allowed on /v1/reports")
    );
}
