//! The `ProfileException` API (`baseliner.dev/v1alpha1`): a documented,
//! time-bounded waiver of some of one profile's controls for some of its
//! namespaces.
//!
//! Cluster-scoped, so a namespace's own users cannot write one; the
//! author-rights policy (`crds/baseliner.dev_author-rights.yaml`) lets only
//! someone who could remove a control themselves waive it. What a waiver
//! does to each control is in [`crate::exception`].

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Most namespaces listed in `status.namespaces`; the count stays exact.
pub const MAX_LISTED_NAMESPACES: usize = 20;

/// Waives named controls of one profile for some of its namespaces, for a
/// documented reason, until a set time.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "baseliner.dev",
    version = "v1alpha1",
    kind = "ProfileException",
    plural = "profileexceptions",
    singular = "profileexception",
    shortname = "profexc",
    category = "baseliner",
    status = "ProfileExceptionStatus",
    derive = "PartialEq",
    validation = Rule::new("self.spec.waive.defaultDeny || self.spec.waive.allowDNS || self.spec.waive.allowSameNamespace || size(self.spec.waive.allowIngressFrom) > 0 || size(self.spec.waive.allowEgressTo) > 0 || self.spec.waive.limitRange || self.spec.waive.resourceQuota || self.spec.waive.podSecurity || size(self.spec.waive.roleBindings) > 0 || self.spec.waive.backup || has(self.spec.replace)").message("spec.waive or spec.replace must name at least one control").reason(Reason::FieldValueRequired),
    doc = "ProfileException waives some controls of one ProductionProfile for some of its namespaces, with a reason, until it expires.",
    printcolumn(
        name = "Profile",
        type_ = "string",
        json_path = ".spec.profile",
        description = "The profile whose controls are waived"
    ),
    printcolumn(
        name = "Expires",
        type_ = "string",
        json_path = ".spec.expires",
        description = "When the controls are enforced again"
    ),
    printcolumn(
        name = "In force",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"InForce\")].status",
        description = "Whether the waiver applies now"
    ),
    printcolumn(
        name = "Why",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"InForce\")].reason",
        description = "InForce, ExpiringSoon, Expired, or what makes it invalid"
    ),
    printcolumn(
        name = "Namespaces",
        type_ = "integer",
        json_path = ".status.namespaceCount",
        description = "Namespaces the waiver applies to now"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProfileExceptionSpec {
    /// The ProductionProfile whose controls are waived.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub profile: String,

    /// Which of the profile's namespaces the waiver covers. A namespace the
    /// profile does not own is never affected.
    pub namespaces: ExceptedNamespaces,

    /// The controls not required while the exception is in force. Each
    /// object they stand for is pruned as if its section were removed from
    /// the profile (under the profile's deletionPolicy); Pod Security labels
    /// baseliner set are given up.
    #[serde(default)]
    pub waive: Waive,

    /// Controls enforced with other values while the exception is in force.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace: Option<Replacements>,

    /// Why the controls are waived, for whoever reviews or audits it.
    #[schemars(length(min = 1, max = 1024))]
    #[x_kube(validation = Rule::new("self.matches('[^ \\t\\n]')").message("reason must say why the controls are waived").reason(Reason::FieldValueRequired))]
    pub reason: String,

    /// A link to the ticket or approval, e.g. `https://tracker.example/OPS-123`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    pub ticket: Option<String>,

    /// When the exception ends and the controls are enforced again (RFC
    /// 3339, e.g. `2027-01-31T00:00:00Z`). At most the operator's
    /// `--max-exception-days` (default 90) after the exception was created.
    pub expires: Time,
}

/// The namespaces an exception covers: those named, and those its selector
/// matches.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new("has(self.selector) || (has(self.names) && size(self.names) > 0)").message("set names, selector, or both").reason(Reason::FieldValueRequired))]
pub struct ExceptedNamespaces {
    /// Namespaces covered by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 256),
        inner(
            length(min = 1, max = 63),
            regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
        )
    )]
    pub names: Vec<String>,

    /// Namespaces covered by label. Whoever may label a namespace can bring
    /// it under the exception: prefer names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("!has(self.matchExpressions) || self.matchExpressions.all(e, e.operator in ['In', 'NotIn', 'Exists', 'DoesNotExist'])").message("matchExpressions operator must be In, NotIn, Exists or DoesNotExist").reason(Reason::FieldValueInvalid))]
    pub selector: Option<LabelSelector>,
}

/// The controls an exception waives. Each must exist in the profile, or the
/// exception is not in force and says so in its status.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Waive {
    /// The NetworkPolicy `baseliner-default-deny`.
    #[serde(default)]
    pub default_deny: bool,
    /// The NetworkPolicy `baseliner-allow-dns`.
    #[serde(default, rename = "allowDNS")]
    pub allow_dns: bool,
    /// The NetworkPolicy `baseliner-allow-same-namespace`.
    #[serde(default)]
    pub allow_same_namespace: bool,
    /// Ingress allows by name (`networkPolicy.allowIngressFrom[].name`).
    #[serde(default)]
    #[schemars(length(max = 32), inner(length(min = 1, max = 40)))]
    pub allow_ingress_from: Vec<String>,
    /// Egress allows by name (`networkPolicy.allowEgressTo[].name`).
    #[serde(default)]
    #[schemars(length(max = 32), inner(length(min = 1, max = 40)))]
    pub allow_egress_to: Vec<String>,
    /// The LimitRange `baseliner-limits`.
    #[serde(default)]
    pub limit_range: bool,
    /// The whole ResourceQuota `baseliner-quota` (see `replace` to change
    /// single limits instead).
    #[serde(default)]
    pub resource_quota: bool,
    /// The Pod Security labels.
    #[serde(default)]
    pub pod_security: bool,
    /// RoleBindings by entry name (`roleBindings[].name`).
    #[serde(default)]
    #[schemars(length(max = 32), inner(length(min = 1, max = 50)))]
    pub role_bindings: Vec<String>,
    /// The Velero Schedule. Its existing backups stay.
    #[serde(default)]
    pub backup: bool,
}

/// Controls enforced with other values while the exception is in force.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new("has(self.resourceQuota)").message("name a control to replace: resourceQuota").reason(Reason::FieldValueRequired))]
pub struct Replacements {
    /// Quota limits with other values; the profile's other limits stay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_quota: Option<QuotaReplacement>,
}

/// Replacement values for some of a profile's quota limits.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QuotaReplacement {
    /// Limit name (a key of the profile's `resourceQuota.hard`) to the value
    /// enforced instead, e.g. `requests.cpu: "32"`.
    #[schemars(extend("minProperties" = 1, "maxProperties" = 64, "additionalProperties" = {"type": "string", "maxLength": 64}))]
    #[x_kube(validation = Rule::new("self.all(k, isQuantity(self[k]) && quantity(self[k]).compareTo(quantity('0')) >= 0)").message("values must be quantities such as 8, 500m or 16Gi, not negative").reason(Reason::FieldValueInvalid))]
    pub hard: BTreeMap<String, String>,
}

/// What the operator found of an exception. Changes only when the world
/// does (the phase at the times the spec sets), so writing it never causes
/// another reconcile.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProfileExceptionStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// `InForce`: whether the waiver applies now, and why (reason InForce,
    /// ExpiringSoon, Expired, or what makes it invalid).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,

    /// Namespaces the waiver applies to now (covered and owned by the profile).
    #[serde(default)]
    pub namespace_count: i32,

    /// Up to 20 of those namespaces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,

    /// What keeps the exception from being in force, by field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<ExceptionProblem>,
}

/// One thing wrong with an exception.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "camelCase")]
pub struct ExceptionProblem {
    /// The field, e.g. `spec.waive.roleBindings[0]`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}
