use super::*;
use crate::fleet::fixture;

/// The page with one tag per line and the stylesheet elided, so a snapshot
/// reads (and diffs) like the document it is.
fn pretty(page: &str) -> String {
    let (head, rest) = page.split_once("<style>").expect("a stylesheet");
    let (_, tail) = rest.split_once("</style>").expect("a closed stylesheet");
    format!("{head}<style>…</style>{tail}").replace("><", ">\n<")
}

const HOSTILE: [&str; 2] = [
    "<script>alert(1)</script>",
    "\"><img src=x onerror=alert(1)>",
];

/// No markup from the data made it into the page: the page has as many
/// tags and attributes as the same page with harmless strings in their place.
fn assert_inert(page: &str, harmless: &str) {
    assert!(
        !page.contains("<script"),
        "a script tag got through:\n{page}"
    );
    assert!(!page.contains("<img"), "an img tag got through:\n{page}");
    assert_eq!(
        page.matches('<').count(),
        harmless.matches('<').count(),
        "{page}"
    );
    assert_eq!(
        page.matches("=\"").count(),
        harmless.matches("=\"").count(),
        "{page}"
    );
}

#[test]
fn login_page_snapshot() {
    insta::assert_snapshot!(pretty(&login_page(None)));
}

#[test]
fn login_page_shows_the_error_escaped() {
    let page = login_page(Some("That token is not an admin token <b>"));
    assert!(page.contains(
        r#"<p class="error" role="alert">That token is not an admin token &lt;b&gt;</p>"#
    ));
}

#[test]
fn fleet_page_snapshot() {
    let page = fleet_page(
        &fixture::fleet_page(),
        &fixture::fleet_query(),
        "default",
        fixture::now(),
    );
    insta::assert_snapshot!(pretty(&page));
}

/// A cursor after the device named `hostname` in `group`.
fn cursor(group: DeviceStatus, hostname: &str) -> FleetCursor {
    FleetCursor {
        group,
        hostname: hostname.to_owned(),
        id: format!("id-of-{hostname}"),
    }
}

#[test]
fn filtered_second_page_snapshot() {
    let mut query = fixture::fleet_query();
    query.status = Some(DeviceStatus::Compliant);
    query.after = Some(cursor(DeviceStatus::Compliant, "mac-ann"));
    query.per_page = 1;
    let mut page = fixture::fleet_page();
    page.devices
        .retain(|row| row.status == DeviceStatus::Compliant);
    page.per_page = 1;
    page.matching = 2;
    page.next = None;
    insta::assert_snapshot!(pretty(&fleet_page(
        &page,
        &query,
        "default",
        fixture::now()
    )));
}

#[test]
fn empty_fleet_says_how_to_enroll() {
    let mut query = fixture::fleet_query();
    query.per_page = DEFAULT_PER_PAGE;
    let page = fleet_page(&fixture::empty_fleet(), &query, "default", fixture::now());
    assert!(page.contains("No devices enrolled yet"), "{page}");
    assert!(
        page.contains("shipshape-server token create --enroll"),
        "{page}"
    );
    assert!(page.contains("No check leaks on any device."), "{page}");
    assert!(!page.contains("<table"), "{page}");
}

#[test]
fn no_match_says_so() {
    let mut query = fixture::fleet_query();
    query.check = Some("ssh-server".to_owned());
    let mut page = fixture::fleet_page();
    page.devices.clear();
    page.matching = 0;
    let html = fleet_page(&page, &query, "default", fixture::now());
    assert!(html.contains("No devices match this filter."), "{html}");
    // The filter names a check nobody fails, yet the form still shows it chosen.
    assert!(
        html.contains(r#"<option value="ssh-server" selected>ssh-server</option>"#),
        "{html}"
    );
    assert!(
        html.contains(r#"<a class="clear" href="/?per_page=4">Clear filter</a>"#),
        "{html}"
    );
}

#[test]
fn past_the_last_page_links_back_to_the_first() {
    let mut query = fixture::fleet_query();
    query.status = Some(DeviceStatus::Leaky);
    query.after = Some(cursor(DeviceStatus::Leaky, "zulu"));
    let mut page = fixture::fleet_page();
    page.devices.clear();
    page.next = None;
    let html = fleet_page(&page, &query, "default", fixture::now());
    assert!(
        html.contains(r#"<a href="/?status=leaky&amp;per_page=4">Go to the first page</a>"#),
        "{html}"
    );
}

#[test]
fn leaky_rows_are_flagged() {
    let html = fleet_page(
        &fixture::fleet_page(),
        &fixture::fleet_query(),
        "default",
        fixture::now(),
    );
    assert!(html.contains(
        r#"<tr class="status-leaky" data-status="leaky" data-device-id="0190a1b2-0000-7000-8000-000000000001">"#
    ));
    assert!(html.contains(r#"<span class="badge badge-leaky">LEAKY</span>"#));
    assert_eq!(html.matches("LEAKY").count(), 1, "one leaky device");
    assert!(html.contains(r#"<tr class="status-silent revoked" data-status="silent""#));
}

#[test]
fn pagination_links_keep_the_filter() {
    let mut query = fixture::fleet_query();
    query.status = Some(DeviceStatus::Leaky);
    query.check = Some("disk encryption&more=1".to_owned());
    query.after = Some(cursor(DeviceStatus::Leaky, "alpha"));
    query.per_page = 2;
    let mut page = fixture::fleet_page();
    page.devices.truncate(2);
    page.per_page = 2;
    page.matching = 5;
    let next = cursor(DeviceStatus::Silent, "build-07");
    page.next = Some(next.clone());
    let html = fleet_page(&page, &query, "default", fixture::now());
    let filter = "status=leaky&amp;check=disk%20encryption%26more%3D1";
    assert!(
        html.contains(&format!(
            r#"<a rel="first" href="/?{filter}&amp;per_page=2">"#
        )),
        "{html}"
    );
    assert!(
        html.contains(&format!(
            r#"<a rel="next" href="/?{filter}&amp;after={}&amp;per_page=2">"#,
            next.encode()
        )),
        "{html}"
    );
    assert!(html.contains("Showing 2 of 5"), "{html}");
    // A changed filter keeps the page size: the form carries it.
    assert!(
        html.contains(r#"<input type="hidden" name="per_page" value="2">"#),
        "{html}"
    );
}

#[test]
fn first_and_last_pages_link_only_inward() {
    let first = fleet_page(
        &fixture::fleet_page(),
        &fixture::fleet_query(),
        "default",
        fixture::now(),
    );
    assert!(!first.contains(r#"rel="first""#), "{first}");
    let next = fixture::fleet_page().next.unwrap().encode();
    assert!(
        first.contains(&format!(
            r#"<a rel="next" href="/?after={next}&amp;per_page=4">"#
        )),
        "{first}"
    );

    let mut query = fixture::fleet_query();
    query.after = fixture::fleet_page().next;
    let mut page = fixture::fleet_page();
    page.devices.truncate(1);
    page.next = None;
    let last = fleet_page(&page, &query, "default", fixture::now());
    assert!(
        last.contains(r#"<a rel="first" href="/?per_page=4">"#),
        "{last}"
    );
    assert!(!last.contains(r#"rel="next""#));
    assert!(last.contains("Showing 1 of 5"), "{last}");
}

#[test]
fn device_page_snapshot() {
    insta::assert_snapshot!(pretty(&device_page(
        &fixture::device_detail(),
        fixture::now()
    )));
}

#[test]
fn device_page_before_any_report() {
    let mut detail = fixture::device_detail();
    detail.device.status = DeviceStatus::Unknown;
    detail.device.failing_checks.clear();
    detail.device.last_seen = None;
    detail.device.revoked = true;
    detail.findings.clear();
    detail.transitions.clear();
    detail.reports.clear();
    let page = device_page(&detail, fixture::now());
    assert!(
        page.contains("<dd><span class=\"quiet\">never</span></dd>"),
        "{page}"
    );
    assert!(page.contains("No report yet"), "{page}");
    assert!(
        page.contains("No check has started or stopped leaking"),
        "{page}"
    );
    assert!(page.contains("No reports yet."), "{page}");
    assert!(page.contains("This device is revoked"), "{page}");
}

#[test]
fn error_page_snapshot() {
    insta::assert_snapshot!(pretty(&error_page(404, "No device has the id <nope>.")));
}

#[test]
fn error_page_with_an_unusual_status_still_reads() {
    let page = error_page(599, "Something odd.");
    assert!(page.contains("<h1>599 Error</h1>"), "{page}");
}

fn fleet_page_with(text: &str) -> String {
    let mut page = fixture::fleet_page();
    let row = &mut page.devices[0];
    row.hostname = text.to_owned();
    row.os = text.to_owned();
    row.id = text.to_owned();
    row.failing_checks = vec![text.to_owned()];
    page.failures_by_check[0].check = text.to_owned();
    let mut query = fixture::fleet_query();
    query.check = Some(text.to_owned());
    fleet_page(&page, &query, text, fixture::now())
}

#[test]
fn device_strings_are_escaped_on_the_fleet_page() {
    let harmless = fleet_page_with("x");
    for hostile in HOSTILE {
        assert_inert(&fleet_page_with(hostile), &harmless);
    }
    let html = fleet_page_with(HOSTILE[0]);
    assert!(
        html.contains(">&lt;script&gt;alert(1)&lt;/script&gt;</a>"),
        "{html}"
    );
    let html = fleet_page_with(HOSTILE[1]);
    assert!(
        html.contains("<td>&quot;&gt;&lt;img src=x onerror=alert(1)&gt;</td>"),
        "{html}"
    );
}

fn device_page_with(text: &str) -> String {
    let mut detail = fixture::device_detail();
    detail.device.hostname = text.to_owned();
    detail.device.os = text.to_owned();
    detail.device.id = text.to_owned();
    let finding = &mut detail.findings[0];
    finding.check = text.to_owned();
    finding.summary = text.to_owned();
    finding.evidence = vec![text.to_owned()];
    finding.remediation = Some(text.to_owned());
    detail.transitions[0].check = text.to_owned();
    detail.transitions[0].report_id = Some(text.to_owned());
    detail.reports[0].id = text.to_owned();
    detail.reports[0].failing_checks = vec![text.to_owned()];
    device_page(&detail, fixture::now())
}

#[test]
fn device_strings_are_escaped_on_the_device_page() {
    let harmless = device_page_with("x");
    for hostile in HOSTILE {
        assert_inert(&device_page_with(hostile), &harmless);
    }
    let html = device_page_with(HOSTILE[1]);
    assert!(
        html.contains("<title>&quot;&gt;&lt;img src=x onerror=alert(1)&gt; · Shipshape</title>"),
        "{html}"
    );
    assert!(
        html.contains("<h1>&quot;&gt;&lt;img src=x onerror=alert(1)&gt;</h1>"),
        "{html}"
    );
}

#[test]
fn links_encode_what_they_carry() {
    let mut page = fixture::fleet_page();
    page.devices[0].id = "../admin?x=1#y".to_owned();
    page.devices[0].failing_checks = vec!["a&b c/é".to_owned()];
    let html = fleet_page(&page, &fixture::fleet_query(), "default", fixture::now());
    assert!(
        html.contains(r#"href="/devices/..%2Fadmin%3Fx%3D1%23y""#),
        "{html}"
    );
    assert!(
        html.contains(r#"href="/?check=a%26b%20c%2F%C3%A9&amp;per_page=4""#),
        "{html}"
    );
}

#[test]
fn pages_need_nothing_from_elsewhere() {
    let pages = [
        login_page(None),
        fleet_page(
            &fixture::fleet_page(),
            &fixture::fleet_query(),
            "default",
            fixture::now(),
        ),
        device_page(&fixture::device_detail(), fixture::now()),
        error_page(404, "Not here."),
    ];
    for page in pages {
        assert!(page.starts_with("<!DOCTYPE html><html lang=\"en\">"));
        assert!(!page.contains("<script"), "no JavaScript");
        assert!(!page.contains("<link"), "no external stylesheet");
        assert!(!page.contains("url("), "no external font or image");
        assert!(
            !page.contains("http://") && !page.contains("https://"),
            "no remote address"
        );
    }
}

#[test]
fn encode_keeps_only_unreserved_characters() {
    assert_eq!(encode("disk-encryption"), "disk-encryption");
    assert_eq!(
        encode("a b&c=d/e?f#g%h+i"),
        "a%20b%26c%3Dd%2Fe%3Ff%23g%25h%2Bi"
    );
    assert_eq!(encode("é"), "%C3%A9");
}
