//! Velero for the tests: its own CRDs (from its Go module, pinned in
//! `e2e/velero/go.mod` and built by `e2e/velero/build.sh`), installed or
//! removed for a test, and the Velero server itself ([`VeleroServer`]),
//! run out of cluster against the plane.
//!
//! Whether Velero is installed is cluster-wide, and the tests of one binary
//! run in parallel, so it is guarded by a process-wide read/write lock:
//! every test that needs Velero installed holds a shared guard, a test that
//! needs it absent holds the exclusive guard and so runs alone among them.
//! Other test processes may use the same plane at the same time (another
//! test binary, another developer), so each guard also holds flock(2) on a
//! file named after the plane's kubeconfig, in the same mode, and the state
//! is checked against the API server after taking it.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
};
use kube::{Client, ResourceExt};
use tokio::sync::{Mutex, OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock};

use crate::{DEFAULT_TIMEOUT, wait_until};

/// The `velero` namespace manifest, as committed.
pub const NAMESPACE_YAML: &str = include_str!("../manifests/velero-namespace.yaml");
/// Name of the CRD.
pub const SCHEDULE_CRD: &str = "schedules.velero.io";
/// Namespace Velero keeps its Schedules in.
pub const VELERO_NAMESPACE: &str = "velero";

const PART_OF: (&str, &str) = ("app.kubernetes.io/part-of", "baseliner-e2e");
const FIELD_MANAGER: &str = "baseliner-e2e";

/// What a test needs of Velero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Velero {
    /// The Schedule CRD and the `velero` namespace exist for the whole test.
    Installed,
    /// Neither exists for the whole test ("Velero not installed"). Such a
    /// test waits for the running `Installed` tests and they wait for it.
    Absent,
    /// The test does not care and is not synchronised with the above.
    Any,
}

/// Keeps the Velero state a test asked for until dropped.
pub struct VeleroGuard(#[allow(dead_code)] Inner);

// The guards are held for their Drop only; closing the file releases the
// flock.
#[allow(dead_code)]
enum Inner {
    Shared(OwnedRwLockReadGuard<()>, File),
    Exclusive(OwnedRwLockWriteGuard<()>, File),
    None,
}

static LOCK: LazyLock<Arc<RwLock<()>>> = LazyLock::new(|| Arc::new(RwLock::new(())));
/// Known state: Some(true) installed, Some(false) absent, None unknown.
static STATE: Mutex<Option<bool>> = Mutex::const_new(None);

pub(crate) async fn acquire(
    client: &Client,
    kubeconfig: &Path,
    velero: Velero,
) -> Result<VeleroGuard> {
    Ok(VeleroGuard(match velero {
        Velero::Any => Inner::None,
        Velero::Installed => {
            let guard = LOCK.clone().read_owned().await;
            let file = lock_across_processes(kubeconfig, false).await?;
            let mut state = STATE.lock().await;
            if *state != Some(true) || !is_installed(client).await? {
                *state = None;
                install(client).await?;
                *state = Some(true);
            }
            Inner::Shared(guard, file)
        }
        Velero::Absent => {
            let guard = LOCK.clone().write_owned().await;
            let file = lock_across_processes(kubeconfig, true).await?;
            let mut state = STATE.lock().await;
            if *state != Some(false) || !is_absent(client).await? {
                *state = None;
                uninstall(client).await?;
                *state = Some(false);
            }
            Inner::Exclusive(guard, file)
        }
    }))
}

/// flock(2) on a file named after the plane, shared or exclusive, for as
/// long as the returned file stays open.
async fn lock_across_processes(kubeconfig: &Path, exclusive: bool) -> Result<File> {
    let plane = std::fs::canonicalize(kubeconfig).unwrap_or_else(|_| kubeconfig.to_owned());
    let plane: String = plane
        .to_string_lossy()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let path = std::env::temp_dir().join(format!("baseliner-e2e-velero{plane}.lock"));
    tokio::task::spawn_blocking(move || {
        let file = File::options()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        let operation = if exclusive {
            libc::LOCK_EX
        } else {
            libc::LOCK_SH
        };
        loop {
            // SAFETY: flock on a descriptor this function owns.
            if unsafe { libc::flock(file.as_raw_fd(), operation) } == 0 {
                return Ok(file);
            }
            let error = std::io::Error::last_os_error();
            if error.kind() != std::io::ErrorKind::Interrupted {
                return Err(error).with_context(|| format!("flock {}", path.display()));
            }
        }
    })
    .await
    .context("the flock task failed")?
}

/// Whether the CRD is established and the namespace is there (another
/// process may have changed either since this one last looked).
async fn is_installed(client: &Client) -> Result<bool> {
    let crd = Api::<CustomResourceDefinition>::all(client.clone())
        .get_opt(SCHEDULE_CRD)
        .await?;
    let established = crd.is_some_and(|crd| {
        crd.metadata.deletion_timestamp.is_none()
            && crd
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
    });
    let namespace = Api::<Namespace>::all(client.clone())
        .get_opt(VELERO_NAMESPACE)
        .await?;
    Ok(established && namespace.is_some_and(|n| n.metadata.deletion_timestamp.is_none()))
}

/// Whether neither the CRD nor the namespace exists.
async fn is_absent(client: &Client) -> Result<bool> {
    let crd = Api::<CustomResourceDefinition>::all(client.clone())
        .get_opt(SCHEDULE_CRD)
        .await?;
    let namespace = Api::<Namespace>::all(client.clone())
        .get_opt(VELERO_NAMESPACE)
        .await?;
    Ok(crd.is_none() && namespace.is_none())
}

/// The API resource of Velero Schedules.
pub fn schedule_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("velero.io", "v1", "Schedule"),
        "schedules",
    )
}

/// Velero Schedules in `namespace`, as dynamic objects.
pub fn schedules(client: Client, namespace: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client, namespace, &schedule_resource())
}

/// Installs Velero during a test made with [`Velero::Absent`] (which runs
/// alone) and records that, so the next test that needs it absent removes
/// it again.
pub(crate) async fn install_during_test(client: &Client) -> Result<()> {
    let mut state = STATE.lock().await;
    *state = None;
    install(client).await?;
    *state = Some(true);
    Ok(())
}

/// Removes Velero again during a test made with [`Velero::Absent`], and
/// records that.
pub(crate) async fn uninstall_during_test(client: &Client) -> Result<()> {
    let mut state = STATE.lock().await;
    *state = None;
    uninstall(client).await?;
    *state = Some(false);
    Ok(())
}

/// The directory `e2e/velero/build.sh` built (or found cached): the
/// `velero` binary and Velero's CRDs. Built once per test process.
pub fn velero_dir() -> Result<std::path::PathBuf> {
    static DIR: std::sync::OnceLock<Result<std::path::PathBuf, String>> =
        std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let script = crate::workspace_root().join("e2e/velero/build.sh");
        let out = std::process::Command::new("bash")
            .arg(&script)
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .output()
            .map_err(|e| format!("running {}: {e}", script.display()))?;
        if !out.status.success() {
            return Err(format!("{} failed with {}", script.display(), out.status));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().into())
    })
    .clone()
    .map_err(|e| anyhow::anyhow!(e))
}

/// Velero's CRDs, as its release ships them, labelled as the harness's.
pub fn velero_crds() -> Result<Vec<CustomResourceDefinition>> {
    let dir = velero_dir()?.join("crds");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|file| {
            let text = std::fs::read_to_string(file)?;
            let mut crd: CustomResourceDefinition = serde_saphyr::from_str(&text)
                .with_context(|| format!("parsing {}", file.display()))?;
            crd.metadata
                .labels
                .get_or_insert_with(Default::default)
                .insert(PART_OF.0.to_owned(), PART_OF.1.to_owned());
            Ok(crd)
        })
        .collect()
}

/// Server-side applies Velero's CRDs and the namespace and waits until
/// Schedules are served.
pub(crate) async fn install(client: &Client) -> Result<()> {
    let ns: Namespace =
        serde_saphyr::from_str(NAMESPACE_YAML).context("parsing the velero namespace manifest")?;
    let pp = PatchParams::apply(FIELD_MANAGER).force();

    let crds = Api::<CustomResourceDefinition>::all(client.clone());
    for crd in velero_crds()? {
        let name = crd.name_any();
        crds.patch(&name, &pp, &Patch::Apply(&crd))
            .await
            .with_context(|| format!("applying Velero's CRD {name}"))?;
    }

    let namespaces = Api::<Namespace>::all(client.clone());
    // A namespace still terminating from an earlier uninstall cannot be applied.
    wait_until(
        "the old velero namespace to finish terminating",
        DEFAULT_TIMEOUT,
        || async {
            match namespaces.get_opt(VELERO_NAMESPACE).await {
                Ok(Some(n)) => n.metadata.deletion_timestamp.is_none(),
                Ok(None) => true,
                Err(_) => false,
            }
        },
    )
    .await?;
    namespaces
        .patch(VELERO_NAMESPACE, &pp, &Patch::Apply(&ns))
        .await
        .context("applying the velero namespace")?;

    wait_until(
        "the Velero Schedule CRD to be established",
        DEFAULT_TIMEOUT,
        || async {
            let Ok(crd) = crds.get(SCHEDULE_CRD).await else {
                return false;
            };
            crd.status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
        },
    )
    .await?;
    let api = schedules(client.clone(), VELERO_NAMESPACE);
    wait_until(
        "velero.io/v1 schedules to be served",
        DEFAULT_TIMEOUT,
        || async { api.list(&ListParams::default().limit(1)).await.is_ok() },
    )
    .await
}

/// Removes Velero's CRDs (and with them every Schedule and Backup) and the
/// `velero` namespace, and waits until they are gone. Refuses to remove a
/// CRD or namespace that the harness did not install.
pub(crate) async fn uninstall(client: &Client) -> Result<()> {
    let crds = Api::<CustomResourceDefinition>::all(client.clone());
    let names: Vec<String> = velero_crds()?.iter().map(|c| c.name_any()).collect();
    for name in &names {
        let Some(crd) = crds.get_opt(name).await? else {
            continue;
        };
        if crd.labels().get(PART_OF.0).map(String::as_str) != Some(PART_OF.1) {
            bail!(
                "refusing to delete CRD {name}: it lacks {}={}, so the e2e harness did not install it",
                PART_OF.0,
                PART_OF.1
            );
        }
        match crds.delete(name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.is_not_found() => {}
            Err(e) => return Err(e).with_context(|| format!("deleting Velero's CRD {name}")),
        }
    }
    let namespaces = Api::<Namespace>::all(client.clone());
    if let Some(ns) = namespaces.get_opt(VELERO_NAMESPACE).await? {
        if ns.labels().get(PART_OF.0).map(String::as_str) != Some(PART_OF.1) {
            bail!(
                "refusing to delete namespace {VELERO_NAMESPACE}: the e2e harness did not create it"
            );
        }
        match namespaces
            .delete(VELERO_NAMESPACE, &DeleteParams::background())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.is_not_found() => {}
            Err(e) => return Err(e).context("deleting the velero namespace"),
        }
    }
    let timeout = DEFAULT_TIMEOUT + Duration::from_secs(30);
    for name in &names {
        let mut checks = 0u32;
        wait_until(&format!("Velero's CRD {name} to be gone"), timeout, || {
            checks += 1;
            let nudge = checks.is_multiple_of(20);
            let crds = &crds;
            async move {
                match crds.get_opt(name).await {
                    Ok(None) => true,
                    Ok(Some(crd)) => {
                        if nudge && instance_deletion_failed(&crd) {
                            nudge_finalizer(crds, name, checks).await;
                        }
                        false
                    }
                    Err(_) => false,
                }
            }
        })
        .await?;
    }
    wait_until("the velero namespace to be gone", timeout, || async {
        matches!(namespaces.get_opt(VELERO_NAMESPACE).await, Ok(None))
    })
    .await
}

/// The API server's CRD finalizer failed to delete the instances (seen:
/// "storage is (re)initializing" when a CRD is deleted seconds after it was
/// created, before its watch cache is ready).
fn instance_deletion_failed(crd: &CustomResourceDefinition) -> bool {
    crd.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions.iter().any(|c| {
                c.type_ == "Terminating" && c.reason.as_deref() == Some("InstanceDeletionFailed")
            })
        })
}

/// Touches a terminating CRD so the API server's CRD finalizer tries again:
/// after such a failure it may not retry by itself (kube-apiserver 1.37
/// left one terminating for over ten minutes), and an update requeues it.
async fn nudge_finalizer(crds: &Api<CustomResourceDefinition>, name: &str, attempt: u32) {
    let patch = serde_json::json!({
        "metadata": {"annotations": {"e2e.baseliner.dev/finalizer-retry": attempt.to_string()}}
    });
    let _ = crds
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await;
}

/// The Velero server, run out of cluster against the plane as its
/// administrator (as Velero runs in a cluster), until dropped. It needs the
/// CRDs and the `velero` namespace ([`Velero::Installed`]) and no
/// BackupStorageLocation: its Schedule controller validates and runs
/// Schedules without one (the Backups they create then fail validation).
pub struct VeleroServer {
    child: std::process::Child,
    log: std::path::PathBuf,
}

impl VeleroServer {
    pub fn start(kubeconfig: &Path) -> Result<Self> {
        let binary = velero_dir()?.join("velero");
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let log = std::env::temp_dir().join(format!("baseliner-e2e-velero-{port}.log"));
        let out = File::create(&log)?;
        let child = std::process::Command::new(&binary)
            .args(["server", "--namespace", VELERO_NAMESPACE])
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["--metrics-address", &format!("127.0.0.1:{port}")])
            .args(["--profiler-address", ""])
            .stdin(std::process::Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        Ok(Self { child, log })
    }

    /// What the server logged so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for VeleroServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}
