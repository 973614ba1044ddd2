//! The pure render step: a profile and a namespace in, the desired objects
//! and namespace labels out. No API server calls; the controller applies
//! the result and `baseliner render` prints it.
//!
//! One file per kind: [`network_policy`], [`limits`] (LimitRange and
//! ResourceQuota), [`pod_security`] (namespace labels), [`role_binding`]
//! and [`schedule`] (Velero); [`context`] holds what they share. This file
//! is the entry point, [`render_namespace`].
//!
//! A render of the same inputs is identical every time: maps are ordered,
//! objects are sorted by kind then name, and nothing depends on time or on
//! a per-process hash seed.
//!
//! What cannot be rendered for a namespace (a ClusterRole off the allow list,
//! a subject template naming a missing label) becomes a [`RenderProblem`]
//! and only that object is left out; everything else still renders.

mod context;
#[cfg(test)]
mod fixtures;
mod limits;
mod network_policy;
mod pod_security;
mod role_binding;
mod schedule;

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{LimitRange, ResourceQuota};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::RoleBinding;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;

use crate::api::ProductionProfile;
use crate::kind::ManagedKind;
use crate::namespace::NamespaceInfo;
use crate::velero::Schedule;
use context::RenderContext;

pub use context::{NAME_PREFIX, RenderProblem};
pub use limits::{LIMIT_RANGE_NAME, RESOURCE_QUOTA_NAME};
pub use network_policy::{ALLOW_DNS_POLICY, ALLOW_SAME_NAMESPACE_POLICY, DEFAULT_DENY_POLICY};
pub use pod_security::{
    DEFAULT_POD_SECURITY_VERSION, NamespaceLabels, namespace_object, pod_security_labels,
};
pub use role_binding::{SubjectError, render_subject};
pub use schedule::{MAX_SCHEDULE_NAME_LEN, schedule_name};

/// ClusterRoles bindable when the operator is not told otherwise.
pub const DEFAULT_ALLOWED_CLUSTER_ROLES: [&str; 3] = ["admin", "edit", "view"];

/// Operator-wide settings rendering depends on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenderOptions {
    /// ClusterRoles a profile may bind; any other is refused.
    pub allowed_cluster_roles: BTreeSet<String>,
}

impl Default for RenderOptions {
    fn default() -> Self {
        Self {
            allowed_cluster_roles: DEFAULT_ALLOWED_CLUSTER_ROLES
                .iter()
                .map(|role| (*role).to_owned())
                .collect(),
        }
    }
}

/// One object a profile wants to exist.
#[derive(Clone, Debug, PartialEq)]
pub enum DesiredObject {
    /// A `networking.k8s.io/v1` NetworkPolicy in the selected namespace.
    NetworkPolicy(NetworkPolicy),
    /// The LimitRange `baseliner-limits` in the selected namespace.
    LimitRange(LimitRange),
    /// The ResourceQuota `baseliner-quota` in the selected namespace.
    ResourceQuota(ResourceQuota),
    /// A RoleBinding `baseliner-<name>` in the selected namespace.
    RoleBinding(RoleBinding),
    /// A Velero Schedule in the Velero namespace.
    Schedule(Schedule),
}

impl DesiredObject {
    /// The object's kind.
    pub fn managed_kind(&self) -> ManagedKind {
        match self {
            Self::NetworkPolicy(_) => ManagedKind::NetworkPolicy,
            Self::LimitRange(_) => ManagedKind::LimitRange,
            Self::ResourceQuota(_) => ManagedKind::ResourceQuota,
            Self::RoleBinding(_) => ManagedKind::RoleBinding,
            Self::Schedule(_) => ManagedKind::Schedule,
        }
    }

    /// The object's kind, e.g. `NetworkPolicy`.
    pub fn kind(&self) -> &'static str {
        self.managed_kind().as_str()
    }

    /// The object's `apiVersion`, e.g. `networking.k8s.io/v1`.
    pub fn api_version(&self) -> &'static str {
        self.managed_kind().api_version()
    }

    /// The object's metadata.
    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            Self::NetworkPolicy(object) => object.meta(),
            Self::LimitRange(object) => object.meta(),
            Self::ResourceQuota(object) => object.meta(),
            Self::RoleBinding(object) => object.meta(),
            Self::Schedule(object) => object.meta(),
        }
    }

    /// The object's name.
    pub fn name(&self) -> &str {
        self.metadata().name.as_deref().unwrap_or_default()
    }

    /// The namespace the object lives in (for a Schedule, Velero's).
    pub fn namespace(&self) -> &str {
        self.metadata().namespace.as_deref().unwrap_or_default()
    }

    /// The object as JSON with `apiVersion` and `kind`, ready for a
    /// server-side apply patch.
    pub fn to_json(&self) -> serde_json::Value {
        let value = match self {
            Self::NetworkPolicy(object) => serde_json::to_value(object),
            Self::LimitRange(object) => serde_json::to_value(object),
            Self::ResourceQuota(object) => serde_json::to_value(object),
            Self::RoleBinding(object) => serde_json::to_value(object),
            Self::Schedule(object) => serde_json::to_value(object),
        };
        // Typed Kubernetes objects have string map keys only, so this cannot fail.
        value.expect("Kubernetes objects serialize to JSON")
    }
}

/// Everything a profile wants for one namespace.
#[derive(Clone, Debug, PartialEq)]
pub struct RenderedNamespace {
    /// The selected namespace.
    pub namespace: String,
    /// Desired objects, sorted by kind then name.
    pub objects: Vec<DesiredObject>,
    /// The `pod-security.kubernetes.io/*` labels the namespace must carry.
    pub namespace_labels: BTreeMap<String, String>,
    /// What could not be rendered, in spec order.
    pub problems: Vec<RenderProblem>,
}

/// Renders everything `profile` wants in `namespace`.
pub fn render_namespace(
    profile: &ProductionProfile,
    namespace: &NamespaceInfo,
    options: &RenderOptions,
) -> RenderedNamespace {
    let context = RenderContext::new(profile, namespace);
    let spec = &profile.spec;
    let mut objects = Vec::new();
    let mut problems = Vec::new();

    if let Some(network_policy) = &spec.network_policy {
        objects.extend(
            network_policy::render_network_policies(&context, network_policy, &mut problems)
                .into_iter()
                .map(DesiredObject::NetworkPolicy),
        );
    }
    if let Some(limit_range) = &spec.limit_range {
        objects.push(DesiredObject::LimitRange(limits::render_limit_range(
            &context,
            limit_range,
        )));
    }
    if let Some(resource_quota) = &spec.resource_quota {
        objects.push(DesiredObject::ResourceQuota(limits::render_resource_quota(
            &context,
            resource_quota,
        )));
    }
    objects.extend(
        role_binding::render_role_bindings(
            &context,
            &spec.role_bindings,
            &options.allowed_cluster_roles,
            &mut problems,
        )
        .into_iter()
        .map(DesiredObject::RoleBinding),
    );
    if let Some(backup) = &spec.backup {
        match schedule::render_backup_schedule(&context, backup) {
            Ok(schedule) => objects.push(DesiredObject::Schedule(schedule)),
            Err(problem) => problems.push(problem),
        }
    }

    objects.sort_by(|a, b| (a.kind(), a.name()).cmp(&(b.kind(), b.name())));

    let namespace_labels = spec
        .pod_security
        .as_ref()
        .map(pod_security_labels)
        .unwrap_or_default();

    RenderedNamespace {
        namespace: namespace.name.clone(),
        objects,
        namespace_labels,
        problems,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::render::fixtures::*;

    #[test]
    fn owner_references_only_with_a_uid() {
        let spec = format!(
            "{SELECT_ALL}  networkPolicy: {{allowDNS: true}}\n  limitRange: {{max: {{cpu: '2'}}}}\n  resourceQuota: {{hard: {{pods: '10'}}}}\n{BACKUP}  roleBindings:\n    - {{name: v, clusterRole: view, subjects: [{{kind: Group, name: g}}]}}\n"
        );
        let shop = namespace("shop", &[]);

        let offline = render(&profile(&spec), &shop);
        assert_eq!(offline.objects.len(), 6);
        for object in &offline.objects {
            assert_eq!(
                object.metadata().owner_references,
                None,
                "{}",
                object.name()
            );
            assert!(
                object.to_json()["metadata"]
                    .get("ownerReferences")
                    .is_none()
            );
        }

        let live = render(&profile_with_uid(&spec), &shop);
        assert_eq!(live.objects.len(), 6);
        for object in &live.objects {
            assert_eq!(
                object.to_json()["metadata"]["ownerReferences"],
                json!([{
                    "apiVersion": "baseliner.dev/v1alpha1",
                    "kind": "ProductionProfile",
                    "name": "prod",
                    "uid": UID,
                    "controller": true,
                }]),
                "{}",
                object.name()
            );
        }
    }

    const EVERYTHING: &str = "  networkPolicy:
    allowDNS: true
    allowSameNamespace: true
    allowIngressFrom: [{name: mon, namespaces: [monitoring]}]
    allowEgressTo: [{name: api, cidrs: [203.0.113.0/24]}]
  limitRange: {default: {cpu: 500m}}
  resourceQuota: {hard: {pods: '50'}}
  podSecurity: {enforce: restricted}
  roleBindings:
    - {name: viewers, clusterRole: view, subjects: [{kind: Group, name: 'team-{{labels.team}}'}]}
    - {name: editors, clusterRole: edit, subjects: [{kind: Group, name: editors}]}
  backup: {schedule: '@daily'}
";

    #[test]
    fn every_object_is_labelled_and_carries_only_what_is_decided() {
        let spec = format!("{SELECT_ALL}{EVERYTHING}");
        let rendered = render(
            &profile_with_uid(&spec),
            &namespace("shop", &[("team", "a")]),
        );
        assert_eq!(rendered.problems, vec![]);
        assert_eq!(rendered.objects.len(), 10, "{:?}", names(&rendered));
        for object in &rendered.objects {
            let json = object.to_json();
            let labels = &json["metadata"]["labels"];
            assert_eq!(labels["app.kubernetes.io/managed-by"], "baseliner");
            assert_eq!(labels["baseliner.dev/profile"], "prod");
            assert_eq!(json["apiVersion"], object.api_version());
            assert_eq!(json["kind"], object.kind());
            assert_eq!(json["metadata"]["name"], object.name());
            assert_eq!(json["metadata"]["namespace"], object.namespace());
            let metadata_keys: BTreeSet<&str> = json["metadata"]
                .as_object()
                .map(|metadata| metadata.keys().map(String::as_str).collect())
                .unwrap_or_default();
            assert_eq!(
                metadata_keys,
                BTreeSet::from(["labels", "name", "namespace", "ownerReferences"]),
                "{}",
                object.name()
            );
            assert!(json.get("status").is_none(), "{}", object.name());
            assert!(!json.to_string().contains("null"), "{}", object.name());
            let expected_namespace = if object.kind() == "Schedule" {
                "velero"
            } else {
                "shop"
            };
            assert_eq!(object.namespace(), expected_namespace);
        }
    }

    #[test]
    fn render_is_deterministic_and_sorted() {
        let spec = format!("{SELECT_ALL}{EVERYTHING}");
        let shop = namespace("shop", &[("team", "a")]);
        let first = render(&profile_with_uid(&spec), &shop);
        let again = render(&profile_with_uid(&spec), &shop);
        let as_text = |rendered: &RenderedNamespace| -> Vec<String> {
            rendered
                .objects
                .iter()
                .map(|object| object.to_json().to_string())
                .collect()
        };
        assert_eq!(as_text(&first), as_text(&again));
        assert_eq!(first, again);
        assert_eq!(
            names(&first),
            vec![
                "LimitRange/baseliner-limits".to_owned(),
                "NetworkPolicy/baseliner-allow-dns".to_owned(),
                "NetworkPolicy/baseliner-allow-from-mon".to_owned(),
                "NetworkPolicy/baseliner-allow-same-namespace".to_owned(),
                "NetworkPolicy/baseliner-allow-to-api".to_owned(),
                "NetworkPolicy/baseliner-default-deny".to_owned(),
                "ResourceQuota/baseliner-quota".to_owned(),
                "RoleBinding/baseliner-editors".to_owned(),
                "RoleBinding/baseliner-viewers".to_owned(),
                format!("Schedule/{}", schedule_name("prod", "shop")),
            ]
        );
    }

    #[test]
    fn an_empty_profile_renders_nothing() {
        let rendered = render(&profile(SELECT_ALL), &namespace("shop", &[]));
        assert_eq!(
            rendered,
            RenderedNamespace {
                namespace: "shop".to_owned(),
                objects: vec![],
                namespace_labels: BTreeMap::new(),
                problems: vec![],
            }
        );
    }
}
