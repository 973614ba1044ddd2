//! Checks beyond the CRD: mistakes the API server would accept in a profile
//! but that make it fail, or do something else than meant, once rendered.

use std::collections::HashSet;
use std::sync::LazyLock;

use ipnet::IpNet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::core::cel::KubeCelExt;
use kube::core::cel::cel::{Context, Program, Value as CelValue};
use regex::Regex;

use super::{Problem, cron, join_index, join_key, join_property};
use crate::api::{
    BackupSpec, EgressAllow, LimitRangeSpec, NetworkPolicySpec, ProductionProfile,
    ResourceQuotaSpec, SubjectKind, SubjectSpec,
};
use crate::template::{self, Part};

static DNS1123_SUBDOMAIN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
        .expect("static regex")
});
static QUALIFIED_NAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$").expect("static regex")
});
static LABEL_VALUE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$").expect("static regex")
});

/// Checks the profile's name, whatever state the rest of it is in.
pub(crate) fn check_name(name: &str) -> Vec<Problem> {
    let mut problems = Vec::new();
    if name.len() > 253 || !DNS1123_SUBDOMAIN.is_match(name) {
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

    fn selector(&mut self, selector: &LabelSelector, path: &str) {
        let labels_path = join_property(path, "matchLabels");
        for (key, value) in selector.match_labels.iter().flatten() {
            let entry = join_key(&labels_path, key);
            if let Err(why) = check_label_key(key) {
                self.report(&entry, format!("invalid label key {key:?}: {why}"));
            }
            if let Err(why) = check_label_value(value) {
                self.report(&entry, format!("invalid label value {value:?}: {why}"));
            }
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
            match expression.operator.as_str() {
                "In" | "NotIn" if values.is_empty() => self.report(
                    &values_path,
                    format!("operator {} needs at least one value", expression.operator),
                ),
                "Exists" | "DoesNotExist" if !values.is_empty() => self.report(
                    &values_path,
                    format!("operator {} takes no values", expression.operator),
                ),
                "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
                other => self.report(
                    join_property(&item, "operator"),
                    format!("unknown operator {other:?}: use In, NotIn, Exists or DoesNotExist"),
                ),
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
            let labels_path = join_property(&join_property(path, "dns"), "podLabels");
            for (key, value) in &dns.pod_labels {
                let entry = join_key(&labels_path, key);
                if let Err(why) = check_label_key(key) {
                    self.report(&entry, format!("invalid label key {key:?}: {why}"));
                }
                if let Err(why) = check_label_value(value) {
                    self.report(&entry, format!("invalid label value {value:?}: {why}"));
                }
            }
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
                match text.parse::<IpNet>() {
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
            let inside = cidrs
                .iter()
                .any(|(_, cidr)| cidr.contains(except) && except.prefix_len() > cidr.prefix_len());
            let whole = cidrs.iter().any(|(_, cidr)| except.contains(cidr));
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
                .all(|(_, cidr)| excepts.iter().any(|(_, except)| except.contains(cidr)))
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
            let parsed = super::go_compat::parse_quantity(quantity);
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
        match parse_go_duration(&backup.ttl) {
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

/// A label key: an optional DNS subdomain prefix and `/`, then a name of at
/// most 63 characters.
pub fn check_label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix
        && (prefix.is_empty() || prefix.len() > 253 || !DNS1123_SUBDOMAIN.is_match(prefix))
    {
        return Err(format!(
            "prefix {prefix:?} must be a DNS subdomain such as example.com"
        ));
    }
    if name.is_empty() || name.len() > 63 || !QUALIFIED_NAME.is_match(name) {
        return Err(
            "the name part must be 1-63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
                .to_owned(),
        );
    }
    Ok(())
}

/// A label value: empty, or at most 63 characters of the label name set.
pub fn check_label_value(value: &str) -> Result<(), String> {
    if value.len() > 63 || !LABEL_VALUE.is_match(value) {
        return Err(
            "must be at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
                .to_owned(),
        );
    }
    Ok(())
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

/// Parses a duration as Go's `time.ParseDuration` does, in nanoseconds.
pub(crate) fn parse_go_duration(text: &str) -> Result<i64, String> {
    let (negative, mut rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err("empty duration".to_owned());
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let whole = &rest[..digits];
        rest = &rest[digits..];
        let mut fraction = "";
        if let Some(after_dot) = rest.strip_prefix('.') {
            let fraction_digits = after_dot.bytes().take_while(u8::is_ascii_digit).count();
            fraction = &after_dot[..fraction_digits];
            rest = &after_dot[fraction_digits..];
        }
        if whole.is_empty() && fraction.is_empty() {
            return Err("expected a number".to_owned());
        }
        let unit_len = rest
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit() || *c == '.')
            .map_or(rest.len(), |(i, _)| i);
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let scale: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60 * 1_000_000_000,
            "h" => 3_600 * 1_000_000_000,
            "" => return Err("missing unit (use h, m, s or ms)".to_owned()),
            other => return Err(format!("unknown unit {other:?} (use h, m, s or ms)")),
        };
        let whole: u128 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| "number too large".to_owned())?
        };
        let mut value = whole.checked_mul(scale).ok_or("number too large")?;
        let mut divisor: u128 = 1;
        for digit in fraction.bytes().take(30) {
            divisor *= 10;
            value += u128::from(digit - b'0') * scale / divisor;
        }
        total = total.checked_add(value).ok_or("number too large")?;
        if total > i64::MAX as u128 {
            return Err("longer than Go durations allow (about 2562047h)".to_owned());
        }
    }
    let total = total as i64;
    Ok(if negative { -total } else { total })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        let hour = 3_600_000_000_000_i64;
        let ok = [
            ("720h", 720 * hour),
            ("72h30m", 72 * hour + hour / 2),
            ("1.5h", hour + hour / 2),
            ("90s", 90_000_000_000),
            ("250ms", 250_000_000),
            ("1h0m0s", hour),
            ("0", 0),
            ("-1h", -hour),
            (".5h", hour / 2),
        ];
        for (text, nanos) in ok {
            assert_eq!(parse_go_duration(text), Ok(nanos), "{text}");
        }
        for text in ["", "h", "10", "10d", "1h30", "1..5h", "9999999999h", "1 h"] {
            assert!(parse_go_duration(text).is_err(), "{text}");
        }
    }

    #[test]
    fn label_keys_and_values() {
        for key in ["team", "app.kubernetes.io/name", "a_b.c-d", "x"] {
            assert_eq!(check_label_key(key), Ok(()), "{key}");
        }
        for key in [
            "",
            "-a",
            "a-",
            "Example.com/x",
            "/x",
            "a/",
            "a/b/c",
            &"k".repeat(64),
        ] {
            assert!(check_label_key(key).is_err(), "{key}");
        }
        for value in ["", "prod", "A_b.c-1"] {
            assert_eq!(check_label_value(value), Ok(()), "{value}");
        }
        for value in ["-x", "x y", "a/b", &"v".repeat(64)] {
            assert!(check_label_value(value).is_err(), "{value}");
        }
    }

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
