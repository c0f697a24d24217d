//! What the `ingest` and `fleet` benchmarks share: the captured agent
//! output, serving the API on 127.0.0.1, tokens and latency percentiles.

use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use shipshape_server::api::{ApiSettings, AppState, policy, router};
use shipshape_server::auth::{generate_token, hash_token};
use shipshape_server::model::{NewToken, TokenKind};
use shipshape_server::store::Store;

/// Real `shipshape facts` and `shipshape check --format json` output,
/// captured on the Debian 12 dev machine (see fixtures/README.md).
pub const FACTS: &str = include_str!("../fixtures/facts.json");
pub const REPORT: &str = include_str!("../fixtures/report.json");

/// The API's state over `store`, grading with the policy active at start
/// (the built-in one in a new database), without limits.
pub async fn app_state(
    store: Arc<dyn Store>,
    stale_after: SignedDuration,
) -> anyhow::Result<AppState> {
    let active = policy::activate_at_start(store.as_ref(), None, Timestamp::now()).await?;
    let settings = ApiSettings {
        stale_after,
        public_url: None,
        tls: false,
    };
    Ok(AppState::new(store, active, settings))
}

/// Serves the router over `state` on a free port of 127.0.0.1, in the
/// background; its base URL.
pub async fn listen(state: AppState) -> anyhow::Result<String> {
    let app = router(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(base)
}

/// A new unlimited token of `kind`, stored in `store`.
pub async fn token(store: &dyn Store, kind: TokenKind) -> anyhow::Result<String> {
    let token = generate_token(kind)?;
    store
        .create_token(NewToken {
            kind,
            hash: hash_token(&token),
            uses: None,
            expires_at: None,
            created_at: Timestamp::now(),
        })
        .await?;
    Ok(token)
}

/// The 50th, 95th and 99th percentiles and the maximum, in milliseconds.
pub fn percentiles(latencies: &mut [Duration]) -> String {
    latencies.sort();
    let at = |fraction: f64| {
        let index = ((latencies.len() as f64 - 1.0) * fraction).round() as usize;
        latencies[index].as_secs_f64() * 1000.0
    };
    format!(
        "p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        at(0.5),
        at(0.95),
        at(0.99),
        at(1.0)
    )
}
