//! Writes the seed corpora, `corpus/<target>/seed-*`, from the repository's
//! real inputs: the shipped policies, the agent output the server benchmark
//! uses, requests signed by `sign_request`, and the RFC 9421 / RFC 9530
//! examples. Run from `fuzz/`: `cargo run --example seeds`.

use std::fs;
use std::path::Path;

use shipshape_core::Facts;
use shipshape_core::report::CheckReport;
use shipshape_core::signing::sign_request;
use shipshape_core::wire::{EnrollRequest, Heartbeat, ReportSubmission, facts_hash};
use shipshape_fuzz::{NOW, Request, device_key};

/// A policy with the exceptions the shipped ones leave commented out: one in
/// force (glob hosts) and one that expired before the fuzzer's `today`.
const EXCEPTIONS_POLICY: &str = r#"name = "exceptions"
leak-severity = "medium"
unknown = "report"

[checks.firewall]
severity = "high"
grace = "2 weeks"

[checks.os-updates]
severity = "high"
grace = "72h"
max-pending-security = 0

[checks.os-updates.min-version]
debian = "12"
macos = "15.0"

[[exceptions]]
check = "firewall"
hosts = ["vm", "lab-*", "*-ci-*"]
reason = "CI runner behind the lab firewall, ticket SEC-142"
expires = 2027-03-31

[[exceptions]]
check = "os-updates"
hosts = ["VM"]
reason = "kernel pinned for a driver, ticket SEC-99"
expires = 2026-01-31
"#;

/// macOS facts with every group observed, unlike the Linux fixture.
const MACOS_FACTS: &str = r#"{"host":{"hostname":"lab-mbp-7","os":{"family":"macos","id":"macos","name":"macOS 14.5","version":"14.5","build":"23F79"},"kernel":"23.5.0","arch":"aarch64","hardware_id":"7C1A0E3B-1F2D-4A5B-9C8D-0E1F2A3B4C5D"},"disk_encryption":{"observed":{"volumes":[{"mount_point":"/","device":"disk3s1","encryption":{"state":"encrypting","percent":31.900000000000006},"method":"FileVault","detail":null}]}},"os_updates":{"observed":{"pending":{"observed":{"manager":"softwareupdate","total":2,"security":1,"security_packages":["macOS Sonoma 14.6"],"held_back":0,"metadata_updated":"2026-11-20T09:00:00Z"}},"automatic":{"observed":{"enabled":true,"mechanism":"softwareupdate","detail":null}},"last_installed":"2026-10-01T12:00:00Z"}},"firewall":{"observed":{"backend":"socketfilterfw","enabled":true,"inbound":"allowed","stealth":{"observed":false},"profiles":[{"name":"default","enabled":true,"inbound":"allowed"}],"notes":[]}},"ssh_keys":{"observed":{"keys":[{"owner":"alice","path":"/Users/alice/.ssh/id_rsa","format":"pem","algorithm":"rsa","bits":2048,"encrypted":false,"hardware_backed":false,"mode":420,"fingerprint":"SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU","note":null}],"scanned":["/Users/alice/.ssh"],"unreadable":["/Users/bob/.ssh"]}},"ssh_server":{"observed":{"state":"running","config":{"observed":{"source":"sshd -T","password_authentication":true,"kbd_interactive_authentication":false,"use_pam":true,"permit_empty_passwords":false,"permit_root_login":"yes"}}}}}"#;

const REPORT_ID: &str = "019ab2c4-5d6e-7f80-9a1b-2c3d4e5f6a7b";
const DEVICE_ID: &str = "0f3c1e9a-4b7d-4e21-8a55-6d2b9c0e7f14";
const BASE_URL: &str = "https://shipshape.example";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let write = |target: &str, name: &str, bytes: &[u8]| -> std::io::Result<()> {
        let dir = corpus.join(target);
        fs::create_dir_all(&dir)?;
        fs::write(dir.join(format!("seed-{name}")), bytes)
    };

    for name in ["default.toml", "strict.toml"] {
        write("policy", name, &fs::read(repo.join("policies").join(name))?)?;
    }
    write("policy", "exceptions.toml", EXCEPTIONS_POLICY.as_bytes())?;

    let fixtures = repo.join("server/benches/fixtures");
    let facts: Facts = serde_json::from_slice(&fs::read(fixtures.join("facts.json"))?)?;
    let report: CheckReport = serde_json::from_slice(&fs::read(fixtures.join("report.json"))?)?;
    let macos: Facts = serde_json::from_str(MACOS_FACTS)?;
    let submission = ReportSubmission {
        id: REPORT_ID.to_owned(),
        facts: facts.clone(),
        report: report.clone(),
        dropped: 3,
    };
    let heartbeat = Heartbeat {
        id: REPORT_ID.to_owned(),
        facts_hash: facts_hash(&facts),
        report: report.clone(),
        dropped: 0,
    };
    let enroll = EnrollRequest {
        token: "sse_4q7Jb2mXwT9kLp3vN8rY".to_owned(),
        public_key: "6kDiY8N3n6G6eRzBn1B2L5u0FJ2qzR1m8HfJt3o5kq8=".to_owned(),
        host: macos.host.clone(),
    };
    write(
        "report_json",
        "facts-linux.json",
        &serde_json::to_vec(&facts)?,
    )?;
    write(
        "report_json",
        "facts-macos.json",
        &serde_json::to_vec(&macos)?,
    )?;
    let submission = serde_json::to_vec(&submission)?;
    write("report_json", "submission.json", &submission)?;
    write(
        "report_json",
        "heartbeat.json",
        &serde_json::to_vec(&heartbeat)?,
    )?;
    write("report_json", "enroll.json", &serde_json::to_vec(&enroll)?)?;

    let heartbeat = serde_json::to_vec(&heartbeat)?;
    let signed = [
        ("report", "POST", "/v1/reports", submission.as_slice()),
        ("heartbeat", "POST", "/v1/heartbeats", heartbeat.as_slice()),
        ("policy", "GET", "/v1/policy", b"".as_slice()),
    ];
    let key = device_key();
    for (index, (name, method, path, body)) in (0..).zip(signed) {
        let uri = format!("{BASE_URL}{path}");
        let nonce = format!("bm9uY2Utc2VlZC0{index}");
        let headers = sign_request(method, &uri, body, &key, DEVICE_ID, NOW - index, &nonce)?;
        let request = Request {
            method,
            target_uri: &uri,
            content_digest: Some(&headers.content_digest),
            signature_input: Some(&headers.signature_input),
            signature: Some(&headers.signature),
            body,
        };
        write(
            "signature_headers",
            &format!("signed-{name}"),
            &request.encode(),
        )?;
    }
    // RFC 9421 Appendix B.2.6 (another key: it must not verify), with the
    // RFC 9530 Content-Digest of the same body listing several algorithms.
    let rfc = Request {
        method: "POST",
        target_uri: "https://example.com/foo?param=Value&Pet=dog",
        content_digest: Some(
            "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:, \
             unixsum=26869, sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:",
        ),
        signature_input: Some(
            "sig-b26=(\"date\" \"@method\" \"@path\" \"@authority\" \"content-type\" \
             \"content-length\");created=1618884473;keyid=\"test-key-ed25519\"",
        ),
        signature: Some(
            "sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==:",
        ),
        body: br#"{"hello": "world"}"#,
    };
    write("signature_headers", "rfc9421-b26", &rfc.encode())?;
    // RFC 8941's syntax at large: every item type, parameters, inner lists.
    let structured = Request {
        content_digest: Some(r#"a=(1 -2.5 "s\\" tok/en:x ?0 :AA==:);p=*t, b, c=?1;q"#),
        signature_input: None,
        signature: None,
        ..rfc
    };
    write("signature_headers", "sfv-syntax", &structured.encode())?;
    Ok(())
}
