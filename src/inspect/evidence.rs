//! `baseliner report` and `why`: per namespace and control, whether the
//! baseline is in place, with the evidence (the object, its
//! resourceVersion, in sync or how it differs).
//!
//! The verdicts come from the controller's own plan ([`super::outcome`]):
//! a control is compliant exactly when the operator would find nothing to
//! do for it.

use std::collections::BTreeMap;

use kube::ResourceExt;
use serde::Serialize;

use super::outcome::{FieldChange, NamespaceOutcome, ObjectOutcome};
use crate::api::exception::ProfileException;
use crate::api::{Mode, POD_SECURITY_LABELS, ProductionProfile};
use crate::controller::index::ObjectKey;
use crate::controller::namespace::CachedNamespace;
use crate::controller::plan::{LabelStep, NO_LONGER_DESIRED, Step};
use crate::exception::describe_controls;
use crate::kind::ManagedKind;
use crate::reason::Reason;
use crate::render::{ALLOW_DNS_POLICY, DEFAULT_DENY_POLICY};

/// A control of the baseline, as an auditor asks about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Control {
    /// The default-deny NetworkPolicy.
    NetworkIsolation,
    /// The DNS egress allow.
    DnsAllow,
    /// The other NetworkPolicy allows.
    NetworkAllows,
    /// The LimitRange.
    Limits,
    /// The ResourceQuota.
    Quota,
    /// The Pod Security labels.
    PodSecurity,
    /// The RoleBindings.
    RoleBindings,
    /// The Velero Schedule.
    Backups,
}

impl Control {
    /// Every control, in report order.
    pub const ALL: [Control; 8] = [
        Self::NetworkIsolation,
        Self::DnsAllow,
        Self::NetworkAllows,
        Self::Limits,
        Self::Quota,
        Self::PodSecurity,
        Self::RoleBindings,
        Self::Backups,
    ];

    /// A heading.
    pub fn title(self) -> &'static str {
        match self {
            Self::NetworkIsolation => "network isolation",
            Self::DnsAllow => "DNS allow",
            Self::NetworkAllows => "network allows",
            Self::Limits => "limits",
            Self::Quota => "quota",
            Self::PodSecurity => "Pod Security",
            Self::RoleBindings => "RoleBindings",
            Self::Backups => "backups",
        }
    }

    /// The control an object is part of.
    pub fn of_object(key: &ObjectKey) -> Self {
        match (key.kind, key.name.as_str()) {
            (ManagedKind::NetworkPolicy, DEFAULT_DENY_POLICY) => Self::NetworkIsolation,
            (ManagedKind::NetworkPolicy, ALLOW_DNS_POLICY) => Self::DnsAllow,
            (ManagedKind::NetworkPolicy, _) => Self::NetworkAllows,
            (ManagedKind::LimitRange, _) => Self::Limits,
            (ManagedKind::ResourceQuota, _) => Self::Quota,
            (ManagedKind::RoleBinding, _) => Self::RoleBindings,
            (ManagedKind::Schedule, _) => Self::Backups,
        }
    }

    /// The control a profile field belongs to (for render problems).
    pub fn of_field(field: &str) -> Self {
        let section = field.trim_start_matches("spec.");
        if section.starts_with("networkPolicy.dns") || section.starts_with("networkPolicy.allowDNS")
        {
            Self::DnsAllow
        } else if section.starts_with("networkPolicy.allow") {
            Self::NetworkAllows
        } else if section.starts_with("networkPolicy") {
            Self::NetworkIsolation
        } else if section.starts_with("limitRange") {
            Self::Limits
        } else if section.starts_with("resourceQuota") {
            Self::Quota
        } else if section.starts_with("podSecurity") {
            Self::PodSecurity
        } else if section.starts_with("roleBindings") {
            Self::RoleBindings
        } else {
            Self::Backups
        }
    }
}

/// A verdict, worst last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Status {
    /// The profile does not ask for it.
    NotRequired,
    /// In place, as the profile wants it.
    Compliant,
    /// Waived or replaced by an exception in force.
    Excepted,
    /// A grant held back while the author-rights policy is not in force.
    Held,
    /// There, but not as the profile wants it (or there and no longer wanted).
    Drifted,
    /// Not there.
    Missing,
    /// Cannot be put in place (a render problem, Velero not installed).
    Failed,
}

impl Status {
    /// A word for tables.
    pub fn word(self) -> &'static str {
        match self {
            Self::NotRequired => "-",
            Self::Compliant => "ok",
            Self::Excepted => "excepted",
            Self::Held => "held",
            Self::Drifted => "drifted",
            Self::Missing => "missing",
            Self::Failed => "failed",
        }
    }

    /// How a display shows it: `good`, `partial` (there, but not as
    /// wanted), `bad` or `none` (not required).
    pub fn tone(self) -> &'static str {
        match self {
            Self::NotRequired => "none",
            Self::Compliant => "good",
            Self::Excepted => "excepted",
            Self::Held | Self::Drifted => "partial",
            Self::Missing | Self::Failed => "bad",
        }
    }

    /// Whether it counts as compliant (an exception is compliant by
    /// exception, and counted apart).
    pub fn is_compliant(self) -> bool {
        matches!(self, Self::NotRequired | Self::Compliant | Self::Excepted)
    }
}

/// One piece of evidence: an object and what was found.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Evidence {
    /// `NetworkPolicy`, …, or `Namespace` for Pod Security labels.
    pub kind: String,
    pub namespace: String,
    pub name: String,
    /// As listed; `None` when the object does not exist.
    pub resource_version: Option<String>,
    pub status: Status,
    /// In sync, or how it differs.
    pub detail: String,
}

/// One control of one namespace.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ControlEvidence {
    pub control: Control,
    pub status: Status,
    pub evidence: Vec<Evidence>,
}

/// One namespace's controls.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceEvidence {
    pub namespace: String,
    /// Profiles that select it too and lose.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<String>,
    /// Every control in place (some perhaps by exception).
    pub compliant: bool,
    /// Compliant only because exceptions waive or replace controls.
    pub excepted: bool,
    /// The exceptions in force here.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exceptions: Vec<ExceptionView>,
    pub controls: Vec<ControlEvidence>,
}

/// An exception in force, as an auditor reads it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExceptionView {
    pub name: String,
    /// What it waives or replaces, in words.
    pub controls: Vec<String>,
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
    /// RFC 3339.
    pub expires: String,
}

impl ExceptionView {
    pub fn of(exception: &ProfileException) -> Self {
        Self {
            name: exception.name_any(),
            controls: describe_controls(&exception.spec),
            reason: exception.spec.reason.clone(),
            ticket: exception.spec.ticket.clone(),
            expires: exception.spec.expires.0.to_string(),
        }
    }

    /// `reason (ticket), until T`.
    pub fn because(&self) -> String {
        match &self.ticket {
            Some(ticket) => format!("{} ({ticket}), until {}", self.reason, self.expires),
            None => format!("{}, until {}", self.reason, self.expires),
        }
    }
}

/// The controls `exception` waives or replaces.
fn excepted_controls(exception: &ProfileException) -> Vec<Control> {
    let waive = &exception.spec.waive;
    let replaces_quota = exception
        .spec
        .replace
        .as_ref()
        .is_some_and(|r| r.resource_quota.is_some());
    [
        (waive.default_deny, Control::NetworkIsolation),
        (waive.allow_dns, Control::DnsAllow),
        (
            waive.allow_same_namespace
                || !waive.allow_ingress_from.is_empty()
                || !waive.allow_egress_to.is_empty(),
            Control::NetworkAllows,
        ),
        (waive.limit_range, Control::Limits),
        (waive.resource_quota || replaces_quota, Control::Quota),
        (waive.pod_security, Control::PodSecurity),
        (!waive.role_bindings.is_empty(), Control::RoleBindings),
        (waive.backup, Control::Backups),
    ]
    .into_iter()
    .filter_map(|(on, control)| on.then_some(control))
    .collect()
}

/// The evidence of one owned namespace.
pub fn namespace_evidence(
    outcome: &NamespaceOutcome,
    namespace: &CachedNamespace,
    profile: &ProductionProfile,
) -> NamespaceEvidence {
    let mut by_control: BTreeMap<Control, Vec<Evidence>> = BTreeMap::new();
    for object in &outcome.objects {
        by_control
            .entry(Control::of_object(&object.key))
            .or_default()
            .push(object_evidence(object));
    }
    if let Some(evidence) = label_evidence(outcome, namespace, profile) {
        by_control
            .entry(Control::PodSecurity)
            .or_default()
            .push(evidence);
    }
    for problem in &outcome.plan.render_problems {
        by_control
            .entry(Control::of_field(&problem.field))
            .or_default()
            .push(Evidence {
                kind: "ProductionProfile".to_owned(),
                namespace: String::new(),
                name: profile.name_any(),
                resource_version: profile.resource_version(),
                status: Status::Failed,
                detail: format!("{}: {}", problem.field, problem.message),
            });
    }
    for exception in &outcome.plan.exceptions.exceptions {
        let view = ExceptionView::of(exception);
        for control in excepted_controls(exception) {
            by_control.entry(control).or_default().push(Evidence {
                kind: "ProfileException".to_owned(),
                namespace: String::new(),
                name: view.name.clone(),
                resource_version: exception.resource_version(),
                status: Status::Excepted,
                detail: format!("{}: {}", view.controls.join(", "), view.because()),
            });
        }
    }
    for problem in &outcome.plan.problems {
        if problem.reason == Reason::BackupsUnavailable {
            by_control
                .entry(Control::Backups)
                .or_default()
                .push(Evidence {
                    kind: "Schedule".to_owned(),
                    namespace: String::new(),
                    name: String::new(),
                    resource_version: None,
                    status: Status::Failed,
                    detail: problem.message.clone(),
                });
        }
    }
    let controls: Vec<ControlEvidence> = Control::ALL
        .into_iter()
        .map(|control| {
            let evidence = by_control.remove(&control).unwrap_or_default();
            let status = evidence
                .iter()
                .map(|e| e.status)
                .max()
                .unwrap_or(Status::NotRequired);
            ControlEvidence {
                control,
                status,
                evidence,
            }
        })
        .collect();
    let compliant = controls.iter().all(|c| c.status.is_compliant());
    NamespaceEvidence {
        namespace: outcome.plan.namespace.clone(),
        conflicts: outcome.plan.conflicts.clone(),
        compliant,
        excepted: compliant && controls.iter().any(|c| c.status == Status::Excepted),
        exceptions: outcome
            .plan
            .exceptions
            .exceptions
            .iter()
            .map(|e| ExceptionView::of(e))
            .collect(),
        controls,
    }
}

fn object_evidence(object: &ObjectOutcome) -> Evidence {
    let (status, detail) = match &object.step {
        Step::InSync | Step::NeedsRead => (Status::Compliant, "in sync".to_owned()),
        Step::Create => (Status::Missing, "missing".to_owned()),
        Step::Drifted(what) if what == "missing" => (Status::Missing, "missing".to_owned()),
        Step::Prune | Step::Orphan => (Status::Drifted, NO_LONGER_DESIRED.to_owned()),
        Step::Drifted(what) if what == NO_LONGER_DESIRED => (Status::Drifted, what.clone()),
        Step::Heal | Step::Replace | Step::Drifted(_) => {
            (Status::Drifted, describe_changes(&object.changes))
        }
        Step::Held(what) => (Status::Held, format!("not written: {what}")),
    };
    Evidence {
        kind: object.key.kind.as_str().to_owned(),
        namespace: object.key.namespace.clone(),
        name: object.key.name.clone(),
        resource_version: object.resource_version.clone(),
        status,
        detail,
    }
}

fn label_evidence(
    outcome: &NamespaceOutcome,
    namespace: &CachedNamespace,
    profile: &ProductionProfile,
) -> Option<Evidence> {
    let required = profile.spec.pod_security.is_some();
    let labels = &outcome.labels;
    let (status, detail) = match &labels.step {
        LabelStep::InSync if !required => return None,
        LabelStep::InSync => {
            let present: Vec<String> = POD_SECURITY_LABELS
                .iter()
                .filter_map(|key| Some(format!("{key}={}", namespace.label(key)?)))
                .collect();
            (Status::Compliant, present.join(", "))
        }
        LabelStep::Apply { .. } | LabelStep::Release { .. } => {
            let mut parts: Vec<String> = labels
                .set
                .iter()
                .map(|(k, v)| match namespace.label(k) {
                    Some(have) => format!("{k}: {have} (want {v})"),
                    None => format!("{k}: missing (want {v})"),
                })
                .collect();
            parts.extend(
                labels
                    .remove
                    .iter()
                    .map(|k| format!("{k}: no longer wanted")),
            );
            if parts.is_empty() {
                parts.push("baseliner's markers differ".to_owned());
            }
            (Status::Drifted, parts.join(", "))
        }
        LabelStep::Drifted(what) => (Status::Drifted, what.clone()),
        LabelStep::Held(what) => (Status::Held, format!("not written: {what}")),
    };
    Some(Evidence {
        kind: "Namespace".to_owned(),
        namespace: String::new(),
        name: outcome.plan.namespace.clone(),
        resource_version: namespace.resource_version(),
        status,
        detail,
    })
}

/// `spec.x: 1 → 2; spec.y: absent → 3`.
pub fn describe_changes(changes: &[FieldChange]) -> String {
    if changes.is_empty() {
        return "differs".to_owned();
    }
    changes
        .iter()
        .map(|change| {
            let show = |value: &Option<serde_json::Value>| match value {
                None => "absent".to_owned(),
                Some(value) => value.to_string(),
            };
            format!(
                "{}: {} → {}",
                change.path,
                show(&change.before),
                show(&change.after)
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Counts of one control over a profile's namespaces.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ControlCounts {
    pub compliant: usize,
    pub excepted: usize,
    pub not_compliant: usize,
    pub not_required: usize,
}

/// One profile's part of the report.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProfileEvidence {
    pub name: String,
    pub mode: Mode,
    pub priority: i32,
    /// Compliant with no exception in force.
    pub compliant_namespaces: usize,
    /// Compliant because exceptions waive or replace controls.
    pub excepted_namespaces: usize,
    pub totals: BTreeMap<Control, ControlCounts>,
    pub namespaces: Vec<NamespaceEvidence>,
}

/// The report: every profile and the namespaces it owns.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ComplianceReport {
    /// When the cluster was read (RFC 3339).
    pub generated_at: String,
    pub profiles: Vec<ProfileEvidence>,
    /// Namespaces no profile owns.
    pub unowned_namespaces: usize,
}

/// Groups namespace evidence by owning profile.
pub fn compliance_report(
    generated_at: String,
    profiles: &[ProductionProfile],
    owned: Vec<(String, NamespaceEvidence)>,
    unowned_namespaces: usize,
) -> ComplianceReport {
    let mut by_profile: BTreeMap<String, Vec<NamespaceEvidence>> = BTreeMap::new();
    for (profile, evidence) in owned {
        by_profile.entry(profile).or_default().push(evidence);
    }
    let mut sorted: Vec<&ProductionProfile> = profiles.iter().collect();
    sorted.sort_by_key(|p| p.name_any());
    let profiles = sorted
        .into_iter()
        .map(|profile| {
            let namespaces = by_profile.remove(&profile.name_any()).unwrap_or_default();
            let mut totals: BTreeMap<Control, ControlCounts> = Control::ALL
                .into_iter()
                .map(|c| (c, ControlCounts::default()))
                .collect();
            for namespace in &namespaces {
                for control in &namespace.controls {
                    let counts = totals.entry(control.control).or_default();
                    match control.status {
                        Status::NotRequired => counts.not_required += 1,
                        Status::Compliant => counts.compliant += 1,
                        Status::Excepted => counts.excepted += 1,
                        _ => counts.not_compliant += 1,
                    }
                }
            }
            ProfileEvidence {
                name: profile.name_any(),
                mode: profile.spec.mode,
                priority: profile.spec.priority,
                compliant_namespaces: namespaces
                    .iter()
                    .filter(|n| n.compliant && !n.excepted)
                    .count(),
                excepted_namespaces: namespaces.iter().filter(|n| n.excepted).count(),
                totals,
                namespaces,
            }
        })
        .collect();
    ComplianceReport {
        generated_at,
        profiles,
        unowned_namespaces,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::{LIMIT_RANGE_NAME, RESOURCE_QUOTA_NAME};

    #[test]
    fn objects_and_fields_map_to_their_controls() {
        let key = |kind, name: &str| ObjectKey {
            kind,
            namespace: "team".into(),
            name: name.into(),
        };
        assert_eq!(
            Control::of_object(&key(ManagedKind::NetworkPolicy, DEFAULT_DENY_POLICY)),
            Control::NetworkIsolation
        );
        assert_eq!(
            Control::of_object(&key(ManagedKind::NetworkPolicy, ALLOW_DNS_POLICY)),
            Control::DnsAllow
        );
        assert_eq!(
            Control::of_object(&key(
                ManagedKind::NetworkPolicy,
                "baseliner-allow-from-ingress"
            )),
            Control::NetworkAllows
        );
        assert_eq!(
            Control::of_object(&key(ManagedKind::LimitRange, LIMIT_RANGE_NAME)),
            Control::Limits
        );
        assert_eq!(
            Control::of_object(&key(ManagedKind::ResourceQuota, RESOURCE_QUOTA_NAME)),
            Control::Quota
        );
        assert_eq!(
            Control::of_field("spec.roleBindings[1].clusterRole"),
            Control::RoleBindings
        );
        assert_eq!(Control::of_field("spec.backup.schedule"), Control::Backups);
        assert_eq!(
            Control::of_field("spec.networkPolicy.dns.namespace"),
            Control::DnsAllow
        );
    }

    #[test]
    fn the_worst_verdict_wins() {
        let mut statuses = [
            Status::Compliant,
            Status::Missing,
            Status::Drifted,
            Status::NotRequired,
        ];
        statuses.sort();
        assert_eq!(statuses.last(), Some(&Status::Missing));
        assert!(
            Status::Excepted > Status::Compliant && Status::Excepted < Status::Held,
            "an exception shows over what is in sync, a problem over an exception"
        );
        assert!(Status::Excepted.is_compliant());
        assert!(Status::NotRequired.is_compliant() && !Status::Held.is_compliant());
    }
}
