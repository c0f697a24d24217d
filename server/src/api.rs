//! The HTTP API and the fleet pages: one [`router`] over shared [`AppState`].
//!
//! Agents enroll and send signed reports (`/v1/enroll`, `/v1/reports`,
//! `/v1/heartbeats`, `/v1/policy`); the security team reads the fleet as
//! JSON, CSV or HTML with an admin token; monitoring polls `/healthz` and
//! `/metrics`. Every API error is an [`ApiError`] body. `openapi.json`
//! documents every route of [`route_table`], and a test keeps the two in step.

mod enroll;
mod fleet;
mod health;
mod heartbeats;
mod limits;
pub mod policy;
mod reports;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use jiff::{SignedDuration, Timestamp};
use shipshape_core::Policy;
use shipshape_core::wire::ApiError;

use crate::config::{Limits, PublicUrl};
use crate::model::Staleness;
use crate::store::{ActivePolicy, Store, StoreError};

pub use fleet::{MAX_PER_PAGE, csv_chunks, fleet_page};
pub use health::Metrics;

/// The largest request body accepted: a full report is a few tens of KiB.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The OpenAPI 3.1 description of every route, served at `/openapi.json`.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// What the handlers need to know about how the server runs.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// How long a device may stay quiet before it counts as silent.
    pub stale_after: SignedDuration,
    /// The URL agents sign requests for, when a proxy sits in front.
    pub public_url: Option<PublicUrl>,
    /// Whether the server speaks TLS (the scheme of signed URLs, `Secure` cookies).
    pub tls: bool,
}

/// Everything the handlers share; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Shared>,
}

struct Shared {
    store: Arc<dyn Store>,
    /// This server's copy of the active policy. Reports are graded while
    /// holding a read guard, so none is graded with a policy replaced here
    /// while it was being stored; one activated through another server
    /// (replicas share the database) is caught up with when the store
    /// refuses a report graded by the old one, or a policy fetch finds
    /// another id active ([`AppState::active_policy`]).
    policy: tokio::sync::RwLock<Arc<ActivePolicy>>,
    metrics: Metrics,
    settings: ApiSettings,
    limits: Limits,
    rate_limiter: Option<limits::RateLimiter>,
    /// Permits for requests in flight, when their number is capped.
    in_flight: Option<Arc<tokio::sync::Semaphore>>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// State over `store`, grading with `policy` (already active in the
    /// store), without any [`Limits`]: for tests and benchmarks.
    pub fn new(store: Arc<dyn Store>, policy: ActivePolicy, settings: ApiSettings) -> AppState {
        AppState::with_limits(store, policy, settings, Limits::NONE)
    }

    /// State that enforces `limits`, as `serve` runs it.
    pub fn with_limits(
        store: Arc<dyn Store>,
        policy: ActivePolicy,
        settings: ApiSettings,
        limits: Limits,
    ) -> AppState {
        AppState {
            inner: Arc::new(Shared {
                store,
                policy: tokio::sync::RwLock::new(Arc::new(policy)),
                metrics: Metrics::default(),
                settings,
                limits,
                rate_limiter: limits
                    .rate
                    .map(|rate| limits::RateLimiter::new(rate, Instant::now())),
                in_flight: limits::in_flight(limits.max_concurrent_requests),
            }),
        }
    }

    fn store(&self) -> &dyn Store {
        self.inner.store.as_ref()
    }

    fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    fn settings(&self) -> &ApiSettings {
        &self.inner.settings
    }

    /// Resumes the re-grade of the active policy when it is unfinished (the
    /// server stopped midway), in the background.
    pub async fn resume_regrade(&self) {
        let policy = self.cached_policy().await;
        self.join_regrade(policy).await;
    }

    /// This server's copy of the active policy, as it stands.
    async fn cached_policy(&self) -> Arc<ActivePolicy> {
        Arc::clone(&*self.inner.policy.read().await)
    }

    /// The active policy: this server's copy, after one look at the id the
    /// store has active, catching up when another server activated a newer
    /// one.
    async fn active_policy(&self) -> Result<Arc<ActivePolicy>, StoreError> {
        let cached = self.cached_policy().await;
        match self.store().active_policy_id().await? {
            Some(id) if id != cached.stored.id => self.refresh_policy().await,
            _ => Ok(cached),
        }
    }

    /// Replaces this server's copy of the policy with the store's active
    /// one, activated through another server, and joins its re-grade while
    /// it runs: any server carries a re-grade on, each batch stored once.
    async fn refresh_policy(&self) -> Result<Arc<ActivePolicy>, StoreError> {
        let mut active = self.inner.policy.write().await;
        let Some(stored) = self.store().active_policy().await? else {
            return Ok(Arc::clone(&active));
        };
        if stored.id == active.stored.id {
            return Ok(Arc::clone(&active));
        }
        let policy =
            Policy::parse_accepted(&stored.text, policy::STORED_ORIGIN).map_err(|error| {
                StoreError(format!(
                    "the active policy (id {}) does not parse: {error}; activate a valid one",
                    stored.id
                ))
            })?;
        tracing::info!(
            policy_id = stored.id,
            etag = stored.etag,
            "policy activated through another server: grading with it"
        );
        let fresh = Arc::new(ActivePolicy { policy, stored });
        *active = Arc::clone(&fresh);
        drop(active);
        self.join_regrade(Arc::clone(&fresh)).await;
        Ok(fresh)
    }

    /// Runs the re-grade of `policy` here too, in the background, when it
    /// is unfinished.
    async fn join_regrade(&self, policy: Arc<ActivePolicy>) {
        match self.store().regrade_progress().await {
            Ok(Some(progress))
                if progress.policy_id == policy.stored.id
                    && progress.state == crate::model::RegradeState::Running =>
            {
                tracing::info!(
                    policy_id = progress.policy_id,
                    done = progress.done,
                    devices = progress.devices,
                    "resuming the re-grade of the fleet"
                );
                self.regrade(policy);
            }
            Ok(_) => {}
            Err(error) => tracing::error!(%error, "cannot tell whether a re-grade is unfinished"),
        }
    }

    /// Re-grades the fleet under `policy`, in the background.
    fn regrade(&self, policy: Arc<ActivePolicy>) {
        crate::regrade::spawn(Arc::clone(&self.inner.store), policy);
    }

    fn staleness(&self, now: Timestamp) -> Staleness {
        Staleness {
            now,
            stale_after: self.inner.settings.stale_after,
        }
    }
}

/// An HTTP method a route answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Get,
    Post,
    Put,
}

impl Verb {
    /// The method's name, as OpenAPI and HTTP spell it (uppercase).
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "GET",
            Verb::Post => "POST",
            Verb::Put => "PUT",
        }
    }

    fn filter(self) -> MethodFilter {
        match self {
            Verb::Get => MethodFilter::GET,
            Verb::Post => MethodFilter::POST,
            Verb::Put => MethodFilter::PUT,
        }
    }
}

/// One route: method, path (in OpenAPI's `{param}` syntax, which axum shares)
/// and handler.
struct Route {
    verb: Verb,
    path: &'static str,
    handler: MethodRouter<AppState>,
}

fn route<H, T>(verb: Verb, path: &'static str, handler: H) -> Route
where
    H: axum::handler::Handler<T, AppState>,
    T: 'static,
{
    Route {
        verb,
        path,
        handler: on(verb.filter(), handler),
    }
}

fn routes() -> Vec<Route> {
    vec![
        route(Verb::Post, "/v1/enroll", enroll::enroll),
        route(Verb::Post, "/v1/reports", reports::submit),
        route(Verb::Post, "/v1/heartbeats", heartbeats::submit),
        route(Verb::Get, "/v1/policy", policy::fetch),
        route(Verb::Put, "/v1/policy", policy::replace),
        route(Verb::Get, "/v1/policy/status", policy::status),
        route(Verb::Get, "/v1/fleet", fleet::fleet_json),
        route(Verb::Get, "/v1/fleet.csv", fleet::fleet_csv),
        route(Verb::Get, "/v1/devices/{id}", fleet::device_json),
        route(Verb::Get, "/", fleet::fleet_html),
        route(Verb::Post, "/login", fleet::login),
        route(Verb::Post, "/logout", fleet::logout),
        route(Verb::Get, "/devices/{id}", fleet::device_html),
        route(Verb::Get, "/healthz", health::healthz),
        route(Verb::Get, "/metrics", health::metrics),
        route(Verb::Get, "/openapi.json", openapi),
    ]
}

/// Every route the server answers, as `openapi.json` must name them.
pub fn route_table() -> Vec<(Verb, &'static str)> {
    routes()
        .into_iter()
        .map(|route| (route.verb, route.path))
        .collect()
}

/// The whole HTTP surface over `state`.
pub fn router(state: AppState) -> Router {
    routes()
        .into_iter()
        .fold(Router::new(), |router, route| {
            router.route(route.path, route.handler)
        })
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(state.clone(), limits::guard))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// Counts and logs every request, and sets the headers every response
/// carries: pages load nothing from elsewhere and run no scripts, and no
/// browser sniffs a content type.
async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let started = std::time::Instant::now();
    let mut response = next.run(request).await;
    let status = response.status();
    state.metrics().request(status);
    tracing::debug!(
        %method,
        path,
        status = status.as_u16(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "request"
    );
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

async fn not_found(request: Request) -> Failure {
    Failure::new(
        StatusCode::NOT_FOUND,
        format!(
            "no such route: {} {} (the API is described at /openapi.json)",
            request.method(),
            request.uri().path()
        ),
    )
}

async fn method_not_allowed(request: Request) -> Failure {
    Failure::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "{} is not allowed on {} (the API is described at /openapi.json)",
            request.method(),
            request.uri().path()
        ),
    )
}

/// A refused request: its status and the [`ApiError`] body explaining it.
#[derive(Debug)]
pub struct Failure {
    status: StatusCode,
    body: ApiError,
    /// `WWW-Authenticate`, for a 401 that an admin token would lift.
    challenge: Option<&'static str>,
    /// `Retry-After`, in seconds, for a 429 or 503 that passes.
    retry_after: Option<u32>,
}

impl Failure {
    fn new(status: StatusCode, error: impl Into<String>) -> Failure {
        Failure {
            status,
            body: ApiError {
                error: error.into(),
                path: None,
                code: None,
            },
            challenge: None,
            retry_after: None,
        }
    }

    /// A 400 about one field of a JSON body or query.
    fn field(path: impl Into<String>, error: impl Into<String>) -> Failure {
        let mut failure = Failure::new(StatusCode::BAD_REQUEST, error);
        failure.body.path = Some(path.into());
        failure
    }

    /// A refusal that lifts by itself: try again after `wait`.
    fn retry_later(status: StatusCode, error: impl Into<String>, wait: Duration) -> Failure {
        Failure {
            retry_after: Some(limits::retry_after_secs(wait)),
            ..Failure::new(status, error)
        }
    }

    fn unauthorized(error: impl Into<String>) -> Failure {
        Failure::new(StatusCode::UNAUTHORIZED, error)
    }

    fn admin_required() -> Failure {
        Failure {
            challenge: Some("Bearer realm=\"shipshape\""),
            ..Failure::unauthorized(
                "an admin token is required: send `Authorization: Bearer <token>` with a token from `shipshape-server token create --admin`",
            )
        }
    }

    fn too_large() -> Failure {
        Failure::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is larger than the {MAX_BODY_BYTES} bytes allowed"),
        )
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body)).into_response();
        if let Some(challenge) = self.challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Failure {
        tracing::error!(%error, "store failed a request");
        Failure::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server's storage is unavailable; nothing was changed, try again later",
        )
    }
}

/// The body, or 413 when it is over [`MAX_BODY_BYTES`].
fn body_bytes(
    body: Result<axum::body::Bytes, BytesRejection>,
) -> Result<axum::body::Bytes, Failure> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Failure::too_large()
        } else {
            Failure::new(
                StatusCode::BAD_REQUEST,
                format!("cannot read the request body: {}", rejection.body_text()),
            )
        }
    })
}

/// Parses a JSON body; a malformed one is a 400 naming the field's path.
fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, Failure> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let message = format!("malformed JSON: {}", error.inner());
        if path == "." {
            Failure::new(StatusCode::BAD_REQUEST, message)
        } else {
            Failure::field(path, message)
        }
    })?;
    deserializer.end().map_err(|error| {
        Failure::new(StatusCode::BAD_REQUEST, format!("malformed JSON: {error}"))
    })?;
    Ok(value)
}

/// A hostname a device may report: present, short, printable. Anything
/// else it contains (even `<script>`) is kept as sent and escaped on output.
fn check_hostname(path: &str, hostname: &str) -> Result<(), Failure> {
    if hostname.trim().is_empty() {
        return Err(Failure::field(path, "hostname is empty"));
    }
    if hostname.len() > 255 {
        return Err(Failure::field(
            path,
            format!(
                "hostname is {} bytes long, at most 255 are allowed",
                hostname.len()
            ),
        ));
    }
    if hostname.chars().any(char::is_control) {
        return Err(Failure::field(path, "hostname contains control characters"));
    }
    Ok(())
}
