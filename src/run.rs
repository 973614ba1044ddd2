//! `baseliner run`: the operator process. Wiring only: logging, the client,
//! signals, and the controller.

use std::collections::BTreeSet;
use std::time::Duration;

use clap::ValueEnum;
use kube::Client;
use thiserror::Error;
use tracing::info;
use tracing_subscriber::EnvFilter;

use crate::controller::{self, Config};
use crate::render::{DEFAULT_ALLOWED_CLUSTER_ROLES, RenderOptions};
use crate::selection::SelectionContext;

/// Arguments of `baseliner run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Reconcile every namespace at least this often, even when nothing changed.
    #[arg(long, env = "BASELINER_RESYNC_SECONDS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    pub resync_seconds: u64,

    /// Namespaces reconciled at once.
    #[arg(long, env = "BASELINER_WORKERS", default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..))]
    pub workers: u16,

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

    /// The namespace the operator runs in; never selected unless a profile
    /// names it in `include`.
    #[arg(long, env = "POD_NAMESPACE")]
    pub operator_namespace: Option<String>,

    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
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
    runtime.block_on(async move {
        let client = Client::try_default().await.map_err(Error::Client)?;
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
        };
        info!(allowed_cluster_roles = ?config.render.allowed_cluster_roles, "baseliner starting");
        // Without leader election this process is the only writer.
        let (_leader_tx, leader) = tokio::sync::watch::channel(true);
        controller::run(client, config, leader, shutdown_signal()).await?;
        Ok(())
    })
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

/// Completes on the first SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => info!("SIGTERM received; shutting down"),
        _ = tokio::signal::ctrl_c() => info!("SIGINT received; shutting down"),
    }
}
