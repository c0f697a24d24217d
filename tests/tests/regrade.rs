//! A policy change on the server (`PUT /v1/policy`) re-grades the fleet
//! from the facts it holds, in the background and without waiting for new
//! reports, and the device's history records when its check stopped and
//! started leaking.

use serde_json::{Value, json};
use shipshape_tests::{Agent, Server, leaky_policy, lenient_policy, sample};

/// The device's status, how many reports it has, and its transitions
/// (newest first) as `(check, kind, report id)`.
fn history(server: &Server, admin: &str, id: &str) -> (Value, usize, Vec<(Value, Value, Value)>) {
    let detail = server.device(admin, id);
    let reports = detail["reports"].as_array().map_or(0, Vec::len);
    let transitions = detail["transitions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            (
                t["check"].clone(),
                t["kind"].clone(),
                t["report_id"].clone(),
            )
        })
        .collect();
    (detail["device"]["status"].clone(), reports, transitions)
}

#[test]
fn a_policy_change_regrades_the_device_without_a_new_report() {
    let os = sample().os_id();
    let server = Server::with_policy(&leaky_policy(os));
    let admin = server.create_token("--admin");
    let enroll = server.create_token("--enroll");
    let agent = Agent::new();
    agent.enroll(&server, &enroll);
    let report = agent.run(&["report"]);
    assert_eq!(
        report.status.code(),
        Some(1),
        "leaky under the first policy: {}",
        String::from_utf8_lossy(&report.stderr)
    );
    let fleet = server.fleet(&admin);
    let id = fleet["devices"][0]["id"]
        .as_str()
        .expect("the enrolled device")
        .to_owned();
    let (status, reports, transitions) = history(&server, &admin, &id);
    assert_eq!((status, reports), (json!("leaky"), 1));
    let first_report = server.device(&admin, &id)["reports"][0]["id"].clone();
    assert_eq!(
        transitions,
        [(
            json!("os-updates"),
            json!("sprang-leak"),
            first_report.clone()
        )]
    );

    // Only an admin may change the policy, and only to a valid one.
    let anonymous = server.put_policy("not-a-token", &lenient_policy(os));
    assert_eq!(anonymous.status, 401, "{}", anonymous.text);
    let invalid = server.put_policy(&admin, "leak-severity = \"severe\"\n");
    assert_eq!(invalid.status, 400, "{}", invalid.text);
    assert!(
        invalid.error().contains("policy.toml:1:"),
        "the error names the line: {}",
        invalid.text
    );
    assert_eq!(
        server.fleet(&admin),
        fleet,
        "a refused policy changes nothing"
    );

    // Lenient: compliant, with no new report, once the re-grade is done.
    let put = server.put_policy(&admin, &lenient_policy(os));
    assert_eq!(put.status, 202, "{}", put.text);
    assert!(put.header("etag").is_some(), "{:?}", put.headers);
    assert_eq!(put.header("location"), Some("/v1/policy/status"));
    let progress = server.regrade_finished(&admin);
    assert_eq!(progress["policy_id"], put.json()["policy_id"]);
    assert_eq!(
        (
            &progress["state"],
            &progress["done"],
            &progress["changed_status"]
        ),
        (&json!("done"), &json!(1), &json!(1)),
        "{progress}"
    );
    assert_eq!(
        server.metric("shipshape_regrade_devices{count=\"changed\"}"),
        Some(1.0)
    );
    let (status, reports, transitions) = history(&server, &admin, &id);
    assert_eq!(status, "compliant");
    assert_eq!(reports, 1, "re-graded from the stored facts, no new report");
    assert_eq!(
        transitions,
        [
            (json!("os-updates"), json!("bailed-out"), Value::Null),
            (
                json!("os-updates"),
                json!("sprang-leak"),
                first_report.clone()
            ),
        ],
        "the policy change is in the history, caused by no report"
    );
    let fleet = server.fleet(&admin);
    assert_eq!(fleet["summary"]["compliant"], 1);
    assert_eq!(fleet["summary"]["leaky"], 0);
    let detail = server.device(&admin, &id);
    assert_eq!(detail["findings"][0]["status"], "excepted");

    // The agent's next report uses the new policy.
    let report = agent.run(&["report"]);
    let out = String::from_utf8_lossy(&report.stdout);
    assert_eq!(report.status.code(), Some(0), "compliant now: {out}");
    assert!(out.contains("policy always-compliant"), "{out}");
    let (status, reports, _) = history(&server, &admin, &id);
    assert_eq!((status, reports), (json!("compliant"), 2));

    // And back: leaky again, a new leak in the history.
    let put = server.put_policy(&admin, &leaky_policy(os));
    assert_eq!(put.status, 202, "{}", put.text);
    let progress = server.regrade_finished(&admin);
    assert_eq!(
        (&progress["state"], &progress["changed_status"]),
        (&json!("done"), &json!(1)),
        "{progress}"
    );
    let (status, reports, transitions) = history(&server, &admin, &id);
    assert_eq!((status, reports), (json!("leaky"), 2));
    assert_eq!(transitions.len(), 3, "{transitions:?}");
    assert_eq!(
        transitions[0],
        (json!("os-updates"), json!("sprang-leak"), Value::Null)
    );
}
