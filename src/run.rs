//! `baseliner run`: the operator process. Wiring only: logging, the client,
//! the shutdown signal, leader election, the HTTP endpoints and the
//! controller.
//!
//! One [`CancellationToken`] is the shutdown signal every part awaits. On
//! SIGTERM the leader stops starting writes, the controller finishes what it
//! has in flight, then the Lease is released so a standby takes over at once,
//! and the HTTP server stops last.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::ValueEnum;
use kube::Client;
use kube::client::ClientBuilder;
use thiserror::Error;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tower::limit::ConcurrencyLimitLayer;
use tracing::{error, info, warn};
use tracing_subscriber::EnvFilter;

use crate::controller::{self, Config};
use crate::exception::ExceptionSettings;
use crate::health::{self, CacheSync};
use crate::http::{self, Endpoints};
use crate::lease::{self, DEFAULT_LEASE_NAME, LeaderElector, LeaseConfig};
use crate::metrics::Metrics;
use crate::render::{DEFAULT_ALLOWED_CLUSTER_ROLES, RenderOptions};
use crate::selection::SelectionContext;

/// The namespace `config/default` installs into; the Lease's home when
/// neither --lease-namespace nor POD_NAMESPACE says otherwise.
pub const DEFAULT_OPERATOR_NAMESPACE: &str = "baseliner-system";

/// How often an unsynced cache is reported after --cache-sync-grace-seconds.
const UNSYNCED_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// How long a leader that is shutting down lets reconciles in flight finish
/// before it releases the lease.
const SHUTDOWN_DRAIN: Duration = Duration::from_millis(500);

/// How long requests in flight may take to finish at shutdown.
const HTTP_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Arguments of `baseliner run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Reconcile every namespace at least this often, even when nothing changed.
    #[arg(long, env = "BASELINER_RESYNC_SECONDS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    pub resync_seconds: u64,

    /// Namespaces reconciled at once.
    #[arg(long, env = "BASELINER_WORKERS", default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..))]
    pub workers: u16,

    /// Requests to the API server awaiting a response at once; more wait
    /// their turn. Each needs a connection of its own (HTTP/1.1), kept open
    /// afterwards for reuse, so this bounds the operator's connections too.
    #[arg(long, env = "BASELINER_MAX_REQUESTS_IN_FLIGHT", default_value_t = 128, value_parser = clap::value_parser!(u16).range(1..))]
    pub max_requests_in_flight: u16,

    /// ClusterRoles profiles may bind. Anything else is refused. The
    /// operator's own RBAC must hold `bind` on exactly these names.
    #[arg(
        long,
        env = "BASELINER_ALLOWED_CLUSTER_ROLES",
        value_name = "ROLE,...",
        value_delimiter = ',',
        default_values_t = DEFAULT_ALLOWED_CLUSTER_ROLES.map(str::to_owned)
    )]
    pub allowed_cluster_roles: Vec<String>,

    /// Write RoleBindings and lower Pod Security levels even while the
    /// author-rights ValidatingAdmissionPolicy is missing or altered. Then
    /// anyone who may write a profile can grant through baseliner what they
    /// could not grant themselves: only for clusters where profile writers
    /// are cluster administrators anyway.
    #[arg(long, env = "BASELINER_UNSAFE_GRANT_WITHOUT_AUTHOR_RIGHTS_POLICY")]
    pub unsafe_grant_without_author_rights_policy: bool,

    /// Longest an exception may run, from its creation to its expiry; one
    /// that asks for longer is not in force and says so in its status.
    #[arg(long, env = "BASELINER_MAX_EXCEPTION_DAYS", default_value_t = ExceptionSettings::default().max_days, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_exception_days: u32,

    /// How long before its expiry an exception is reported as expiring
    /// soon (a warning Event, the `expiring_soon` metric).
    #[arg(long, env = "BASELINER_EXCEPTION_WARNING_HOURS", default_value_t = 72)]
    pub exception_warning_hours: u32,

    /// The namespace the operator runs in; never selected unless a profile
    /// names it in `include`.
    #[arg(long, env = "POD_NAMESPACE")]
    pub operator_namespace: Option<String>,

    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Where /metrics, /healthz and /readyz are served.
    #[arg(long, env = "BASELINER_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: SocketAddr,

    /// After this long without every cache synced, log an error every 10 s
    /// until they are (/readyz fails meanwhile).
    #[arg(long, env = "BASELINER_CACHE_SYNC_GRACE_SECONDS", default_value_t = 30)]
    pub cache_sync_grace_seconds: u64,

    /// Elect one writer among the replicas with a Lease. On by default, so
    /// a second replica can never write at the same time; pass
    /// `--leader-elect=false` for a single local process.
    #[arg(
        long,
        env = "BASELINER_LEADER_ELECT",
        default_value_t = true,
        num_args = 0..=1,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    pub leader_elect: bool,

    /// The Lease's namespace [default: POD_NAMESPACE, else baseliner-system].
    #[arg(long, env = "BASELINER_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,

    /// The Lease's name; replicas of one installation share it.
    #[arg(long, env = "BASELINER_LEASE_NAME", default_value = DEFAULT_LEASE_NAME)]
    pub lease_name: String,

    /// How long standbys wait on a leader that stopped renewing (a crash)
    /// before taking over.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..))]
    pub lease_duration_seconds: u64,

    /// How long the leader keeps writing without renewing the Lease; then
    /// it exits. Must be less than the lease duration.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub lease_renew_deadline_seconds: u64,

    /// How often the leader renews and standbys look at the Lease.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..))]
    pub lease_retry_period_seconds: u64,
}

impl RunArgs {
    fn lease_config(&self) -> LeaseConfig {
        LeaseConfig {
            namespace: self
                .lease_namespace
                .clone()
                .or_else(|| self.operator_namespace.clone())
                .unwrap_or_else(|| DEFAULT_OPERATOR_NAMESPACE.to_owned()),
            name: self.lease_name.clone(),
            identity: lease::default_identity(),
            lease_duration: Duration::from_secs(self.lease_duration_seconds),
            renew_deadline: Duration::from_secs(self.lease_renew_deadline_seconds),
            retry_period: Duration::from_secs(self.lease_retry_period_seconds),
        }
    }
}

/// How logs are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Why the operator could not run.
#[derive(Debug, Error)]
pub enum Error {
    #[error("cannot connect to Kubernetes (set KUBECONFIG or run in a cluster): {0}")]
    Client(#[source] kube::Error),
    #[error(transparent)]
    Controller(#[from] controller::Error),
    #[error(transparent)]
    LeaderElection(#[from] lease::Error),
    #[error(transparent)]
    Http(#[from] http::Error),
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

/// Runs the operator until SIGTERM or SIGINT.
pub fn run(args: RunArgs) -> Result<(), Error> {
    init_logging(args.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    let result = runtime.block_on(run_operator(args));
    // Tasks still running (watches, a request in flight) are dropped; do not
    // let one hold up the exit, least of all after losing the lease.
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

/// The client for the cluster in $KUBECONFIG (or in-cluster), with at most
/// `max_in_flight` requests awaiting a response. Without a bound, 32 workers
/// each reading a namespace's objects at once opened 250 connections, with
/// about 12 MB of TLS and HTTP buffers at 10,000 namespaces; watches hold a
/// slot only until their response starts.
async fn api_client(max_in_flight: u16) -> Result<Client, Error> {
    let config = kube::Config::infer()
        .await
        .map_err(|e| Error::Client(kube::Error::InferConfig(e)))?;
    let builder = ClientBuilder::try_from(config).map_err(Error::Client)?;
    Ok(builder
        .with_layer(&ConcurrencyLimitLayer::new(usize::from(max_in_flight)))
        .build())
}

async fn run_operator(args: RunArgs) -> Result<(), Error> {
    let lease_config = args.leader_elect.then(|| args.lease_config());
    if let Some(lease_config) = &lease_config {
        lease_config.validate()?;
    }
    let server = http::Server::bind(args.http_addr).await?;
    let client = api_client(args.max_requests_in_flight).await?;
    let config = Config {
        resync: Duration::from_secs(args.resync_seconds),
        workers: args.workers,
        render: RenderOptions {
            allowed_cluster_roles: args
                .allowed_cluster_roles
                .into_iter()
                .collect::<BTreeSet<_>>(),
        },
        selection: SelectionContext {
            operator_namespace: args.operator_namespace,
        },
        grant_without_author_rights_policy: args.unsafe_grant_without_author_rights_policy,
        exceptions: ExceptionSettings {
            max_days: args.max_exception_days,
            warn_before: k8s_openapi::jiff::SignedDuration::from_hours(i64::from(
                args.exception_warning_hours,
            )),
        },
    };
    info!(allowed_cluster_roles = ?config.render.allowed_cluster_roles, leader_elect = lease_config.is_some(), "baseliner starting");

    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    let metrics = Arc::new(Metrics::default());
    let caches = CacheSync::default();
    let endpoints = Endpoints {
        metrics: metrics.clone(),
        caches: caches.clone(),
    };
    let http = tokio::spawn(server.serve(endpoints, shutdown.clone()));
    tokio::spawn(health::log_until_synced(
        caches.clone(),
        Duration::from_secs(args.cache_sync_grace_seconds),
        UNSYNCED_LOG_INTERVAL,
        shutdown.clone(),
    ));

    // Without leader election this process is the only writer.
    let (leader_tx, leader) = watch::channel(lease_config.is_none());
    tokio::spawn(mirror_leadership(leader.clone(), metrics.clone()));
    let stopped = shutdown.clone();
    let controller = controller::run(
        client.clone(),
        config,
        leader,
        async move { stopped.cancelled().await },
        metrics,
        caches,
    );

    let result = match lease_config {
        None => {
            let result = controller.await.map_err(Error::from);
            shutdown.cancel();
            result
        }
        Some(lease_config) => {
            let mut elector = LeaderElector::new(client, lease_config, leader_tx)?;
            run_elected(&mut elector, controller, &shutdown).await
        }
    };
    // The HTTP server stops last, so probes answer while the rest winds down;
    // a client holding a connection open does not hold up the exit.
    shutdown.cancel();
    match tokio::time::timeout(HTTP_DRAIN_TIMEOUT, http).await {
        Ok(Ok(Err(error))) => warn!(%error, "HTTP server"),
        Ok(Err(error)) => warn!(%error, "HTTP server task"),
        Err(_) => warn!("HTTP connections still open at exit"),
        Ok(Ok(Ok(()))) => {}
    }
    if result.is_ok() {
        info!("baseliner stopped");
    }
    result
}

/// Runs the controller under leader election. Losing the lease returns at
/// once, without waiting for the controller: the process must exit before
/// the new leader starts writing. On shutdown the controller stops first,
/// then the lease is released.
async fn run_elected(
    elector: &mut LeaderElector,
    controller: impl Future<Output = Result<(), controller::Error>>,
    shutdown: &CancellationToken,
) -> Result<(), Error> {
    enum First {
        Election(Result<(), lease::Error>),
        Controller(Result<(), controller::Error>),
    }
    let mut controller = std::pin::pin!(controller);
    let first = tokio::select! {
        result = elector.run(shutdown) => First::Election(result),
        result = &mut controller => First::Controller(result),
    };
    let result = match first {
        First::Election(Err(lost)) => {
            shutdown.cancel();
            return Err(lost.into());
        }
        // Shutdown: leadership is withdrawn; let the writers finish, but
        // only briefly: a standby is waiting for the lease, and the writes
        // in flight are idempotent applies it would repeat anyway.
        First::Election(Ok(())) => tokio::time::timeout(SHUTDOWN_DRAIN, controller)
            .await
            .unwrap_or(Ok(())),
        // The controller could not start (CRD missing) or stopped on its own.
        First::Controller(result) => result,
    };
    match elector.release().await {
        Ok(_) => {}
        Err(error) => {
            warn!(%error, "releasing the leader lease failed; a standby takes over when it expires")
        }
    }
    result.map_err(Error::from)
}

/// Keeps the `baseliner_leader` metric equal to the leadership flag.
async fn mirror_leadership(mut leader: watch::Receiver<bool>, metrics: Arc<Metrics>) {
    loop {
        metrics.set_leader(*leader.borrow_and_update());
        if leader.changed().await.is_err() {
            metrics.set_leader(false);
            return;
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// Cancels `shutdown` on the first SIGTERM or SIGINT. kube's
/// `shutdown_on_signal` is not used: it would take SIGTERM over for the
/// controller alone, and the lease and HTTP server must stop in order too.
async fn cancel_on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => term,
        Err(error) => {
            error!(%error, "cannot listen for SIGTERM; stop with SIGINT");
            let _ = tokio::signal::ctrl_c().await;
            shutdown.cancel();
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => info!("SIGTERM received; shutting down"),
        _ = tokio::signal::ctrl_c() => info!("SIGINT received; shutting down"),
    }
    shutdown.cancel();
}
