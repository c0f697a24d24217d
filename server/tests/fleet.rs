//! The fleet report behind the admin token: JSON, CSV, a device's history,
//! and the HTML pages with their login cookie.

use axum::body::Body;
use axum::http::{Method, StatusCode, header};
use serde_json::Value;

use crate::support::{Answer, Server, leaky_submission, request};

async fn with_a_leaky_device(hostname: &str) -> (Server, String) {
    let server = Server::start().await;
    let device = server.enroll(hostname).await;
    let answer = server.report(&device, &leaky_submission(hostname)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    (server, device.id)
}

#[tokio::test]
async fn the_fleet_needs_an_admin_token() {
    let (server, id) = with_a_leaky_device("ada-laptop").await;
    for path in ["/v1/fleet", "/v1/fleet.csv", &format!("/v1/devices/{id}")] {
        let answer = server.get(path).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{path}");
        assert!(answer.error().error.contains("admin token"), "{path}");
        assert!(answer.header(header::WWW_AUTHENTICATE).is_some());
        let with_enroll_token = server
            .send(
                request(Method::GET, path)
                    .header(
                        header::AUTHORIZATION,
                        format!("Bearer {}", server.enroll_token),
                    )
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(with_enroll_token.status, StatusCode::UNAUTHORIZED, "{path}");
    }
}

#[tokio::test]
async fn the_fleet_as_json_filters_and_pages() {
    let (server, id) = with_a_leaky_device("ada-laptop").await;
    server.enroll("bob-desktop").await;
    let page = server.fleet().await;
    assert_eq!(page["summary"]["total"], 2);
    assert_eq!(page["summary"]["leaky"], 1);
    assert_eq!(page["summary"]["unknown"], 1, "enrolled, no report yet");
    assert_eq!(page["devices"][0]["id"], id.as_str(), "leaky first");
    assert_eq!(page["failures_by_check"][0]["check"], "disk-encryption");

    let leaky: Value = server.admin_get("/v1/fleet?status=leaky").await.json();
    assert_eq!(leaky["matching"], 1);
    assert_eq!(leaky["devices"][0]["hostname"], "ada-laptop");
    let by_check: Value = server
        .admin_get("/v1/fleet?check=disk-encryption")
        .await
        .json();
    assert_eq!(by_check["matching"], 1);
    let first: Value = server.admin_get("/v1/fleet?per_page=1").await.json();
    assert_eq!(first["devices"][0]["hostname"], "ada-laptop");
    let next = first["next"].as_str().expect("a cursor to the next page");
    let second: Value = server
        .admin_get(&format!("/v1/fleet?per_page=1&after={next}"))
        .await
        .json();
    assert_eq!(second["per_page"], 1);
    assert_eq!(second["matching"], 2);
    assert_eq!(second["devices"][0]["hostname"], "bob-desktop");
    assert_eq!(second["next"], Value::Null, "the last page");
    assert_eq!(second["summary"], first["summary"]);

    for (query, path) in [
        ("status=leaking", "status"),
        ("check=antivirus", "check"),
        ("after=not-a-cursor", "after"),
        ("page=2", "page"),
        ("per_page=100000", "per_page"),
    ] {
        let answer = server.admin_get(&format!("/v1/fleet?{query}")).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(answer.error().path.as_deref(), Some(path), "{query}");
    }
    let malformed = server
        .admin_get("/v1/fleet?after=bm90IGpzb24")
        .await
        .error();
    assert!(
        malformed
            .error
            .contains("is not a cursor this server gave out")
            && malformed
                .error
                .contains("leave `after` out for the first page"),
        "{}",
        malformed.error
    );
}

#[tokio::test]
async fn the_fleet_as_csv_lists_every_matching_device() {
    let (server, id) = with_a_leaky_device("ada-laptop").await;
    server.enroll("=cmd|' /C calc'!A0").await;
    let answer = server.admin_get("/v1/fleet.csv").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.header(header::CONTENT_TYPE),
        Some("text/csv; charset=utf-8")
    );
    let csv = answer.text();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(lines[0].starts_with("id,hostname,"), "{csv}");
    assert!(lines[1].starts_with(&format!("{id},ada-laptop,")), "{csv}");
    assert!(lines[1].contains(",leaky,"), "{csv}");
    assert!(lines[2].contains("'=cmd"), "a formula is defused: {csv}");

    let leaky = server.admin_get("/v1/fleet.csv?status=leaky").await.text();
    assert_eq!(leaky.lines().count(), 2, "{leaky}");
}

#[tokio::test]
async fn the_csv_is_streamed_page_by_page() {
    use futures_util::StreamExt as _;
    use shipshape_server::model::FleetQuery;
    use shipshape_server::store::Store;

    let server = Server::start().await;
    let mut hostnames = Vec::new();
    for n in 0..5 {
        let hostname = format!("host-{n}");
        server.enroll(&hostname).await;
        hostnames.push(hostname);
    }
    let store: std::sync::Arc<dyn Store> = server.store.clone();
    let query = FleetQuery {
        status: None,
        check: None,
        after: None,
        per_page: 2,
        staleness: server.staleness(),
    };
    let chunks: Vec<String> = shipshape_server::api::csv_chunks(store, query)
        .map(|chunk| String::from_utf8(chunk.expect("a page").to_vec()).unwrap())
        .collect()
        .await;
    assert_eq!(chunks.len(), 3, "one chunk per page: {chunks:?}");
    assert!(chunks[0].starts_with("id,hostname,"), "{chunks:?}");
    assert!(
        chunks[1..]
            .iter()
            .all(|chunk| !chunk.contains("id,hostname"))
    );
    let csv = chunks.concat();
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let listed: Vec<String> = reader
        .records()
        .map(|record| record.unwrap()[1].to_owned())
        .collect();
    assert_eq!(listed, hostnames, "every device once, in table order");
}

#[tokio::test]
async fn a_device_with_its_history() {
    let (server, id) = with_a_leaky_device("ada-laptop").await;
    let answer = server.admin_get(&format!("/v1/devices/{id}")).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let detail: Value = answer.json();
    assert_eq!(detail["device"]["status"], "leaky");
    assert_eq!(detail["reports"].as_array().unwrap().len(), 1);
    assert_eq!(detail["transitions"][0]["kind"], "sprang-leak");

    let answer = server.admin_get("/v1/devices/no-such-device").await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(answer.error().error, "no device `no-such-device`");
}

/// The cookie a `Set-Cookie` header sets, as a `Cookie` header sends it back.
fn cookie_of(answer: &Answer) -> String {
    let set_cookie = answer.header(header::SET_COOKIE).expect("a cookie");
    set_cookie.split(';').next().unwrap().to_owned()
}

async fn page(server: &Server, path: &str, cookie: Option<&str>) -> Answer {
    let mut builder = request(Method::GET, path);
    if let Some(cookie) = cookie {
        builder = builder.header(header::COOKIE, cookie);
    }
    server.send(builder.body(Body::empty()).unwrap()).await
}

async fn login(server: &Server, token: &str) -> Answer {
    let form = format!("token={}", token.replace('=', "%3D"));
    server
        .send(
            request(Method::POST, "/login")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(form))
                .unwrap(),
        )
        .await
}

#[tokio::test]
async fn the_fleet_page_signs_in_with_an_admin_token() {
    let (server, id) = with_a_leaky_device("<script>alert(1)</script>").await;

    let anonymous = page(&server, "/", None).await;
    assert_eq!(anonymous.status, StatusCode::OK);
    assert!(
        anonymous
            .header(header::CONTENT_TYPE)
            .unwrap()
            .starts_with("text/html")
    );
    assert!(anonymous.text().contains("action=\"/login\""));
    assert!(!anonymous.text().contains("alert(1)"));
    assert_eq!(
        anonymous.header(header::CONTENT_SECURITY_POLICY),
        Some("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'")
    );
    assert_eq!(
        anonymous.header(header::X_CONTENT_TYPE_OPTIONS),
        Some("nosniff")
    );

    let refused = login(&server, &server.enroll_token).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(refused.text().contains("not a valid admin token"));

    let signed_in = login(&server, &server.admin_token).await;
    assert_eq!(signed_in.status, StatusCode::SEE_OTHER);
    assert_eq!(signed_in.header(header::LOCATION), Some("/"));
    let set_cookie = signed_in.header(header::SET_COOKIE).unwrap();
    assert!(
        set_cookie.contains("; HttpOnly; SameSite=Strict; Path=/"),
        "{set_cookie}"
    );
    assert!(!set_cookie.contains("Secure"), "plain HTTP in this test");
    let cookie = cookie_of(&signed_in);

    let fleet = page(&server, "/?status=leaky", Some(&cookie)).await;
    assert_eq!(fleet.status, StatusCode::OK);
    let html = fleet.text();
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{html}"
    );
    assert!(!html.contains("<script>"), "{html}");
    assert!(html.contains(&format!("/devices/{id}")), "{html}");
    assert_eq!(fleet.header(header::CACHE_CONTROL), Some("no-store"));

    let device = page(&server, &format!("/devices/{id}"), Some(&cookie)).await;
    assert_eq!(device.status, StatusCode::OK);
    assert!(device.text().contains("disk-encryption"));
    assert!(!device.text().contains("<script>"));
    let missing = page(&server, "/devices/nobody", Some(&cookie)).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    // The cookie works for the JSON API too.
    let json = page(&server, &format!("/v1/devices/{id}"), Some(&cookie)).await;
    assert_eq!(json.json::<Value>()["device"]["status"], "leaky");

    let bad_filter = page(&server, "/?status=leaking", Some(&cookie)).await;
    assert_eq!(bad_filter.status, StatusCode::BAD_REQUEST);

    let signed_out = server
        .send(
            request(Method::POST, "/logout")
                .header(header::COOKIE, &cookie)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(signed_out.status, StatusCode::SEE_OTHER);
    assert!(
        signed_out
            .header(header::SET_COOKIE)
            .unwrap()
            .contains("Max-Age=0")
    );
}

#[tokio::test]
async fn pages_without_a_valid_login_show_the_sign_in_form() {
    let (server, id) = with_a_leaky_device("ada-laptop").await;
    let device = page(&server, &format!("/devices/{id}"), None).await;
    assert_eq!(device.status, StatusCode::SEE_OTHER);
    assert_eq!(device.header(header::LOCATION), Some("/"));

    let stale = page(&server, "/", Some("shipshape_admin=ssa_revoked")).await;
    assert_eq!(stale.status, StatusCode::OK);
    assert!(stale.text().contains("action=\"/login\""));
    assert!(stale.text().contains("no longer valid"));
    assert!(
        stale
            .header(header::SET_COOKIE)
            .unwrap()
            .contains("Max-Age=0")
    );
}
