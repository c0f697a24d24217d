//! `shipshape-server serve`: settings, store, policy, then HTTP(S) until
//! SIGTERM or Ctrl-C.

use std::io::Write as _;
use std::time::Duration;

use anyhow::Context as _;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use axum_server::{Handle, Server};
use jiff::Timestamp;

use super::{ServeArgs, open_store};
use crate::api::{self, ApiSettings, AppState};
use crate::config::{FileConfig, Limits, Overrides, ServeSettings, TlsFiles};

/// How long open requests may finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

pub(super) async fn serve(
    args: ServeArgs,
    db: Option<String>,
    file: FileConfig,
) -> anyhow::Result<()> {
    let flags = Overrides {
        listen: args.listen,
        db,
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
        stale_after: args.stale_after,
        public_url: args.public_url,
        policy: args.policy,
    };
    let settings = ServeSettings::resolve(flags, file)?;
    let store = open_store(&settings.db).await?;
    let policy = api::policy::activate_at_start(
        store.as_ref(),
        settings.policy.as_deref(),
        Timestamp::now(),
    )
    .await?;
    let tls = match &settings.tls {
        Some(files) => Some(tls_config(files).await?),
        None => None,
    };

    let listener = std::net::TcpListener::bind(settings.listen)
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let address = listener
        .local_addr()
        .context("cannot read the bound address")?;
    if tls.is_none() && !address.ip().is_loopback() {
        tracing::warn!(
            %address,
            "serving plain HTTP beyond loopback: admin tokens and reports cross the network unencrypted; give --tls-cert and --tls-key"
        );
    }
    let state = AppState::with_limits(
        store,
        policy,
        ApiSettings {
            stale_after: settings.stale_after,
            public_url: settings.public_url.clone(),
            tls: tls.is_some(),
        },
        settings.limits,
    );
    // A re-grade cut short by a stop, or begun by --policy, goes on.
    state.resume_regrade().await;
    let app = api::router(state).into_make_service();
    let handle = Handle::new();
    on_shutdown_signal(handle.clone())?;

    let scheme = if tls.is_some() { "https" } else { "http" };
    // The one line on stdout: scripts and tests read the port from it.
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening on {scheme}://{address}")
        .and_then(|()| stdout.flush())
        .context("cannot write to stdout")?;
    tracing::info!(
        %address,
        db = %settings.db,
        public_url = settings.public_url.as_ref().map(|url| url.as_str()),
        stale_after = %format!("{:#}", settings.stale_after),
        limits = ?settings.limits,
        "serving"
    );

    let server = bounded(
        axum_server::from_tcp(listener).context("cannot serve on the listening socket")?,
        &settings.limits,
    )
    .handle(handle);
    match tls {
        Some(config) => {
            server
                .acceptor(RustlsAcceptor::new(config))
                .serve(app)
                .await
        }
        None => server.serve(app).await,
    }
    .context("server failed")?;
    tracing::info!("stopped");
    Ok(())
}

/// A client gets the request timeout to send its first request, and each
/// request's headers, too: a slow or silent connection cannot hold a task
/// and a socket for long. (Bodies are bounded by the request timeout in the
/// router.)
fn bounded(
    mut server: Server<std::net::SocketAddr>,
    limits: &Limits,
) -> Server<std::net::SocketAddr> {
    let Some(timeout) = limits.request_timeout else {
        return server;
    };
    server.http_builder().http1().header_read_timeout(timeout);
    server.first_request_timeout(timeout)
}

async fn tls_config(files: &TlsFiles) -> anyhow::Result<RustlsConfig> {
    // One crypto provider for the process; installing it twice is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    RustlsConfig::from_pem_file(&files.cert, &files.key)
        .await
        .with_context(|| {
            format!(
                "cannot load TLS certificate {} and key {}",
                files.cert.display(),
                files.key.display()
            )
        })
}

/// Stops accepting connections on SIGTERM or Ctrl-C, and lets open requests
/// finish for a while. The handlers are installed before this returns, so
/// a signal sent as soon as the address is printed is not missed.
#[cfg(unix)]
fn on_shutdown_signal(handle: Handle<std::net::SocketAddr>) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};

    let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for Ctrl-C")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
        shut_down(&handle);
    });
    Ok(())
}

#[cfg(not(unix))]
fn on_shutdown_signal(handle: Handle<std::net::SocketAddr>) -> anyhow::Result<()> {
    tokio::spawn(async move {
        match tokio::signal::ctrl_c().await {
            Ok(()) => shut_down(&handle),
            Err(error) => tracing::error!(%error, "cannot listen for Ctrl-C"),
        }
    });
    Ok(())
}

fn shut_down(handle: &Handle<std::net::SocketAddr>) {
    tracing::info!("shutting down: finishing open requests");
    handle.graceful_shutdown(Some(SHUTDOWN_GRACE));
}
