//! A server in-process over a fresh SQLite file, with an admin token, an
//! enrollment token, and helpers to enroll devices and sign their requests.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::SigningKey;
use http_body_util::BodyExt as _;
use jiff::{SignedDuration, Timestamp};
use shipshape_core::Verdict;
use shipshape_core::facts::{
    DiskEncryption, Facts, Host, Observed, OsFamily, OsInfo, SshKeys, Volume, VolumeEncryption,
};
use shipshape_core::report::{CheckReport, PolicyRef, SCHEMA_VERSION};
use shipshape_core::signing::sign_request;
use shipshape_core::wire::{
    ApiError, EnrollRequest, EnrollResponse, Heartbeat, ReportSubmission, facts_hash,
};
use shipshape_server::api::{self, ApiSettings, AppState};
use shipshape_server::auth;
use shipshape_server::config::Limits;
use shipshape_server::model::{DeviceDetail, NewToken, Staleness, TokenKind};
use shipshape_server::store::{SqliteStore, Store};
use tower::ServiceExt as _;

/// The host every test request is addressed to; signatures cover it.
pub const HOST: &str = "shipshape.test";

pub struct Server {
    pub router: Router,
    pub store: Arc<SqliteStore>,
    pub admin_token: String,
    pub enroll_token: String,
    _dir: tempfile::TempDir,
}

/// An enrolled device: its id and the key it signs with.
pub struct Device {
    pub id: String,
    pub key: SigningKey,
}

/// An answer, body read.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> T {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "{error}: {} {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn error(&self) -> ApiError {
        self.json()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: header::HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }
}

impl Server {
    pub async fn start() -> Server {
        Server::start_with(ApiSettings {
            stale_after: SignedDuration::from_hours(48),
            public_url: None,
            tls: false,
        })
        .await
    }

    pub async fn start_with(settings: ApiSettings) -> Server {
        Server::start_limited(settings, Limits::NONE).await
    }

    /// A server that enforces `limits`, as `serve` does.
    pub async fn start_limited(settings: ApiSettings, limits: Limits) -> Server {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = Arc::new(SqliteStore::open(&dir.path().join("test.db")).expect("a new store"));
        let policy = api::policy::activate_at_start(store.as_ref(), None, Timestamp::now())
            .await
            .expect("the built-in policy activates");
        let state = AppState::with_limits(store.clone(), policy, settings, limits);
        let admin_token = create_token(store.as_ref(), TokenKind::Admin, None, None).await;
        let enroll_token = create_token(store.as_ref(), TokenKind::Enroll, None, None).await;
        Server {
            router: api::router(state),
            store,
            admin_token,
            enroll_token,
            _dir: dir,
        }
    }

    pub async fn send(&self, request: Request<Body>) -> Answer {
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("the router always answers");
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("a readable body")
            .to_bytes();
        Answer {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send(request(Method::GET, path).body(Body::empty()).unwrap())
            .await
    }

    /// A GET with the admin token as bearer.
    pub async fn admin_get(&self, path: &str) -> Answer {
        self.send(
            request(Method::GET, path)
                .header(
                    header::AUTHORIZATION,
                    format!("Bearer {}", self.admin_token),
                )
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    pub async fn post_json(&self, path: &str, body: &impl serde::Serialize) -> Answer {
        self.send(
            request(Method::POST, path)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(serde_json::to_vec(body).unwrap()))
                .unwrap(),
        )
        .await
    }

    /// Enrolls a new device named `hostname` with the enrollment token.
    pub async fn enroll(&self, hostname: &str) -> Device {
        let key = SigningKey::from_bytes(&random_bytes());
        let answer = self
            .post_json(
                "/v1/enroll",
                &enroll_request(&self.enroll_token, &key, hostname),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text());
        let EnrollResponse { device_id } = answer.json();
        Device { id: device_id, key }
    }

    /// Sends `submission` signed by `device`, as an agent does.
    pub async fn report(&self, device: &Device, submission: &ReportSubmission) -> Answer {
        let body = serde_json::to_vec(submission).unwrap();
        self.send(Signed::new(device, Method::POST, "/v1/reports", body).request())
            .await
    }

    /// Sends `heartbeat` signed by `device`, as an agent does.
    pub async fn heartbeat(&self, device: &Device, heartbeat: &Heartbeat) -> Answer {
        let body = serde_json::to_vec(heartbeat).unwrap();
        self.send(Signed::new(device, Method::POST, "/v1/heartbeats", body).request())
            .await
    }

    pub async fn detail(&self, device: &Device) -> Option<DeviceDetail> {
        self.store
            .device(&device.id, self.staleness())
            .await
            .expect("the store answers")
    }

    /// `GET /v1/fleet` as JSON (the model types serialize only).
    pub async fn fleet(&self) -> serde_json::Value {
        let answer = self.admin_get("/v1/fleet").await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        answer.json()
    }

    /// Polls `GET /v1/policy/status` until the re-grade of the active
    /// policy is no longer running; its last answer.
    pub async fn regrade_finished(&self) -> serde_json::Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let answer = self.admin_get("/v1/policy/status").await;
            assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
            let progress: serde_json::Value = answer.json();
            if progress["state"] != "running" {
                return progress;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the re-grade did not finish: {progress}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    pub fn staleness(&self) -> Staleness {
        Staleness {
            now: Timestamp::now(),
            stale_after: SignedDuration::from_hours(48),
        }
    }
}

pub async fn create_token(
    store: &dyn Store,
    kind: TokenKind,
    uses: Option<u32>,
    expires_at: Option<Timestamp>,
) -> String {
    let secret = auth::generate_token(kind).expect("random bytes");
    store
        .create_token(NewToken {
            kind,
            hash: auth::hash_token(&secret),
            uses,
            expires_at,
            created_at: Timestamp::now(),
        })
        .await
        .expect("the token is stored");
    secret
}

pub fn request(method: Method, path: &str) -> axum::http::request::Builder {
    Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, HOST)
}

pub fn random_bytes() -> [u8; 32] {
    let mut bytes = [0; 32];
    getrandom::fill(&mut bytes).expect("random bytes");
    bytes
}

pub fn enroll_request(token: &str, key: &SigningKey, hostname: &str) -> EnrollRequest {
    EnrollRequest {
        token: token.to_owned(),
        public_key: STANDARD.encode(key.verifying_key().as_bytes()),
        host: host(hostname),
    }
}

pub fn host(hostname: &str) -> Host {
    Host {
        hostname: hostname.to_owned(),
        os: OsInfo {
            family: OsFamily::Linux,
            id: "debian".to_owned(),
            name: "Debian GNU/Linux 12 (bookworm)".to_owned(),
            version: Some("12".to_owned()),
            build: None,
        },
        kernel: Some("6.1.0-18-amd64".to_owned()),
        arch: "x86_64".to_owned(),
        hardware_id: None,
    }
}

/// A laptop whose root disk is not encrypted (a critical leak under the
/// default policy), with no SSH keys, and nothing else known.
pub fn leaky_submission(hostname: &str) -> ReportSubmission {
    let unknown = || "not probed in this test".to_owned();
    let facts = Facts {
        host: host(hostname),
        disk_encryption: Observed::Observed(DiskEncryption {
            volumes: vec![Volume {
                mount_point: "/".to_owned(),
                device: Some("/dev/nvme0n1p2".to_owned()),
                encryption: VolumeEncryption::NotEncrypted,
                method: None,
                detail: None,
            }],
        }),
        os_updates: Observed::unknown(unknown()),
        firewall: Observed::unknown(unknown()),
        ssh_keys: Observed::Observed(SshKeys {
            keys: Vec::new(),
            scanned: vec!["/home/ada/.ssh".to_owned()],
            unreadable: Vec::new(),
        }),
        ssh_server: Observed::unknown(unknown()),
    };
    ReportSubmission {
        id: uuid::Uuid::now_v7().to_string(),
        report: CheckReport {
            schema: SCHEMA_VERSION,
            verdict: Verdict::Leaky,
            checked_at: Timestamp::now(),
            host: facts.host.clone(),
            policy: PolicyRef {
                name: "default".to_owned(),
                source: "built-in".to_owned(),
            },
            findings: Vec::new(),
        },
        facts,
        dropped: 0,
    }
}

/// The heartbeat of a run that observed the same facts as `submission`,
/// under a new report id.
pub fn heartbeat_after(submission: &ReportSubmission) -> Heartbeat {
    Heartbeat {
        id: uuid::Uuid::now_v7().to_string(),
        facts_hash: facts_hash(&submission.facts),
        report: CheckReport {
            checked_at: Timestamp::now(),
            ..submission.report.clone()
        },
        dropped: 0,
    }
}

/// A signed request under construction: every part can be bent by a test.
pub struct Signed {
    pub method: Method,
    pub path: String,
    pub body: Vec<u8>,
    /// The URL the signature covers.
    pub signed_uri: String,
    pub keyid: String,
    pub key: SigningKey,
    pub created: i64,
    pub nonce: String,
}

impl Signed {
    pub fn new(device: &Device, method: Method, path: &str, body: Vec<u8>) -> Signed {
        Signed {
            method,
            path: path.to_owned(),
            body,
            signed_uri: format!("http://{HOST}{path}"),
            keyid: device.id.clone(),
            key: device.key.clone(),
            created: Timestamp::now().as_second(),
            nonce: uuid::Uuid::new_v4().to_string(),
        }
    }

    /// The request with its signature over `self.body`.
    pub fn request(&self) -> Request<Body> {
        self.request_with_body(self.body.clone())
    }

    /// The request signed over `self.body`, carrying `body` instead.
    pub fn request_with_body(&self, body: Vec<u8>) -> Request<Body> {
        let headers = sign_request(
            self.method.as_str(),
            &self.signed_uri,
            &self.body,
            &self.key,
            &self.keyid,
            self.created,
            &self.nonce,
        )
        .expect("signable values");
        request(self.method.clone(), &self.path)
            .header(header::CONTENT_TYPE, "application/json")
            .header("content-digest", headers.content_digest)
            .header("signature-input", headers.signature_input)
            .header("signature", headers.signature)
            .body(Body::from(body))
            .unwrap()
    }
}
