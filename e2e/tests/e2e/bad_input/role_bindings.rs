//! Bad input in `spec.roleBindings`: roles off the allow list, subjects
//! whose templates expand to names Kubernetes refuses or to `system:`
//! identities, lists and names over their limits.

use std::collections::BTreeMap;

use super::table::{
    Accepted, Check, Expect, Refused, accepted, binding, labels, many, refused, reported,
    team_labels,
};

/// Hostile profiles the API server accepts and the operator must handle.
pub(super) fn accepted_cases() -> Vec<Accepted> {
    let rb = "spec.roleBindings[0]";
    let subject = "spec.roleBindings[0].subjects[0]";
    vec![
        accepted(
            "role-cluster-admin",
            &binding("cluster-admin", "Group", "ops", None),
            BTreeMap::new(),
            reported(
                "RoleNotAllowed",
                &format!("{rb}.clusterRole: ClusterRole `cluster-admin`"),
            ),
        ),
        accepted(
            "role-system-aggregate",
            &binding("system:aggregate-to-edit", "Group", "ops", None),
            BTreeMap::new(),
            reported(
                "RoleNotAllowed",
                "`system:aggregate-to-edit` is not on the operator's allow list",
            ),
        ),
        accepted(
            "role-nonexistent",
            &binding("no-such-role", "Group", "ops", None),
            BTreeMap::new(),
            reported("RoleNotAllowed", "`no-such-role`"),
        ),
        accepted(
            "sa-name-from-label",
            &binding("view", "ServiceAccount", "{{labels.team}}", None),
            labels(&[("team", "Payments_Team")]),
            reported(
                "InvalidSubject",
                &format!("{subject}.name: ServiceAccount name `Payments_Team`"),
            ),
        ),
        accepted(
            "group-becomes-system-masters",
            &binding("view", "Group", "{{labels.prefix}}:masters", None),
            labels(&[("prefix", "system")]),
            reported("InvalidSubject", "`system:masters` is a system identity"),
        ),
        accepted(
            "user-system-literal",
            &binding("edit", "User", "system:kube-controller-manager", None),
            BTreeMap::new(),
            reported("InvalidSubject", "system identity"),
        ),
        accepted(
            "group-all-service-accounts",
            &binding(
                "view",
                "Group",
                "system:serviceaccounts:{{namespace}}",
                None,
            ),
            BTreeMap::new(),
            reported("InvalidSubject", "system identity"),
        ),
        accepted(
            "sa-namespace-from-label",
            &binding(
                "view",
                "ServiceAccount",
                "deployer",
                Some("{{labels.home}}"),
            ),
            labels(&[("home", "Kube_System")]),
            reported(
                "InvalidSubject",
                &format!("{subject}.namespace: ServiceAccount namespace `Kube_System`"),
            ),
        ),
        accepted(
            "template-label-missing",
            &binding("view", "Group", "team-{{labels.absent}}", None),
            BTreeMap::new(),
            reported("InvalidSubject", "label `absent` missing"),
        ),
        accepted(
            "template-label-empty",
            &binding("view", "User", "{{labels.owner}}", None),
            labels(&[("owner", "")]),
            reported("InvalidSubject", "User name `` must be 1 to 253 characters"),
        ),
        accepted(
            "group-newline",
            &binding("view", "Group", "team\nadmins", None),
            BTreeMap::new(),
            reported("InvalidSubject", "without control characters"),
        ),
        accepted(
            "sa-name-too-long",
            &binding(
                "view",
                "ServiceAccount",
                &["{{namespace}}"; 9].join("."),
                None,
            ),
            BTreeMap::new(),
            reported("InvalidSubject", "is not a DNS-1123 subdomain"),
        ),
        accepted(
            "group-unicode",
            &binding("view", "Group", "équipe-{{labels.team}}", None),
            team_labels(),
            Expect::Compliant(Check::None),
        ),
    ]
}

/// Hostile profiles the API server must refuse, with the field it names.
pub(super) fn refused_cases() -> Vec<Refused> {
    vec![
        refused(
            "bindings-33",
            &format!(
                "  roleBindings: [{}]\n",
                many(33, &|i| format!(
                    "{{name: b{i}, clusterRole: view, subjects: [{{kind: Group, name: g}}]}}"
                ))
            ),
            "spec.roleBindings",
        ),
        refused(
            "subjects-33",
            &format!(
                "  roleBindings: [{{name: b, clusterRole: view, subjects: [{}]}}]\n",
                many(33, &|i| format!("{{kind: Group, name: g{i}}}"))
            ),
            "spec.roleBindings[0].subjects",
        ),
        refused(
            "subject-name-254",
            &format!(
                "  roleBindings: [{{name: b, clusterRole: view, subjects: [{{kind: Group, name: {}}}]}}]\n",
                "g".repeat(254)
            ),
            "spec.roleBindings[0].subjects[0].name",
        ),
        refused(
            "subject-name-empty",
            "  roleBindings: [{name: b, clusterRole: view, subjects: [{kind: Group, name: \"\"}]}]\n",
            "spec.roleBindings[0].subjects[0].name",
        ),
        refused(
            "cluster-role-uppercase",
            "  roleBindings: [{name: b, clusterRole: Cluster-Admin, subjects: [{kind: Group, name: g}]}]\n",
            "spec.roleBindings[0].clusterRole",
        ),
    ]
}
