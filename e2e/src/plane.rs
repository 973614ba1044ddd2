//! Finding or starting the control plane, once per test process.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use anyhow::{Result, anyhow, bail};

/// The control plane the tests run against.
#[derive(Debug)]
pub struct Plane {
    /// Admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// The kubectl built with the plane (never one from PATH).
    pub kubectl: PathBuf,
    /// Whether this process ran `cluster.sh up` (as opposed to using a
    /// kubeconfig from the environment).
    pub local: bool,
}

static PLANE: OnceLock<Result<Plane, String>> = OnceLock::new();

pub(crate) fn plane() -> Result<&'static Plane> {
    PLANE
        .get_or_init(|| init().map_err(|e| format!("{e:#}")))
        .as_ref()
        .map_err(|e| anyhow!("control plane unavailable: {e}"))
}

/// The repository's root directory.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("e2e crate lives in the repository")
        .to_path_buf()
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

fn init() -> Result<Plane> {
    let controlplane = repo_root().join("e2e").join("controlplane");
    let kubectl = match env_path("BASELINER_E2E_KUBECTL") {
        Some(k) => k,
        None => {
            // Builds the binaries on first use; prints the cached bin dir.
            let out = run(&controlplane.join("build.sh"), &[], true)?;
            let dir = out
                .lines()
                .last()
                .ok_or_else(|| anyhow!("build.sh printed no directory"))?;
            PathBuf::from(dir.trim()).join("kubectl")
        }
    };
    if !kubectl.is_file() {
        bail!("kubectl not found at {}", kubectl.display());
    }

    let (kubeconfig, local) =
        match env_path("BASELINER_E2E_KUBECONFIG").or_else(|| env_path("KUBECONFIG")) {
            Some(kc) => {
                if kc.to_string_lossy().contains(':') {
                    bail!(
                        "KUBECONFIG lists several files ({}); the e2e harness needs one",
                        kc.display()
                    );
                }
                // cargo runs tests in the crate's directory; a relative
                // path is taken from the workspace root, where make runs.
                let kc = if kc.is_relative() && !kc.exists() {
                    repo_root().join(kc)
                } else {
                    kc
                };
                (kc, false)
            }
            None => {
                run(&controlplane.join("cluster.sh"), &["up"], false)?;
                let dir = env_path("BASELINER_CLUSTER_DIR")
                    .unwrap_or_else(|| repo_root().join("target").join("cluster"));
                (dir.join("kubeconfig"), true)
            }
        };
    if !kubeconfig.is_file() {
        bail!("kubeconfig not found at {}", kubeconfig.display());
    }
    eprintln!(
        "baseliner-e2e: control plane kubeconfig {} ({}), kubectl {}",
        kubeconfig.display(),
        if local {
            "local plane, left running: `make cluster-down` stops it"
        } else {
            "from the environment"
        },
        kubectl.display()
    );
    install_crds(&kubectl, &kubeconfig)?;
    Ok(Plane {
        kubeconfig,
        kubectl,
        local,
    })
}

/// Installs (or updates) the CRDs and policies from `crds/`, so every test
/// sees the schema of this checkout, and waits until they are served.
fn install_crds(kubectl: &Path, kubeconfig: &Path) -> Result<()> {
    let crds = repo_root().join("crds");
    let kubectl_run = |args: &[&str]| -> Result<()> {
        let out = Command::new(kubectl)
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| anyhow!("running kubectl: {e}"))?;
        if !out.status.success() {
            bail!(
                "kubectl {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    };
    let crds = crds.to_string_lossy();
    kubectl_run(&["apply", "--server-side", "--force-conflicts", "-f", &crds])?;
    kubectl_run(&[
        "wait",
        "--for=condition=Established",
        "crd/productionprofiles.baseliner.dev",
        "crd/profileexceptions.baseliner.dev",
        "--timeout=60s",
    ])
}

/// Runs a script with stderr passed through (build progress shows up
/// even though the test harness captures output); returns its stdout.
fn run(script: &Path, args: &[&str], capture: bool) -> Result<String> {
    let mut cmd = Command::new("bash");
    cmd.arg(script).args(args).stdin(Stdio::null());
    cmd.stderr(Stdio::inherit());
    cmd.stdout(if capture {
        Stdio::piped()
    } else {
        Stdio::inherit()
    });
    let out = cmd
        .output()
        .map_err(|e| anyhow!("running {}: {e}", script.display()))?;
    if !out.status.success() {
        bail!(
            "{} {} failed with {}",
            script.display(),
            args.join(" "),
            out.status
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
