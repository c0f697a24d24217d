//! The fleet page in a real browser: Debian's headless Chromium, driven
//! through chromedriver, signs in with an admin token, finds the leaky
//! device flagged, opens its history, and leaves screenshots in
//! `target/browser/` (`fleet.png`, `device.png`).
//!
//! The device is this machine, enrolled and reported by the real agent.
//! The server's policy asks for an OS release no machine has yet, so the
//! device leaks wherever the test runs.

mod webdriver;

use std::error::Error;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use shipshape_tests::{Agent, Process, Server, command, http_client, run_ok, target_dir};
use webdriver::Session;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long a page may take to show what the test looks for.
const WAIT: Duration = Duration::from_secs(10);

/// Whether the browser is here to test with. CI must not skip the test.
fn browser_installed() -> bool {
    if Path::new(CHROMIUM).is_file() && Path::new(CHROMEDRIVER).is_file() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "the browser test needs {CHROMIUM} and {CHROMEDRIVER}: \
         apt-get install chromium chromium-driver (CI must not skip it)"
    );
    eprintln!("skipped: chromium not installed (apt-get install chromium chromium-driver)");
    false
}

/// This machine's OS id (`ID` in /etc/os-release), as the agent reports it.
fn os_id() -> String {
    let release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    release
        .lines()
        .find_map(|line| line.strip_prefix("ID="))
        .map(|id| id.trim_matches(['"', '\'']).to_owned())
        .unwrap_or_else(|| "linux".to_owned())
}

/// A policy this machine fails: its OS release would have to be 9999 or
/// newer. (Without an OS release the check is unknown, which leaks too.)
fn leaky_policy() -> String {
    format!(
        r#"name = "browser-test"
leak-severity = "high"
unknown = "leak"

[checks.os-updates]
severity = "critical"

[checks.os-updates.min-version]
{} = "9999"
"#,
        os_id()
    )
}

/// The devices in `/v1/fleet` with this status.
fn devices_with_status(server: &Server, admin_token: &str, status: &str) -> Vec<Value> {
    let fleet: Value = http_client()
        .get(format!("{}/v1/fleet", server.url()))
        .bearer_auth(admin_token)
        .send()
        .and_then(|response| response.error_for_status())
        .and_then(|response| response.json())
        .unwrap_or_else(|error| panic!("GET /v1/fleet: {error}\n{}", server.stderr()));
    fleet["devices"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|device| device["status"] == status)
        .cloned()
        .collect()
}

#[test]
fn fleet_page_flags_the_leaky_device_and_shows_its_history() -> Result<(), Box<dyn Error>> {
    if !browser_installed() {
        return Ok(());
    }
    let server = Server::with_policy(&leaky_policy());
    let admin_token = server.create_token("--admin");
    let enroll_token = server.create_token("--enroll");

    let agent = Agent::new();
    run_ok(agent.command().args([
        "enroll",
        "--server",
        server.url(),
        "--token",
        &enroll_token,
        "--key-store",
        "file",
    ]));
    let report = agent.command().arg("report").output()?;
    let leaky = devices_with_status(&server, &admin_token, "leaky");
    assert_eq!(
        leaky.len(),
        1,
        "one leaky device after `shipshape report` ({}):\nstdout: {}\nstderr: {}\nserver: {}",
        report.status,
        String::from_utf8_lossy(&report.stdout),
        String::from_utf8_lossy(&report.stderr),
        server.stderr()
    );
    let id = leaky[0]["id"].as_str().ok_or("a device id")?;
    let hostname = leaky[0]["hostname"].as_str().ok_or("a hostname")?;

    let browser = tempfile::tempdir()?;
    let mut chromedriver = command(CHROMEDRIVER);
    chromedriver.arg("--port=0");
    let (_driver, port) = Process::start("chromedriver", chromedriver, browser.path(), |line| {
        line.strip_prefix("ChromeDriver was started successfully on port ")
            .map(|port| port.trim_end_matches('.').to_owned())
    });
    let profile = browser.path().join("profile");
    let session = Session::start(
        http_client(),
        &format!("http://127.0.0.1:{port}"),
        json!({
            "binary": CHROMIUM,
            "args": [
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--window-size=1280,1300",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    )?;
    let screenshots = target_dir().join("browser");

    // Signed out, the fleet page is the sign-in form.
    session.goto(&format!("{}/", server.url()))?;
    session
        .wait_for("input#token[type=password]", WAIT)?
        .send_keys(&admin_token)?;
    session.find("form.login button[type=submit]")?.click()?;

    // The leaky device is flagged: its row, its badge.
    let row = session.wait_for("tr[data-status=leaky]", WAIT)?;
    assert_eq!(session.find_all("tr[data-status=leaky]")?.len(), 1);
    assert_eq!(row.attribute("data-device-id")?.as_deref(), Some(id));
    assert!(
        row.attribute("class")?
            .is_some_and(|class| class.contains("status-leaky")),
        "the row is styled as leaky"
    );
    assert_eq!(row.find(".badge-leaky")?.text()?, "LEAKY");
    assert!(row.text()?.contains("os-updates"), "{}", row.text()?);
    let link = row.find("th a")?;
    assert_eq!(link.text()?, hostname);
    assert_eq!(session.find(".count-leaky .number")?.text()?, "1");
    session.screenshot(&screenshots.join("fleet.png"))?;

    // Its page shows when os-updates sprang a leak.
    link.click()?;
    let transition = session.wait_for("#history tr.sprang-leak", WAIT)?;
    let text = transition.text()?;
    assert!(
        text.contains("os-updates") && text.contains("sprang a leak"),
        "{text}"
    );
    assert!(session.current_url()?.ends_with(&format!("/devices/{id}")));
    assert_eq!(session.find("main h1")?.text()?, hostname);
    assert_eq!(session.find("main .heading .badge-leaky")?.text()?, "LEAKY");
    session.screenshot(&screenshots.join("device.png"))?;

    // And back.
    session.find("p.back a")?.click()?;
    session.wait_for("tr[data-status=leaky]", WAIT)?;
    Ok(())
}
