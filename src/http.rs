//! The operator's HTTP endpoints: `/metrics` (Prometheus, OpenMetrics
//! text), `/healthz` (the process is alive and serving) and `/readyz` (the
//! controller's caches have synced).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::health::CacheSync;
use crate::metrics::{self, Metrics};

/// Errors of the HTTP server.
#[derive(Debug, Error)]
pub enum Error {
    #[error("cannot listen on {addr} (--http-addr): {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the HTTP server failed: {0}")]
    Serve(#[source] std::io::Error),
}

/// What the handlers read.
#[derive(Clone)]
pub struct Endpoints {
    pub metrics: Arc<Metrics>,
    pub caches: CacheSync,
}

/// A bound listener, so a port in use fails at startup rather than later.
pub struct Server {
    listener: TcpListener,
}

impl Server {
    pub async fn bind(addr: SocketAddr) -> Result<Self, Error> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind { addr, source })?;
        Ok(Self { listener })
    }

    /// The address actually bound (the port is chosen by the OS for `:0`).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serves until `shutdown` is cancelled, then finishes requests in flight.
    pub async fn serve(
        self,
        endpoints: Endpoints,
        shutdown: CancellationToken,
    ) -> Result<(), Error> {
        if let Some(addr) = self.local_addr() {
            info!(%addr, "serving /metrics, /healthz and /readyz");
        }
        axum::serve(self.listener, router(endpoints))
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
            .map_err(Error::Serve)
    }
}

fn router(endpoints: Endpoints) -> Router {
    Router::new()
        .route("/metrics", get(serve_metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(endpoints)
}

async fn serve_metrics(State(endpoints): State<Endpoints>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        endpoints.metrics.encode(),
    )
}

/// Answering at all is the proof of life: the runtime schedules tasks.
async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(endpoints): State<Endpoints>) -> (StatusCode, String) {
    if endpoints.caches.is_ready() {
        (StatusCode::OK, "ok\n".to_owned())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{}\n", endpoints.caches.describe_pending()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// One HTTP/1.1 GET over a fresh connection: (status code, body).
    async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        let code = response
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (code, body)
    }

    #[tokio::test]
    async fn endpoints_answer_and_readyz_follows_the_caches() {
        let server = Server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = server.local_addr().unwrap();
        let endpoints = Endpoints {
            metrics: Arc::new(Metrics::default()),
            caches: CacheSync::default(),
        };
        endpoints.caches.register(["namespaces"]);
        let shutdown = CancellationToken::new();
        let serving = tokio::spawn(server.serve(endpoints.clone(), shutdown.clone()));

        assert_eq!(get(addr, "/healthz").await, (200, "ok\n".to_owned()));
        assert_eq!(
            get(addr, "/readyz").await,
            (503, "caches not synced: namespaces\n".to_owned())
        );
        endpoints.caches.mark_synced("namespaces");
        assert_eq!(get(addr, "/readyz").await, (200, "ok\n".to_owned()));

        endpoints.metrics.set_leader(true);
        let (code, body) = get(addr, "/metrics").await;
        assert_eq!(code, 200);
        assert!(body.contains("baseliner_leader 1"), "{body}");
        assert_eq!(get(addr, "/nothing").await.0, 404);

        shutdown.cancel();
        serving.await.unwrap().unwrap();
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    }
}
