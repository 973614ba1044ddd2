//! The rights a profile or an exception implies: what its author must hold
//! cluster-wide to create it, by field. The API server checks the same rule at admission
//! (`crds/baseliner.dev_author-rights.yaml`); this copy lets
//! `baseliner validate --as-user` ask before a merge, with
//! SubjectAccessReviews. The e2e suite checks that both give the same
//! verdicts.

use crate::api::ProductionProfileSpec;
use crate::api::exception::ProfileExceptionSpec;

/// One authorization question: may the user `verb` `resource` (named
/// `name`, in `namespace`; cluster-wide when `None`)?
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Right {
    /// The verb, e.g. `create` or `bind`.
    pub verb: &'static str,
    /// The API group; empty for the core group.
    pub group: &'static str,
    /// The resource, plural.
    pub resource: &'static str,
    /// One object by name, e.g. a ClusterRole.
    pub name: Option<String>,
    /// A namespace; cluster-wide when unset.
    pub namespace: Option<String>,
}

impl Right {
    fn new(verb: &'static str, group: &'static str, resource: &'static str) -> Self {
        Self {
            verb,
            group,
            resource,
            name: None,
            namespace: None,
        }
    }

    /// As the policy's messages name it: `bind on clusterroles/admin`,
    /// `create on networkpolicies.networking.k8s.io`.
    pub fn describe(&self) -> String {
        let resource = if self.group.is_empty() {
            self.resource.to_owned()
        } else {
            format!("{}.{}", self.resource, self.group)
        };
        let resource = match (&self.name, self.group) {
            (Some(name), "rbac.authorization.k8s.io") => format!("{}/{name}", self.resource),
            (Some(name), _) => format!("{resource}/{name}"),
            (None, _) => resource,
        };
        match &self.namespace {
            Some(ns) => format!("{} on {resource} in namespace {ns}", self.verb),
            None => format!("{} on {resource}", self.verb),
        }
    }
}

/// What one field of a profile needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    /// The field, as the policy's messages name it (`spec.roleBindings[1].clusterRole`).
    pub field: String,
    /// What the field makes baseliner do, for the message.
    pub what: String,
    /// Every right it needs.
    pub rights: Vec<Right>,
}

/// The verbs the operator uses on the objects it manages.
const WRITE_VERBS: [&str; 3] = ["create", "patch", "delete"];

fn write_rights(group: &'static str, resource: &'static str) -> Vec<Right> {
    WRITE_VERBS
        .iter()
        .map(|verb| Right::new(verb, group, resource))
        .collect()
}

/// What creating a profile with `spec` needs, in the order the admission
/// policy checks it (the most specific first).
pub fn to_create(spec: &ProductionProfileSpec) -> Vec<Requirement> {
    let mut needs = Vec::new();
    // The policy checks the built-in roles one rule each, admin first.
    let order = |role: &str| {
        ["admin", "edit", "view"]
            .iter()
            .position(|r| *r == role)
            .unwrap_or(3)
    };
    let mut bindings: Vec<_> = spec.role_bindings.iter().enumerate().collect();
    bindings.sort_by_key(|(i, b)| (order(&b.cluster_role), *i));
    for (i, binding) in bindings {
        needs.push(Requirement {
            field: format!("spec.roleBindings[{i}].clusterRole"),
            what: format!("bind ClusterRole {:?}", binding.cluster_role),
            rights: vec![Right {
                name: Some(binding.cluster_role.clone()),
                ..Right::new("bind", "rbac.authorization.k8s.io", "clusterroles")
            }],
        });
    }
    if !spec.role_bindings.is_empty() {
        needs.push(Requirement {
            field: "spec.roleBindings".to_owned(),
            what: "write RoleBindings in every namespace".to_owned(),
            rights: write_rights("rbac.authorization.k8s.io", "rolebindings"),
        });
    }
    if spec.pod_security.is_some() {
        needs.push(Requirement {
            field: "spec.podSecurity".to_owned(),
            what: "set or remove Pod Security labels on namespaces".to_owned(),
            rights: vec![Right::new("patch", "", "namespaces")],
        });
    }
    let sections = [
        (
            spec.network_policy.is_some(),
            "spec.networkPolicy",
            "NetworkPolicies",
            "networking.k8s.io",
            "networkpolicies",
        ),
        (
            spec.limit_range.is_some(),
            "spec.limitRange",
            "LimitRanges",
            "",
            "limitranges",
        ),
        (
            spec.resource_quota.is_some(),
            "spec.resourceQuota",
            "ResourceQuotas",
            "",
            "resourcequotas",
        ),
    ];
    for (present, field, kind, group, resource) in sections {
        if present {
            needs.push(Requirement {
                field: field.to_owned(),
                what: format!("write {kind} in every namespace"),
                rights: write_rights(group, resource),
            });
        }
    }
    if let Some(backup) = &spec.backup {
        needs.push(Requirement {
            field: "spec.backup".to_owned(),
            what: "write Velero Schedules".to_owned(),
            rights: WRITE_VERBS
                .iter()
                .map(|verb| Right {
                    namespace: Some(backup.velero_namespace.clone()),
                    ..Right::new(verb, "velero.io", "schedules")
                })
                .collect(),
        });
    }
    needs.push(Requirement {
        field: "spec.namespaces".to_owned(),
        what: "take namespaces from other profiles and prune their objects".to_owned(),
        rights: vec![
            Right::new("delete", "networking.k8s.io", "networkpolicies"),
            Right::new("delete", "", "limitranges"),
            Right::new("delete", "", "resourcequotas"),
            Right::new("delete", "rbac.authorization.k8s.io", "rolebindings"),
            Right::new("delete", "velero.io", "schedules"),
            Right::new("patch", "", "namespaces"),
        ],
    });
    needs
}

/// What creating an exception with `spec` needs, in the order the
/// exception-rights policy checks it: a waived control is removed while the
/// exception holds and put back when it ends, so each needs what writing
/// it would.
pub fn exception_to_create(spec: &ProfileExceptionSpec) -> Vec<Requirement> {
    let waive = &spec.waive;
    let mut needs = Vec::new();
    if waive.pod_security {
        needs.push(Requirement {
            field: "spec.waive.podSecurity".to_owned(),
            what: "set or remove Pod Security labels on namespaces".to_owned(),
            rights: vec![Right::new("patch", "", "namespaces")],
        });
    }
    let network_field = [
        (waive.default_deny, "defaultDeny"),
        (waive.allow_dns, "allowDNS"),
        (waive.allow_same_namespace, "allowSameNamespace"),
        (!waive.allow_ingress_from.is_empty(), "allowIngressFrom"),
        (!waive.allow_egress_to.is_empty(), "allowEgressTo"),
    ]
    .into_iter()
    .find_map(|(on, field)| on.then_some(field));
    let quota_field = if waive.resource_quota {
        Some("spec.waive.resourceQuota")
    } else if spec
        .replace
        .as_ref()
        .is_some_and(|r| r.resource_quota.is_some())
    {
        Some("spec.replace.resourceQuota")
    } else {
        None
    };
    let sections = [
        (
            network_field.map(|f| format!("spec.waive.{f}")),
            "remove or restore NetworkPolicies in every namespace",
            "networking.k8s.io",
            "networkpolicies",
        ),
        (
            waive
                .limit_range
                .then(|| "spec.waive.limitRange".to_owned()),
            "remove or restore LimitRanges in every namespace",
            "",
            "limitranges",
        ),
        (
            quota_field.map(str::to_owned),
            "change ResourceQuotas in every namespace",
            "",
            "resourcequotas",
        ),
        (
            (!waive.role_bindings.is_empty()).then(|| "spec.waive.roleBindings".to_owned()),
            "remove or restore RoleBindings in every namespace",
            "rbac.authorization.k8s.io",
            "rolebindings",
        ),
        (
            waive.backup.then(|| "spec.waive.backup".to_owned()),
            "remove or restore Velero Schedules",
            "velero.io",
            "schedules",
        ),
    ];
    for (field, what, group, resource) in sections {
        if let Some(field) = field {
            needs.push(Requirement {
                field,
                what: what.to_owned(),
                rights: write_rights(group, resource),
            });
        }
    }
    needs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exception_needs_the_rights_of_what_it_waives() {
        let spec: ProfileExceptionSpec = serde_saphyr::from_str(
            "{profile: p, namespaces: {names: [a]}, reason: r, expires: '2027-01-01T00:00:00Z', waive: {allowDNS: true, podSecurity: true}, replace: {resourceQuota: {hard: {pods: '9'}}}}",
        )
        .expect("an exception");
        let needs: Vec<(String, Vec<String>)> = exception_to_create(&spec)
            .into_iter()
            .map(|n| (n.field, n.rights.iter().map(Right::describe).collect()))
            .collect();
        assert_eq!(
            needs,
            [
                (
                    "spec.waive.podSecurity".to_owned(),
                    vec!["patch on namespaces".to_owned()]
                ),
                (
                    "spec.waive.allowDNS".to_owned(),
                    ["create", "patch", "delete"]
                        .map(|v| format!("{v} on networkpolicies.networking.k8s.io"))
                        .to_vec()
                ),
                (
                    "spec.replace.resourceQuota".to_owned(),
                    ["create", "patch", "delete"]
                        .map(|v| format!("{v} on resourcequotas"))
                        .to_vec()
                ),
            ]
        );
    }

    fn spec(yaml: &str) -> ProductionProfileSpec {
        serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"))
    }

    #[test]
    fn a_bare_profile_needs_only_the_takeover_rights() {
        let needs = to_create(&spec("namespaces: {include: [shop]}"));
        assert_eq!(needs.len(), 1);
        assert_eq!(needs[0].field, "spec.namespaces");
        let described: Vec<String> = needs[0].rights.iter().map(Right::describe).collect();
        assert_eq!(
            described,
            [
                "delete on networkpolicies.networking.k8s.io",
                "delete on limitranges",
                "delete on resourcequotas",
                "delete on rolebindings.rbac.authorization.k8s.io",
                "delete on schedules.velero.io",
                "patch on namespaces",
            ]
        );
    }

    #[test]
    fn every_section_names_its_field_and_rights() {
        let needs = to_create(&spec(
            r#"
namespaces: {selector: {}}
networkPolicy: {defaultDeny: true}
limitRange: {default: {cpu: "1"}}
resourceQuota: {hard: {pods: "10"}}
podSecurity: {enforce: restricted}
roleBindings:
  - {name: a, clusterRole: view, subjects: [{kind: Group, name: g}]}
  - {name: b, clusterRole: admin, subjects: [{kind: Group, name: g}]}
backup: {schedule: "@daily", veleroNamespace: backups}
"#,
        ));
        let fields: Vec<&str> = needs.iter().map(|n| n.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.roleBindings[1].clusterRole",
                "spec.roleBindings[0].clusterRole",
                "spec.roleBindings",
                "spec.podSecurity",
                "spec.networkPolicy",
                "spec.limitRange",
                "spec.resourceQuota",
                "spec.backup",
                "spec.namespaces",
            ]
        );
        assert_eq!(needs[0].rights[0].describe(), "bind on clusterroles/admin");
        assert_eq!(
            needs[7].rights[0].describe(),
            "create on schedules.velero.io in namespace backups"
        );
        assert_eq!(needs[3].rights, [Right::new("patch", "", "namespaces")]);
    }
}
