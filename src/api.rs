//! The `ProductionProfile` API (`baseliner.dev/v1alpha1`); the
//! `ProfileException` API is in [`exception`].
//!
//! These types are the single source of the CRD: `baseliner crd` prints the
//! schema derived from them, and `crds/` holds that output. Field docs become
//! the descriptions `kubectl explain` shows; schema attributes and CEL rules
//! (`x_kube(validation = ...)`) are what the API server enforces.

pub mod exception;

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group of every kind this crate defines.
pub const GROUP: &str = "baseliner.dev";
/// Label every managed object carries; its value is [`MANAGER_NAME`].
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY_LABEL`], also the server-side apply field manager.
pub const MANAGER_NAME: &str = "baseliner";
/// Label naming the profile that owns a managed object.
pub const PROFILE_LABEL: &str = "baseliner.dev/profile";
/// Label naming the namespace a managed object serves, for objects that live
/// elsewhere (Velero Schedules live in the Velero namespace).
pub const NAMESPACE_LABEL: &str = "baseliner.dev/namespace";
/// Annotation recording the owning profile's deletion policy on each managed
/// object (and on a namespace whose Pod Security labels baseliner set), so
/// it can be pruned correctly even after its profile is gone.
pub const DELETION_POLICY_ANNOTATION: &str = "baseliner.dev/deletion-policy";
/// Annotation on a Namespace listing the Pod Security labels baseliner set,
/// so it can tell its own labels from anyone else's.
pub const POD_SECURITY_ANNOTATION: &str = "baseliner.dev/pod-security-labels";
/// Label every namespace carries with its own name (set by the API server).
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";
/// The Pod Security Admission labels a profile may set on a namespace.
pub const POD_SECURITY_LABELS: [&str; 6] = [
    "pod-security.kubernetes.io/enforce",
    "pod-security.kubernetes.io/enforce-version",
    "pod-security.kubernetes.io/audit",
    "pod-security.kubernetes.io/audit-version",
    "pod-security.kubernetes.io/warn",
    "pod-security.kubernetes.io/warn-version",
];
/// The Pod Security Admission labels that set a level, and those that set
/// the policy version of each level, in the same order.
pub const POD_SECURITY_LEVEL_LABELS: [&str; 3] = [
    "pod-security.kubernetes.io/enforce",
    "pod-security.kubernetes.io/audit",
    "pod-security.kubernetes.io/warn",
];
/// See [`POD_SECURITY_LEVEL_LABELS`].
pub const POD_SECURITY_VERSION_LABELS: [&str; 3] = [
    "pod-security.kubernetes.io/enforce-version",
    "pod-security.kubernetes.io/audit-version",
    "pod-security.kubernetes.io/warn-version",
];
/// Most namespaces listed in `status.nonCompliant`; the counts stay exact.
pub const MAX_REPORTED_NAMESPACES: usize = 20;

/// A production baseline for every namespace it selects: network isolation,
/// resource limits, Pod Security labels, RoleBindings and backups.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "baseliner.dev",
    version = "v1alpha1",
    kind = "ProductionProfile",
    plural = "productionprofiles",
    singular = "productionprofile",
    shortname = "prodprofile",
    category = "baseliner",
    status = "ProductionProfileStatus",
    derive = "PartialEq",
    validation = Rule::new("size(self.metadata.name) <= 63").message("metadata.name must be at most 63 characters: it is the value of the baseliner.dev/profile label on every managed object").reason(Reason::FieldValueInvalid),
    doc = "ProductionProfile declares the production baseline every selected namespace must contain.",
    printcolumn(
        name = "Mode",
        type_ = "string",
        json_path = ".spec.mode",
        description = "Enforce writes objects; Audit only reports drift"
    ),
    printcolumn(
        name = "Matched",
        type_ = "integer",
        json_path = ".status.matchedNamespaces",
        description = "Namespaces this profile owns"
    ),
    printcolumn(
        name = "Compliant",
        type_ = "integer",
        json_path = ".status.compliantNamespaces",
        description = "Owned namespaces that match the baseline"
    ),
    printcolumn(
        name = "Excepted",
        type_ = "integer",
        json_path = ".status.exceptedNamespaces",
        description = "Owned namespaces that comply only by exception"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        description = "Whether every owned namespace complies"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProductionProfileSpec {
    /// Which namespaces this profile governs.
    pub namespaces: NamespaceSelection,

    /// Decides ownership when several profiles select one namespace: the
    /// highest priority owns it, ties go to the profile whose name sorts
    /// first. The others report the conflict and leave the namespace alone.
    #[serde(default)]
    #[schemars(range(min = -1000, max = 1000))]
    pub priority: i32,

    /// Enforce (the default) writes the baseline; Audit computes it and only
    /// reports what differs, writing nothing to the namespaces.
    #[serde(default)]
    pub mode: Mode,

    /// What happens to managed objects that are no longer desired (a section
    /// removed, a namespace no longer selected, the profile deleted): Delete
    /// (the default) removes them; Orphan leaves them in place without the
    /// managed-by label.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// Network isolation: a default-deny policy plus opt-in allows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_policy: Option<NetworkPolicySpec>,

    /// Container defaults and bounds, rendered as the LimitRange `baseliner-limits`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_range: Option<LimitRangeSpec>,

    /// Namespace totals, rendered as the ResourceQuota `baseliner-quota`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_quota: Option<ResourceQuotaSpec>,

    /// Pod Security Admission levels, set as `pod-security.kubernetes.io/*`
    /// labels on the namespace. Other namespace labels are left alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_security: Option<PodSecuritySpec>,

    /// RoleBindings of allow-listed ClusterRoles, one per entry, named
    /// `baseliner-<name>`. The operator binds only ClusterRoles on its own
    /// allow list; an entry naming any other role is refused and reported.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new("self.all(b, self.exists_one(o, o.name == b.name))").message("roleBindings names must be unique").reason(Reason::FieldValueDuplicate))]
    pub role_bindings: Vec<RoleBindingSpec>,

    /// A Velero backup Schedule for each selected namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupSpec>,
}

/// How namespaces are chosen. A namespace is selected when it is named in
/// `include`, or when it matches `selector` and is not a system namespace;
/// `exclude` always wins.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new("has(self.selector) || (has(self.include) && size(self.include) > 0)").message("set selector, include, or both").reason(Reason::FieldValueRequired))]
pub struct NamespaceSelection {
    /// Label selector over namespaces. `{}` selects every namespace except
    /// the system ones (kube-system, kube-public, kube-node-lease and the
    /// operator's own), which are selected only when named in `include`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("!has(self.matchExpressions) || self.matchExpressions.all(e, e.operator in ['In', 'NotIn', 'Exists', 'DoesNotExist'])").message("matchExpressions operator must be In, NotIn, Exists or DoesNotExist").reason(Reason::FieldValueInvalid))]
    #[x_kube(validation = Rule::new("!has(self.matchExpressions) || self.matchExpressions.all(e, (e.operator in ['In', 'NotIn']) == (has(e.values) && size(e.values) > 0))").message("matchExpressions values must be non-empty for In and NotIn and empty for Exists and DoesNotExist").reason(Reason::FieldValueInvalid))]
    pub selector: Option<LabelSelector>,

    /// Namespaces selected by name, whatever their labels. The only way to
    /// select a system namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 256),
        inner(
            length(min = 1, max = 63),
            regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
        )
    )]
    pub include: Vec<String>,

    /// Namespaces never selected, even when they match or are included.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 256),
        inner(
            length(min = 1, max = 63),
            regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
        )
    )]
    pub exclude: Vec<String>,
}

/// Whether the operator writes the baseline or only reports drift.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// Create, heal and prune managed objects.
    #[default]
    Enforce,
    /// Compute the baseline and report drift; write nothing to namespaces.
    Audit,
}

/// What happens to managed objects that are no longer desired.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeletionPolicy {
    /// Delete them.
    #[default]
    Delete,
    /// Leave them in place, without the managed-by label.
    Orphan,
}

/// Network isolation for every selected namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkPolicySpec {
    /// Deny all ingress and egress not allowed by another policy, via the
    /// NetworkPolicy `baseliner-default-deny` (both policy types, all pods).
    #[serde(default = "default_true")]
    pub default_deny: bool,

    /// Allow egress to the cluster DNS (UDP and TCP 53), via
    /// `baseliner-allow-dns`. Opt-in: with default-deny and no DNS allow,
    /// pods cannot resolve names.
    #[serde(default, rename = "allowDNS")]
    pub allow_dns: bool,

    /// Where the cluster DNS runs, for `allowDNS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<DnsTarget>,

    /// Allow all traffic between pods of the same namespace (ingress and
    /// egress), via `baseliner-allow-same-namespace`.
    #[serde(default)]
    pub allow_same_namespace: bool,

    /// Allow ingress from pods of other namespaces (an ingress controller, a
    /// monitoring stack), one NetworkPolicy `baseliner-allow-from-<name>` each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new("self.all(a, self.exists_one(o, o.name == a.name))").message("allowIngressFrom names must be unique").reason(Reason::FieldValueDuplicate))]
    pub allow_ingress_from: Vec<IngressAllow>,

    /// Allow egress to IP ranges outside the cluster, one NetworkPolicy
    /// `baseliner-allow-to-<name>` each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new("self.all(a, self.exists_one(o, o.name == a.name))").message("allowEgressTo names must be unique").reason(Reason::FieldValueDuplicate))]
    pub allow_egress_to: Vec<EgressAllow>,
}

/// The cluster DNS service's namespace and pods.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DnsTarget {
    /// Namespace of the DNS pods, matched by its `kubernetes.io/metadata.name` label.
    #[serde(default = "default_dns_namespace")]
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub namespace: String,

    /// Labels of the DNS pods.
    #[serde(default = "default_dns_pod_labels")]
    #[schemars(extend("minProperties" = 1, "maxProperties" = 8))]
    pub pod_labels: BTreeMap<String, String>,
}

impl Default for DnsTarget {
    fn default() -> Self {
        Self {
            namespace: default_dns_namespace(),
            pod_labels: default_dns_pod_labels(),
        }
    }
}

/// Ingress allowed from pods in other namespaces.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new("has(self.namespaceSelector) || (has(self.namespaces) && size(self.namespaces) > 0)").message("set namespaceSelector or namespaces").reason(Reason::FieldValueRequired))]
pub struct IngressAllow {
    /// Short name, used in the NetworkPolicy's name `baseliner-allow-from-<name>`.
    #[schemars(
        length(min = 1, max = 40),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,

    /// Namespaces whose pods may connect, by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 64),
        inner(
            length(min = 1, max = 63),
            regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
        )
    )]
    pub namespaces: Vec<String>,

    /// Namespaces whose pods may connect, by label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,

    /// Only these pods in those namespaces may connect; all of them when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_selector: Option<LabelSelector>,

    /// Ports in this namespace they may connect to; all ports when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub ports: Vec<PortSpec>,
}

/// Egress allowed to IP ranges.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EgressAllow {
    /// Short name, used in the NetworkPolicy's name `baseliner-allow-to-<name>`.
    #[schemars(
        length(min = 1, max = 40),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,

    /// Destination ranges in CIDR notation, e.g. `10.20.0.0/16`.
    #[schemars(length(min = 1, max = 32), inner(length(max = 43)))]
    #[x_kube(validation = Rule::new("self.all(c, isCIDR(c))").message("every entry must be a CIDR such as 10.0.0.0/8").reason(Reason::FieldValueInvalid))]
    pub cidrs: Vec<String>,

    /// Ranges inside `cidrs` that stay denied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(max = 43)))]
    #[x_kube(validation = Rule::new("self.all(c, isCIDR(c))").message("every entry must be a CIDR such as 10.0.0.0/8").reason(Reason::FieldValueInvalid))]
    pub except: Vec<String>,

    /// Destination ports; all ports when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub ports: Vec<PortSpec>,
}

/// A port or port range.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new("!has(self.endPort) || self.endPort >= self.port").message("endPort must not be below port").reason(Reason::FieldValueInvalid))]
pub struct PortSpec {
    /// Port number.
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,

    /// Last port of a range starting at `port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub end_port: Option<i32>,

    /// Protocol.
    #[serde(default)]
    pub protocol: Protocol,
}

/// An IP protocol NetworkPolicies understand.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Protocol {
    /// TCP.
    #[default]
    #[serde(rename = "TCP")]
    Tcp,
    /// UDP.
    #[serde(rename = "UDP")]
    Udp,
    /// SCTP.
    #[serde(rename = "SCTP")]
    Sctp,
}

/// Per-container defaults and bounds (a LimitRange item of type Container).
/// Keys are resource names (`cpu`, `memory`, `ephemeral-storage`), values
/// quantities (`250m`, `512Mi`). Maps and values are bounded so the API
/// server's cost estimate for the CEL rules stays within its budget.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new("has(self.defaultRequest) || has(self.default) || has(self.min) || has(self.max)").message("set at least one of defaultRequest, default, min, max").reason(Reason::FieldValueRequired))]
#[x_kube(validation = Rule::new("!has(self.defaultRequest) || !has(self.default) || self.defaultRequest.all(k, !(k in self.default) || quantity(self.defaultRequest[k]).compareTo(quantity(self.default[k])) <= 0)").message("defaultRequest must not exceed default for the same resource").reason(Reason::FieldValueInvalid))]
#[x_kube(validation = Rule::new("!has(self.min) || !has(self.max) || self.min.all(k, !(k in self.max) || quantity(self.min[k]).compareTo(quantity(self.max[k])) <= 0)").message("min must not exceed max for the same resource").reason(Reason::FieldValueInvalid))]
pub struct LimitRangeSpec {
    /// Requests given to containers that set none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.all(k, k in ['cpu', 'memory', 'ephemeral-storage'] && isQuantity(self[k]) && quantity(self[k]).compareTo(quantity('0')) >= 0)").message("keys must be cpu, memory or ephemeral-storage and values quantities such as 250m or 512Mi, not negative").reason(Reason::FieldValueInvalid))]
    #[schemars(extend("maxProperties" = 3, "additionalProperties" = {"type": "string", "maxLength": 64}))]
    pub default_request: Option<BTreeMap<String, String>>,

    /// Limits given to containers that set none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.all(k, k in ['cpu', 'memory', 'ephemeral-storage'] && isQuantity(self[k]) && quantity(self[k]).compareTo(quantity('0')) >= 0)").message("keys must be cpu, memory or ephemeral-storage and values quantities such as 250m or 512Mi, not negative").reason(Reason::FieldValueInvalid))]
    #[schemars(extend("maxProperties" = 3, "additionalProperties" = {"type": "string", "maxLength": 64}))]
    pub default: Option<BTreeMap<String, String>>,

    /// Smallest request or limit a container may set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.all(k, k in ['cpu', 'memory', 'ephemeral-storage'] && isQuantity(self[k]) && quantity(self[k]).compareTo(quantity('0')) >= 0)").message("keys must be cpu, memory or ephemeral-storage and values quantities such as 250m or 512Mi, not negative").reason(Reason::FieldValueInvalid))]
    #[schemars(extend("maxProperties" = 3, "additionalProperties" = {"type": "string", "maxLength": 64}))]
    pub min: Option<BTreeMap<String, String>>,

    /// Largest request or limit a container may set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.all(k, k in ['cpu', 'memory', 'ephemeral-storage'] && isQuantity(self[k]) && quantity(self[k]).compareTo(quantity('0')) >= 0)").message("keys must be cpu, memory or ephemeral-storage and values quantities such as 250m or 512Mi, not negative").reason(Reason::FieldValueInvalid))]
    #[schemars(extend("maxProperties" = 3, "additionalProperties" = {"type": "string", "maxLength": 64}))]
    pub max: Option<BTreeMap<String, String>>,
}

/// Hard limits on the namespace's total use.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceQuotaSpec {
    /// Resource name to limit, e.g. `requests.cpu: "8"`, `limits.memory: 16Gi`,
    /// `pods: "50"`, `count/services.loadbalancers: "0"`.
    #[schemars(extend("minProperties" = 1, "maxProperties" = 64, "additionalProperties" = {"type": "string", "maxLength": 64}))]
    #[x_kube(validation = Rule::new("self.all(k, isQuantity(self[k]) && quantity(self[k]).compareTo(quantity('0')) >= 0)").message("values must be quantities such as 8, 500m or 16Gi, not negative").reason(Reason::FieldValueInvalid))]
    #[x_kube(validation = Rule::new("self.all(k, k.matches('^[a-z0-9]([-a-z0-9./]*[a-z0-9])?$'))").message("keys must be resource names such as requests.cpu or count/pods").reason(Reason::FieldValueInvalid))]
    pub hard: BTreeMap<String, String>,
}

/// Pod Security Admission levels for the namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new("has(self.enforce) || has(self.audit) || has(self.warn)").message("set at least one of enforce, audit, warn").reason(Reason::FieldValueRequired))]
pub struct PodSecuritySpec {
    /// Level pods must meet to be admitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforce: Option<PodSecurityLevel>,
    /// Policy version for `enforce`, `latest` or `v1.N`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(latest|v1\.[0-9]{1,3})$"))]
    pub enforce_version: Option<String>,
    /// Level whose violations are recorded in the audit log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<PodSecurityLevel>,
    /// Policy version for `audit`, `latest` or `v1.N`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(latest|v1\.[0-9]{1,3})$"))]
    pub audit_version: Option<String>,
    /// Level whose violations are returned to the user as warnings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warn: Option<PodSecurityLevel>,
    /// Policy version for `warn`, `latest` or `v1.N`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(latest|v1\.[0-9]{1,3})$"))]
    pub warn_version: Option<String>,
}

/// A Pod Security Standard level.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PodSecurityLevel {
    /// Unrestricted.
    Privileged,
    /// Prevents known privilege escalations.
    Baseline,
    /// Current pod hardening best practice.
    Restricted,
}

impl PodSecurityLevel {
    /// The label value Pod Security Admission reads.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Privileged => "privileged",
            Self::Baseline => "baseline",
            Self::Restricted => "restricted",
        }
    }
}

/// A RoleBinding of a ClusterRole in each selected namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleBindingSpec {
    /// Short name; the RoleBinding is `baseliner-<name>`.
    #[schemars(
        length(min = 1, max = 50),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,

    /// The ClusterRole to bind. It must be on the operator's allow list
    /// (by default `view`, `edit`, `admin`); any other is refused.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.:]*[a-z0-9])?$")
    )]
    pub cluster_role: String,

    /// Who is bound. Names may use `{{namespace}}` and `{{labels.KEY}}`,
    /// filled in from the namespace (e.g. `team-{{labels.team}}-viewers`).
    #[schemars(length(min = 1, max = 32))]
    pub subjects: Vec<SubjectSpec>,
}

/// A subject of a RoleBinding, possibly templated.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new("self.kind == 'ServiceAccount' || !has(self.__namespace__)").message("namespace applies only to ServiceAccount subjects").reason(Reason::FieldValueForbidden))]
pub struct SubjectSpec {
    /// Group, User or ServiceAccount.
    pub kind: SubjectKind,

    /// Subject name; may use `{{namespace}}` and `{{labels.KEY}}`.
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = Rule::new("!self.contains('{{') || self.matches('^([^{}]|\\\\{\\\\{\\\\s*(namespace|labels\\\\.[A-Za-z0-9./_-]+)\\\\s*\\\\}\\\\})*$')").message("templates must be {{namespace}} or {{labels.KEY}}").reason(Reason::FieldValueInvalid))]
    pub name: String,

    /// Namespace of a ServiceAccount subject; the selected namespace itself
    /// when unset. May use the same templates as `name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub namespace: Option<String>,
}

/// Kind of a RoleBinding subject.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubjectKind {
    /// A group of users, as the authenticator reports it.
    Group,
    /// A user, as the authenticator reports it.
    User,
    /// A ServiceAccount.
    ServiceAccount,
}

/// A Velero backup schedule for each selected namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackupSpec {
    /// When to back up, as a five-field cron expression (`0 2 * * *`) or a
    /// descriptor such as `@daily`.
    #[schemars(length(min = 1, max = 100))]
    #[x_kube(validation = Rule::new("self.matches('^@(yearly|annually|monthly|weekly|daily|midnight|hourly)$') || self.matches('^[0-9*,/?LW#A-Za-z-]+( [0-9*,/?LW#A-Za-z-]+){4}$')").message("schedule must be a cron expression of five fields, e.g. '0 2 * * *', or a descriptor such as @daily").reason(Reason::FieldValueInvalid))]
    pub schedule: String,

    /// How long each backup is kept, as a duration such as `720h` or `72h30m`.
    #[serde(default = "default_backup_ttl")]
    #[x_kube(validation = Rule::new("self.matches('^([0-9]+(\\\\.[0-9]+)?(h|m|s|ms))+$') && duration(self) > duration('0s')").message("ttl must be a positive duration such as 720h or 72h30m").reason(Reason::FieldValueInvalid))]
    pub ttl: String,

    /// Velero BackupStorageLocation to write to; Velero's default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub storage_location: Option<String>,

    /// Whether to take volume snapshots; Velero's default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_volumes: Option<bool>,

    /// Whether pod volumes are backed up with Velero's file-system backup by
    /// default (rather than snapshots); Velero's default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_volumes_to_fs_backup: Option<bool>,

    /// Whether Velero moves snapshot data to the storage location (CSI
    /// snapshot data movement); Velero's default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_move_data: Option<bool>,

    /// A ConfigMap in the Velero namespace holding Velero resource policies
    /// (which volumes to skip or how to back them up) every Backup follows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub resource_policy: Option<String>,

    /// Pause the Schedules: Velero creates no Backups while true. Existing
    /// Backups are kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,

    /// Namespace Velero runs in, where the Schedules are created.
    #[serde(default = "default_velero_namespace")]
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub velero_namespace: String,
}

/// Observed state of a ProductionProfile. Holds only values that change when
/// the world changes, so writing it never causes another reconcile.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProductionProfileStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// `Ready` (every owned namespace complies), `Reconciling` (work in
    /// progress) and `Stalled` (cannot progress without a change).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,

    /// Namespaces this profile owns.
    #[serde(default)]
    pub matched_namespaces: i32,

    /// Owned namespaces whose objects match the baseline, with no
    /// exception in force.
    #[serde(default)]
    pub compliant_namespaces: i32,

    /// Owned namespaces that match the baseline as exceptions in force
    /// leave it (some control waived or replaced).
    #[serde(default)]
    pub excepted_namespaces: i32,

    /// Up to 20 namespaces that are selected but not compliant, including
    /// those owned by a higher-priority profile, with the reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub non_compliant: Vec<NamespaceProblem>,
}

/// Why one namespace is not compliant.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceProblem {
    /// The namespace.
    pub namespace: String,
    /// CamelCase reason, e.g. `Drifted`, `Conflict`, `RoleNotAllowed`.
    pub reason: String,
    /// Human-readable detail.
    pub message: String,
}

fn default_true() -> bool {
    true
}

fn default_dns_namespace() -> String {
    "kube-system".to_owned()
}

fn default_dns_pod_labels() -> BTreeMap<String, String> {
    BTreeMap::from([("k8s-app".to_owned(), "kube-dns".to_owned())])
}

fn default_backup_ttl() -> String {
    "720h".to_owned()
}

fn default_velero_namespace() -> String {
    "velero".to_owned()
}
