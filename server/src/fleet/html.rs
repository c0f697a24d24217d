//! The fleet report as server-rendered HTML: the sign-in page, the fleet
//! page, a device's page with its history, and error pages.
//!
//! The pages work without JavaScript (there is none: filters are a GET form,
//! pages are links) and load nothing from elsewhere: the CSS is inline, so
//! they render under `Content-Security-Policy: default-src 'none';
//! style-src 'unsafe-inline'; form-action 'self'`. Every string from a
//! device or from the URL goes through maud's escaping, and every query
//! value in a link is percent-encoded.

#[cfg(test)]
mod tests;

use std::fmt::Write as _;

use axum::http::StatusCode;
use jiff::Timestamp;
use maud::{DOCTYPE, Markup, PreEscaped, html};
use shipshape_core::Finding;
use shipshape_core::finding::Status;
use shipshape_core::wire::DeviceStatus;

use super::{DEFAULT_PER_PAGE, ago, date, to_second};
use crate::model::{
    DeviceDetail, DeviceRow, FleetCursor, FleetPage, FleetQuery, ReportSummary, Transition,
    TransitionKind,
};

/// The statuses in the order the report shows them.
const STATUSES: [DeviceStatus; 4] = [
    DeviceStatus::Leaky,
    DeviceStatus::Silent,
    DeviceStatus::Unknown,
    DeviceStatus::Compliant,
];

/// The sign-in form: the admin token is POSTed as `token` to `/login`.
/// `error` says why the last attempt failed.
pub fn login_page(error: Option<&str>) -> String {
    let body = html! {
        main.narrow {
            h1 { "Sign in" }
            p { "The fleet report shows which machines leak. Sign in with an admin token to see it." }
            @if let Some(error) = error {
                p.error role="alert" { (error) }
            }
            form.login method="post" action="/login" {
                label for="token" { "Admin token" }
                input #token name="token" type="password" required autofocus
                    autocomplete="off" spellcheck="false";
                button type="submit" { "Sign in" }
            }
            p.hint {
                "No token yet? On the server, run "
                code { "shipshape-server token create --admin" }
                " — it is shown once, so keep it somewhere safe."
            }
        }
    };
    layout("Sign in", false, body)
}

/// The fleet page: summary, failures by check, the filter form, one page of
/// the device table and links to the first and the next page.
pub fn fleet_page(
    page: &FleetPage,
    query: &FleetQuery,
    policy_name: &str,
    now: Timestamp,
) -> String {
    let here = Link::of(query);
    let body = html! {
        main {
            div.heading {
                h1 { "Fleet" }
                p.policy { "Graded with the policy " strong { (policy_name) } }
            }
            (summary(page, query))
            (failures_by_check(page, query))
            (filter_form(page, query))
            (device_table(page, query, &here, now))
        }
    };
    layout("Fleet", true, body)
}

/// One device: what it is, its current findings, when each check started
/// and stopped leaking, and its recent reports.
pub fn device_page(detail: &DeviceDetail, now: Timestamp) -> String {
    let device = &detail.device;
    let body = html! {
        main {
            p.back { a href="/" { "← All devices" } }
            div.heading {
                h1 { (device.hostname) }
                (status_badge(device.status))
                @if device.revoked { " " span.tag.revoked { "revoked" } }
            }
            @if device.revoked {
                p.notice { "This device is revoked: the server refuses its reports." }
            }
            dl.facts {
                dt { "Device id" } dd { code { (device.id) } }
                dt { "OS" } dd { (device.os) }
                dt { "Status" } dd { (device.status) }
                dt { "Last seen" } dd { (last_seen(device.last_seen, now)) }
                dt { "Enrolled" } dd { (moment(device.enrolled_at, now)) }
            }
            (findings(&detail.findings))
            (history(&detail.transitions, now))
            (reports(&detail.reports, now))
        }
    };
    layout(&device.hostname, true, body)
}

/// A page for a failed request (`404`, …) with a way back to the fleet.
pub fn error_page(status: u16, message: &str) -> String {
    let reason = StatusCode::from_u16(status)
        .ok()
        .and_then(|code| code.canonical_reason())
        .unwrap_or("Error");
    let title = format!("{status} {reason}");
    let body = html! {
        main.narrow {
            h1 { (title) }
            p { (message) }
            p { a href="/" { "Back to the fleet" } }
        }
    };
    layout(&title, false, body)
}

fn layout(title: &str, signed_in: bool, body: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { (title) " · Shipshape" }
                style { (PreEscaped(CSS)) }
            }
            body {
                header.top {
                    a.brand href="/" { "Shipshape" }
                    @if signed_in {
                        form.logout method="post" action="/logout" {
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                (body)
            }
        }
    }
    .into_string()
}

fn summary(page: &FleetPage, query: &FleetQuery) -> Markup {
    let counts = &page.summary;
    let unfiltered = query.status.is_none() && query.check.is_none();
    let link = Link::of(query).first_page();
    html! {
        section aria-labelledby="summary-heading" {
            h2 #summary-heading .visually-hidden { "Summary" }
            ul.summary {
                @for status in STATUSES {
                    @let count = match status {
                        DeviceStatus::Leaky => counts.leaky,
                        DeviceStatus::Silent => counts.silent,
                        DeviceStatus::Unknown => counts.unknown,
                        DeviceStatus::Compliant => counts.compliant,
                    };
                    @let current = query.status == Some(status) && query.check.is_none();
                    li class={ "count-" (status) } {
                        a href=(Link { status: Some(status), check: None, ..link }.href())
                            aria-current=[current.then_some("page")] {
                            span.number { (count) }
                            span.label { (status) }
                        }
                    }
                }
                li.count-total {
                    a href=(Link { status: None, check: None, ..link }.href())
                        aria-current=[unfiltered.then_some("page")] {
                        span.number { (counts.total) }
                        span.label { "all devices" }
                    }
                }
            }
        }
    }
}

fn failures_by_check(page: &FleetPage, query: &FleetQuery) -> Markup {
    let link = Link::of(query).first_page();
    html! {
        section.failures aria-labelledby="failures-heading" {
            h2 #failures-heading { "Failures by check" }
            @if page.failures_by_check.is_empty() {
                p.quiet { "No check leaks on any device." }
            } @else {
                ul {
                    @for failure in &page.failures_by_check {
                        @let current = query.check.as_deref() == Some(failure.check.as_str())
                            && query.status.is_none();
                        li {
                            a href=(Link { status: None, check: Some(&failure.check), ..link }.href())
                                aria-current=[current.then_some("page")] {
                                code { (failure.check) }
                            }
                            " "
                            span.quiet { (plural(failure.devices, "device", "devices")) }
                        }
                    }
                }
            }
        }
    }
}

fn filter_form(page: &FleetPage, query: &FleetQuery) -> Markup {
    let mut checks: Vec<&str> = page
        .failures_by_check
        .iter()
        .map(|failure| failure.check.as_str())
        .collect();
    if let Some(check) = query.check.as_deref()
        && !checks.contains(&check)
    {
        checks.push(check);
    }
    let filtered = query.status.is_some() || query.check.is_some();
    html! {
        form.filter method="get" action="/" {
            div.field {
                label for="status" { "Status" }
                select #status name="status" {
                    option value="" selected[query.status.is_none()] { "any" }
                    @for status in STATUSES {
                        option value=(status) selected[query.status == Some(status)] { (status) }
                    }
                }
            }
            div.field {
                label for="check" { "Failing check" }
                select #check name="check" {
                    option value="" selected[query.check.is_none()] { "any" }
                    @for check in checks {
                        option value=(check) selected[query.check.as_deref() == Some(check)] {
                            (check)
                        }
                    }
                }
            }
            @if query.per_page != DEFAULT_PER_PAGE {
                input type="hidden" name="per_page" value=(query.per_page);
            }
            button type="submit" { "Filter" }
            @if filtered {
                a.clear href=(Link { status: None, check: None, ..Link::of(query).first_page() }.href()) {
                    "Clear filter"
                }
            }
        }
    }
}

fn device_table(page: &FleetPage, query: &FleetQuery, here: &Link<'_>, now: Timestamp) -> Markup {
    html! {
        section aria-labelledby="devices-heading" {
            h2 #devices-heading { "Devices" }
            @if page.devices.is_empty() {
                p.empty {
                    @if page.summary.total == 0 {
                        "No devices enrolled yet — run "
                        code { "shipshape-server token create --enroll" }
                        " on the server, then "
                        code { "shipshape enroll --server URL --token TOKEN" }
                        " on a machine."
                    } @else if page.matching == 0 {
                        "No devices match this filter."
                    } @else {
                        "No devices on this page. "
                        a href=(here.first_page().href()) { "Go to the first page" }
                    }
                }
            } @else {
                table.devices {
                    caption.visually-hidden { "Devices, leaky first" }
                    thead {
                        tr {
                            th scope="col" { "Hostname" }
                            th scope="col" { "OS" }
                            th scope="col" { "Status" }
                            th scope="col" { "Failing checks" }
                            th scope="col" { "Last seen" }
                            th scope="col" { "Enrolled" }
                        }
                    }
                    tbody {
                        @for row in &page.devices {
                            (device_row(row, here, now))
                        }
                    }
                }
                nav.pager aria-label="Pages" {
                    p { "Showing " (page.devices.len()) " of " (page.matching) }
                    @if query.after.is_some() {
                        a rel="first" href=(here.first_page().href()) { "← First page" }
                    }
                    @if let Some(next) = &page.next {
                        a rel="next" href=(Link { after: Some(next), ..*here }.href()) { "Next page →" }
                    }
                }
            }
        }
    }
}

fn device_row(row: &DeviceRow, here: &Link<'_>, now: Timestamp) -> Markup {
    let class = if row.revoked {
        format!("status-{} revoked", row.status)
    } else {
        format!("status-{}", row.status)
    };
    html! {
        tr class=(class) data-status=(row.status) data-device-id=(row.id) {
            th scope="row" {
                a href=(device_href(&row.id)) { (row.hostname) }
                @if row.revoked { " " span.tag.revoked { "revoked" } }
            }
            td { (row.os) }
            td { (status_badge(row.status)) }
            td { (check_links(&row.failing_checks, here)) }
            td { (last_seen(row.last_seen, now)) }
            td { time datetime=(row.enrolled_at) title=(to_second(row.enrolled_at)) { (date(row.enrolled_at)) } }
        }
    }
}

fn check_links(checks: &[String], here: &Link<'_>) -> Markup {
    html! {
        @if checks.is_empty() {
            span.quiet { "—" }
        } @else {
            ul.checks {
                @for check in checks {
                    li {
                        a href=(Link { check: Some(check), ..here.first_page() }.href()) {
                            code { (check) }
                        }
                    }
                }
            }
        }
    }
}

fn findings(findings: &[Finding]) -> Markup {
    // Leaks first, then the rest in the order the checks ran.
    let mut ordered: Vec<&Finding> = findings.iter().collect();
    ordered.sort_by_key(|finding| !finding.leak);
    let rows = ordered
        .into_iter()
        .map(|finding| {
            html! {
                tr class={ "finding-" (finding.status.as_str()) @if finding.leak { " leak" } } {
                    th scope="row" { code { (finding.check) } }
                    td {
                        @if finding.leak {
                            span.badge.badge-leaky { "LEAK" } " "
                        }
                        (finding_status(finding.status))
                    }
                    td { (finding.severity) }
                    td {
                        p.summary { (finding.summary) }
                        @if !finding.evidence.is_empty() {
                            ul.evidence {
                                @for line in &finding.evidence { li { (line) } }
                            }
                        }
                        @if let Some(remediation) = remediation(finding) {
                            p.remediation { strong { "Fix: " } (remediation) }
                        }
                    }
                }
            }
        })
        .collect();
    device_section(
        "findings",
        "Current findings",
        "No report yet: the device has not reported since it enrolled.",
        &["Check", "Status", "Severity", "Finding"],
        rows,
    )
}

/// How to fix a finding that is not a pass.
fn remediation(finding: &Finding) -> Option<&str> {
    finding
        .remediation
        .as_deref()
        .filter(|_| finding.status != Status::Pass)
}

fn finding_status(status: Status) -> &'static str {
    match status {
        Status::Warn => "failing, in grace",
        other => other.as_str(),
    }
}

fn history(transitions: &[Transition], now: Timestamp) -> Markup {
    let rows = transitions
        .iter()
        .map(|transition| {
            html! {
                tr class=(transition_class(transition.kind)) {
                    td { (moment(transition.at, now)) }
                    td { code { (transition.check) } }
                    td.change { (transition_text(transition.kind)) }
                    td {
                        @match &transition.report_id {
                            Some(id) => { "report " code { (id) } },
                            None => "policy change",
                        }
                    }
                }
            }
        })
        .collect();
    device_section(
        "history",
        "History",
        "No check has started or stopped leaking on this device.",
        &["When", "Check", "Change", "Cause"],
        rows,
    )
}

fn transition_class(kind: TransitionKind) -> &'static str {
    match kind {
        TransitionKind::SprangLeak => "sprang-leak",
        TransitionKind::BailedOut => "bailed-out",
    }
}

fn transition_text(kind: TransitionKind) -> &'static str {
    match kind {
        TransitionKind::SprangLeak => "sprang a leak",
        TransitionKind::BailedOut => "bailed out",
    }
}

fn reports(reports: &[ReportSummary], now: Timestamp) -> Markup {
    let rows = reports
        .iter()
        .map(|report| {
            html! {
                tr {
                    td { (moment(report.received_at, now)) }
                    td { (status_badge(report.status)) }
                    td {
                        @if report.failing_checks.is_empty() {
                            span.quiet { "—" }
                        } @else {
                            @for (index, check) in report.failing_checks.iter().enumerate() {
                                @if index > 0 { ", " }
                                code { (check) }
                            }
                        }
                    }
                    td { code { (report.id) } }
                }
            }
        })
        .collect();
    device_section(
        "reports",
        "Recent reports",
        "No reports yet.",
        &["Received", "Status", "Failing checks", "Report id"],
        rows,
    )
}

/// A section of the device page named `name` (its id, its table's class):
/// a heading, then `rows` in a table under `columns`, or the sentence
/// `empty` when there are none.
fn device_section(
    name: &str,
    heading: &str,
    empty: &str,
    columns: &[&str],
    rows: Vec<Markup>,
) -> Markup {
    let heading_id = format!("{name}-heading");
    html! {
        section id=(name) aria-labelledby=(heading_id) {
            h2 id=(heading_id) { (heading) }
            @if rows.is_empty() {
                p.empty { (empty) }
            } @else {
                table class=(name) {
                    thead {
                        tr {
                            @for column in columns {
                                th scope="col" { (column) }
                            }
                        }
                    }
                    tbody {
                        @for row in rows {
                            (row)
                        }
                    }
                }
            }
        }
    }
}

fn status_badge(status: DeviceStatus) -> Markup {
    let text = match status {
        DeviceStatus::Leaky => "LEAKY",
        other => other.as_str(),
    };
    html! { span class={ "badge badge-" (status) } { (text) } }
}

fn last_seen(at: Option<Timestamp>, now: Timestamp) -> Markup {
    match at {
        Some(at) => moment(at, now),
        None => html! { span.quiet { "never" } },
    }
}

/// A time as "3 h ago", with the exact time on hover and for machines.
fn moment(at: Timestamp, now: Timestamp) -> Markup {
    html! { time datetime=(at) title=(to_second(at)) { (ago(at, now)) } }
}

fn plural(count: u64, one: &str, many: &str) -> String {
    if count == 1 {
        format!("{count} {one}")
    } else {
        format!("{count} {many}")
    }
}

fn device_href(id: &str) -> String {
    format!("/devices/{}", encode(id))
}

/// A fleet page address: the filter, where the page starts and its size.
#[derive(Debug, Clone, Copy)]
struct Link<'a> {
    status: Option<DeviceStatus>,
    check: Option<&'a str>,
    after: Option<&'a FleetCursor>,
    per_page: u32,
}

impl<'a> Link<'a> {
    fn of(query: &'a FleetQuery) -> Self {
        Link {
            status: query.status,
            check: query.check.as_deref(),
            after: query.after.as_ref(),
            per_page: query.per_page,
        }
    }

    /// The same filter from its first page: a new filter starts there.
    fn first_page(self) -> Self {
        Link {
            after: None,
            ..self
        }
    }

    /// `/` with the query parameters that differ from the defaults.
    fn href(&self) -> String {
        let mut params = Vec::new();
        if let Some(status) = self.status {
            params.push(format!("status={status}"));
        }
        if let Some(check) = self.check {
            params.push(format!("check={}", encode(check)));
        }
        if let Some(after) = self.after {
            params.push(format!("after={}", encode(&after.encode())));
        }
        if self.per_page != DEFAULT_PER_PAGE {
            params.push(format!("per_page={}", self.per_page));
        }
        if params.is_empty() {
            "/".to_owned()
        } else {
            format!("/?{}", params.join("&"))
        }
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters, which
/// is safe in a query value and in a path segment alike.
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// The one stylesheet, inline (the CSP allows no other). Light and dark,
/// system fonts, contrast at WCAG AA or better.
const CSS: &str = "\
:root{color-scheme:light dark;--fg:#1f2328;--muted:#57606a;--bg:#fff;--panel:#f6f8fa;\
--line:#d0d7de;--link:#0550ae;--leak:#a40e26;--leak-bg:#ffebe9;--silent:#7d4e00;\
--silent-bg:#fff8c5;--unknown:#57606a;--unknown-bg:#eaeef2;--ok:#116329;--ok-bg:#dafbe1}\
@media (prefers-color-scheme:dark){:root{--fg:#e6edf3;--muted:#9198a1;--bg:#0d1117;\
--panel:#161b22;--line:#30363d;--link:#58a6ff;--leak:#ff9492;--leak-bg:#3b1219;\
--silent:#e3b341;--silent-bg:#2e2408;--unknown:#9198a1;--unknown-bg:#21262d;--ok:#56d364;\
--ok-bg:#0f2e1a}}\
*{box-sizing:border-box}\
body{margin:0;font:15px/1.5 system-ui,-apple-system,\"Segoe UI\",Roboto,\"Noto Sans\",sans-serif;\
color:var(--fg);background:var(--bg)}\
a{color:var(--link)}\
code{font:13px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,\"DejaVu Sans Mono\",monospace;\
white-space:nowrap}\
header.top{display:flex;align-items:center;justify-content:space-between;padding:.6rem 1.5rem;\
border-bottom:1px solid var(--line);background:var(--panel)}\
.brand{font-weight:700;font-size:1.1rem;color:var(--fg);text-decoration:none}\
main{max-width:78rem;margin:0 auto;padding:1rem 1.5rem 3rem}\
main.narrow{max-width:34rem;padding-top:3rem}\
h1{font-size:1.6rem;margin:.5rem 0}\
h2{font-size:1.1rem;margin:1.75rem 0 .5rem}\
.heading{display:flex;flex-wrap:wrap;align-items:baseline;gap:.25rem 1rem}\
.policy,.quiet,.hint{color:var(--muted)}\
.visually-hidden{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}\
button{font:inherit;padding:.35rem .9rem;border:1px solid var(--line);border-radius:6px;\
background:var(--panel);color:var(--fg);cursor:pointer}\
button:hover{border-color:var(--muted)}\
input,select{font:inherit;padding:.35rem .5rem;border:1px solid var(--line);border-radius:6px;\
background:var(--bg);color:var(--fg)}\
:focus-visible{outline:2px solid var(--link);outline-offset:2px}\
form.login{display:flex;flex-direction:column;gap:.5rem;margin:1.5rem 0}\
form.login label{font-weight:600}\
form.login button{align-self:flex-start}\
.error,.notice{padding:.6rem .9rem;border-radius:6px;border:1px solid var(--leak);\
background:var(--leak-bg);color:var(--leak)}\
ul.summary{display:flex;flex-wrap:wrap;gap:.75rem;list-style:none;margin:1rem 0;padding:0}\
ul.summary a{display:flex;flex-direction:column;min-width:8.5rem;padding:.6rem 1rem;\
border:1px solid var(--line);border-left-width:5px;border-radius:8px;text-decoration:none;color:var(--fg)}\
ul.summary a[aria-current]{background:var(--panel);box-shadow:0 0 0 1px var(--muted)}\
ul.summary .number{font-size:1.7rem;font-weight:700;line-height:1.2}\
ul.summary .label{color:var(--muted)}\
.summary .count-leaky a{border-left-color:var(--leak)}.count-leaky .number{color:var(--leak)}\
.summary .count-silent a{border-left-color:var(--silent)}\
.summary .count-unknown a{border-left-color:var(--unknown)}\
.summary .count-compliant a{border-left-color:var(--ok)}\
.summary .count-total a{border-left-color:var(--fg)}\
section.failures ul{display:flex;flex-wrap:wrap;gap:.4rem 1.5rem;list-style:none;margin:0;padding:0}\
form.filter{display:flex;flex-wrap:wrap;align-items:flex-end;gap:.75rem;margin:1.5rem 0 .5rem;\
padding:.75rem 1rem;border:1px solid var(--line);border-radius:8px;background:var(--panel)}\
form.filter .field{display:flex;flex-direction:column;gap:.2rem}\
form.filter label{font-size:.85rem;font-weight:600}\
form.filter .clear{align-self:center}\
table{width:100%;border-collapse:collapse;margin:.5rem 0}\
th,td{text-align:left;vertical-align:top;padding:.5rem .6rem;border-bottom:1px solid var(--line)}\
thead th{font-size:.85rem;color:var(--muted);border-bottom-width:2px}\
tbody th{font-weight:600}\
tr.status-leaky{background:var(--leak-bg)}\
tr.status-leaky th{box-shadow:inset 4px 0 var(--leak)}\
tr.revoked td,tr.revoked th{color:var(--muted)}\
ul.checks{list-style:none;margin:0;padding:0}\
.badge,.tag{display:inline-block;padding:0 .45rem;border-radius:999px;font-size:.8rem;\
font-weight:600;line-height:1.5;white-space:nowrap}\
.badge-leaky{background:var(--leak);color:var(--bg);letter-spacing:.04em}\
.badge-silent{background:var(--silent-bg);color:var(--silent)}\
.badge-unknown{background:var(--unknown-bg);color:var(--unknown)}\
.badge-compliant{background:var(--ok-bg);color:var(--ok)}\
.tag.revoked{border:1px solid var(--muted);color:var(--muted);font-weight:400}\
nav.pager{display:flex;flex-wrap:wrap;align-items:baseline;gap:1rem;margin-top:.75rem}\
nav.pager p{margin:0;color:var(--muted)}\
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.3rem 1.5rem;margin:1rem 0}\
dl.facts dt{color:var(--muted)}\
dl.facts dd{margin:0}\
tr.leak{background:var(--leak-bg)}\
table.findings td:first-of-type{white-space:nowrap}\
p.summary{margin:0}\
ul.evidence{margin:.3rem 0;padding-left:1.2rem;color:var(--muted);font-size:.9rem}\
p.remediation{margin:.3rem 0 0}\
tr.sprang-leak .change{color:var(--leak);font-weight:600}\
tr.bailed-out .change{color:var(--ok);font-weight:600}\
.empty{padding:1rem;border:1px dashed var(--line);border-radius:8px;color:var(--muted)}\
";
