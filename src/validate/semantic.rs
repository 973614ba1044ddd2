//! Checks beyond the CRD: mistakes the API server would accept in a profile
//! but that make it fail, or do something else than meant, once rendered.

use std::collections::{BTreeMap, HashSet};
use std::sync::LazyLock;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::core::cel::KubeCelExt;
use kube::core::cel::cel::{Context, Program, Value as CelValue};

use super::problem::{Problem, join_index, join_key, join_property};
use crate::api::{
    BackupSpec, EgressAllow, LimitRangeSpec, NetworkPolicySpec, ProductionProfile,
    ResourceQuotaSpec, SubjectKind, SubjectSpec,
};
use crate::cron;
use crate::syntax::{
    Cidr, RequirementError, SelectorOperator, check_label_key, check_label_value,
    is_dns1123_subdomain, parse_duration, parse_quantity,
};
use crate::template::{self, Part};

/// Checks the profile's name, whatever state the rest of it is in.
pub(crate) fn check_name(name: &str) -> Vec<Problem> {
    let mut problems = Vec::new();
    if !is_dns1123_subdomain(name) {
        problems.push(Problem::new(
            "metadata.name",
            format!(
                "invalid name {name:?}: must be a DNS-1123 subdomain (lowercase letters, digits, '-' and '.', starting and ending with a letter or digit)"
            ),
        ));
    }
    problems
}

/// Every semantic check of a schema-valid profile.
pub(crate) fn check_profile(profile: &ProductionProfile) -> Vec<Problem> {
    let mut checker = Checker::default();
    let spec = &profile.spec;
    if let Some(selector) = &spec.namespaces.selector {
        checker.selector(selector, "spec.namespaces.selector");
    }
    if let Some(network_policy) = &spec.network_policy {
        checker.network_policy(network_policy, "spec.networkPolicy");
    }
    if let Some(limit_range) = &spec.limit_range {
        checker.limit_range(limit_range, "spec.limitRange");
    }
    if let Some(quota) = &spec.resource_quota {
        checker.resource_quota(quota, "spec.resourceQuota");
    }
    checker.role_bindings(profile);
    if let Some(backup) = &spec.backup {
        checker.backup(backup, "spec.backup");
    }
    checker.problems
}

#[derive(Default)]
struct Checker {
    problems: Vec<Problem>,
}

impl Checker {
    fn report(&mut self, path: impl AsRef<str>, message: impl Into<String>) {
        self.problems
            .push(Problem::new(path.as_ref(), message.into()));
    }

    /// Keys and values of a label map such as `matchLabels`.
    fn labels(&mut self, labels: &BTreeMap<String, String>, path: &str) {
        for (key, value) in labels {
            let entry = join_key(path, key);
            if let Err(why) = check_label_key(key) {
                self.report(&entry, format!("invalid label key {key:?}: {why}"));
            }
            if let Err(why) = check_label_value(value) {
                self.report(&entry, format!("invalid label value {value:?}: {why}"));
            }
        }
    }

    fn selector(&mut self, selector: &LabelSelector, path: &str) {
        if let Some(labels) = &selector.match_labels {
            self.labels(labels, &join_property(path, "matchLabels"));
        }
        let expressions_path = join_property(path, "matchExpressions");
        for (index, expression) in selector.match_expressions.iter().flatten().enumerate() {
            let item = join_index(&expressions_path, index);
            if let Err(why) = check_label_key(&expression.key) {
                self.report(
                    join_property(&item, "key"),
                    format!("invalid label key {:?}: {why}", expression.key),
                );
            }
            let values = expression.values.as_deref().unwrap_or_default();
            let values_path = join_property(&item, "values");
            match SelectorOperator::parse(&expression.operator, values) {
                Ok(_) => {}
                Err(RequirementError::UnknownOperator(other)) => self.report(
                    join_property(&item, "operator"),
                    format!("unknown operator {other:?}: use In, NotIn, Exists or DoesNotExist"),
                ),
                Err(why) => self.report(&values_path, why.to_string()),
            }
            for (value_index, value) in values.iter().enumerate() {
                if let Err(why) = check_label_value(value) {
                    self.report(
                        join_index(&values_path, value_index),
                        format!("invalid label value {value:?}: {why}"),
                    );
                }
            }
        }
    }

    fn network_policy(&mut self, spec: &NetworkPolicySpec, path: &str) {
        if let Some(dns) = &spec.dns {
            self.labels(
                &dns.pod_labels,
                &join_property(&join_property(path, "dns"), "podLabels"),
            );
        }
        let ingress_path = join_property(path, "allowIngressFrom");
        self.unique_names(
            spec.allow_ingress_from.iter().map(|a| a.name.as_str()),
            &ingress_path,
        );
        for (index, allow) in spec.allow_ingress_from.iter().enumerate() {
            let item = join_index(&ingress_path, index);
            if let Some(selector) = &allow.namespace_selector {
                self.selector(selector, &join_property(&item, "namespaceSelector"));
            }
            if let Some(selector) = &allow.pod_selector {
                self.selector(selector, &join_property(&item, "podSelector"));
            }
        }
        let egress_path = join_property(path, "allowEgressTo");
        self.unique_names(
            spec.allow_egress_to.iter().map(|a| a.name.as_str()),
            &egress_path,
        );
        for (index, allow) in spec.allow_egress_to.iter().enumerate() {
            self.egress(allow, &join_index(&egress_path, index));
        }
    }

    fn egress(&mut self, allow: &EgressAllow, path: &str) {
        let parse = |checker: &mut Self, texts: &[String], field: &str| {
            let mut parsed = Vec::new();
            for (index, text) in texts.iter().enumerate() {
                match text.parse::<Cidr>() {
                    Ok(net) => parsed.push((index, net)),
                    Err(_) => checker.report(
                        join_index(&join_property(path, field), index),
                        format!("{text:?} is not a CIDR such as 10.0.0.0/8 or fd00::/8"),
                    ),
                }
            }
            parsed
        };
        let cidrs = parse(self, &allow.cidrs, "cidrs");
        let excepts = parse(self, &allow.except, "except");
        for (index, except) in &excepts {
            // The API server requires each except to lie strictly inside the
            // CIDR it qualifies; one outside every CIDR would deny nothing.
            let inside = cidrs.iter().any(|(_, cidr)| cidr.strictly_covers(*except));
            let whole = cidrs.iter().any(|(_, cidr)| except.covers(*cidr));
            if !inside && !whole {
                self.report(
                    join_index(&join_property(path, "except"), *index),
                    format!(
                        "{} is not inside any of the cidrs, so it would deny nothing",
                        allow.except[*index]
                    ),
                );
            }
        }
        if !cidrs.is_empty()
            && cidrs.len() == allow.cidrs.len()
            && cidrs
                .iter()
                .all(|(_, cidr)| excepts.iter().any(|(_, except)| except.covers(*cidr)))
        {
            self.report(
                join_property(path, "except"),
                "every CIDR is excepted as a whole, so this allow would allow nothing",
            );
        }
    }

    fn limit_range(&mut self, spec: &LimitRangeSpec, path: &str) {
        // Kubernetes requires min <= defaultRequest <= default <= max per
        // resource. The CRD checks defaultRequest <= default and min <= max;
        // these are the other pairs.
        let sections = [
            ("min", spec.min.as_ref()),
            ("defaultRequest", spec.default_request.as_ref()),
            ("default", spec.default.as_ref()),
            ("max", spec.max.as_ref()),
        ];
        // (lower, higher) positions in `sections` the CRD does not compare.
        let pairs = [(0, 1), (0, 2), (1, 3), (2, 3)];
        for (low_index, high_index) in pairs {
            let (low_name, low) = sections[low_index];
            let (high_name, high) = sections[high_index];
            let (Some(low), Some(high)) = (low, high) else {
                continue;
            };
            for (resource, low_value) in low {
                let Some(high_value) = high.get(resource) else {
                    continue;
                };
                if compare_quantities(low_value, high_value) == Some(std::cmp::Ordering::Greater) {
                    self.report(
                        join_key(&join_property(path, high_name), resource),
                        format!(
                            "{high_name} {high_value} is below {low_name} {low_value} for {resource}"
                        ),
                    );
                }
            }
        }
    }

    fn resource_quota(&mut self, spec: &ResourceQuotaSpec, path: &str) {
        // What the API server's ResourceQuota validation refuses: a name
        // without a domain that is not a standard quota resource, and a
        // fraction for a resource that is counted.
        let hard_path = join_property(path, "hard");
        for (resource, quantity) in &spec.hard {
            let entry = join_key(&hard_path, resource);
            if !resource.contains('/') && !is_standard_quota_resource(resource) {
                self.report(
                    &entry,
                    format!(
                        "{resource:?} is not a resource ResourceQuotas limit; use e.g. requests.cpu, limits.memory, pods, count/deployments.apps or a domain-qualified name"
                    ),
                );
                continue;
            }
            let parsed = parse_quantity(quantity);
            if is_counted_resource(resource)
                && parsed
                    .as_ref()
                    .is_ok_and(|q| q.is_integral() == Some(false))
            {
                self.report(
                    &entry,
                    format!("{resource} is counted, so {quantity} must be a whole number"),
                );
            }
        }
    }

    fn role_bindings(&mut self, profile: &ProductionProfile) {
        let path = "spec.roleBindings";
        let bindings = &profile.spec.role_bindings;
        self.unique_names(bindings.iter().map(|b| b.name.as_str()), path);
        for (index, binding) in bindings.iter().enumerate() {
            let subjects_path = join_property(&join_index(path, index), "subjects");
            for (subject_index, subject) in binding.subjects.iter().enumerate() {
                self.subject(subject, &join_index(&subjects_path, subject_index));
            }
        }
    }

    fn subject(&mut self, subject: &SubjectSpec, path: &str) {
        let name_path = join_property(path, "name");
        match template::parse(&subject.name) {
            Err(error) => self.report(&name_path, format!("template {:?}: {error}", subject.name)),
            Ok(parts) => {
                for key in label_keys(&parts) {
                    if let Err(why) = check_label_key(key) {
                        self.report(
                            &name_path,
                            format!("template uses {{{{labels.{key}}}}}, which is not a label key: {why}"),
                        );
                    }
                }
                let first_literal = match parts.first() {
                    Some(Part::Literal(text)) => text.as_str(),
                    _ => "",
                };
                if subject.kind != SubjectKind::ServiceAccount
                    && first_literal.starts_with("system:")
                {
                    self.report(
                        &name_path,
                        "names starting with system: are the cluster's own identities; profiles may not bind them",
                    );
                }
                if subject.kind == SubjectKind::ServiceAccount {
                    for part in &parts {
                        if let Part::Literal(text) = part
                            && !text.chars().all(|c| {
                                c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.'
                            })
                        {
                            self.report(
                                &name_path,
                                format!("ServiceAccount names hold only lowercase letters, digits, '-' and '.', not {text:?}"),
                            );
                        }
                    }
                }
            }
        }
        if let Some(namespace) = &subject.namespace {
            let namespace_path = join_property(path, "namespace");
            match template::parse(namespace) {
                Err(error) => {
                    self.report(&namespace_path, format!("template {namespace:?}: {error}"))
                }
                Ok(parts) => {
                    for part in &parts {
                        if let Part::Literal(text) = part
                            && !text
                                .chars()
                                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                        {
                            self.report(
                                &namespace_path,
                                format!("namespace names hold only lowercase letters, digits and '-', not {text:?}"),
                            );
                        }
                    }
                }
            }
        }
    }

    fn backup(&mut self, backup: &BackupSpec, path: &str) {
        if let Err(why) = cron::check_schedule(&backup.schedule) {
            self.report(join_property(path, "schedule"), why);
        }
        match parse_duration(&backup.ttl) {
            Ok(nanos) if nanos > 0 => {}
            Ok(_) => self.report(join_property(path, "ttl"), "ttl must be positive"),
            Err(why) => self.report(
                join_property(path, "ttl"),
                format!(
                    "{:?} is not a duration such as 720h or 72h30m: {why}",
                    backup.ttl
                ),
            ),
        }
    }

    fn unique_names<'a>(&mut self, names: impl Iterator<Item = &'a str>, path: &str) {
        let mut seen = HashSet::new();
        for (index, name) in names.enumerate() {
            if !seen.insert(name) {
                self.report(
                    join_property(&join_index(path, index), "name"),
                    format!("duplicate name {name:?}"),
                );
            }
        }
    }
}

fn label_keys(parts: &[Part]) -> impl Iterator<Item = &str> {
    parts.iter().filter_map(|part| match part {
        Part::Label(key) => Some(key.as_str()),
        _ => None,
    })
}

/// Resource names a ResourceQuota accepts without a domain.
fn is_standard_quota_resource(name: &str) -> bool {
    const STANDARD: [&str; 19] = [
        "cpu",
        "memory",
        "ephemeral-storage",
        "requests.cpu",
        "requests.memory",
        "requests.storage",
        "requests.ephemeral-storage",
        "limits.cpu",
        "limits.memory",
        "limits.ephemeral-storage",
        "pods",
        "resourcequotas",
        "services",
        "replicationcontrollers",
        "secrets",
        "persistentvolumeclaims",
        "configmaps",
        "services.nodeports",
        "services.loadbalancers",
    ];
    STANDARD.contains(&name)
        || name.starts_with("hugepages-")
        || name.starts_with("requests.hugepages-")
}

/// Resources the API server requires whole numbers for: object counts, and
/// extended resources (a domain other than kubernetes.io).
fn is_counted_resource(name: &str) -> bool {
    const COUNTED: [&str; 9] = [
        "pods",
        "resourcequotas",
        "services",
        "replicationcontrollers",
        "secrets",
        "configmaps",
        "persistentvolumeclaims",
        "services.nodeports",
        "services.loadbalancers",
    ];
    let extended = name.contains('/')
        && !name.starts_with("requests.")
        && !name
            .split('/')
            .next()
            .is_some_and(|domain| domain == "kubernetes.io" || domain.ends_with(".kubernetes.io"));
    COUNTED.contains(&name) || extended
}

/// Compares two Kubernetes quantities with the same functions the API
/// server's CEL library uses. `None` when either is not a quantity (the
/// CRD's rules report that).
fn compare_quantities(a: &str, b: &str) -> Option<std::cmp::Ordering> {
    static PROGRAM: LazyLock<Option<Program>> =
        LazyLock::new(|| Program::compile("quantity(a).compareTo(quantity(b))").ok());
    let program = PROGRAM.as_ref()?;
    let mut context = Context::default().with_all();
    context.add_variable_from_value("a", a.to_owned());
    context.add_variable_from_value("b", b.to_owned());
    match program.execute(&context).ok()? {
        CelValue::Int(order) => Some(order.cmp(&0)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_compare_like_kubernetes() {
        use std::cmp::Ordering::*;
        assert_eq!(compare_quantities("500m", "1"), Some(Less));
        assert_eq!(compare_quantities("1Gi", "1073741824"), Some(Equal));
        assert_eq!(compare_quantities("2G", "1Gi"), Some(Greater));
        assert_eq!(compare_quantities("x", "1"), None);
    }

    #[test]
    fn names() {
        assert!(check_name("production-strict").is_empty());
        assert!(check_name("a.b").is_empty());
        assert!(!check_name("Prod").is_empty());
        assert!(!check_name("prod_1").is_empty());
    }
}
