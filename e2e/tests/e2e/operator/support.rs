//! What the operator's tests share: the namespaces and profiles of a case,
//! the profile's status and Events, its Schedules, and the install
//! manifests with the operator's identity made from them.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow};
use baseliner::api::{NAMESPACE_LABEL, PROFILE_LABEL, ProductionProfile, ProductionProfileStatus};
use baseliner_e2e::baseline::{
    STRICT_SPEC, keys, kubectl_apply, managed_objects, profile_yaml, strict_objects,
};
use baseliner_e2e::operator::shared_operator;
use baseliner_e2e::velero::{VELERO_NAMESPACE, schedules};
use baseliner_e2e::{
    Grant, Identity, TestEnv, TestNamespace, random_name, wait_until, workspace_root,
};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule, Role};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta};
use kube::ResourceExt;
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use serde_json::Value;

/// Time for the operator to act on a change.
pub(super) const CONVERGE: Duration = Duration::from_secs(30);

/// Labels of a case's namespace: `e2e-case=<case>`, which the case's
/// profile selects, and `team` if given (subject templates use it).
pub(super) fn case_labels(case: &str, team: Option<&str>) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([("e2e-case".to_owned(), case.to_owned())]);
    if let Some(team) = team {
        labels.insert("team".to_owned(), team.to_owned());
    }
    labels
}

/// A connection, with the suite's shared operator running.
pub(super) async fn setup() -> Result<TestEnv> {
    let env = TestEnv::new().await?;
    shared_operator(env.plane())?;
    Ok(env)
}

/// A set of (kind, name) pairs, as [`keys`] returns them.
pub(super) fn objects(list: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    list.iter()
        .map(|(k, n)| ((*k).to_owned(), (*n).to_owned()))
        .collect()
}

// ---------------------------------------------------------------------------
// Status, Events and Schedules

/// The profile's status, once it describes the profile's current generation.
pub(super) async fn current_status(
    env: &TestEnv,
    profile: &str,
) -> Option<ProductionProfileStatus> {
    let profile = Api::<ProductionProfile>::all(env.client())
        .get(profile)
        .await
        .ok()?;
    let status = profile.status?;
    (status.observed_generation.is_some()
        && status.observed_generation == profile.metadata.generation)
        .then_some(status)
}

/// The condition of `type_`, if the status has one.
pub(super) fn condition<'a>(
    status: &'a ProductionProfileStatus,
    type_: &str,
) -> Option<&'a Condition> {
    status.conditions.iter().find(|c| c.type_ == type_)
}

/// Whether the condition of `type_` has this status and reason.
pub(super) fn has_condition(
    status: &ProductionProfileStatus,
    type_: &str,
    value: &str,
    reason: &str,
) -> bool {
    condition(status, type_).is_some_and(|c| c.status == value && c.reason == reason)
}

/// The reason the status gives for `namespace`, if it lists it.
pub(super) fn reported(
    status: &ProductionProfileStatus,
    namespace: &str,
) -> Option<(String, String)> {
    status
        .non_compliant
        .iter()
        .find(|p| p.namespace == namespace)
        .map(|p| (p.reason.clone(), p.message.clone()))
}

/// events.k8s.io Events about a (cluster-scoped) profile: kube's Recorder
/// puts them in `default`.
pub(super) async fn profile_events(env: &TestEnv, profile: &str) -> Result<Vec<Event>> {
    events_about(env, "ProductionProfile", profile).await
}

/// events.k8s.io Events about the cluster-scoped object `name` of `kind`.
pub(super) async fn events_about(env: &TestEnv, kind: &str, name: &str) -> Result<Vec<Event>> {
    let events = Api::<Event>::namespaced(env.client(), "default")
        .list(&ListParams::default())
        .await?;
    Ok(events
        .items
        .into_iter()
        .filter(|e| {
            e.regarding
                .as_ref()
                .is_some_and(|r| r.kind.as_deref() == Some(kind) && r.name.as_deref() == Some(name))
        })
        .collect())
}

/// The profile's Schedules in the Velero namespace, by the namespace each serves.
pub(super) async fn profile_schedules(
    env: &TestEnv,
    profile: &str,
) -> Result<BTreeMap<String, DynamicObject>> {
    let list = schedules(env.client(), VELERO_NAMESPACE)
        .list(&ListParams::default().labels(&format!("{PROFILE_LABEL}={profile}")))
        .await?;
    Ok(list
        .items
        .into_iter()
        .map(|s| {
            let served = s.labels().get(NAMESPACE_LABEL).cloned().unwrap_or_default();
            (served, s)
        })
        .collect())
}

// ---------------------------------------------------------------------------
// The install manifests and the operator's identity

/// `kubectl kustomize config/default`, one JSON value per object.
pub(super) async fn rendered_install(env: &TestEnv) -> Result<Vec<Value>> {
    let dir = workspace_root().join("config").join("default");
    let yaml = env
        .kubectl(["kustomize", &dir.to_string_lossy()])
        .await?
        .ok()?;
    serde_saphyr::from_multiple::<Value>(&yaml).context("parsing kubectl kustomize output")
}

pub(super) fn object<'a>(objects: &'a [Value], kind: &str, name: &str) -> Result<&'a Value> {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .ok_or_else(|| anyhow!("config/default renders no {kind} {name}"))
}

pub(super) fn rules_of(objects: &[Value], kind: &str, name: &str) -> Result<Vec<PolicyRule>> {
    serde_json::from_value(object(objects, kind, name)?["rules"].clone())
        .with_context(|| format!("rules of {kind} {name}"))
}

/// Creates ServiceAccount `baseliner` in `namespace` holding the rules of
/// the manifests' ClusterRole `baseliner-manager` (cluster-wide, less any
/// rule about `without_resource`) and Role `baseliner-leader-election` (in
/// `namespace`, where the test's Lease lives). Everything goes with the
/// namespace.
pub(super) async fn operator_identity(
    env: &TestEnv,
    namespace: &TestNamespace,
    without_resource: Option<&str>,
) -> Result<Identity> {
    let objects = rendered_install(env).await?;
    let mut manager_rules = rules_of(&objects, "ClusterRole", "baseliner-manager")?;
    if let Some(resource) = without_resource {
        for rule in &mut manager_rules {
            if let Some(resources) = rule.resources.as_mut() {
                resources.retain(|r| r != resource);
            }
        }
        manager_rules.retain(|r| r.resources.as_ref().is_some_and(|r| !r.is_empty()));
    }
    let cluster_role = format!("{}-manager", namespace.name());
    Api::<ClusterRole>::all(env.client())
        .create(
            &PostParams::default(),
            &ClusterRole {
                metadata: ObjectMeta {
                    name: Some(cluster_role.clone()),
                    owner_references: Some(vec![namespace.owner_reference()]),
                    ..ObjectMeta::default()
                },
                rules: Some(manager_rules),
                aggregation_rule: None,
            },
        )
        .await
        .with_context(|| format!("creating ClusterRole {cluster_role}"))?;
    Api::<Role>::namespaced(env.client(), namespace.name())
        .create(
            &PostParams::default(),
            &Role {
                metadata: ObjectMeta {
                    name: Some("baseliner-leader-election".to_owned()),
                    ..ObjectMeta::default()
                },
                rules: Some(rules_of(&objects, "Role", "baseliner-leader-election")?),
            },
        )
        .await
        .context("creating the leader election Role")?;
    env.service_account(
        namespace,
        "baseliner",
        &[
            Grant::ClusterRole(cluster_role),
            Grant::role_in(namespace.name(), "baseliner-leader-election"),
        ],
    )
    .await
}

// ---------------------------------------------------------------------------
// Profiles

/// A profile applied by a test, deleted when the test ends, pass or fail.
pub(super) struct TestProfile {
    name: String,
    kubectl: std::path::PathBuf,
    kubeconfig: std::path::PathBuf,
}

impl TestProfile {
    /// Applies [`STRICT_SPEC`] selecting namespaces labelled `e2e-case=<case>`.
    pub(super) async fn strict(env: &TestEnv, case: &str) -> Result<Self> {
        let name = random_name(case);
        kubectl_apply(env, &profile_yaml(&name, case, STRICT_SPEC)).await?;
        Ok(Self {
            name,
            kubectl: env.plane().kubectl.clone(),
            kubeconfig: env.plane().kubeconfig.clone(),
        })
    }
}

impl Drop for TestProfile {
    fn drop(&mut self) {
        let _ = std::process::Command::new(&self.kubectl)
            .env("KUBECONFIG", &self.kubeconfig)
            .args([
                "delete",
                "productionprofile",
                &self.name,
                "--wait=false",
                "--ignore-not-found",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// Waits until `namespace` holds exactly the objects of [`STRICT_SPEC`].
pub(super) async fn wait_for_baseline(env: &TestEnv, namespace: &str) -> Result<()> {
    let client = env.client();
    wait_until(
        &format!("the baseline in {namespace}"),
        CONVERGE,
        || async {
            managed_objects(&client, namespace)
                .await
                .is_ok_and(|o| keys(&o) == strict_objects())
        },
    )
    .await
}
