//! The pure render step: a profile and a namespace in, the desired objects
//! and namespace labels out. No API server calls; the controller applies
//! the result and `baseliner render` prints it.
//!
//! A render of the same inputs is identical every time: maps are ordered,
//! objects are sorted by kind then name, and nothing depends on time or on
//! a per-process hash seed.
//!
//! What cannot be rendered for a namespace (a ClusterRole off the allow list,
//! a subject template naming a missing label) becomes a [`RenderProblem`]
//! and only that object is left out; everything else still renders.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use k8s_openapi::api::core::v1::{
    LimitRange, LimitRangeItem, LimitRangeSpec as K8sLimitRangeSpec, ResourceQuota,
    ResourceQuotaSpec as K8sResourceQuotaSpec,
};
use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec as K8sNetworkPolicySpec,
};
use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, ObjectMeta, OwnerReference,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Resource;
use serde::Serialize;
use thiserror::Error;

use crate::api::{
    BackupSpec, EgressAllow, IngressAllow, LimitRangeSpec, MANAGED_BY_LABEL, MANAGER_NAME,
    NAMESPACE_LABEL, NetworkPolicySpec, PROFILE_LABEL, PodSecurityLevel, PortSpec,
    ProductionProfile, Protocol, ResourceQuotaSpec, RoleBindingSpec, SubjectKind, SubjectSpec,
};
use crate::template;
use crate::velero::{BackupTemplate, BackupTemplateMetadata, Schedule, ScheduleSpec};

/// Name of the default-deny NetworkPolicy.
pub const DEFAULT_DENY_POLICY: &str = "baseliner-default-deny";
/// Name of the NetworkPolicy allowing DNS egress.
pub const ALLOW_DNS_POLICY: &str = "baseliner-allow-dns";
/// Name of the NetworkPolicy allowing traffic inside the namespace.
pub const ALLOW_SAME_NAMESPACE_POLICY: &str = "baseliner-allow-same-namespace";
/// Name of the LimitRange.
pub const LIMIT_RANGE_NAME: &str = "baseliner-limits";
/// Name of the ResourceQuota.
pub const RESOURCE_QUOTA_NAME: &str = "baseliner-quota";
/// Prefix of every managed object's name in a selected namespace.
pub const NAME_PREFIX: &str = "baseliner-";
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
/// Version label value used when a level is set without a version.
pub const DEFAULT_POD_SECURITY_VERSION: &str = "latest";
/// ClusterRoles bindable when the operator is not told otherwise.
pub const DEFAULT_ALLOWED_CLUSTER_ROLES: [&str; 3] = ["admin", "edit", "view"];
/// Longest name of a Velero Schedule: Velero copies it into a label value.
pub const MAX_SCHEDULE_NAME_LEN: usize = 63;

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
const SYSTEM_PREFIX: &str = "system:";
const SCHEDULE_HASH_LEN: usize = 10;

/// The parts of a Namespace that rendering and selection read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NamespaceInfo {
    /// The namespace's name.
    pub name: String,
    /// The namespace's labels.
    pub labels: BTreeMap<String, String>,
}

impl NamespaceInfo {
    /// Reads name and labels from a Namespace's (or its metadata-only
    /// projection's) metadata.
    pub fn from_metadata(metadata: &ObjectMeta) -> Self {
        Self {
            name: metadata.name.clone().unwrap_or_default(),
            labels: metadata.labels.clone().unwrap_or_default(),
        }
    }
}

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
    /// The object's kind, e.g. `NetworkPolicy`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NetworkPolicy(_) => "NetworkPolicy",
            Self::LimitRange(_) => "LimitRange",
            Self::ResourceQuota(_) => "ResourceQuota",
            Self::RoleBinding(_) => "RoleBinding",
            Self::Schedule(_) => "Schedule",
        }
    }

    /// The object's `apiVersion`, e.g. `networking.k8s.io/v1`.
    pub fn api_version(&self) -> &'static str {
        match self {
            Self::NetworkPolicy(_) => <NetworkPolicy as k8s_openapi::Resource>::API_VERSION,
            Self::LimitRange(_) => <LimitRange as k8s_openapi::Resource>::API_VERSION,
            Self::ResourceQuota(_) => <ResourceQuota as k8s_openapi::Resource>::API_VERSION,
            Self::RoleBinding(_) => <RoleBinding as k8s_openapi::Resource>::API_VERSION,
            Self::Schedule(_) => "velero.io/v1",
        }
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

/// Something the profile asks for that cannot be rendered for a namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RenderProblem {
    /// CamelCase reason, e.g. `RoleNotAllowed`, `InvalidSubject`.
    pub reason: &'static str,
    /// Path of the offending field, e.g. `spec.roleBindings[1].subjects[0].name`.
    pub field: String,
    /// What is wrong, for a human.
    pub message: String,
}

impl fmt::Display for RenderProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.reason, self.field, self.message)
    }
}

/// Reasons a [`RenderProblem`] carries.
pub mod reason {
    /// The ClusterRole is not on the operator's allow list.
    pub const ROLE_NOT_ALLOWED: &str = "RoleNotAllowed";
    /// A RoleBinding subject is invalid once its templates are filled in.
    pub const INVALID_SUBJECT: &str = "InvalidSubject";
    /// A CIDR cannot be parsed.
    pub const INVALID_CIDR: &str = "InvalidCIDR";
    /// Every CIDR of an egress allow is removed again by `except`.
    pub const EGRESS_ALLOWS_NOTHING: &str = "EgressAllowsNothing";
    /// The backup schedule is not a cron Velero reads, or never fires.
    pub const INVALID_SCHEDULE: &str = "InvalidSchedule";
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
            render_network_policies(&context, network_policy, &mut problems)
                .into_iter()
                .map(DesiredObject::NetworkPolicy),
        );
    }
    if let Some(limit_range) = &spec.limit_range {
        objects.push(DesiredObject::LimitRange(render_limit_range(
            &context,
            limit_range,
        )));
    }
    if let Some(resource_quota) = &spec.resource_quota {
        objects.push(DesiredObject::ResourceQuota(render_resource_quota(
            &context,
            resource_quota,
        )));
    }
    for (index, binding) in spec.role_bindings.iter().enumerate() {
        let field = format!("spec.roleBindings[{index}]");
        match render_role_binding(&context, binding, &field, options) {
            Ok(role_binding) => objects.push(DesiredObject::RoleBinding(role_binding)),
            Err(binding_problems) => problems.extend(binding_problems),
        }
    }
    if let Some(backup) = &spec.backup {
        // A cron Velero cannot parse, or one that matches no date, would
        // give a Schedule that never backs up: report it instead.
        match crate::validate::check_backup_schedule(&backup.schedule) {
            Ok(()) => objects.push(DesiredObject::Schedule(render_backup_schedule(
                &context, backup,
            ))),
            Err(why) => problems.push(RenderProblem {
                reason: reason::INVALID_SCHEDULE,
                field: "spec.backup.schedule".to_owned(),
                message: why,
            }),
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

/// What every object rendered for one (profile, namespace) shares.
struct RenderContext<'a> {
    profile_name: &'a str,
    namespace: &'a NamespaceInfo,
    /// Set only when the profile came from the cluster (it has a uid): an
    /// offline render has nothing to point at.
    owner_reference: Option<OwnerReference>,
}

impl<'a> RenderContext<'a> {
    fn new(profile: &'a ProductionProfile, namespace: &'a NamespaceInfo) -> Self {
        Self {
            profile_name: profile.metadata.name.as_deref().unwrap_or_default(),
            namespace,
            // controller: true so the owner is unambiguous; blockOwnerDeletion
            // stays unset: setting it needs `update` on the profiles'
            // finalizers subresource, and background GC does not need it.
            owner_reference: profile.controller_owner_ref(&()),
        }
    }

    fn labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (MANAGED_BY_LABEL.to_owned(), MANAGER_NAME.to_owned()),
            (PROFILE_LABEL.to_owned(), self.profile_name.to_owned()),
        ])
    }

    /// Metadata of an object in the selected namespace.
    fn metadata(&self, name: String) -> ObjectMeta {
        self.metadata_in(name, self.namespace.name.clone(), self.labels())
    }

    fn metadata_in(
        &self,
        name: String,
        namespace: String,
        labels: BTreeMap<String, String>,
    ) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: Some(namespace),
            labels: Some(labels),
            owner_references: self.owner_reference.clone().map(|owner| vec![owner]),
            ..ObjectMeta::default()
        }
    }
}

// ---------------------------------------------------------------------------
// NetworkPolicies

const INGRESS: &str = "Ingress";
const EGRESS: &str = "Egress";

fn render_network_policies(
    context: &RenderContext,
    spec: &NetworkPolicySpec,
    problems: &mut Vec<RenderProblem>,
) -> Vec<NetworkPolicy> {
    let mut policies = Vec::new();
    if spec.default_deny {
        policies.push(network_policy(
            context,
            DEFAULT_DENY_POLICY.to_owned(),
            K8sNetworkPolicySpec {
                policy_types: Some(policy_types(&[INGRESS, EGRESS])),
                ..all_pods()
            },
        ));
    }
    if spec.allow_dns {
        let dns = spec.dns.clone().unwrap_or_default();
        policies.push(network_policy(
            context,
            ALLOW_DNS_POLICY.to_owned(),
            K8sNetworkPolicySpec {
                egress: Some(vec![NetworkPolicyEgressRule {
                    to: Some(vec![NetworkPolicyPeer {
                        namespace_selector: Some(match_labels(BTreeMap::from([(
                            NAMESPACE_NAME_LABEL.to_owned(),
                            dns.namespace,
                        )]))),
                        pod_selector: Some(match_labels(dns.pod_labels)),
                        ..NetworkPolicyPeer::default()
                    }]),
                    ports: Some(vec![
                        network_policy_port(53, None, "UDP"),
                        network_policy_port(53, None, "TCP"),
                    ]),
                }]),
                policy_types: Some(policy_types(&[EGRESS])),
                ..all_pods()
            },
        ));
    }
    if spec.allow_same_namespace {
        let same_namespace = || {
            Some(vec![NetworkPolicyPeer {
                pod_selector: Some(LabelSelector::default()),
                ..NetworkPolicyPeer::default()
            }])
        };
        policies.push(network_policy(
            context,
            ALLOW_SAME_NAMESPACE_POLICY.to_owned(),
            K8sNetworkPolicySpec {
                ingress: Some(vec![NetworkPolicyIngressRule {
                    from: same_namespace(),
                    ports: None,
                }]),
                egress: Some(vec![NetworkPolicyEgressRule {
                    to: same_namespace(),
                    ports: None,
                }]),
                policy_types: Some(policy_types(&[INGRESS, EGRESS])),
                ..all_pods()
            },
        ));
    }
    for allow in &spec.allow_ingress_from {
        policies.push(render_ingress_allow(context, allow));
    }
    for (index, allow) in spec.allow_egress_to.iter().enumerate() {
        let field = format!("spec.networkPolicy.allowEgressTo[{index}]");
        match render_egress_allow(context, allow, &field) {
            Ok(policy) => policies.push(policy),
            Err(problem) => problems.push(problem),
        }
    }
    policies
}

fn render_ingress_allow(context: &RenderContext, allow: &IngressAllow) -> NetworkPolicy {
    // One peer per way of naming namespaces: peers are ORed, so a pod is
    // allowed when its namespace matches the selector or is named.
    let mut peers = Vec::new();
    if let Some(selector) = &allow.namespace_selector {
        peers.push(NetworkPolicyPeer {
            namespace_selector: Some(selector.clone()),
            pod_selector: allow.pod_selector.clone(),
            ..NetworkPolicyPeer::default()
        });
    }
    if !allow.namespaces.is_empty() {
        let names: BTreeSet<&String> = allow.namespaces.iter().collect();
        peers.push(NetworkPolicyPeer {
            namespace_selector: Some(LabelSelector {
                match_expressions: Some(vec![LabelSelectorRequirement {
                    key: NAMESPACE_NAME_LABEL.to_owned(),
                    operator: "In".to_owned(),
                    values: Some(names.into_iter().cloned().collect()),
                }]),
                match_labels: None,
            }),
            pod_selector: allow.pod_selector.clone(),
            ..NetworkPolicyPeer::default()
        });
    }
    network_policy(
        context,
        format!("{NAME_PREFIX}allow-from-{}", allow.name),
        K8sNetworkPolicySpec {
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: Some(peers),
                ports: network_policy_ports(&allow.ports),
            }]),
            policy_types: Some(policy_types(&[INGRESS])),
            ..all_pods()
        },
    )
}

fn render_egress_allow(
    context: &RenderContext,
    allow: &EgressAllow,
    field: &str,
) -> Result<NetworkPolicy, RenderProblem> {
    let parse = |text: &str, field: String| {
        Cidr::parse(text).ok_or_else(|| RenderProblem {
            reason: reason::INVALID_CIDR,
            field,
            message: format!("`{text}` is not a CIDR such as 10.0.0.0/8"),
        })
    };
    let cidrs = allow
        .cidrs
        .iter()
        .enumerate()
        .map(|(index, text)| parse(text, format!("{field}.cidrs[{index}]")))
        .collect::<Result<Vec<_>, _>>()?;
    let excepts = allow
        .except
        .iter()
        .enumerate()
        .map(|(index, text)| parse(text, format!("{field}.except[{index}]")))
        .collect::<Result<Vec<_>, _>>()?;

    let mut peers = Vec::new();
    for cidr in cidrs {
        // A range excepted as a whole allows nothing; leaving it out is what
        // the profile means (the API would refuse an except equal to its cidr).
        if excepts.iter().any(|except| except.covers(cidr)) {
            continue;
        }
        // The API requires each except to lie strictly inside its cidr;
        // excepts outside it deny nothing this block allows.
        let inside: Vec<String> = excepts
            .iter()
            .filter(|except| cidr.covers(**except) && except.prefix_len > cidr.prefix_len)
            .map(Cidr::to_string)
            .collect();
        peers.push(NetworkPolicyPeer {
            ip_block: Some(IPBlock {
                cidr: cidr.to_string(),
                except: (!inside.is_empty()).then_some(inside),
            }),
            ..NetworkPolicyPeer::default()
        });
    }
    // An egress rule with no peers would allow every destination.
    if peers.is_empty() {
        return Err(RenderProblem {
            reason: reason::EGRESS_ALLOWS_NOTHING,
            field: format!("{field}.except"),
            message: "every CIDR is excepted as a whole, so nothing would be allowed".to_owned(),
        });
    }
    Ok(network_policy(
        context,
        format!("{NAME_PREFIX}allow-to-{}", allow.name),
        K8sNetworkPolicySpec {
            egress: Some(vec![NetworkPolicyEgressRule {
                to: Some(peers),
                ports: network_policy_ports(&allow.ports),
            }]),
            policy_types: Some(policy_types(&[EGRESS])),
            ..all_pods()
        },
    ))
}

fn network_policy(
    context: &RenderContext,
    name: String,
    spec: K8sNetworkPolicySpec,
) -> NetworkPolicy {
    NetworkPolicy {
        metadata: context.metadata(name),
        spec: Some(spec),
    }
}

/// A policy spec selecting every pod in the namespace. `podSelector: {}` is
/// written out: it is the field that says "all pods".
fn all_pods() -> K8sNetworkPolicySpec {
    K8sNetworkPolicySpec {
        pod_selector: Some(LabelSelector::default()),
        ..K8sNetworkPolicySpec::default()
    }
}

fn policy_types(types: &[&str]) -> Vec<String> {
    types.iter().map(|t| (*t).to_owned()).collect()
}

fn match_labels(labels: BTreeMap<String, String>) -> LabelSelector {
    LabelSelector {
        match_labels: Some(labels),
        match_expressions: None,
    }
}

fn network_policy_ports(ports: &[PortSpec]) -> Option<Vec<NetworkPolicyPort>> {
    // No ports means all ports; an empty list would mean the same but is
    // not what the API returns, so it is left out.
    (!ports.is_empty()).then(|| {
        ports
            .iter()
            .map(|port| network_policy_port(port.port, port.end_port, protocol_name(port.protocol)))
            .collect()
    })
}

fn network_policy_port(port: i32, end_port: Option<i32>, protocol: &str) -> NetworkPolicyPort {
    NetworkPolicyPort {
        port: Some(IntOrString::Int(port)),
        end_port,
        protocol: Some(protocol.to_owned()),
    }
}

fn protocol_name(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Tcp => "TCP",
        Protocol::Udp => "UDP",
        Protocol::Sctp => "SCTP",
    }
}

/// An IPv4 or IPv6 range, with host bits cleared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Cidr {
    bits: u128,
    prefix_len: u8,
    is_v6: bool,
}

impl Cidr {
    fn parse(text: &str) -> Option<Self> {
        let (address, prefix_len) = text.split_once('/')?;
        if prefix_len.is_empty()
            || prefix_len.len() > 3
            || !prefix_len.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let prefix_len: u8 = prefix_len.parse().ok()?;
        let (bits, is_v6) = match address.parse::<IpAddr>().ok()? {
            IpAddr::V4(address) => (u128::from(u32::from(address)), false),
            IpAddr::V6(address) => (u128::from(address), true),
        };
        let mut cidr = Self {
            bits,
            prefix_len,
            is_v6,
        };
        if prefix_len > cidr.width() {
            return None;
        }
        cidr.bits &= cidr.mask();
        Some(cidr)
    }

    fn width(self) -> u8 {
        if self.is_v6 { 128 } else { 32 }
    }

    fn mask(self) -> u128 {
        if self.prefix_len == 0 {
            return 0;
        }
        let all = if self.is_v6 {
            u128::MAX
        } else {
            u128::from(u32::MAX)
        };
        (u128::MAX << (self.width() - self.prefix_len)) & all
    }

    /// Whether every address of `other` is in this range (equal ranges included).
    fn covers(self, other: Cidr) -> bool {
        self.is_v6 == other.is_v6
            && other.prefix_len >= self.prefix_len
            && other.bits & self.mask() == self.bits
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_v6 {
            write!(f, "{}/{}", Ipv6Addr::from(self.bits), self.prefix_len)
        } else {
            // Lossless: an IPv4 range only ever holds 32 bits.
            let address = Ipv4Addr::from(u32::try_from(self.bits).unwrap_or_default());
            write!(f, "{address}/{}", self.prefix_len)
        }
    }
}

// ---------------------------------------------------------------------------
// LimitRange and ResourceQuota

fn render_limit_range(context: &RenderContext, spec: &LimitRangeSpec) -> LimitRange {
    LimitRange {
        metadata: context.metadata(LIMIT_RANGE_NAME.to_owned()),
        spec: Some(K8sLimitRangeSpec {
            limits: vec![LimitRangeItem {
                type_: "Container".to_owned(),
                default: quantities(spec.default.as_ref()),
                default_request: quantities(spec.default_request.as_ref()),
                min: quantities(spec.min.as_ref()),
                max: quantities(spec.max.as_ref()),
                max_limit_request_ratio: None,
            }],
        }),
    }
}

fn render_resource_quota(context: &RenderContext, spec: &ResourceQuotaSpec) -> ResourceQuota {
    ResourceQuota {
        metadata: context.metadata(RESOURCE_QUOTA_NAME.to_owned()),
        spec: Some(K8sResourceQuotaSpec {
            hard: quantities(Some(&spec.hard)),
            ..K8sResourceQuotaSpec::default()
        }),
        status: None,
    }
}

fn quantities(values: Option<&BTreeMap<String, String>>) -> Option<BTreeMap<String, Quantity>> {
    values.filter(|values| !values.is_empty()).map(|values| {
        values
            .iter()
            .map(|(resource, quantity)| (resource.clone(), Quantity(quantity.clone())))
            .collect()
    })
}

// ---------------------------------------------------------------------------
// Pod Security labels

/// The `pod-security.kubernetes.io/*` labels for a profile's Pod Security
/// levels. A version label is set only with its level, and is
/// [`DEFAULT_POD_SECURITY_VERSION`] when the profile names none, so the
/// namespace says explicitly which policy version it is held to.
pub fn pod_security_labels(spec: &crate::api::PodSecuritySpec) -> BTreeMap<String, String> {
    let modes: [(&str, Option<PodSecurityLevel>, &Option<String>); 3] = [
        ("enforce", spec.enforce, &spec.enforce_version),
        ("audit", spec.audit, &spec.audit_version),
        ("warn", spec.warn, &spec.warn_version),
    ];
    let mut labels = BTreeMap::new();
    for (mode, level, version) in modes {
        let Some(level) = level else { continue };
        labels.insert(
            format!("pod-security.kubernetes.io/{mode}"),
            level.as_str().to_owned(),
        );
        labels.insert(
            format!("pod-security.kubernetes.io/{mode}-version"),
            version
                .clone()
                .unwrap_or_else(|| DEFAULT_POD_SECURITY_VERSION.to_owned()),
        );
    }
    labels
}

// ---------------------------------------------------------------------------
// RoleBindings

fn render_role_binding(
    context: &RenderContext,
    spec: &RoleBindingSpec,
    field: &str,
    options: &RenderOptions,
) -> Result<RoleBinding, Vec<RenderProblem>> {
    if !options.allowed_cluster_roles.contains(&spec.cluster_role) {
        let allowed: Vec<&str> = options
            .allowed_cluster_roles
            .iter()
            .map(String::as_str)
            .collect();
        return Err(vec![RenderProblem {
            reason: reason::ROLE_NOT_ALLOWED,
            field: format!("{field}.clusterRole"),
            message: format!(
                "ClusterRole `{}` is not on the operator's allow list ({})",
                spec.cluster_role,
                allowed.join(", ")
            ),
        }]);
    }

    let mut subjects = Vec::new();
    let mut problems = Vec::new();
    for (index, subject) in spec.subjects.iter().enumerate() {
        let subject_field = format!("{field}.subjects[{index}]");
        match render_subject(subject, context.namespace) {
            Ok(rendered) => subjects.push(rendered),
            Err(error) => problems.push(RenderProblem {
                reason: reason::INVALID_SUBJECT,
                field: format!("{subject_field}.{}", error.field()),
                message: error.to_string(),
            }),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }

    Ok(RoleBinding {
        metadata: context.metadata(format!("{NAME_PREFIX}{}", spec.name)),
        role_ref: RoleRef {
            api_group: Some(RBAC_GROUP.to_owned()),
            kind: "ClusterRole".to_owned(),
            name: spec.cluster_role.clone(),
        },
        subjects: Some(subjects),
    })
}

/// Why a RoleBinding subject is refused.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum SubjectError {
    /// The name's template cannot be parsed or filled in.
    #[error("{0}")]
    NameTemplate(template::TemplateError),
    /// The namespace's template cannot be parsed or filled in.
    #[error("{0}")]
    NamespaceTemplate(template::TemplateError),
    /// A ServiceAccount name that is not a DNS-1123 subdomain.
    #[error(
        "ServiceAccount name `{0}` is not a DNS-1123 subdomain (lowercase letters, digits, '-' and '.', at most 253 characters)"
    )]
    ServiceAccountName(String),
    /// A ServiceAccount namespace that is not a DNS-1123 label.
    #[error(
        "ServiceAccount namespace `{0}` is not a DNS-1123 label (lowercase letters, digits and '-', at most 63 characters)"
    )]
    ServiceAccountNamespace(String),
    /// A User or Group name that is empty, too long, or holds control
    /// characters or surrounding whitespace.
    #[error(
        "{kind} name `{name}` must be 1 to 253 characters without control characters or surrounding whitespace"
    )]
    MalformedName {
        /// `User` or `Group`.
        kind: &'static str,
        /// The name, after templates.
        name: String,
    },
    /// A User or Group in the reserved `system:` namespace of identities.
    #[error(
        "{kind} `{name}` is a system identity; profiles may not bind names starting with `system:`"
    )]
    SystemIdentity {
        /// `User` or `Group`.
        kind: &'static str,
        /// The name, after templates.
        name: String,
    },
    /// A namespace given for a User or Group.
    #[error("namespace applies only to ServiceAccount subjects")]
    NamespaceNotAllowed,
}

impl SubjectError {
    /// The subject field at fault: `name` or `namespace`.
    pub fn field(&self) -> &'static str {
        match self {
            Self::NamespaceTemplate(_)
            | Self::ServiceAccountNamespace(_)
            | Self::NamespaceNotAllowed => "namespace",
            _ => "name",
        }
    }
}

/// Fills in a subject's templates for `namespace` and checks the result.
pub fn render_subject(
    subject: &SubjectSpec,
    namespace: &NamespaceInfo,
) -> Result<Subject, SubjectError> {
    let name = template::parse(&subject.name)
        .and_then(|parts| template::expand(&parts, namespace))
        .map_err(SubjectError::NameTemplate)?;
    match subject.kind {
        SubjectKind::ServiceAccount => {
            if !is_dns1123_subdomain(&name) {
                return Err(SubjectError::ServiceAccountName(name));
            }
            let service_account_namespace = match &subject.namespace {
                Some(text) => template::parse(text)
                    .and_then(|parts| template::expand(&parts, namespace))
                    .map_err(SubjectError::NamespaceTemplate)?,
                None => namespace.name.clone(),
            };
            if !is_dns1123_label(&service_account_namespace) {
                return Err(SubjectError::ServiceAccountNamespace(
                    service_account_namespace,
                ));
            }
            Ok(Subject {
                api_group: None,
                kind: "ServiceAccount".to_owned(),
                name,
                namespace: Some(service_account_namespace),
            })
        }
        SubjectKind::User | SubjectKind::Group => {
            let kind = if subject.kind == SubjectKind::User {
                "User"
            } else {
                "Group"
            };
            if subject.namespace.is_some() {
                return Err(SubjectError::NamespaceNotAllowed);
            }
            check_user_or_group_name(kind, &name)?;
            Ok(Subject {
                api_group: Some(RBAC_GROUP.to_owned()),
                kind: kind.to_owned(),
                name,
                namespace: None,
            })
        }
    }
}

fn check_user_or_group_name(kind: &'static str, name: &str) -> Result<(), SubjectError> {
    let malformed = name.is_empty()
        || name.len() > 253
        || name.chars().any(char::is_control)
        || name.trim() != name;
    if malformed {
        return Err(SubjectError::MalformedName {
            kind,
            name: name.to_owned(),
        });
    }
    // system: users and groups are the cluster's own identities
    // (system:masters, system:authenticated, system:serviceaccounts...);
    // binding them from a profile would be privilege escalation.
    if name.starts_with(SYSTEM_PREFIX) {
        return Err(SubjectError::SystemIdentity {
            kind,
            name: name.to_owned(),
        });
    }
    Ok(())
}

/// Whether `name` is a DNS-1123 label: at most 63 lowercase letters, digits
/// and '-', starting and ending with a letter or digit.
pub fn is_dns1123_label(name: &str) -> bool {
    name.len() <= 63
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && name
            .bytes()
            .last()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Whether `name` is a DNS-1123 subdomain: at most 253 characters of
/// dot-separated DNS-1123 labels.
pub fn is_dns1123_subdomain(name: &str) -> bool {
    name.len() <= 253 && name.split('.').all(is_dns1123_label)
}

// ---------------------------------------------------------------------------
// Velero Schedule

fn render_backup_schedule(context: &RenderContext, spec: &BackupSpec) -> Schedule {
    let namespace = &context.namespace.name;
    let mut labels = context.labels();
    labels.insert(NAMESPACE_LABEL.to_owned(), namespace.clone());
    // Velero copies these onto every Backup. The managed-by label is left
    // out: Backups are not baseliner's to prune, and GitOps tools must not
    // take them for tracked objects.
    let backup_labels = BTreeMap::from([
        (PROFILE_LABEL.to_owned(), context.profile_name.to_owned()),
        (NAMESPACE_LABEL.to_owned(), namespace.clone()),
    ]);
    Schedule {
        metadata: context.metadata_in(
            schedule_name(context.profile_name, namespace),
            spec.velero_namespace.clone(),
            labels,
        ),
        spec: ScheduleSpec {
            schedule: spec.schedule.clone(),
            template: BackupTemplate {
                included_namespaces: Some(vec![namespace.clone()]),
                ttl: Some(spec.ttl.clone()),
                storage_location: spec.storage_location.clone(),
                snapshot_volumes: spec.snapshot_volumes,
                metadata: Some(BackupTemplateMetadata {
                    labels: backup_labels,
                }),
            },
            // Backups must survive the Schedule being pruned.
            use_owner_references_in_backup: Some(false),
        },
    }
}

/// Name of the Velero Schedule for one (profile, namespace): a readable
/// `<profile>-<namespace>` prefix, cut to fit, plus `-` and 10 hex digits of
/// a stable hash of both names.
///
/// The hash is always there: `<profile>-<namespace>` alone is ambiguous
/// (`team-a` + `prod` and `team` + `a-prod` would share a Schedule), and all
/// Schedules live in the one Velero namespace. The result is a DNS-1123 label
/// of at most 63 characters, as Velero copies it into a label value.
pub fn schedule_name(profile: &str, namespace: &str) -> String {
    // '/' appears in neither name, so the hashed input is unambiguous.
    let hash = fnv1a_64(format!("{profile}/{namespace}").as_bytes());
    let hash = format!("{hash:016x}");
    let readable: String = format!("{profile}-{namespace}")
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .take(MAX_SCHEDULE_NAME_LEN - SCHEDULE_HASH_LEN - 1)
        .collect();
    let readable = readable.trim_matches('-');
    if readable.is_empty() {
        hash[..SCHEDULE_HASH_LEN].to_owned()
    } else {
        format!("{readable}-{}", &hash[..SCHEDULE_HASH_LEN])
    }
}

/// 64-bit FNV-1a: tiny, well known and stable across Rust versions, unlike
/// the standard library's `DefaultHasher`.
fn fnv1a_64(bytes: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.iter().fold(OFFSET_BASIS, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(PRIME)
    })
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    const UID: &str = "7c9e6679-7425-40de-944b-e07fc1f90ae7";

    /// A profile named `prod` without a uid (as read from a file), with
    /// `spec` given as YAML indented by eight spaces.
    fn profile(spec: &str) -> ProductionProfile {
        let yaml = format!(
            "apiVersion: baseliner.dev/v1alpha1\nkind: ProductionProfile\nmetadata:\n  name: prod\nspec:\n{spec}"
        );
        serde_saphyr::from_str(&yaml).unwrap_or_else(|error| panic!("fixture: {error}\n{yaml}"))
    }

    fn profile_with_uid(spec: &str) -> ProductionProfile {
        let mut profile = profile(spec);
        profile.metadata.uid = Some(UID.to_owned());
        profile
    }

    fn namespace(name: &str, labels: &[(&str, &str)]) -> NamespaceInfo {
        NamespaceInfo {
            name: name.to_owned(),
            labels: labels
                .iter()
                .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
                .collect(),
        }
    }

    fn render(profile: &ProductionProfile, namespace: &NamespaceInfo) -> RenderedNamespace {
        render_namespace(profile, namespace, &RenderOptions::default())
    }

    /// The rendered object named `name`, as JSON.
    fn object(rendered: &RenderedNamespace, name: &str) -> Value {
        rendered
            .objects
            .iter()
            .find(|object| object.name() == name)
            .unwrap_or_else(|| panic!("no object {name} in {:?}", names(rendered)))
            .to_json()
    }

    fn names(rendered: &RenderedNamespace) -> Vec<String> {
        rendered
            .objects
            .iter()
            .map(|object| format!("{}/{}", object.kind(), object.name()))
            .collect()
    }

    fn metadata(name: &str) -> Value {
        json!({
            "name": name,
            "namespace": "shop",
            "labels": {
                "app.kubernetes.io/managed-by": "baseliner",
                "baseliner.dev/profile": "prod",
            },
        })
    }

    const SELECT_ALL: &str = "  namespaces:\n    selector: {}\n";

    #[test]
    fn network_policies_render_exactly() {
        let spec = format!(
            "{SELECT_ALL}  networkPolicy:
    allowDNS: true
    allowSameNamespace: true
    allowIngressFrom:
      - name: ingress
        namespaceSelector:
          matchLabels: {{role: ingress}}
        namespaces: [monitoring, ingress-nginx, monitoring]
        podSelector:
          matchLabels: {{app: proxy}}
        ports: [{{port: 8080}}, {{port: 9000, endPort: 9100, protocol: UDP}}]
      - name: all-from-ops
        namespaces: [ops]
    allowEgressTo:
      - name: db
        cidrs: [10.20.0.0/16, 192.168.1.7/24, 2001:DB8::/32]
        except: [10.20.5.0/24, 172.16.0.0/12, 2001:db8:ff::/48]
        ports: [{{port: 5432}}]
"
        );
        let rendered = render(&profile(&spec), &namespace("shop", &[]));
        assert_eq!(rendered.problems, vec![]);
        let cases: Vec<(&str, Value)> = vec![
            (
                "baseliner-default-deny",
                json!({
                    "podSelector": {},
                    "policyTypes": ["Ingress", "Egress"],
                }),
            ),
            (
                "baseliner-allow-dns",
                json!({
                    "podSelector": {},
                    "policyTypes": ["Egress"],
                    "egress": [{
                        "to": [{
                            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                        }],
                        "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}],
                    }],
                }),
            ),
            (
                "baseliner-allow-same-namespace",
                json!({
                    "podSelector": {},
                    "policyTypes": ["Ingress", "Egress"],
                    "ingress": [{"from": [{"podSelector": {}}]}],
                    "egress": [{"to": [{"podSelector": {}}]}],
                }),
            ),
            (
                "baseliner-allow-from-ingress",
                json!({
                    "podSelector": {},
                    "policyTypes": ["Ingress"],
                    "ingress": [{
                        "from": [
                            {
                                "namespaceSelector": {"matchLabels": {"role": "ingress"}},
                                "podSelector": {"matchLabels": {"app": "proxy"}},
                            },
                            {
                                "namespaceSelector": {"matchExpressions": [{
                                    "key": "kubernetes.io/metadata.name",
                                    "operator": "In",
                                    "values": ["ingress-nginx", "monitoring"],
                                }]},
                                "podSelector": {"matchLabels": {"app": "proxy"}},
                            },
                        ],
                        "ports": [
                            {"port": 8080, "protocol": "TCP"},
                            {"port": 9000, "endPort": 9100, "protocol": "UDP"},
                        ],
                    }],
                }),
            ),
            (
                "baseliner-allow-from-all-from-ops",
                json!({
                    "podSelector": {},
                    "policyTypes": ["Ingress"],
                    "ingress": [{
                        "from": [{
                            "namespaceSelector": {"matchExpressions": [{
                                "key": "kubernetes.io/metadata.name",
                                "operator": "In",
                                "values": ["ops"],
                            }]},
                        }],
                    }],
                }),
            ),
            (
                "baseliner-allow-to-db",
                json!({
                    "podSelector": {},
                    "policyTypes": ["Egress"],
                    "egress": [{
                        "to": [
                            {"ipBlock": {"cidr": "10.20.0.0/16", "except": ["10.20.5.0/24"]}},
                            {"ipBlock": {"cidr": "192.168.1.0/24"}},
                            {"ipBlock": {"cidr": "2001:db8::/32", "except": ["2001:db8:ff::/48"]}},
                        ],
                        "ports": [{"port": 5432, "protocol": "TCP"}],
                    }],
                }),
            ),
        ];
        assert_eq!(
            rendered.objects.len(),
            cases.len(),
            "{:?}",
            names(&rendered)
        );
        for (name, spec) in cases {
            assert_eq!(
                object(&rendered, name),
                json!({
                    "apiVersion": "networking.k8s.io/v1",
                    "kind": "NetworkPolicy",
                    "metadata": metadata(name),
                    "spec": spec,
                }),
                "{name}"
            );
        }
    }

    #[test]
    fn dns_target_can_be_overridden() {
        let spec = format!(
            "{SELECT_ALL}  networkPolicy:
    defaultDeny: false
    allowDNS: true
    dns: {{namespace: dns-system, podLabels: {{app: coredns}}}}
"
        );
        let rendered = render(&profile(&spec), &namespace("shop", &[]));
        assert_eq!(names(&rendered), vec!["NetworkPolicy/baseliner-allow-dns"]);
        assert_eq!(
            object(&rendered, ALLOW_DNS_POLICY)["spec"]["egress"][0]["to"],
            json!([{
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "dns-system"}},
                "podSelector": {"matchLabels": {"app": "coredns"}},
            }])
        );
    }

    #[test]
    fn network_policy_defaults_render_only_default_deny() {
        let rendered = render(
            &profile(&format!("{SELECT_ALL}  networkPolicy: {{}}\n")),
            &namespace("shop", &[]),
        );
        assert_eq!(
            names(&rendered),
            vec!["NetworkPolicy/baseliner-default-deny"]
        );
    }

    /// The reason and field of the one problem a case expects.
    type ExpectedProblem = (&'static str, &'static str);

    #[test]
    fn egress_allow_cases() {
        let cases: Vec<(&str, &str, Result<Value, ExpectedProblem>)> = vec![
            (
                "except covering a whole cidr removes that cidr",
                "cidrs: [10.0.0.0/8, 192.168.0.0/16], except: [10.0.0.0/8]",
                Ok(json!([{"ipBlock": {"cidr": "192.168.0.0/16"}}])),
            ),
            (
                "except wider than a cidr removes that cidr",
                "cidrs: [10.1.0.0/16, 192.168.0.0/16], except: [10.0.0.0/8]",
                Ok(json!([{"ipBlock": {"cidr": "192.168.0.0/16"}}])),
            ),
            (
                "except applies to every cidr it lies in",
                "cidrs: [10.0.0.0/8, 10.1.0.0/16], except: [10.1.2.0/24, 0.0.0.0/32]",
                Ok(json!([
                    {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.2.0/24"]}},
                    {"ipBlock": {"cidr": "10.1.0.0/16", "except": ["10.1.2.0/24"]}},
                ])),
            ),
            (
                "the whole internet with private ranges excepted",
                "cidrs: [0.0.0.0/0], except: [10.0.0.0/8, 172.16.0.0/12]",
                Ok(
                    json!([{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8", "172.16.0.0/12"]}}]),
                ),
            ),
            (
                "an IPv6 except never applies to an IPv4 cidr",
                "cidrs: [0.0.0.0/0], except: ['::/0']",
                Ok(json!([{"ipBlock": {"cidr": "0.0.0.0/0"}}])),
            ),
            (
                "nothing left to allow",
                "cidrs: [10.1.0.0/16], except: [10.0.0.0/8]",
                Err((
                    "EgressAllowsNothing",
                    "spec.networkPolicy.allowEgressTo[0].except",
                )),
            ),
            (
                "cidr without prefix",
                "cidrs: [10.0.0.0/8, 10.0.0.1]",
                Err((
                    "InvalidCIDR",
                    "spec.networkPolicy.allowEgressTo[0].cidrs[1]",
                )),
            ),
            (
                "prefix too long",
                "cidrs: [10.0.0.0/8], except: [10.0.0.0/33]",
                Err((
                    "InvalidCIDR",
                    "spec.networkPolicy.allowEgressTo[0].except[0]",
                )),
            ),
        ];
        for (case, allow, expected) in cases {
            let spec = format!(
                "{SELECT_ALL}  networkPolicy:\n    defaultDeny: false\n    allowEgressTo:\n      - {{name: out, {allow}}}\n"
            );
            let rendered = render(&profile(&spec), &namespace("shop", &[]));
            match expected {
                Ok(peers) => {
                    assert_eq!(rendered.problems, vec![], "{case}");
                    assert_eq!(
                        object(&rendered, "baseliner-allow-to-out")["spec"]["egress"][0]["to"],
                        peers,
                        "{case}"
                    );
                }
                Err((reason, field)) => {
                    assert_eq!(rendered.objects, vec![], "{case}");
                    assert_eq!(rendered.problems.len(), 1, "{case}");
                    assert_eq!(rendered.problems[0].reason, reason, "{case}");
                    assert_eq!(rendered.problems[0].field, field, "{case}");
                }
            }
        }
    }

    #[test]
    fn limit_range_and_resource_quota_carry_quantities() {
        let spec = format!(
            "{SELECT_ALL}  limitRange:
    defaultRequest: {{cpu: 100m, memory: 128Mi}}
    default: {{cpu: 500m, memory: 512Mi}}
    min: {{cpu: 10m}}
    max: {{memory: 2Gi, ephemeral-storage: 4Gi}}
  resourceQuota:
    hard: {{requests.cpu: '8', limits.memory: 16Gi, count/services.loadbalancers: '0'}}
"
        );
        let rendered = render(&profile(&spec), &namespace("shop", &[]));
        assert_eq!(
            object(&rendered, LIMIT_RANGE_NAME),
            json!({
                "apiVersion": "v1",
                "kind": "LimitRange",
                "metadata": metadata(LIMIT_RANGE_NAME),
                "spec": {"limits": [{
                    "type": "Container",
                    "defaultRequest": {"cpu": "100m", "memory": "128Mi"},
                    "default": {"cpu": "500m", "memory": "512Mi"},
                    "min": {"cpu": "10m"},
                    "max": {"memory": "2Gi", "ephemeral-storage": "4Gi"},
                }]},
            })
        );
        assert_eq!(
            object(&rendered, RESOURCE_QUOTA_NAME),
            json!({
                "apiVersion": "v1",
                "kind": "ResourceQuota",
                "metadata": metadata(RESOURCE_QUOTA_NAME),
                "spec": {"hard": {
                    "requests.cpu": "8",
                    "limits.memory": "16Gi",
                    "count/services.loadbalancers": "0",
                }},
            })
        );
    }

    #[test]
    fn limit_range_leaves_unset_bounds_out() {
        let spec = format!("{SELECT_ALL}  limitRange:\n    max: {{cpu: '2'}}\n");
        let rendered = render(&profile(&spec), &namespace("shop", &[]));
        assert_eq!(
            object(&rendered, LIMIT_RANGE_NAME)["spec"],
            json!({"limits": [{"type": "Container", "max": {"cpu": "2"}}]})
        );
    }

    #[test]
    fn pod_security_labels_cases() {
        let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
            (
                "{enforce: restricted}",
                vec![
                    ("pod-security.kubernetes.io/enforce", "restricted"),
                    ("pod-security.kubernetes.io/enforce-version", "latest"),
                ],
            ),
            (
                "{enforce: baseline, enforceVersion: v1.30, warn: restricted, audit: privileged, auditVersion: v1.29}",
                vec![
                    ("pod-security.kubernetes.io/audit", "privileged"),
                    ("pod-security.kubernetes.io/audit-version", "v1.29"),
                    ("pod-security.kubernetes.io/enforce", "baseline"),
                    ("pod-security.kubernetes.io/enforce-version", "v1.30"),
                    ("pod-security.kubernetes.io/warn", "restricted"),
                    ("pod-security.kubernetes.io/warn-version", "latest"),
                ],
            ),
            // A version without its level is not set.
            (
                "{warn: baseline, enforceVersion: v1.30}",
                vec![
                    ("pod-security.kubernetes.io/warn", "baseline"),
                    ("pod-security.kubernetes.io/warn-version", "latest"),
                ],
            ),
        ];
        for (pod_security, expected) in cases {
            let spec = format!("{SELECT_ALL}  podSecurity: {pod_security}\n");
            let rendered = render(&profile(&spec), &namespace("shop", &[]));
            let expected: BTreeMap<String, String> = expected
                .into_iter()
                .map(|(key, value)| (key.to_owned(), value.to_owned()))
                .collect();
            assert_eq!(rendered.namespace_labels, expected, "{pod_security}");
            assert!(
                expected
                    .keys()
                    .all(|key| POD_SECURITY_LABELS.contains(&key.as_str())),
                "{pod_security}"
            );
            assert_eq!(rendered.objects, vec![], "{pod_security}");
        }
        let without = render(&profile(SELECT_ALL), &namespace("shop", &[]));
        assert_eq!(without.namespace_labels, BTreeMap::new());
    }

    fn subject(yaml: &str) -> SubjectSpec {
        serde_saphyr::from_str(yaml).unwrap_or_else(|error| panic!("subject {yaml}: {error}"))
    }

    #[test]
    fn subject_cases() {
        let shop = namespace(
            "shop",
            &[
                ("team", "payments"),
                ("example.com/cost-center", "cc-42"),
                ("blank", ""),
            ],
        );
        let group = |name: &str| Subject {
            api_group: Some(RBAC_GROUP.to_owned()),
            kind: "Group".to_owned(),
            name: name.to_owned(),
            namespace: None,
        };
        let service_account = |name: &str, namespace: &str| Subject {
            api_group: None,
            kind: "ServiceAccount".to_owned(),
            name: name.to_owned(),
            namespace: Some(namespace.to_owned()),
        };
        let cases: Vec<(&str, Result<Subject, &str>)> = vec![
            (
                "{kind: Group, name: 'team-{{labels.team}}-viewers'}",
                Ok(group("team-payments-viewers")),
            ),
            (
                "{kind: Group, name: '{{ namespace }}:{{labels.example.com/cost-center}}'}",
                Ok(group("shop:cc-42")),
            ),
            (
                "{kind: User, name: 'alice@example.com'}",
                Ok(Subject {
                    api_group: Some(RBAC_GROUP.to_owned()),
                    kind: "User".to_owned(),
                    name: "alice@example.com".to_owned(),
                    namespace: None,
                }),
            ),
            (
                "{kind: ServiceAccount, name: deployer}",
                Ok(service_account("deployer", "shop")),
            ),
            (
                "{kind: ServiceAccount, name: '{{namespace}}-ci', namespace: 'ci-{{labels.team}}'}",
                Ok(service_account("shop-ci", "ci-payments")),
            ),
            (
                "{kind: Group, name: 'team-{{labels.owner}}'}",
                Err("label `owner` missing on namespace `shop`"),
            ),
            (
                "{kind: Group, name: 'system:masters'}",
                Err(
                    "Group `system:masters` is a system identity; profiles may not bind names starting with `system:`",
                ),
            ),
            (
                "{kind: Group, name: 'system:{{labels.team}}'}",
                Err(
                    "Group `system:payments` is a system identity; profiles may not bind names starting with `system:`",
                ),
            ),
            (
                "{kind: User, name: 'system:serviceaccount:kube-system:default'}",
                Err(
                    "User `system:serviceaccount:kube-system:default` is a system identity; profiles may not bind names starting with `system:`",
                ),
            ),
            (
                "{kind: Group, name: '{{labels.blank}}'}",
                Err(
                    "Group name `` must be 1 to 253 characters without control characters or surrounding whitespace",
                ),
            ),
            (
                "{kind: User, name: ' alice'}",
                Err(
                    "User name ` alice` must be 1 to 253 characters without control characters or surrounding whitespace",
                ),
            ),
            (
                "{kind: User, name: \"al\\tice\"}",
                Err(
                    "User name `al\tice` must be 1 to 253 characters without control characters or surrounding whitespace",
                ),
            ),
            (
                "{kind: ServiceAccount, name: 'Deployer'}",
                Err(
                    "ServiceAccount name `Deployer` is not a DNS-1123 subdomain (lowercase letters, digits, '-' and '.', at most 253 characters)",
                ),
            ),
            (
                "{kind: ServiceAccount, name: 'ci', namespace: 'team.{{labels.team}}'}",
                Err(
                    "ServiceAccount namespace `team.payments` is not a DNS-1123 label (lowercase letters, digits and '-', at most 63 characters)",
                ),
            ),
            (
                "{kind: ServiceAccount, name: 'ci', namespace: '{{labels.nope}}'}",
                Err("label `nope` missing on namespace `shop`"),
            ),
            (
                "{kind: User, name: alice, namespace: shop}",
                Err("namespace applies only to ServiceAccount subjects"),
            ),
            (
                "{kind: Group, name: '{{name}}'}",
                Err("unknown template variable `name`; use {{namespace}} or {{labels.KEY}}"),
            ),
        ];
        for (yaml, expected) in cases {
            let rendered = render_subject(&subject(yaml), &shop).map_err(|error| error.to_string());
            assert_eq!(rendered, expected.map_err(str::to_owned), "{yaml}");
        }
    }

    #[test]
    fn subject_error_fields() {
        let shop = namespace("shop", &[]);
        let cases = [
            ("{kind: Group, name: '{{labels.x}}'}", "name"),
            ("{kind: ServiceAccount, name: 'A'}", "name"),
            (
                "{kind: ServiceAccount, name: a, namespace: '{{labels.x}}'}",
                "namespace",
            ),
            (
                "{kind: ServiceAccount, name: a, namespace: 'A'}",
                "namespace",
            ),
            ("{kind: User, name: a, namespace: a}", "namespace"),
        ];
        for (yaml, field) in cases {
            let error = render_subject(&subject(yaml), &shop).expect_err(yaml);
            assert_eq!(error.field(), field, "{yaml}");
        }
    }

    const ROLE_BINDINGS: &str = "  roleBindings:
    - name: viewers
      clusterRole: view
      subjects:
        - {kind: Group, name: 'team-{{labels.team}}-viewers'}
        - {kind: ServiceAccount, name: monitor, namespace: monitoring}
    - name: root
      clusterRole: cluster-admin
      subjects: [{kind: Group, name: ops}]
    - name: owners
      clusterRole: admin
      subjects:
        - {kind: User, name: alice}
        - {kind: Group, name: 'owners-{{labels.owner}}'}
        - {kind: Group, name: 'system:authenticated'}
";

    #[test]
    fn role_bindings_render_allowed_roles_and_report_the_rest() {
        let spec = format!("{SELECT_ALL}  limitRange: {{max: {{cpu: '2'}}}}\n{ROLE_BINDINGS}");
        let rendered = render(&profile(&spec), &namespace("shop", &[("team", "payments")]));
        assert_eq!(
            names(&rendered),
            vec![
                "LimitRange/baseliner-limits",
                "RoleBinding/baseliner-viewers"
            ]
        );
        assert_eq!(
            object(&rendered, "baseliner-viewers"),
            json!({
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": metadata("baseliner-viewers"),
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
                "subjects": [
                    {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "team-payments-viewers"},
                    {"kind": "ServiceAccount", "name": "monitor", "namespace": "monitoring"},
                ],
            })
        );
        let problems: Vec<(&str, &str, &str)> = rendered
            .problems
            .iter()
            .map(|problem| {
                (
                    problem.reason,
                    problem.field.as_str(),
                    problem.message.as_str(),
                )
            })
            .collect();
        assert_eq!(
            problems,
            vec![
                (
                    "RoleNotAllowed",
                    "spec.roleBindings[1].clusterRole",
                    "ClusterRole `cluster-admin` is not on the operator's allow list (admin, edit, view)",
                ),
                (
                    "InvalidSubject",
                    "spec.roleBindings[2].subjects[1].name",
                    "label `owner` missing on namespace `shop`",
                ),
                (
                    "InvalidSubject",
                    "spec.roleBindings[2].subjects[2].name",
                    "Group `system:authenticated` is a system identity; profiles may not bind names starting with `system:`",
                ),
            ]
        );
    }

    #[test]
    fn allow_list_comes_from_the_options() {
        let spec = format!("{SELECT_ALL}{ROLE_BINDINGS}");
        let options = RenderOptions {
            allowed_cluster_roles: BTreeSet::from(["cluster-admin".to_owned()]),
        };
        let rendered = render_namespace(
            &profile(&spec),
            &namespace("shop", &[("team", "a"), ("owner", "b")]),
            &options,
        );
        assert_eq!(names(&rendered), vec!["RoleBinding/baseliner-root"]);
        let reasons: Vec<(&str, &str)> = rendered
            .problems
            .iter()
            .map(|problem| (problem.reason, problem.field.as_str()))
            .collect();
        assert_eq!(
            reasons,
            vec![
                ("RoleNotAllowed", "spec.roleBindings[0].clusterRole"),
                ("RoleNotAllowed", "spec.roleBindings[2].clusterRole"),
            ]
        );
    }

    const BACKUP: &str = "  backup:
    schedule: '0 2 * * *'
    storageLocation: s3-eu
    snapshotVolumes: false
";

    #[test]
    fn an_unusable_backup_schedule_is_reported_not_written() {
        for (schedule, fragment) in [
            ("0 0 31 2 *", "never fires"),
            ("0 2 * * 7", "out of range 0-6"),
        ] {
            let spec = format!("{SELECT_ALL}  backup: {{schedule: '{schedule}'}}\n");
            let rendered = render(&profile(&spec), &namespace("shop", &[]));
            assert!(
                rendered.objects.is_empty(),
                "{schedule}: {:?}",
                names(&rendered)
            );
            let [problem] = rendered.problems.as_slice() else {
                panic!("{schedule}: {:?}", rendered.problems);
            };
            assert_eq!(problem.reason, reason::INVALID_SCHEDULE);
            assert_eq!(problem.field, "spec.backup.schedule");
            assert!(problem.message.contains(fragment), "{}", problem.message);
        }
    }

    #[test]
    fn velero_schedule_renders_in_the_velero_namespace() {
        let spec = format!("{SELECT_ALL}{BACKUP}");
        let rendered = render(&profile(&spec), &namespace("shop", &[]));
        let name = schedule_name("prod", "shop");
        assert_eq!(
            object(&rendered, &name),
            json!({
                "apiVersion": "velero.io/v1",
                "kind": "Schedule",
                "metadata": {
                    "name": name,
                    "namespace": "velero",
                    "labels": {
                        "app.kubernetes.io/managed-by": "baseliner",
                        "baseliner.dev/profile": "prod",
                        "baseliner.dev/namespace": "shop",
                    },
                },
                "spec": {
                    "schedule": "0 2 * * *",
                    "useOwnerReferencesInBackup": false,
                    "template": {
                        "includedNamespaces": ["shop"],
                        "ttl": "720h",
                        "storageLocation": "s3-eu",
                        "snapshotVolumes": false,
                        "metadata": {"labels": {
                            "baseliner.dev/profile": "prod",
                            "baseliner.dev/namespace": "shop",
                        }},
                    },
                },
            })
        );
        let only_defaults = format!(
            "{SELECT_ALL}  backup: {{schedule: '@daily', veleroNamespace: backups, ttl: 72h30m}}\n"
        );
        let rendered = render(&profile(&only_defaults), &namespace("shop", &[]));
        let schedule = object(&rendered, &name);
        assert_eq!(schedule["metadata"]["namespace"], "backups");
        assert_eq!(
            schedule["spec"]["template"],
            json!({
                "includedNamespaces": ["shop"],
                "ttl": "72h30m",
                "metadata": {"labels": {
                    "baseliner.dev/profile": "prod",
                    "baseliner.dev/namespace": "shop",
                }},
            })
        );
    }

    #[test]
    fn schedule_name_cases() {
        let long_profile = "platform-baseline-for-production-workloads";
        let long_namespace = "payments-settlement-reconciliation-service";
        let longest_namespace = "n".repeat(63);
        let cases: Vec<(&str, &str)> = vec![
            ("prod", "shop"),
            // `<profile>-<namespace>` alone would collide for these two.
            ("team-a", "prod"),
            ("team", "a-prod"),
            // Dots are allowed in profile names but not in the result.
            ("prod.example.com", "shop"),
            (long_profile, long_namespace),
            (long_profile, "payments-settlement-reconciliation-service-2"),
            (long_profile, "payments-settlement-reconciliation-service-3"),
            ("p", &longest_namespace),
        ];
        let mut seen = BTreeSet::new();
        for (profile, namespace) in &cases {
            let name = schedule_name(profile, namespace);
            assert!(is_dns1123_label(&name), "{name} for {profile}/{namespace}");
            assert!(name.len() <= MAX_SCHEDULE_NAME_LEN, "{name}");
            assert!(seen.insert(name.clone()), "{name} is not unique");
            assert_eq!(name, schedule_name(profile, namespace), "stable");
        }
        assert!(schedule_name("prod", "shop").starts_with("prod-shop-"));
        assert_eq!(schedule_name("prod", "shop").len(), "prod-shop-".len() + 10);
        assert!(schedule_name("prod.example.com", "shop").starts_with("prod-example-com-shop-"));
        // Cut to 52 characters, then the dangling '-' is dropped.
        let long = schedule_name(long_profile, long_namespace);
        assert_eq!(long.len(), 62, "{long}");
        assert!(long.starts_with("platform-baseline-for-production-workloads-payments-"));
        let longest = schedule_name("p", &longest_namespace);
        assert_eq!(longest.len(), 63, "{longest}");
    }

    #[test]
    fn schedule_name_is_pinned() {
        // The name is stored in the cluster; a change would orphan every
        // existing Schedule. Pin it to catch accidental changes.
        assert_eq!(fnv1a_64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a_64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a_64(b"foobar"), 0x8594_4171_f739_67e8);
        let hash = format!("{:016x}", fnv1a_64(b"prod/shop"));
        assert_eq!(
            schedule_name("prod", "shop"),
            format!("prod-shop-{}", &hash[..10])
        );
    }

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

    #[test]
    fn dns1123_cases() {
        let labels = [
            ("a", true),
            ("a-1", true),
            ("1a", true),
            (&*"a".repeat(63), true),
            (&*"a".repeat(64), false),
            ("", false),
            ("-a", false),
            ("a-", false),
            ("A", false),
            ("a.b", false),
            ("a_b", false),
        ];
        for (name, expected) in labels {
            assert_eq!(is_dns1123_label(name), expected, "label {name:?}");
        }
        let subdomains = [
            ("a.b-c.d", true),
            ("a", true),
            ("a..b", false),
            (".a", false),
            ("a.", false),
            ("a.B", false),
            (
                &*[
                    "a".repeat(63),
                    "b".repeat(63),
                    "c".repeat(63),
                    "d".repeat(61),
                ]
                .join("."),
                true,
            ),
            (
                &*[
                    "a".repeat(63),
                    "b".repeat(63),
                    "c".repeat(63),
                    "d".repeat(62),
                ]
                .join("."),
                false,
            ),
        ];
        for (name, expected) in subdomains {
            assert_eq!(is_dns1123_subdomain(name), expected, "subdomain {name:?}");
        }
    }

    #[test]
    fn namespace_info_reads_metadata() {
        let metadata = ObjectMeta {
            name: Some("shop".to_owned()),
            labels: Some(BTreeMap::from([("team".to_owned(), "a".to_owned())])),
            ..ObjectMeta::default()
        };
        assert_eq!(
            NamespaceInfo::from_metadata(&metadata),
            namespace("shop", &[("team", "a")])
        );
    }
}
