//! A device may call itself anything, `<script>` included: the fleet pages
//! show it as text, never as markup.

use shipshape_tests::device::{Answer, Device};
use shipshape_tests::{Server, http_client, leaky_policy, sample};

const HOSTNAME: &str = "<script>alert(1)</script>";
const ESCAPED: &str = "&lt;script&gt;alert(1)&lt;/script&gt;";

/// Asserts `page` is HTML that shows the hostname escaped and carries no
/// script at all.
fn assert_escaped(page: &Answer, what: &str) {
    page.assert_ok_as("text/html", what);
    assert!(
        !page.text.to_lowercase().contains("<script"),
        "{what} carries a script:\n{}",
        page.text
    );
    assert!(
        page.text.contains(ESCAPED),
        "{what} shows the hostname escaped:\n{}",
        page.text
    );
    assert!(
        page.header("content-security-policy")
            .is_some_and(|csp| csp.contains("default-src 'none'")),
        "{what}: {:?}",
        page.headers
    );
}

#[test]
fn a_hostname_with_a_script_is_shown_escaped() {
    let server = Server::with_policy(&leaky_policy(sample().os_id()));
    let admin = server.create_token("--admin");
    let enroll = server.create_token("--enroll");
    let device = Device::enroll(&server, &enroll, &sample().host(HOSTNAME));
    let answer = device.report(&sample().submission(HOSTNAME));
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(
        server.fleet(&admin)["devices"][0]["hostname"],
        HOSTNAME,
        "kept as sent"
    );

    // Signed out, the sign-in form shows nothing of the fleet.
    let signed_out = Answer::from(http_client().get(format!("{}/", server.url())).send());
    assert_eq!(signed_out.status, 200);
    assert!(!signed_out.text.contains("alert(1)"), "{}", signed_out.text);

    let cookie = server.sign_in(&admin);
    assert_escaped(&server.page("/", &cookie), "the fleet page");
    assert_escaped(
        &server.page(&format!("/devices/{}", device.id), &cookie),
        "the device page",
    );

    // A filter from the URL is text too, even where it is an error.
    let filtered = server.page("/?check=%3Cscript%3Ealert(1)%3C%2Fscript%3E", &cookie);
    assert_eq!(filtered.status, 400, "{}", filtered.text);
    assert!(
        !filtered.text.to_lowercase().contains("<script"),
        "{}",
        filtered.text
    );
}
