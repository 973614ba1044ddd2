//! One `baseliner run` process a test starts as the operator's
//! ServiceAccount, with leader election on a Lease in the test's own
//! namespace (so it never meets another test's) and its HTTP endpoints.

use anyhow::{Result, anyhow};
use baseliner_e2e::Identity;
use baseliner_e2e::operator::Operator;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The Lease the replicas of one test elect their leader on, and its timing.
pub(super) const LEASE_NAME: &str = "baseliner-leader";
pub(super) const LEASE_DURATION_SECONDS: u64 = 4;
pub(super) const RENEW_DEADLINE_SECONDS: u64 = 3;
pub(super) const RETRY_PERIOD_SECONDS: u64 = 1;

/// A port free on loopback right now (bound, then released for the operator).
fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// One `baseliner run` process and its HTTP port.
pub(super) struct Replica {
    pub(super) operator: Operator,
    port: u16,
}

impl Replica {
    /// Started with `extra` arguments, serving HTTP on a free port.
    pub(super) fn start(identity: &Identity, namespace: &str, extra: &[&str]) -> Result<Self> {
        let port = free_port()?;
        let addr = format!("127.0.0.1:{port}");
        let mut args = vec![
            "--http-addr",
            addr.as_str(),
            "--operator-namespace",
            namespace,
        ];
        args.extend_from_slice(extra);
        let operator = Operator::start(&identity.kubeconfig, &args)?;
        Ok(Self { operator, port })
    }

    /// Started with leader election on a Lease in `namespace`.
    pub(super) fn elected(identity: &Identity, namespace: &str) -> Result<Self> {
        let duration = LEASE_DURATION_SECONDS.to_string();
        let deadline = RENEW_DEADLINE_SECONDS.to_string();
        let retry = RETRY_PERIOD_SECONDS.to_string();
        Self::start(
            identity,
            namespace,
            &[
                "--leader-elect=true",
                "--lease-namespace",
                namespace,
                "--lease-name",
                LEASE_NAME,
                "--lease-duration-seconds",
                duration.as_str(),
                "--lease-renew-deadline-seconds",
                deadline.as_str(),
                "--lease-retry-period-seconds",
                retry.as_str(),
            ],
        )
    }

    /// The Lease holder identity this process uses (no POD_NAME here).
    pub(super) fn identity(&self) -> String {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        format!("{}_{}", host.trim(), self.operator.pid())
    }

    /// GET `path` over HTTP/1.1: (status code, body).
    pub(super) async fn get(&self, path: &str) -> Result<(u16, String)> {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await?;
        let code = response
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| anyhow!("not an HTTP response: {response}"))?;
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        Ok((code, body))
    }

    /// The value of one series on `/metrics`, e.g. `baseliner_leader`.
    pub(super) async fn metric(&self, series: &str) -> Option<f64> {
        let (_, body) = self.get("/metrics").await.ok()?;
        body.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    /// Its reads of managed objects with `verb` (`get` or `list`), all kinds.
    pub(super) async fn object_reads(&self, verb: &str) -> Result<f64> {
        let (_, body) = self.get("/metrics").await?;
        let label = format!("verb=\"{verb}\"");
        Ok(body
            .lines()
            .filter(|line| {
                line.starts_with("baseliner_object_reads_total{") && line.contains(&label)
            })
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum())
    }

    pub(super) async fn is_leader(&self) -> bool {
        self.metric("baseliner_leader").await == Some(1.0)
    }

    pub(super) async fn is_ready(&self) -> bool {
        self.get("/readyz").await.is_ok_and(|(code, _)| code == 200)
    }

    pub(super) fn send(&self, signal: i32) {
        // SAFETY: signalling a child process this test started.
        unsafe {
            libc::kill(self.operator.pid() as i32, signal);
        }
    }
}
