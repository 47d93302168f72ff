//! `lookout serve`: binds the gRPC and HTTP ports, serves until SIGTERM or SIGINT, then shuts
//! down gracefully.
//!
//! [`start`] is the in-process API (tests use it with port 0 and read the bound addresses from
//! the [`Handle`]); [`run`] is the command, which builds the tokio runtime, sets up logging,
//! calls [`start`] and waits for a signal.
//!
//! With TLS configured on a port, that port speaks TLS only; its certificate is reloaded on SIGHUP
//! and when its files change (see [`crate::tls`]).
//!
//! Shutdown, in order: health checks turn NOT_SERVING (gRPC health and `/healthz`), both
//! listeners close, open streams end with UNAVAILABLE (their clients resume from the last token
//! they received), calls in flight finish, and the process exits 0. Whatever is still running
//! after `--shutdown-timeout` is dropped; a second signal exits at once.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::ValueEnum as _;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic_health::server::HealthReporter;

use crate::cache::ResultCache;
use crate::config::{Config, ConfigError, DatabaseEngine, Host, ServeArgs};
use crate::connections::{ConnInfo, Connections, Listener};
use crate::service::Service;
use crate::storage::postgres::{self, PgOptions};
use crate::tenants::Tenants;
use crate::tls::{ServerTls, TlsError};
use crate::{grpc, http};

/// Why the server could not start or did not stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Postgres(#[from] crate::storage::postgres::StartError),
    #[error("cannot listen for {what} on {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: io::Error,
    },
    #[error("cannot resolve the host `{host}` to listen on: {reason}")]
    Resolve { host: String, reason: String },
    #[error("cannot set up gRPC reflection: {0}")]
    Reflection(String),
    #[error("cannot set up the HTTP routes: {0}")]
    Routes(#[from] crate::http::MissingHandler),
    #[error("{0}")]
    Tls(#[from] TlsError),
    #[error("{0}")]
    Cors(String),
    #[error("cannot set up authentication: {0}")]
    Authentication(#[from] crate::auth::oidc::OidcError),
    #[error("cannot set up metrics: {0}")]
    Metrics(String),
    #[error("the {0} server failed: {1}")]
    Server(&'static str, String),
}

/// A running server.
#[derive(Debug)]
pub struct Handle {
    /// The address gRPC listens on (with the real port when the config asked for port 0).
    pub grpc_addr: SocketAddr,
    /// The address HTTP listens on.
    pub http_addr: SocketAddr,
    /// The service behind both transports.
    pub service: Arc<Service>,
    /// The open connections of both listeners.
    pub connections: Arc<Connections>,
    shutdown: CancellationToken,
    health: HealthReporter,
    grpc: JoinHandle<Result<(), String>>,
    http: JoinHandle<Result<(), String>>,
    timeout: Duration,
}

/// Binds both ports and starts serving in the background (on the current tokio runtime).
pub async fn start(config: Config) -> Result<Handle, ServeError> {
    config.check()?;
    // Before anything starts: a certificate that cannot be read stops the server here.
    let tls = ServerTls::load(&config.tls)?;
    let shutdown = CancellationToken::new();
    let tenants = match config.database_engine {
        DatabaseEngine::Memory => {
            if config.database_uri.is_some() {
                tracing::warn!("--database-uri is ignored with the memory database engine");
            }
            Tenants::new(config.retention)
        }
        DatabaseEngine::Postgres => {
            let uri = config.database_uri.clone().unwrap_or_default();
            let mut options = PgOptions::with_settings(uri, config.postgres);
            options.watch = config.watch;
            match postgres::start(options, config.retention, shutdown.clone()).await {
                Ok(tenants) => tenants,
                Err(e) => {
                    shutdown.cancel();
                    return Err(e.into());
                }
            }
        }
    };
    let tenants = tenants.with_max_tenants(config.max_tenants);
    let bound = async {
        let host = resolve_host(&config.host).await?;
        let grpc_listener = bind("gRPC", SocketAddr::new(host, config.grpc_port)).await?;
        let http_listener = bind("HTTP", SocketAddr::new(host, config.http_port)).await?;
        let grpc_addr = local_addr("gRPC", &grpc_listener, config.grpc_port, host)?;
        let http_addr = local_addr("HTTP", &http_listener, config.http_port, host)?;
        Ok::<_, ServeError>((grpc_listener, http_listener, grpc_addr, http_addr))
    }
    .await;
    let (grpc_listener, http_listener, grpc_addr, http_addr) = match bound {
        Ok(bound) => bound,
        Err(e) => {
            // Stops the database tailer.
            shutdown.cancel();
            return Err(e);
        }
    };
    let database = tenants.backend().name();
    let cache = ResultCache::new(config.cache_capacity)
        .with_check_min_visits(config.cache_check_min_visits);
    let service = Service::with_tenants(config.limits.clone(), tenants, cache);

    // Authentication, limits and metrics: every call passes the gate (see crate::gate).
    let gate = match start_gate(&config, &service, &shutdown).await {
        Ok(gate) => gate,
        Err(e) => {
            shutdown.cancel();
            return Err(e);
        }
    };

    let (grpc_router, health) = grpc::router(
        &service,
        &shutdown,
        grpc::GrpcOptions {
            max_message_bytes: config.max_request_bytes,
            watch: config.watch,
            gate: crate::gate::GrpcGate::new(gate.clone()),
        },
    )
    .await
    .map_err(|e| ServeError::Reflection(e.to_string()))?;
    let http_router = http::router(http::AppState {
        service: service.clone(),
        shutdown: shutdown.clone(),
        max_request_bytes: config.max_request_bytes,
        watch: config.watch,
    })?;
    let http_router = crate::gate::http_router(http_router, gate);
    let http_router = http::with_cors(http_router, &config.cors).map_err(ServeError::Cors)?;

    // Both listeners count their connections against one limit (see crate::connections).
    let connections = Connections::new(config.connections);
    let incoming = Listener::new(grpc_listener, "gRPC", connections.clone())
        .with_tls(tls.grpc.clone())
        .into_stream();
    let grpc = spawn_server("gRPC", &shutdown, {
        let stop = shutdown.clone().cancelled_owned();
        async move {
            grpc_router
                .serve_with_incoming_shutdown(incoming, stop)
                .await
                .map_err(|e| e.to_string())
        }
    });
    let listener =
        Listener::new(http_listener, "HTTP", connections.clone()).with_tls(tls.http.clone());
    let http = spawn_server("HTTP", &shutdown, {
        let stop = shutdown.clone().cancelled_owned();
        async move {
            let app = http_router.into_make_service_with_connect_info::<ConnInfo>();
            axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await
                .map_err(|e| e.to_string())
        }
    });

    // Takes over SIGHUP before the server says it is serving.
    tls.watch(&shutdown);
    let authn = config
        .authn
        .method
        .to_possible_value()
        .map(|v| v.get_name().to_owned())
        .unwrap_or_default();
    tracing::info!(
        grpc = %grpc_addr,
        http = %http_addr,
        database,
        authn,
        grpc_tls = tls.grpc.is_some(),
        http_tls = tls.http.is_some(),
        cors = config.cors.enabled(),
        watch = config.watch,
        max_connections = connections.max(),
        "lookout is serving"
    );
    Ok(Handle {
        grpc_addr,
        http_addr,
        service,
        connections,
        shutdown,
        health,
        grpc,
        http,
        timeout: config.shutdown_timeout,
    })
}

/// The gate of both transports: the authenticator (an OIDC one fetches its keys now), the
/// traffic limits and the metrics.
async fn start_gate(
    config: &Config,
    service: &Arc<Service>,
    shutdown: &CancellationToken,
) -> Result<Arc<crate::gate::Gate>, ServeError> {
    let auth = crate::auth::Authenticator::start(&config.authn, shutdown).await?;
    let metrics = crate::metrics::Metrics::new().map_err(|e| ServeError::Metrics(e.to_string()))?;
    let admission = crate::limits::Admission::new(config.traffic);
    Ok(crate::gate::Gate::new(
        auth,
        admission,
        metrics,
        service.clone(),
    ))
}

/// The address `host` names: itself, or the first address a host name resolves to now.
async fn resolve_host(host: &Host) -> Result<std::net::IpAddr, ServeError> {
    let name = match host {
        Host::Ip(ip) => return Ok(*ip),
        Host::Name(name) => name,
    };
    let fail = |reason: String| ServeError::Resolve {
        host: name.clone(),
        reason,
    };
    let mut addrs = tokio::net::lookup_host((name.as_str(), 0))
        .await
        .map_err(|e| fail(e.to_string()))?;
    addrs
        .next()
        .map(|addr| addr.ip())
        .ok_or_else(|| fail("it has no address".to_owned()))
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { what, addr, source })
}

fn local_addr(
    what: &'static str,
    listener: &TcpListener,
    port: u16,
    host: std::net::IpAddr,
) -> Result<SocketAddr, ServeError> {
    listener.local_addr().map_err(|source| ServeError::Bind {
        what,
        addr: SocketAddr::new(host, port),
        source,
    })
}

/// Runs one server; if it stops by itself (it failed), the whole server shuts down.
fn spawn_server(
    what: &'static str,
    shutdown: &CancellationToken,
    server: impl Future<Output = Result<(), String>> + Send + 'static,
) -> JoinHandle<Result<(), String>> {
    let shutdown = shutdown.clone();
    tokio::spawn(async move {
        let result = server.await;
        if let Err(e) = &result {
            tracing::error!(server = what, error = %e, "server failed");
        }
        shutdown.cancel();
        result
    })
}

impl Handle {
    /// Resolves when the server has begun shutting down, by [`Handle::shutdown`] or because one
    /// of its servers failed.
    pub async fn stopping(&self) {
        self.shutdown.cancelled().await;
    }

    /// Shuts down gracefully (see the module docs) and waits, up to the configured timeout,
    /// for both servers to stop.
    pub async fn shutdown(self) -> Result<(), ServeError> {
        grpc::stop_health(&self.health).await;
        self.shutdown.cancel();
        let grpc_abort = self.grpc.abort_handle();
        let http_abort = self.http.abort_handle();
        let both = async { (self.grpc.await, self.http.await) };
        match tokio::time::timeout(self.timeout, both).await {
            Ok((grpc, http)) => {
                joined("gRPC", grpc)?;
                joined("HTTP", http)
            }
            Err(_) => {
                tracing::warn!(
                    timeout = ?self.timeout,
                    "requests still in flight at the shutdown timeout were dropped"
                );
                grpc_abort.abort();
                http_abort.abort();
                Ok(())
            }
        }
    }
}

fn joined(
    what: &'static str,
    result: Result<Result<(), String>, tokio::task::JoinError>,
) -> Result<(), ServeError> {
    match result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(ServeError::Server(what, e)),
        Err(e) => Err(ServeError::Server(what, e.to_string())),
    }
}

/// The `serve` command: exit status 0 after a clean shutdown, 1 if the server could not start
/// or failed, 2 for bad settings.
pub fn run(args: &ServeArgs) -> ExitCode {
    let config = match Config::resolve(args) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("lookout serve: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("lookout serve: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Inside the runtime: the trace exporter (feature `otel`) needs it.
    let telemetry = {
        let _enter = runtime.enter();
        match crate::telemetry::init_logging(
            &config.log_level,
            config.log_format,
            &config.telemetry,
        ) {
            Ok(guard) => guard,
            Err(e) => {
                eprintln!("lookout serve: {e}");
                return ExitCode::from(2);
            }
        }
    };
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    let result = runtime.block_on(serve_until_signal(config));
    drop(telemetry);
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "lookout stopped with an error");
            eprintln!("lookout serve: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve_until_signal(config: Config) -> Result<(), ServeError> {
    let handle = start(config).await?;
    tokio::select! {
        signal = signal() => tracing::info!(signal, "shutting down"),
        () = handle.stopping() => tracing::warn!("a server stopped; shutting down"),
    }
    tokio::select! {
        result = handle.shutdown() => {
            if result.is_ok() {
                tracing::info!("stopped");
            }
            result
        }
        signal = signal() => {
            tracing::warn!(signal, "second signal: exiting without waiting");
            Ok(())
        }
    }
}

/// Waits for SIGTERM or SIGINT and names it.
async fn signal() -> &'static str {
    tokio::select! {
        () = terminate() => "SIGTERM",
        () = interrupt() => "SIGINT",
    }
}

#[cfg(unix)]
async fn terminate() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut stream) => {
            stream.recv().await;
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM");
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(not(unix))]
async fn terminate() {
    std::future::pending::<()>().await;
}

async fn interrupt() {
    if let Err(e) = tokio::signal::ctrl_c().await {
        tracing::warn!(error = %e, "cannot listen for SIGINT");
        std::future::pending::<()>().await;
    }
}
