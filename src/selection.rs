//! Which profile owns which namespace. Pure: the controller feeds it the
//! profiles and namespaces from its caches.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::core::{Expression, Selector, SelectorExt};
use thiserror::Error;

use crate::api::ProductionProfile;
use crate::namespace::NamespaceInfo;
use crate::syntax::{RequirementError, SelectorOperator};

/// Namespaces a label selector never selects; only `include` can name them.
pub const SYSTEM_NAMESPACES: [&str; 3] = ["kube-system", "kube-public", "kube-node-lease"];

/// Facts about the cluster that selection depends on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SelectionContext {
    /// The operator's own namespace, protected like the system namespaces.
    pub operator_namespace: Option<String>,
}

impl SelectionContext {
    /// Whether `namespace` is protected from selection by label.
    pub fn is_system_namespace(&self, namespace: &str) -> bool {
        SYSTEM_NAMESPACES.contains(&namespace)
            || self.operator_namespace.as_deref() == Some(namespace)
    }
}

/// A label selector Kubernetes would refuse.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum SelectorError {
    /// An operator other than In, NotIn, Exists, DoesNotExist.
    #[error(
        "matchExpressions[{index}]: unknown operator `{operator}`; use In, NotIn, Exists or DoesNotExist"
    )]
    UnknownOperator {
        /// Position in `matchExpressions`.
        index: usize,
        /// The operator given.
        operator: String,
    },
    /// In or NotIn without values.
    #[error("matchExpressions[{index}]: operator {operator} needs at least one value")]
    MissingValues {
        /// Position in `matchExpressions`.
        index: usize,
        /// `In` or `NotIn`.
        operator: String,
    },
    /// Exists or DoesNotExist with values.
    #[error("matchExpressions[{index}]: operator {operator} takes no values")]
    UnexpectedValues {
        /// Position in `matchExpressions`.
        index: usize,
        /// `Exists` or `DoesNotExist`.
        operator: String,
    },
}

impl SelectorError {
    /// The error of the `matchExpressions` entry at `index`.
    fn at(index: usize, error: RequirementError) -> Self {
        match error {
            RequirementError::UnknownOperator(operator) => {
                Self::UnknownOperator { index, operator }
            }
            RequirementError::MissingValues(operator) => Self::MissingValues { index, operator },
            RequirementError::UnexpectedValues(operator) => {
                Self::UnexpectedValues { index, operator }
            }
        }
    }
}

/// Converts a LabelSelector into kube's matcher, refusing what the API
/// server would refuse instead of silently matching nothing.
pub fn parse_label_selector(selector: &LabelSelector) -> Result<Selector, SelectorError> {
    let mut parsed: Selector = selector
        .match_labels
        .iter()
        .flatten()
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    for (index, requirement) in selector.match_expressions.iter().flatten().enumerate() {
        let key = requirement.key.clone();
        let values = requirement.values.clone().unwrap_or_default();
        let operator = SelectorOperator::parse(&requirement.operator, &values)
            .map_err(|error| SelectorError::at(index, error))?;
        let expression = match operator {
            SelectorOperator::In => Expression::In(key, values.into_iter().collect()),
            SelectorOperator::NotIn => Expression::NotIn(key, values.into_iter().collect()),
            SelectorOperator::Exists => Expression::Exists(key),
            SelectorOperator::DoesNotExist => Expression::DoesNotExist(key),
        };
        parsed.extend(expression);
    }
    Ok(parsed)
}

/// Whether `selector` matches `labels`: every matchLabels entry and every
/// matchExpressions requirement, with Kubernetes semantics (NotIn and
/// DoesNotExist match when the key is absent; `{}` matches everything).
pub fn label_selector_matches(
    selector: &LabelSelector,
    labels: &BTreeMap<String, String>,
) -> Result<bool, SelectorError> {
    Ok(parse_label_selector(selector)?.matches(labels))
}

/// Whether `profile` selects `namespace`: not excluded, and either included
/// by name or matched by the selector without being a system namespace.
///
/// A selector Kubernetes would refuse selects nothing (the CRD's CEL rules
/// keep such selectors out of the cluster; the offline validator reports
/// them); `include` still applies.
pub fn selects(
    profile: &ProductionProfile,
    namespace: &NamespaceInfo,
    context: &SelectionContext,
) -> bool {
    let selection = &profile.spec.namespaces;
    let name = namespace.name.as_str();
    if selection.exclude.iter().any(|excluded| excluded == name) {
        return false;
    }
    if selection.include.iter().any(|included| included == name) {
        return true;
    }
    let Some(selector) = &selection.selector else {
        return false;
    };
    !context.is_system_namespace(name)
        && label_selector_matches(selector, &namespace.labels).unwrap_or(false)
}

/// Why `profile` does or does not select `namespace`, in words (the same
/// rules as [`selects`], in the same order).
pub fn explain_selection(
    profile: &ProductionProfile,
    namespace: &NamespaceInfo,
    context: &SelectionContext,
) -> String {
    let selection = &profile.spec.namespaces;
    let name = namespace.name.as_str();
    if selection.exclude.iter().any(|excluded| excluded == name) {
        return "it is listed in spec.namespaces.exclude".to_owned();
    }
    if selection.include.iter().any(|included| included == name) {
        return "it is listed in spec.namespaces.include".to_owned();
    }
    let Some(selector) = &selection.selector else {
        return "it is not listed in spec.namespaces.include and the profile has no selector"
            .to_owned();
    };
    let shown = serde_json::to_string(selector).unwrap_or_default();
    if context.is_system_namespace(name) {
        return "system namespaces are selected only when listed in spec.namespaces.include"
            .to_owned();
    }
    match label_selector_matches(selector, &namespace.labels) {
        Ok(true) => format!("its labels match spec.namespaces.selector {shown}"),
        Ok(false) => format!("its labels do not match spec.namespaces.selector {shown}"),
        Err(error) => format!("spec.namespaces.selector is invalid ({error}) and selects nothing"),
    }
}

/// The outcome of several profiles competing for one namespace.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Ownership<'a> {
    /// The profile that owns the namespace, if any selects it.
    pub owner: Option<&'a ProductionProfile>,
    /// Profiles that select the namespace but lost to the owner, in the
    /// same order (priority descending, then name).
    pub conflicts: Vec<&'a ProductionProfile>,
}

/// Decides which profile owns `namespace`: of the profiles selecting it and
/// not being deleted, the highest `spec.priority`, ties going to the name
/// that sorts first. A profile being deleted owns nothing, so the next one
/// takes over as soon as deletion starts.
pub fn decide_owner<'a>(
    profiles: impl IntoIterator<Item = &'a ProductionProfile>,
    namespace: &NamespaceInfo,
    context: &SelectionContext,
) -> Ownership<'a> {
    let mut candidates: Vec<&ProductionProfile> = profiles
        .into_iter()
        .filter(|profile| profile.metadata.deletion_timestamp.is_none())
        .filter(|profile| selects(profile, namespace, context))
        .collect();
    candidates.sort_by(|a, b| {
        b.spec
            .priority
            .cmp(&a.spec.priority)
            .then_with(|| profile_name(a).cmp(profile_name(b)))
    });
    let mut candidates = candidates.into_iter();
    Ownership {
        owner: candidates.next(),
        conflicts: candidates.collect(),
    }
}

fn profile_name(profile: &ProductionProfile) -> &str {
    profile.metadata.name.as_deref().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A profile from its name, priority and `spec.namespaces` as YAML flow.
    fn profile(name: &str, priority: i32, namespaces: &str) -> ProductionProfile {
        let yaml = format!(
            "apiVersion: baseliner.dev/v1alpha1\nkind: ProductionProfile\nmetadata: {{name: {name}}}\nspec: {{priority: {priority}, namespaces: {namespaces}}}\n"
        );
        serde_saphyr::from_str(&yaml).unwrap_or_else(|error| panic!("fixture: {error}\n{yaml}"))
    }

    fn namespace(name: &str, labels: &[(&str, &str)]) -> NamespaceInfo {
        NamespaceInfo::new(name, labels)
    }

    fn selector(yaml: &str) -> LabelSelector {
        serde_saphyr::from_str(yaml).unwrap_or_else(|error| panic!("selector {yaml}: {error}"))
    }

    fn context() -> SelectionContext {
        SelectionContext {
            operator_namespace: Some("baseliner-system".to_owned()),
        }
    }

    #[test]
    fn label_selector_cases() {
        let labels: BTreeMap<String, String> = [("env", "prod"), ("team", "a")]
            .into_iter()
            .map(|(key, value)| (key.to_owned(), value.to_owned()))
            .collect();
        let cases: Vec<(&str, Result<bool, SelectorError>)> = vec![
            ("{}", Ok(true)),
            ("{matchLabels: {env: prod}}", Ok(true)),
            ("{matchLabels: {env: prod, team: b}}", Ok(false)),
            ("{matchLabels: {tier: web}}", Ok(false)),
            (
                "{matchExpressions: [{key: env, operator: In, values: [dev, prod]}]}",
                Ok(true),
            ),
            (
                "{matchExpressions: [{key: env, operator: In, values: [dev]}]}",
                Ok(false),
            ),
            (
                "{matchExpressions: [{key: tier, operator: In, values: [web]}]}",
                Ok(false),
            ),
            (
                "{matchExpressions: [{key: env, operator: NotIn, values: [prod]}]}",
                Ok(false),
            ),
            (
                "{matchExpressions: [{key: env, operator: NotIn, values: [dev]}]}",
                Ok(true),
            ),
            // NotIn matches when the key is absent.
            (
                "{matchExpressions: [{key: tier, operator: NotIn, values: [web]}]}",
                Ok(true),
            ),
            (
                "{matchExpressions: [{key: team, operator: Exists}]}",
                Ok(true),
            ),
            (
                "{matchExpressions: [{key: tier, operator: Exists}]}",
                Ok(false),
            ),
            (
                "{matchExpressions: [{key: tier, operator: DoesNotExist}]}",
                Ok(true),
            ),
            (
                "{matchExpressions: [{key: team, operator: DoesNotExist}]}",
                Ok(false),
            ),
            // matchLabels and every expression must all hold.
            (
                "{matchLabels: {env: prod}, matchExpressions: [{key: team, operator: Exists}, {key: tier, operator: DoesNotExist}]}",
                Ok(true),
            ),
            (
                "{matchLabels: {env: prod}, matchExpressions: [{key: team, operator: Exists}, {key: team, operator: NotIn, values: [a]}]}",
                Ok(false),
            ),
            (
                "{matchExpressions: [{key: team, operator: Exists}, {key: env, operator: Equals, values: [prod]}]}",
                Err(SelectorError::UnknownOperator {
                    index: 1,
                    operator: "Equals".to_owned(),
                }),
            ),
            (
                "{matchExpressions: [{key: env, operator: In, values: []}]}",
                Err(SelectorError::MissingValues {
                    index: 0,
                    operator: "In".to_owned(),
                }),
            ),
            (
                "{matchExpressions: [{key: env, operator: NotIn}]}",
                Err(SelectorError::MissingValues {
                    index: 0,
                    operator: "NotIn".to_owned(),
                }),
            ),
            (
                "{matchExpressions: [{key: env, operator: Exists, values: [prod]}]}",
                Err(SelectorError::UnexpectedValues {
                    index: 0,
                    operator: "Exists".to_owned(),
                }),
            ),
        ];
        for (yaml, expected) in cases {
            assert_eq!(
                label_selector_matches(&selector(yaml), &labels),
                expected,
                "{yaml}"
            );
        }
    }

    #[test]
    fn selects_cases() {
        let web = namespace("web", &[("env", "prod")]);
        let dev = namespace("dev", &[("env", "dev")]);
        let kube_system = namespace("kube-system", &[("env", "prod")]);
        let operator = namespace("baseliner-system", &[("env", "prod")]);
        let kube_public = namespace("kube-public", &[]);
        let kube_node_lease = namespace("kube-node-lease", &[]);
        let cases: Vec<(&str, &NamespaceInfo, bool)> = vec![
            ("{selector: {}}", &web, true),
            ("{selector: {matchLabels: {env: prod}}}", &web, true),
            ("{selector: {matchLabels: {env: prod}}}", &dev, false),
            // System namespaces are never selected by label, not even by `{}`.
            ("{selector: {}}", &kube_system, false),
            (
                "{selector: {matchLabels: {env: prod}}}",
                &kube_system,
                false,
            ),
            ("{selector: {}}", &kube_public, false),
            ("{selector: {}}", &kube_node_lease, false),
            ("{selector: {}}", &operator, false),
            // ...but are when named.
            ("{include: [kube-system]}", &kube_system, true),
            (
                "{selector: {}, include: [baseliner-system]}",
                &operator,
                true,
            ),
            ("{include: [web]}", &dev, false),
            (
                "{selector: {matchLabels: {env: prod}}, include: [dev]}",
                &dev,
                true,
            ),
            // Exclusion always wins.
            ("{selector: {}, exclude: [web]}", &web, false),
            (
                "{include: [kube-system], exclude: [kube-system]}",
                &kube_system,
                false,
            ),
            // An invalid selector selects nothing by label; include still applies.
            (
                "{selector: {matchExpressions: [{key: env, operator: Bogus}]}}",
                &web,
                false,
            ),
            (
                "{selector: {matchExpressions: [{key: env, operator: Bogus}]}, include: [web]}",
                &web,
                true,
            ),
        ];
        for (namespaces, namespace, expected) in cases {
            let profile = profile("p", 0, namespaces);
            assert_eq!(
                selects(&profile, namespace, &context()),
                expected,
                "{namespaces} selecting {}",
                namespace.name
            );
        }
        // Without an operator namespace only the fixed list is protected.
        assert!(selects(
            &profile("p", 0, "{selector: {}}"),
            &operator,
            &SelectionContext::default()
        ));
    }

    fn names<'a>(profiles: impl IntoIterator<Item = &'a ProductionProfile>) -> Vec<&'a str> {
        profiles.into_iter().map(profile_name).collect()
    }

    /// Case name, the profiles, the expected owner and conflicts.
    type OwnerCase = (
        &'static str,
        Vec<ProductionProfile>,
        Option<&'static str>,
        Vec<&'static str>,
    );

    #[test]
    fn decide_owner_cases() {
        let deleting = |mut profile: ProductionProfile| {
            profile.metadata.deletion_timestamp = Some(
                k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Default::default()),
            );
            profile
        };
        let web = namespace("web", &[("env", "prod")]);
        let cases: Vec<OwnerCase> = vec![
            (
                "nobody selects it",
                vec![profile("a", 0, "{include: [other]}")],
                None,
                vec![],
            ),
            (
                "higher priority wins whatever the name",
                vec![
                    profile("a", 0, "{selector: {}}"),
                    profile("z", 10, "{include: [web]}"),
                    profile("m", -5, "{selector: {matchLabels: {env: prod}}}"),
                ],
                Some("z"),
                vec!["a", "m"],
            ),
            (
                "ties go to the name that sorts first",
                vec![
                    profile("beta", 3, "{selector: {}}"),
                    profile("alpha", 3, "{selector: {}}"),
                    profile("gamma", 3, "{selector: {}}"),
                ],
                Some("alpha"),
                vec!["beta", "gamma"],
            ),
            (
                "profiles that do not select it are neither owner nor conflict",
                vec![
                    profile("a", 100, "{selector: {}, exclude: [web]}"),
                    profile("b", 0, "{selector: {}}"),
                ],
                Some("b"),
                vec![],
            ),
            (
                "a profile being deleted owns nothing",
                vec![
                    deleting(profile("a", 100, "{selector: {}}")),
                    profile("b", 0, "{selector: {}}"),
                    profile("c", 0, "{selector: {}}"),
                ],
                Some("b"),
                vec!["c"],
            ),
            (
                "only deleted profiles select it",
                vec![deleting(profile("a", 0, "{selector: {}}"))],
                None,
                vec![],
            ),
        ];
        for (case, profiles, owner, conflicts) in cases {
            let ownership = decide_owner(&profiles, &web, &context());
            assert_eq!(ownership.owner.map(profile_name), owner, "{case}");
            assert_eq!(names(ownership.conflicts), conflicts, "{case}");
        }
    }

    #[test]
    fn system_namespace_owned_only_by_profiles_that_include_it() {
        let profiles = vec![
            profile("everything", 1000, "{selector: {}}"),
            profile("kube", -1000, "{include: [kube-system]}"),
        ];
        let ownership = decide_owner(&profiles, &namespace("kube-system", &[]), &context());
        assert_eq!(ownership.owner.map(profile_name), Some("kube"));
        assert!(ownership.conflicts.is_empty());
    }
}
