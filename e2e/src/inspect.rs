//! Running `baseliner plan`, `why` and `report` as a user would: as an
//! identity holding only `config/rbac/reader_role.yaml`, whose every write
//! API Priority and Fairness counts (there must be none).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{Context as _, Result};

use crate::baseline::kubectl_apply;
use crate::operator::operator_binary;
use crate::requests::{RequestCounter, Requests};
use crate::{Grant, Identity, TestEnv, TestNamespace, random_name, workspace_root};

/// The ClusterRole `baseliner-reader`, as shipped.
pub const READER_ROLE_YAML: &str = include_str!("../../config/rbac/reader_role.yaml");

/// A read-only identity and the count of its writes.
pub struct Reader {
    pub identity: Identity,
    pub writes: RequestCounter,
    home: TestNamespace,
}

impl Reader {
    /// ServiceAccount `baseliner` in a namespace of its own, bound to
    /// `baseliner-reader` cluster-wide.
    pub async fn new(env: &TestEnv) -> Result<Self> {
        kubectl_apply(env, READER_ROLE_YAML).await?;
        let home = env.namespace("reader").await?;
        let identity = env
            .service_account(
                &home,
                "baseliner",
                &[Grant::ClusterRole("baseliner-reader".into())],
            )
            .await?;
        let writes = RequestCounter::install(
            env,
            home.name(),
            &random_name("reader-writes"),
            Requests::All,
        )
        .await?;
        Ok(Self {
            identity,
            writes,
            home,
        })
    }

    /// Runs `baseliner ARGS...` as this identity.
    pub fn baseliner(&self, args: &[&str]) -> Result<Output> {
        let binary = operator_binary()?;
        Command::new(&binary)
            .args(args)
            .env("KUBECONFIG", &self.identity.kubeconfig)
            .env("NO_COLOR", "1")
            .output()
            .with_context(|| format!("running {} {}", binary.display(), args.join(" ")))
    }

    /// Runs `kubectl baseliner ARGS...` through kubectl's plugin mechanism:
    /// the plane's kubectl, with `kubectl-baseliner` on $PATH.
    pub fn kubectl_plugin(&self, kubectl: &Path, args: &[&str]) -> Result<Output> {
        let plugin_dir = plugin_dir()?;
        let path = std::env::var("PATH").unwrap_or_default();
        Command::new(kubectl)
            .arg("baseliner")
            .args(args)
            .env("KUBECONFIG", &self.identity.kubeconfig)
            .env("PATH", format!("{}:{path}", plugin_dir.display()))
            .env("NO_COLOR", "1")
            .output()
            .context("running kubectl baseliner")
    }

    /// Asserts the identity wrote nothing, and removes what it was made of.
    pub async fn finish(self, env: &TestEnv) -> Result<()> {
        let writes = self.writes.count(env).await?;
        anyhow::ensure!(writes == 0, "plan, why and report wrote {writes} times");
        self.writes.remove(env).await?;
        self.home.cleanup().await
    }
}

/// The directory of the `kubectl-baseliner` built beside `baseliner`.
fn plugin_dir() -> Result<PathBuf> {
    let binary = operator_binary()?;
    let dir = binary
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| workspace_root().join("target").join("debug"));
    anyhow::ensure!(
        dir.join("kubectl-baseliner").is_file(),
        "{} has no kubectl-baseliner (cargo build -p baseliner --bins)",
        dir.display()
    );
    Ok(dir)
}

/// stdout as text, with stderr and the exit code for error messages.
pub fn describe(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
