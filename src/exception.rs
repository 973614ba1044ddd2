//! What exceptions do, decided without the API server: whether one is in
//! force ([`assess`]), which in force cover a namespace ([`covering`]), and
//! the profile as it applies there while they do ([`waived_spec`]).
//!
//! A waived control is dropped from the profile for that namespace, so the
//! plan treats it exactly as a section removed from the profile: the object
//! is pruned under the profile's `deletionPolicy` (Delete removes it, Orphan
//! leaves it in place, unmanaged), and Pod Security labels baseliner set are
//! given up. A quota replacement is applied like any profile change. When
//! the exception ends, the next reconcile (scheduled for that moment) puts
//! the control back.
//!
//! An exception with any problem (its profile missing, a control the
//! profile does not have, an expiry too far out) is not in force at all:
//! when in doubt, the control stays enforced.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;

use crate::api::exception::{ExceptionProblem, ProfileException, ProfileExceptionSpec};
use crate::api::{ProductionProfile, ProductionProfileSpec};
use crate::namespace::NamespaceInfo;
use crate::reason::Reason;
use crate::selection::label_selector_matches;

/// The administrator's bounds on exceptions (`baseliner run` flags).
#[derive(Clone, Debug, PartialEq)]
pub struct ExceptionSettings {
    /// Longest an exception may run, from its creation to its expiry.
    pub max_days: u32,
    /// How long before its expiry an exception counts as expiring soon (an
    /// Event and a metric warn).
    pub warn_before: SignedDuration,
}

impl Default for ExceptionSettings {
    fn default() -> Self {
        Self {
            max_days: 90,
            warn_before: SignedDuration::from_hours(72),
        }
    }
}

/// Where an exception stands at a moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    /// It applies.
    InForce,
    /// It applies, and ends within the warning time.
    ExpiringSoon,
    /// It has ended; the controls are enforced.
    Expired,
    /// It does not apply, for these reasons.
    Invalid(Vec<ExceptionProblem>),
}

impl Phase {
    /// Whether the waiver applies.
    pub fn in_force(&self) -> bool {
        matches!(self, Self::InForce | Self::ExpiringSoon)
    }

    /// The condition reason that names the phase (the first problem's kind
    /// for an invalid exception).
    pub fn reason(&self) -> Reason {
        match self {
            Self::InForce => Reason::InForce,
            Self::ExpiringSoon => Reason::ExpiringSoon,
            Self::Expired => Reason::Expired,
            Self::Invalid(problems) => match problems.first().map(|p| p.field.as_str()) {
                Some("spec.profile") => Reason::ProfileNotFound,
                Some("spec.expires") => Reason::ExpiryTooFar,
                _ => Reason::ControlNotInProfile,
            },
        }
    }
}

/// An exception's phase now, and when it next changes by itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assessment {
    pub phase: Phase,
    /// The next moment the phase changes with no one doing anything (the
    /// start of the warning time, the expiry); `None` once expired.
    pub next_change: Option<Timestamp>,
}

/// Where `exception` stands at `now`, against its profile (`None` when no
/// profile of that name exists).
pub fn assess(
    exception: &ProfileException,
    profile: Option<&ProductionProfile>,
    now: Timestamp,
    settings: &ExceptionSettings,
) -> Assessment {
    let expires = exception.spec.expires.0;
    if now >= expires {
        return Assessment {
            phase: Phase::Expired,
            next_change: None,
        };
    }
    let created = exception
        .metadata
        .creation_timestamp
        .as_ref()
        .map_or(now, |t| t.0);
    let mut problems = match profile {
        None => vec![ExceptionProblem {
            field: "spec.profile".to_owned(),
            message: format!("no ProductionProfile {:?} exists", exception.spec.profile),
        }],
        Some(profile) => missing_controls(&exception.spec, &profile.spec),
    };
    if let Some(problem) = expiry_too_far(created, expires, settings.max_days) {
        problems.insert(0, problem);
    }
    if !problems.is_empty() {
        return Assessment {
            phase: Phase::Invalid(problems),
            next_change: Some(expires),
        };
    }
    let warn_from = expires - settings.warn_before;
    if now >= warn_from {
        Assessment {
            phase: Phase::ExpiringSoon,
            next_change: Some(expires),
        }
    } else {
        Assessment {
            phase: Phase::InForce,
            next_change: Some(warn_from),
        }
    }
}

/// The problem with an expiry more than `max_days` after `created`.
pub fn expiry_too_far(
    created: Timestamp,
    expires: Timestamp,
    max_days: u32,
) -> Option<ExceptionProblem> {
    let longest = SignedDuration::from_hours(i64::from(max_days) * 24);
    let asked = expires.duration_since(created);
    (asked > longest).then(|| ExceptionProblem {
        field: "spec.expires".to_owned(),
        message: format!(
            "{} is {} days after the exception was created; exceptions may run at most {max_days} days (--max-exception-days): write a new exception to extend one",
            expires,
            (asked.as_secs() + 86_399) / 86_400
        ),
    })
}

/// The waived or replaced controls that `profile` does not have.
pub fn missing_controls(
    exception: &ProfileExceptionSpec,
    profile: &ProductionProfileSpec,
) -> Vec<ExceptionProblem> {
    let mut problems = Vec::new();
    let mut missing = |field: String, what: &str| {
        problems.push(ExceptionProblem {
            field,
            message: format!("profile {:?} has no {what}", exception.profile),
        });
    };
    let waive = &exception.waive;
    let network = profile.network_policy.as_ref();
    if waive.default_deny && !network.is_some_and(|n| n.default_deny) {
        missing("spec.waive.defaultDeny".to_owned(), "default-deny policy");
    }
    if waive.allow_dns && !network.is_some_and(|n| n.allow_dns) {
        missing("spec.waive.allowDNS".to_owned(), "DNS allow");
    }
    if waive.allow_same_namespace && !network.is_some_and(|n| n.allow_same_namespace) {
        missing(
            "spec.waive.allowSameNamespace".to_owned(),
            "same-namespace allow",
        );
    }
    for (i, name) in waive.allow_ingress_from.iter().enumerate() {
        if !network.is_some_and(|n| n.allow_ingress_from.iter().any(|a| &a.name == name)) {
            missing(
                format!("spec.waive.allowIngressFrom[{i}]"),
                &format!("ingress allow {name:?}"),
            );
        }
    }
    for (i, name) in waive.allow_egress_to.iter().enumerate() {
        if !network.is_some_and(|n| n.allow_egress_to.iter().any(|a| &a.name == name)) {
            missing(
                format!("spec.waive.allowEgressTo[{i}]"),
                &format!("egress allow {name:?}"),
            );
        }
    }
    if waive.limit_range && profile.limit_range.is_none() {
        missing("spec.waive.limitRange".to_owned(), "limitRange");
    }
    if waive.resource_quota && profile.resource_quota.is_none() {
        missing("spec.waive.resourceQuota".to_owned(), "resourceQuota");
    }
    if waive.pod_security && profile.pod_security.is_none() {
        missing("spec.waive.podSecurity".to_owned(), "podSecurity");
    }
    for (i, name) in waive.role_bindings.iter().enumerate() {
        if !profile.role_bindings.iter().any(|b| &b.name == name) {
            missing(
                format!("spec.waive.roleBindings[{i}]"),
                &format!("RoleBinding entry {name:?}"),
            );
        }
    }
    if waive.backup && profile.backup.is_none() {
        missing("spec.waive.backup".to_owned(), "backup");
    }
    if let Some(quota) = exception
        .replace
        .as_ref()
        .and_then(|r| r.resource_quota.as_ref())
    {
        if waive.resource_quota {
            problems.push(ExceptionProblem {
                field: "spec.replace.resourceQuota".to_owned(),
                message:
                    "the whole quota is waived (spec.waive.resourceQuota); replace nothing in it"
                        .to_owned(),
            });
        }
        let hard = profile.resource_quota.as_ref().map(|q| &q.hard);
        for key in quota.hard.keys() {
            if !hard.is_some_and(|hard| hard.contains_key(key)) {
                problems.push(ExceptionProblem {
                    field: format!("spec.replace.resourceQuota.hard[{key}]"),
                    message: format!(
                        "profile {:?} sets no quota limit {key:?} to replace",
                        exception.profile
                    ),
                });
            }
        }
    }
    problems
}

/// Whether `exception` names or selects `namespace`.
pub fn covers(exception: &ProfileException, namespace: &NamespaceInfo) -> bool {
    let scope = &exception.spec.namespaces;
    scope.names.contains(&namespace.name)
        || scope.selector.as_ref().is_some_and(|selector| {
            label_selector_matches(selector, &namespace.labels).unwrap_or(false)
        })
}

/// The exceptions in force for one namespace of one profile.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InForce {
    /// The exceptions, by name.
    pub exceptions: Vec<Arc<ProfileException>>,
    /// The earliest expiry among them: when the namespace must be
    /// reconciled again.
    pub ends: Option<Timestamp>,
}

impl InForce {
    pub fn is_empty(&self) -> bool {
        self.exceptions.is_empty()
    }

    /// The exceptions' names.
    pub fn names(&self) -> Vec<String> {
        self.exceptions.iter().map(|e| e.name_any()).collect()
    }
}

/// The exceptions of `profile` in force at `now` that cover `namespace`,
/// sorted by name.
pub fn covering(
    exceptions: &[Arc<ProfileException>],
    profile: &ProductionProfile,
    namespace: &NamespaceInfo,
    now: Timestamp,
    settings: &ExceptionSettings,
) -> InForce {
    let profile_name = profile.name_any();
    let mut found: Vec<Arc<ProfileException>> = exceptions
        .iter()
        .filter(|e| e.spec.profile == profile_name && e.metadata.deletion_timestamp.is_none())
        .filter(|e| covers(e, namespace))
        .filter(|e| assess(e, Some(profile), now, settings).phase.in_force())
        .cloned()
        .collect();
    found.sort_by_key(|e| e.name_any());
    InForce {
        ends: found.iter().map(|e| e.spec.expires.0).min(),
        exceptions: found,
    }
}

/// The profile as it applies to a namespace while `waivers` are in force:
/// each waived control removed, each replaced quota limit at its new value
/// (where two exceptions replace one limit, the one whose name sorts first
/// wins).
pub fn waived_spec(
    spec: &ProductionProfileSpec,
    waivers: &[Arc<ProfileException>],
) -> ProductionProfileSpec {
    let mut spec = spec.clone();
    let mut replaced: BTreeMap<&str, &str> = BTreeMap::new();
    for exception in waivers {
        let waive = &exception.spec.waive;
        if let Some(network) = &mut spec.network_policy {
            network.default_deny &= !waive.default_deny;
            network.allow_dns &= !waive.allow_dns;
            network.allow_same_namespace &= !waive.allow_same_namespace;
            network
                .allow_ingress_from
                .retain(|a| !waive.allow_ingress_from.contains(&a.name));
            network
                .allow_egress_to
                .retain(|a| !waive.allow_egress_to.contains(&a.name));
        }
        if waive.limit_range {
            spec.limit_range = None;
        }
        if waive.resource_quota {
            spec.resource_quota = None;
        }
        if waive.pod_security {
            spec.pod_security = None;
        }
        spec.role_bindings
            .retain(|b| !waive.role_bindings.contains(&b.name));
        if waive.backup {
            spec.backup = None;
        }
        if let Some(quota) = exception
            .spec
            .replace
            .as_ref()
            .and_then(|r| r.resource_quota.as_ref())
        {
            for (key, value) in &quota.hard {
                replaced.entry(key).or_insert(value);
            }
        }
    }
    if let Some(quota) = &mut spec.resource_quota {
        for (key, value) in replaced {
            if let Some(limit) = quota.hard.get_mut(key) {
                *limit = value.to_owned();
            }
        }
    }
    spec
}

/// The controls an exception waives or replaces, in words, for `why`,
/// `report` and Events.
pub fn describe_controls(spec: &ProfileExceptionSpec) -> Vec<String> {
    let waive = &spec.waive;
    let flag =
        |on: bool, what: &str| -> Vec<String> { on.then(|| what.to_owned()).into_iter().collect() };
    let named = |names: &[String], what: &str| -> Vec<String> {
        names.iter().map(|n| format!("{what} {n}")).collect()
    };
    let replaced = spec
        .replace
        .as_ref()
        .and_then(|r| r.resource_quota.as_ref())
        .map(|quota| {
            quota
                .hard
                .iter()
                .map(|(k, v)| format!("quota {k} replaced by {v}"))
                .collect()
        })
        .unwrap_or_default();
    [
        flag(waive.default_deny, "default-deny"),
        flag(waive.allow_dns, "DNS allow"),
        flag(waive.allow_same_namespace, "same-namespace allow"),
        named(&waive.allow_ingress_from, "ingress allow"),
        named(&waive.allow_egress_to, "egress allow"),
        flag(waive.limit_range, "LimitRange"),
        flag(waive.resource_quota, "ResourceQuota"),
        flag(waive.pod_security, "Pod Security"),
        named(&waive.role_bindings, "RoleBinding"),
        flag(waive.backup, "backup"),
        replaced,
    ]
    .concat()
}

#[cfg(test)]
mod tests;
