//! RoleBindings of allow-listed ClusterRoles, with subject names filled in
//! from the namespace's name and labels and checked as the API server and
//! the trust model require.

use std::collections::BTreeSet;

use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject};
use thiserror::Error;

use super::context::{NAME_PREFIX, RenderContext, RenderProblem};
use crate::api::{RoleBindingSpec, SubjectKind, SubjectSpec};
use crate::namespace::NamespaceInfo;
use crate::reason::Reason;
use crate::syntax::{is_dns1123_label, is_dns1123_subdomain};
use crate::template;

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
const SYSTEM_PREFIX: &str = "system:";

/// The profile's RoleBindings, in spec order; a binding that cannot be
/// rendered is left out and its problems reported.
pub(crate) fn render_role_bindings(
    context: &RenderContext,
    specs: &[RoleBindingSpec],
    allowed_cluster_roles: &BTreeSet<String>,
    problems: &mut Vec<RenderProblem>,
) -> Vec<RoleBinding> {
    let mut bindings = Vec::with_capacity(specs.len());
    for (index, binding) in specs.iter().enumerate() {
        let field = format!("spec.roleBindings[{index}]");
        match render_role_binding(context, binding, &field, allowed_cluster_roles) {
            Ok(role_binding) => bindings.push(role_binding),
            Err(binding_problems) => problems.extend(binding_problems),
        }
    }
    bindings
}

fn render_role_binding(
    context: &RenderContext,
    spec: &RoleBindingSpec,
    field: &str,
    allowed_cluster_roles: &BTreeSet<String>,
) -> Result<RoleBinding, Vec<RenderProblem>> {
    if !allowed_cluster_roles.contains(&spec.cluster_role) {
        let allowed: Vec<&str> = allowed_cluster_roles.iter().map(String::as_str).collect();
        return Err(vec![RenderProblem {
            reason: Reason::RoleNotAllowed,
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
                reason: Reason::InvalidSubject,
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::render::fixtures::*;
    use crate::render::{RenderOptions, render_namespace};

    fn subject(yaml: &str) -> SubjectSpec {
        serde_saphyr::from_str(yaml).unwrap_or_else(|error| panic!("subject {yaml}: {error}"))
    }

    fn group(name: &str) -> Subject {
        Subject {
            api_group: Some(RBAC_GROUP.to_owned()),
            kind: "Group".to_owned(),
            name: name.to_owned(),
            namespace: None,
        }
    }

    fn service_account(name: &str, namespace: &str) -> Subject {
        Subject {
            api_group: None,
            kind: "ServiceAccount".to_owned(),
            name: name.to_owned(),
            namespace: Some(namespace.to_owned()),
        }
    }

    fn subject_cases_table_1() -> Vec<(&'static str, Result<Subject, &'static str>)> {
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
        ];
        cases
    }

    fn subject_cases_table_2() -> Vec<(&'static str, Result<Subject, &'static str>)> {
        let cases: Vec<(&str, Result<Subject, &str>)> = vec![
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
        cases
    }

    #[test]
    fn subject_cases() {
        let cases: Vec<(&'static str, Result<Subject, &'static str>)> =
            [subject_cases_table_1(), subject_cases_table_2()]
                .into_iter()
                .flatten()
                .collect();
        let shop = namespace(
            "shop",
            &[
                ("team", "payments"),
                ("example.com/cost-center", "cc-42"),
                ("blank", ""),
            ],
        );
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
                    problem.reason.as_str(),
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
            .map(|problem| (problem.reason.as_str(), problem.field.as_str()))
            .collect();
        assert_eq!(
            reasons,
            vec![
                ("RoleNotAllowed", "spec.roleBindings[0].clusterRole"),
                ("RoleNotAllowed", "spec.roleBindings[2].clusterRole"),
            ]
        );
    }
}
