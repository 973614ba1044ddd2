//! The minimal Velero Schedule CRD (`e2e/manifests/`), installed or removed
//! for a test.
//!
//! Whether Velero is installed is cluster-wide, and the tests of one binary
//! run in parallel, so it is guarded by a process-wide read/write lock:
//! every test that needs Velero installed holds a shared guard, a test that
//! needs it absent holds the exclusive guard and so runs alone among them.

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

/// The CRD manifest, as committed.
pub const SCHEDULE_CRD_YAML: &str = include_str!("../manifests/velero-schedule-crd.yaml");
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

// The guards are held for their Drop only.
#[allow(dead_code)]
enum Inner {
    Shared(OwnedRwLockReadGuard<()>),
    Exclusive(OwnedRwLockWriteGuard<()>),
    None,
}

static LOCK: LazyLock<Arc<RwLock<()>>> = LazyLock::new(|| Arc::new(RwLock::new(())));
/// Known state: Some(true) installed, Some(false) absent, None unknown.
static STATE: Mutex<Option<bool>> = Mutex::const_new(None);

pub(crate) async fn acquire(client: &Client, velero: Velero) -> Result<VeleroGuard> {
    Ok(VeleroGuard(match velero {
        Velero::Any => Inner::None,
        Velero::Installed => {
            let guard = LOCK.clone().read_owned().await;
            let mut state = STATE.lock().await;
            if *state != Some(true) {
                *state = None;
                install(client).await?;
                *state = Some(true);
            }
            Inner::Shared(guard)
        }
        Velero::Absent => {
            let guard = LOCK.clone().write_owned().await;
            let mut state = STATE.lock().await;
            if *state != Some(false) {
                *state = None;
                uninstall(client).await?;
                *state = Some(false);
            }
            Inner::Exclusive(guard)
        }
    }))
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

/// Server-side applies the CRD and the namespace and waits until Schedules
/// are served.
pub(crate) async fn install(client: &Client) -> Result<()> {
    let crd: CustomResourceDefinition =
        serde_saphyr::from_str(SCHEDULE_CRD_YAML).context("parsing the Velero CRD manifest")?;
    let ns: Namespace =
        serde_saphyr::from_str(NAMESPACE_YAML).context("parsing the velero namespace manifest")?;
    let pp = PatchParams::apply(FIELD_MANAGER).force();

    let crds = Api::<CustomResourceDefinition>::all(client.clone());
    crds.patch(SCHEDULE_CRD, &pp, &Patch::Apply(&crd))
        .await
        .context("applying the Velero Schedule CRD")?;

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

/// Removes the CRD (and with it every Schedule) and the `velero` namespace,
/// and waits until both are gone. Refuses to remove a CRD or namespace that
/// the harness did not install.
pub(crate) async fn uninstall(client: &Client) -> Result<()> {
    let crds = Api::<CustomResourceDefinition>::all(client.clone());
    if let Some(crd) = crds.get_opt(SCHEDULE_CRD).await? {
        if crd.labels().get(PART_OF.0).map(String::as_str) != Some(PART_OF.1) {
            bail!(
                "refusing to delete CRD {SCHEDULE_CRD}: it lacks {}={}, so the e2e harness did not install it",
                PART_OF.0,
                PART_OF.1
            );
        }
        match crds.delete(SCHEDULE_CRD, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.is_not_found() => {}
            Err(e) => return Err(e).context("deleting the Velero Schedule CRD"),
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
    wait_until("the Velero Schedule CRD to be gone", timeout, || async {
        matches!(crds.get_opt(SCHEDULE_CRD).await, Ok(None))
    })
    .await?;
    wait_until("the velero namespace to be gone", timeout, || async {
        matches!(namespaces.get_opt(VELERO_NAMESPACE).await, Ok(None))
    })
    .await
}
