//! Helpers for tests of the operator's behaviour: profiles applied with
//! kubectl as a user would, and the managed objects read back from the API.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context as _, Result};
use k8s_openapi::api::core::v1::{LimitRange, Namespace, ResourceQuota};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Api, ListParams};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use crate::TestEnv;

pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by=baseliner";
pub const PROFILE_LABEL: &str = "baseliner.dev/profile";

/// `kubectl apply --server-side` of a manifest given as YAML.
pub async fn kubectl_apply(env: &TestEnv, yaml: &str) -> Result<String> {
    env.kubectl_with_stdin(
        &env.plane().kubeconfig,
        [
            "apply",
            "--server-side",
            "--field-manager=e2e-user",
            "-f",
            "-",
        ],
        Some(yaml),
    )
    .await?
    .ok()
}

/// `kubectl delete` of a profile, waiting for it to be gone.
pub async fn delete_profile(env: &TestEnv, name: &str) -> Result<String> {
    env.kubectl(["delete", "productionprofile", name, "--wait=true"])
        .await?
        .ok()
}

/// A profile selecting namespaces labelled `e2e-case=<case>`, with the body
/// of `spec` (without `namespaces`) given as YAML indented by two spaces.
pub fn profile_yaml(name: &str, case: &str, spec_body: &str) -> String {
    format!(
        "apiVersion: baseliner.dev/v1alpha1\nkind: ProductionProfile\nmetadata:\n  name: {name}\nspec:\n  namespaces:\n    selector:\n      matchLabels:\n        e2e-case: {case}\n{spec_body}"
    )
}

/// The strict baseline most tests use.
pub const STRICT_SPEC: &str = "  networkPolicy:
    defaultDeny: true
    allowDNS: true
    allowSameNamespace: true
  limitRange:
    defaultRequest: {cpu: 100m, memory: 128Mi}
    default: {cpu: 500m, memory: 512Mi}
  resourceQuota:
    hard: {pods: \"20\", requests.cpu: \"4\"}
  podSecurity:
    enforce: restricted
  roleBindings:
    - name: viewers
      clusterRole: view
      subjects:
        - kind: Group
          name: \"team-{{labels.team}}-viewers\"
";

/// Object names [`STRICT_SPEC`] yields in every namespace, by kind.
pub fn strict_objects() -> BTreeSet<(String, String)> {
    [
        ("NetworkPolicy", "baseliner-default-deny"),
        ("NetworkPolicy", "baseliner-allow-dns"),
        ("NetworkPolicy", "baseliner-allow-same-namespace"),
        ("LimitRange", "baseliner-limits"),
        ("ResourceQuota", "baseliner-quota"),
        ("RoleBinding", "baseliner-viewers"),
    ]
    .into_iter()
    .map(|(k, n)| (k.to_owned(), n.to_owned()))
    .collect()
}

/// Managed objects in a namespace: (kind, name) → owning profile label.
pub async fn managed_objects(
    client: &Client,
    namespace: &str,
) -> Result<BTreeMap<(String, String), String>> {
    let mut out = BTreeMap::new();
    collect::<NetworkPolicy>(client, namespace, &mut out).await?;
    collect::<LimitRange>(client, namespace, &mut out).await?;
    collect::<ResourceQuota>(client, namespace, &mut out).await?;
    collect::<RoleBinding>(client, namespace, &mut out).await?;
    Ok(out)
}

/// Every object of the four namespaced kinds in a namespace, managed or not:
/// (kind, name) → resourceVersion.
pub async fn all_object_versions(
    client: &Client,
    namespace: &str,
) -> Result<BTreeMap<(String, String), String>> {
    let mut out = BTreeMap::new();
    versions::<NetworkPolicy>(client, namespace, &mut out).await?;
    versions::<LimitRange>(client, namespace, &mut out).await?;
    versions::<ResourceQuota>(client, namespace, &mut out).await?;
    versions::<RoleBinding>(client, namespace, &mut out).await?;
    Ok(out)
}

async fn collect<K>(
    client: &Client,
    namespace: &str,
    out: &mut BTreeMap<(String, String), String>,
) -> Result<()>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let list = api
        .list(&ListParams::default().labels(MANAGED_BY))
        .await
        .with_context(|| format!("listing {}", K::kind(&())))?;
    for item in list {
        let profile = item
            .labels()
            .get(PROFILE_LABEL)
            .cloned()
            .unwrap_or_default();
        out.insert((K::kind(&()).to_string(), item.name_any()), profile);
    }
    Ok(())
}

async fn versions<K>(
    client: &Client,
    namespace: &str,
    out: &mut BTreeMap<(String, String), String>,
) -> Result<()>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    for item in api.list(&ListParams::default()).await? {
        out.insert(
            (K::kind(&()).to_string(), item.name_any()),
            item.resource_version().unwrap_or_default(),
        );
    }
    Ok(())
}

/// The namespace's labels.
pub async fn namespace_labels(
    client: &Client,
    namespace: &str,
) -> Result<BTreeMap<String, String>> {
    let ns = Api::<Namespace>::all(client.clone()).get(namespace).await?;
    Ok(ns.labels().clone())
}

/// The names of the managed objects (kind, name), without owners.
pub fn keys(objects: &BTreeMap<(String, String), String>) -> BTreeSet<(String, String)> {
    objects.keys().cloned().collect()
}

/// A field of the profile's status, read with kubectl's jsonpath.
pub async fn profile_field(env: &TestEnv, profile: &str, jsonpath: &str) -> Result<String> {
    env.kubectl([
        "get",
        "productionprofile",
        profile,
        "-o",
        &format!("jsonpath={jsonpath}"),
    ])
    .await?
    .ok()
}
