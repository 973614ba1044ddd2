//! Shared by `tests/properties.rs` (proptest, bounded, in `cargo test`) and
//! the cargo-fuzz targets in `fuzz/` (included there with `#[path]`):
//!
//! * [`generate`]: bytes → a profile document (as JSON) and a namespace. The
//!   bytes choose, field by field, among valid and hostile values, so both
//!   engines explore the same space and shrink or minimise on bytes.
//! * [`check_profile_bytes`]: the property. Validation never panics; a
//!   profile it accepts renders without panicking, into objects the API
//!   server would accept.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};

use baseliner::api::{POD_SECURITY_LABELS, ProductionProfile};
use baseliner::namespace::NamespaceInfo;
use baseliner::render::{DesiredObject, RenderOptions, render_namespace};
use baseliner::syntax::{
    check_label_key, check_label_value, is_dns1123_label, is_dns1123_subdomain,
};
use baseliner::validate::{validate_documents, validate_value};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::{Map, Value, json};

/// Reads choices from fuzz bytes; past the end every choice is 0.
pub struct Bytes<'a> {
    data: &'a [u8],
    position: usize,
    /// Mostly valid values, short lists: so that plenty of profiles get
    /// past validation and their rendering is checked too.
    gentle: bool,
}

impl<'a> Bytes<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        let gentle = data.first().is_some_and(|b| b & 0b110 != 0);
        Self {
            data,
            position: 1,
            gentle,
        }
    }

    fn byte(&mut self) -> u8 {
        let byte = self.data.get(self.position).copied().unwrap_or(0);
        self.position += 1;
        byte
    }

    /// A number below `n` (n > 0).
    fn below(&mut self, n: usize) -> usize {
        let wide = (usize::from(self.byte()) << 8) | usize::from(self.byte());
        wide % n.max(1)
    }

    fn chance(&mut self, out_of_256: u8) -> bool {
        self.byte() < out_of_256
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())].clone()
    }

    fn exhausted(&self) -> bool {
        self.position >= self.data.len()
    }
}

fn long(prefix: &str, len: usize) -> String {
    let mut text = prefix.to_owned();
    while text.len() < len {
        text.push(char::from(b'a' + (text.len() % 26) as u8));
    }
    text
}

/// Strings that are hostile almost anywhere.
fn hostile_strings() -> Vec<String> {
    let mut list: Vec<String> = [
        "",
        " ",
        "a",
        "A",
        "-",
        "-a",
        "a-",
        "a.b",
        "a..b",
        "a_b",
        "a/b",
        "a b",
        "é",
        "\n",
        "\u{0}",
        "x\ty",
        "{{",
        "}}",
        "{{}}",
        "{{namespace",
        "{{ labels. }}",
        "system:",
        "system:masters",
        "kube-system",
        "default",
        "*",
        "?",
        "0",
        "-1",
        "1e3",
        ".",
        "+",
        "null",
        "true",
        "../..",
        "%2e",
        "\u{202e}abc",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    for len in [40, 41, 50, 51, 63, 64, 100, 253, 254] {
        list.push(long("n", len));
    }
    list
}

fn string_from(bytes: &mut Bytes, plausible: &[&str]) -> Value {
    if bytes.gentle {
        // The first plausible value is valid everywhere it is offered.
        let index = if bytes.chance(200) {
            0
        } else {
            bytes.below(plausible.len())
        };
        return Value::String(plausible[index].to_owned());
    }
    if bytes.chance(200) {
        Value::String(bytes.pick(plausible).to_owned())
    } else if bytes.chance(230) {
        Value::String(bytes.pick(&hostile_strings()))
    } else {
        wrong_type(bytes)
    }
}

/// A value of some other JSON type, for fields that want a string or map.
fn wrong_type(bytes: &mut Bytes) -> Value {
    match bytes.below(6) {
        0 => Value::Null,
        1 => json!(true),
        2 => json!(-7),
        3 => json!(1.5),
        4 => json!(["x"]),
        _ => json!({"x": "y"}),
    }
}

fn names(bytes: &mut Bytes) -> Value {
    string_from(
        bytes,
        &[
            "viewers",
            "team",
            "monitoring",
            "db",
            "a",
            "x-1",
            "dns",
            "default-deny",
            &long("n", 40),
            &long("b", 50),
        ],
    )
}

fn number(bytes: &mut Bytes, plausible: &[i64]) -> Value {
    if bytes.gentle {
        return json!(plausible[0]);
    }
    if bytes.chance(220) {
        json!(bytes.pick(plausible))
    } else {
        bytes.pick(&[
            json!(i64::MAX),
            json!(i64::MIN),
            json!(0.5),
            json!("80"),
            Value::Null,
        ])
    }
}

fn list(bytes: &mut Bytes, max: usize, item: impl Fn(&mut Bytes) -> Value) -> Value {
    let len = if bytes.gentle {
        1
    } else {
        match bytes.below(8) {
            0 => 0,
            7 => bytes.pick(&[max, max + 1]),
            n => n,
        }
    };
    Value::Array((0..len).map(|_| item(bytes)).collect())
}

fn string_map(bytes: &mut Bytes, keys: &[&str], values: &[&str], max: usize) -> Value {
    let len = if bytes.gentle {
        1
    } else {
        match bytes.below(6) {
            0 => 0,
            5 => bytes.pick(&[max, max + 1]),
            n => n,
        }
    };
    let mut map = Map::new();
    for index in 0..len {
        let key = if bytes.gentle {
            keys[0].to_owned()
        } else if bytes.chance(200) {
            bytes.pick(keys).to_owned()
        } else {
            format!("{}{index}", bytes.pick(&hostile_strings()))
        };
        map.insert(key, string_from(bytes, values));
    }
    Value::Object(map)
}

const LABEL_KEYS: [&str; 8] = [
    "env",
    "team",
    "app.kubernetes.io/name",
    "kubernetes.io/metadata.name",
    "-env",
    "k8s app",
    "a/b/c",
    "Example.com/x",
];
const LABEL_VALUES: [&str; 8] = [
    "prod", "", "payments", "prod env", "-x", "a.b_c", "kube-dns", "x",
];

fn selector(bytes: &mut Bytes) -> Value {
    if bytes.chance(40) {
        return json!({});
    }
    let mut selector = Map::new();
    if bytes.chance(160) {
        selector.insert(
            "matchLabels".to_owned(),
            string_map(bytes, &LABEL_KEYS, &LABEL_VALUES, 4),
        );
    }
    if bytes.chance(120) {
        selector.insert(
            "matchExpressions".to_owned(),
            list(bytes, 4, |bytes| {
                let mut expression = Map::new();
                expression.insert("key".to_owned(), string_from(bytes, &LABEL_KEYS));
                expression.insert(
                    "operator".to_owned(),
                    string_from(bytes, &["In", "NotIn", "Exists", "DoesNotExist", "Equals"]),
                );
                if bytes.chance(160) {
                    expression.insert(
                        "values".to_owned(),
                        list(bytes, 3, |bytes| string_from(bytes, &LABEL_VALUES)),
                    );
                }
                Value::Object(expression)
            }),
        );
    }
    Value::Object(selector)
}

fn ports(bytes: &mut Bytes) -> Value {
    list(bytes, 32, |bytes| {
        let mut port = Map::new();
        port.insert(
            "port".to_owned(),
            number(bytes, &[1, 53, 80, 443, 65535, 0, 65536]),
        );
        if bytes.chance(80) {
            port.insert(
                "endPort".to_owned(),
                number(bytes, &[1, 80, 8080, 65535, 65536]),
            );
        }
        if bytes.chance(128) {
            port.insert(
                "protocol".to_owned(),
                string_from(bytes, &["TCP", "UDP", "SCTP", "ICMP", "tcp"]),
            );
        }
        Value::Object(port)
    })
}

const CIDRS: [&str; 14] = [
    "10.0.0.0/8",
    "10.1.2.3/8",
    "10.20.0.0/16",
    "10.20.1.0/24",
    "0.0.0.0/0",
    "192.168.1.1/32",
    "fd00::/8",
    "::/0",
    "010.0.0.0/8",
    "10.0.0.0/08",
    "10.0.0.0/33",
    "::ffff:10.0.0.0/104",
    "10.0.0.0",
    "fe80::1%eth0/64",
];

fn network_policy(bytes: &mut Bytes) -> Value {
    let mut spec = Map::new();
    for flag in ["defaultDeny", "allowDNS", "allowSameNamespace"] {
        if bytes.chance(160) {
            spec.insert(flag.to_owned(), json!(bytes.chance(128)));
        }
    }
    if bytes.chance(60) {
        let mut dns = Map::new();
        if bytes.chance(128) {
            dns.insert(
                "namespace".to_owned(),
                string_from(bytes, &["kube-system", "dns", "Kube-System"]),
            );
        }
        if bytes.chance(128) {
            dns.insert(
                "podLabels".to_owned(),
                string_map(bytes, &["k8s-app", "k8s app"], &["kube-dns", "kube dns"], 8),
            );
        }
        spec.insert("dns".to_owned(), Value::Object(dns));
    }
    if bytes.chance(120) {
        let ingress = list(bytes, 32, |bytes| {
            let mut allow = Map::new();
            allow.insert("name".to_owned(), names(bytes));
            if bytes.chance(160) {
                allow.insert(
                    "namespaces".to_owned(),
                    list(bytes, 64, |bytes| {
                        string_from(bytes, &["monitoring", "ingress", "a"])
                    }),
                );
            }
            if bytes.chance(128) {
                allow.insert("namespaceSelector".to_owned(), selector(bytes));
            }
            if bytes.chance(80) {
                allow.insert("podSelector".to_owned(), selector(bytes));
            }
            if bytes.chance(100) {
                allow.insert("ports".to_owned(), ports(bytes));
            }
            Value::Object(allow)
        });
        spec.insert("allowIngressFrom".to_owned(), ingress);
    }
    if bytes.chance(120) {
        let egress = list(bytes, 32, |bytes| {
            let mut allow = Map::new();
            allow.insert("name".to_owned(), names(bytes));
            allow.insert(
                "cidrs".to_owned(),
                list(bytes, 32, |bytes| string_from(bytes, &CIDRS)),
            );
            if bytes.chance(128) {
                allow.insert(
                    "except".to_owned(),
                    list(bytes, 32, |bytes| string_from(bytes, &CIDRS)),
                );
            }
            if bytes.chance(100) {
                allow.insert("ports".to_owned(), ports(bytes));
            }
            Value::Object(allow)
        });
        spec.insert("allowEgressTo".to_owned(), egress);
    }
    Value::Object(spec)
}

const QUANTITIES: [&str; 16] = [
    "1",
    "500m",
    "2",
    "512Mi",
    "1Gi",
    "0",
    "-1",
    "1.5",
    ".",
    "+",
    " 1",
    "1e3",
    "1K",
    "1.5.5",
    "100",
    "9223372036854775808",
];

fn limit_range(bytes: &mut Bytes) -> Value {
    let mut spec = Map::new();
    for section in ["defaultRequest", "default", "min", "max"] {
        if bytes.chance(128) {
            spec.insert(
                section.to_owned(),
                string_map(
                    bytes,
                    &["cpu", "memory", "ephemeral-storage", "gpu"],
                    &QUANTITIES,
                    3,
                ),
            );
        }
    }
    Value::Object(spec)
}

fn resource_quota(bytes: &mut Bytes) -> Value {
    json!({"hard": string_map(
        bytes,
        &["pods", "requests.cpu", "limits.memory", "count/deployments.apps", "cpus", "example.com/gpu", "Pods"],
        &QUANTITIES,
        64,
    )})
}

fn pod_security(bytes: &mut Bytes) -> Value {
    let mut spec = Map::new();
    for mode in ["enforce", "audit", "warn"] {
        if bytes.chance(128) {
            spec.insert(
                mode.to_owned(),
                string_from(bytes, &["privileged", "baseline", "restricted", "strict"]),
            );
        }
        if bytes.chance(80) {
            spec.insert(
                format!("{mode}Version"),
                string_from(bytes, &["latest", "v1.33", "v1.999", "1.33", "v2.0"]),
            );
        }
    }
    Value::Object(spec)
}

const SUBJECT_NAMES: [&str; 16] = [
    "ops",
    "team-{{labels.team}}-viewers",
    "{{labels.team}}",
    "{{namespace}}",
    "{{ labels.team }}",
    "{{labels.prefix}}:masters",
    "system:masters",
    "system:serviceaccounts:{{namespace}}",
    "deployer",
    "Deployer",
    "{{labels.absent}}",
    "{{labels.}}",
    "{{namespace}}.{{namespace}}.{{namespace}}.{{namespace}}.{{namespace}}",
    "team\nadmins",
    " lead",
    "équipe",
];

fn role_bindings(bytes: &mut Bytes) -> Value {
    list(bytes, 32, |bytes| {
        let mut binding = Map::new();
        binding.insert("name".to_owned(), names(bytes));
        binding.insert(
            "clusterRole".to_owned(),
            string_from(
                bytes,
                &[
                    "view",
                    "edit",
                    "admin",
                    "cluster-admin",
                    "system:aggregate-to-edit",
                    "Admin",
                ],
            ),
        );
        binding.insert(
            "subjects".to_owned(),
            list(bytes, 32, |bytes| {
                let mut subject = Map::new();
                subject.insert(
                    "kind".to_owned(),
                    string_from(bytes, &["Group", "User", "ServiceAccount", "Team"]),
                );
                subject.insert("name".to_owned(), string_from(bytes, &SUBJECT_NAMES));
                if bytes.chance(60) {
                    subject.insert(
                        "namespace".to_owned(),
                        string_from(
                            bytes,
                            &["{{namespace}}", "{{labels.home}}", "ci", "CI", "{{"],
                        ),
                    );
                }
                Value::Object(subject)
            }),
        );
        Value::Object(binding)
    })
}

fn backup(bytes: &mut Bytes) -> Value {
    let mut spec = Map::new();
    spec.insert(
        "schedule".to_owned(),
        string_from(
            bytes,
            &[
                "@daily",
                "0 2 * * *",
                "*/15 * * * *",
                "0 0 31 2 *",
                "0 0 29 2 *",
                "0 2 * * 7",
                "0 2 L * *",
                "a b c d e",
                "@every 1h",
                "0 2 * *",
                "0 0 31 4/5 *",
                "5/15 * * * MON-FRI",
            ],
        ),
    );
    if bytes.chance(128) {
        spec.insert(
            "ttl".to_owned(),
            string_from(
                bytes,
                &["720h", "72h30m", "1.5h", "0s", "30d", "2562048h", "1ms"],
            ),
        );
    }
    if bytes.chance(80) {
        spec.insert(
            "storageLocation".to_owned(),
            string_from(bytes, &["default", "primary.eu", "Primary"]),
        );
    }
    if bytes.chance(80) {
        spec.insert("snapshotVolumes".to_owned(), json!(bytes.chance(128)));
    }
    if bytes.chance(80) {
        spec.insert(
            "veleroNamespace".to_owned(),
            string_from(bytes, &["velero", "backup", &long("v", 63)]),
        );
    }
    Value::Object(spec)
}

/// A profile document and a namespace, chosen by `data`.
pub fn generate(data: &[u8]) -> (Value, NamespaceInfo) {
    let mut bytes = Bytes::new(data);
    let mut spec = Map::new();
    let mut namespaces = Map::new();
    if bytes.chance(200) {
        namespaces.insert("selector".to_owned(), selector(&mut bytes));
    }
    if bytes.chance(60) {
        namespaces.insert(
            "include".to_owned(),
            list(&mut bytes, 256, |bytes| {
                string_from(bytes, &["shop", "kube-system", "a"])
            }),
        );
    }
    if bytes.chance(60) {
        namespaces.insert(
            "exclude".to_owned(),
            list(&mut bytes, 256, |bytes| {
                string_from(bytes, &["shop", "web"])
            }),
        );
    }
    spec.insert("namespaces".to_owned(), Value::Object(namespaces));
    if bytes.chance(60) {
        spec.insert(
            "priority".to_owned(),
            number(&mut bytes, &[0, 1, -1000, 1000, 1001]),
        );
    }
    if bytes.chance(60) {
        spec.insert(
            "mode".to_owned(),
            string_from(&mut bytes, &["Enforce", "Audit", "audit"]),
        );
    }
    if bytes.chance(40) {
        spec.insert(
            "deletionPolicy".to_owned(),
            string_from(&mut bytes, &["Delete", "Orphan"]),
        );
    }
    type Section = fn(&mut Bytes) -> Value;
    let sections: [(&str, Section); 6] = [
        ("networkPolicy", network_policy),
        ("limitRange", limit_range),
        ("resourceQuota", resource_quota),
        ("podSecurity", pod_security),
        ("roleBindings", role_bindings),
        ("backup", backup),
    ];
    for (name, section) in sections {
        if bytes.chance(128) {
            spec.insert(name.to_owned(), section(&mut bytes));
        }
    }
    if !bytes.gentle && bytes.chance(8) {
        spec.insert(bytes.pick(&hostile_strings()), json!("unknown"));
    }
    let profile_name = string_from(
        &mut bytes,
        &[
            "shop",
            "production-strict",
            "a.b",
            &long("p", 63),
            &long("p", 64),
        ],
    );
    let document = json!({
        "apiVersion": "baseliner.dev/v1alpha1",
        "kind": "ProductionProfile",
        "metadata": {"name": profile_name},
        "spec": Value::Object(spec),
    });

    // Namespaces are what the API server lets exist: valid names and labels.
    let name = bytes.pick(&[
        "shop".to_owned(),
        "a".to_owned(),
        "kube-system".to_owned(),
        long("ns", 63),
        "team-a-prod".to_owned(),
    ]);
    let mut labels = BTreeMap::from([("kubernetes.io/metadata.name".to_owned(), name.clone())]);
    for key in ["env", "team", "prefix", "home", "owner"] {
        if bytes.chance(128) {
            let value = bytes.pick(&[
                "prod".to_owned(),
                "payments".to_owned(),
                String::new(),
                "Payments_Team".to_owned(),
                "system".to_owned(),
                "Kube_System".to_owned(),
                long("v", 63),
                "a.b-c_d".to_owned(),
            ]);
            labels.insert(key.to_owned(), value);
        }
    }
    let _ = bytes.exhausted();
    (document, NamespaceInfo { name, labels })
}

/// Arbitrary bytes as a YAML stream: validation must never panic.
pub fn check_yaml_bytes(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for report in validate_documents(&text) {
        // A valid report always carries its profile, an invalid one never.
        assert_eq!(
            report.is_valid(),
            report.profile.is_some() || report.exception.is_some(),
            "{report:?}"
        );
    }
}

/// The property over generated profiles. Returns whether the profile was
/// valid (so callers can count how much got past validation).
pub fn check_profile_bytes(data: &[u8]) -> bool {
    let (document, namespace) = generate(data);
    // The same document as YAML text must get the same verdict.
    let text = serde_json::to_string(&document).expect("JSON values serialize");
    let from_text = validate_documents(&text);
    let (_, result) = validate_value(document);
    assert_eq!(
        from_text.first().map(|r| r.is_valid()),
        Some(result.is_ok()),
        "text and value verdicts differ for {text}"
    );
    let Ok(mut profile) = result else {
        return false;
    };
    if data.first().is_some_and(|b| b & 1 == 1) {
        profile.metadata.uid = Some("7c9e6679-7425-40de-944b-e07fc1f90ae7".to_owned());
    }
    let mut options = RenderOptions::default();
    if data.get(1).is_some_and(|b| b & 1 == 1) {
        options
            .allowed_cluster_roles
            .insert("cluster-admin".to_owned());
    }
    check_render(&profile, &namespace, &options);
    true
}

/// Renders and checks every object against what the API server enforces.
pub fn check_render(
    profile: &ProductionProfile,
    namespace: &NamespaceInfo,
    options: &RenderOptions,
) {
    let rendered = render_namespace(profile, namespace, options);
    let context = || format!("profile {profile:?}\nnamespace {namespace:?}");
    assert_eq!(rendered.namespace, namespace.name);
    for problem in &rendered.problems {
        assert!(
            problem.field.starts_with("spec."),
            "{problem}\n{}",
            context()
        );
        assert!(!problem.message.is_empty(), "{problem}\n{}", context());
    }
    for (key, value) in &rendered.namespace_labels {
        assert!(
            POD_SECURITY_LABELS.contains(&key.as_str()),
            "{key}\n{}",
            context()
        );
        check_label_value(value)
            .unwrap_or_else(|e| panic!("label {key}={value}: {e}\n{}", context()));
    }
    let mut seen = BTreeSet::new();
    for object in &rendered.objects {
        let what = format!("{} {}/{}", object.kind(), object.namespace(), object.name());
        assert!(
            seen.insert((
                object.kind(),
                object.namespace().to_owned(),
                object.name().to_owned()
            )),
            "{what} rendered twice\n{}",
            context()
        );
        check_object(object, options).unwrap_or_else(|e| panic!("{what}: {e}\n{}", context()));
    }
}

fn check_labels(labels: &BTreeMap<String, String>) -> Result<(), String> {
    for (key, value) in labels {
        check_label_key(key).map_err(|e| format!("label key {key:?}: {e}"))?;
        check_label_value(value).map_err(|e| format!("label {key}={value:?}: {e}"))?;
    }
    Ok(())
}

fn check_selector(selector: &LabelSelector) -> Result<(), String> {
    check_labels(selector.match_labels.as_ref().unwrap_or(&BTreeMap::new()))?;
    for expression in selector.match_expressions.iter().flatten() {
        check_label_key(&expression.key).map_err(|e| format!("key {:?}: {e}", expression.key))?;
        let values = expression.values.as_deref().unwrap_or_default();
        match expression.operator.as_str() {
            "In" | "NotIn" if !values.is_empty() => {}
            "Exists" | "DoesNotExist" if values.is_empty() => {}
            other => return Err(format!("operator {other} with {} values", values.len())),
        }
        for value in values {
            check_label_value(value).map_err(|e| format!("value {value:?}: {e}"))?;
        }
    }
    Ok(())
}

fn check_object(object: &DesiredObject, options: &RenderOptions) -> Result<(), String> {
    let metadata = object.metadata();
    let name = object.name();
    if !is_dns1123_subdomain(name) || name.is_empty() {
        return Err(format!("name {name:?} is not a DNS-1123 subdomain"));
    }
    if !is_dns1123_label(object.namespace()) {
        return Err(format!(
            "namespace {:?} is not a DNS-1123 label",
            object.namespace()
        ));
    }
    let labels = metadata.labels.clone().unwrap_or_default();
    check_labels(&labels)?;
    if labels
        .get("app.kubernetes.io/managed-by")
        .map(String::as_str)
        != Some("baseliner")
    {
        return Err("no managed-by label".to_owned());
    }
    match object {
        DesiredObject::NetworkPolicy(policy) => {
            let spec = policy.spec.as_ref().ok_or("no spec")?;
            check_selector(spec.pod_selector.as_ref().ok_or("no podSelector")?)?;
            let peers = spec
                .ingress
                .iter()
                .flatten()
                .flat_map(|r| r.from.iter().flatten())
                .chain(
                    spec.egress
                        .iter()
                        .flatten()
                        .flat_map(|r| r.to.iter().flatten()),
                );
            for peer in peers {
                for selector in [&peer.namespace_selector, &peer.pod_selector]
                    .into_iter()
                    .flatten()
                {
                    check_selector(selector)?;
                }
                if let Some(block) = &peer.ip_block {
                    let cidr: ipnet::IpNet = block
                        .cidr
                        .parse()
                        .map_err(|_| format!("cidr {:?}", block.cidr))?;
                    if cidr.trunc() != cidr {
                        return Err(format!("cidr {} has host bits", block.cidr));
                    }
                    for except in block.except.iter().flatten() {
                        let except: ipnet::IpNet =
                            except.parse().map_err(|_| format!("except {except:?}"))?;
                        if !cidr.contains(&except) || except.prefix_len() <= cidr.prefix_len() {
                            return Err(format!("except {except} is not strictly inside {cidr}"));
                        }
                    }
                }
            }
            let ports = spec
                .ingress
                .iter()
                .flatten()
                .flat_map(|r| r.ports.iter().flatten())
                .chain(
                    spec.egress
                        .iter()
                        .flatten()
                        .flat_map(|r| r.ports.iter().flatten()),
                );
            for port in ports {
                let number = match &port.port {
                    Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n)) => *n,
                    other => return Err(format!("port {other:?}")),
                };
                if !(1..=65535).contains(&number) {
                    return Err(format!("port {number}"));
                }
                if let Some(end) = port.end_port
                    && !(number..=65535).contains(&end)
                {
                    return Err(format!("endPort {end} for port {number}"));
                }
                if !matches!(port.protocol.as_deref(), Some("TCP" | "UDP" | "SCTP")) {
                    return Err(format!("protocol {:?}", port.protocol));
                }
            }
        }
        DesiredObject::RoleBinding(binding) => {
            if !options
                .allowed_cluster_roles
                .contains(&binding.role_ref.name)
            {
                return Err(format!("roleRef {} is not allowed", binding.role_ref.name));
            }
            let subjects = binding.subjects.as_deref().unwrap_or_default();
            if subjects.is_empty() {
                return Err("no subjects".to_owned());
            }
            for subject in subjects {
                match subject.kind.as_str() {
                    "ServiceAccount" => {
                        if !is_dns1123_subdomain(&subject.name) {
                            return Err(format!("ServiceAccount name {:?}", subject.name));
                        }
                        if !subject.namespace.as_deref().is_some_and(is_dns1123_label) {
                            return Err(format!(
                                "ServiceAccount namespace {:?}",
                                subject.namespace
                            ));
                        }
                    }
                    "User" | "Group" => {
                        if subject.name.is_empty() || subject.name.starts_with("system:") {
                            return Err(format!("{} {:?}", subject.kind, subject.name));
                        }
                        if subject.namespace.is_some() {
                            return Err("namespace on a User or Group".to_owned());
                        }
                    }
                    other => return Err(format!("subject kind {other}")),
                }
            }
        }
        DesiredObject::Schedule(schedule) => {
            if name.len() > 63 || !is_dns1123_label(name) {
                return Err(format!("Schedule name {name:?} is not a DNS-1123 label"));
            }
            if baseliner::cron::check_schedule(&schedule.spec.schedule).is_err() {
                return Err(format!("schedule {:?} was written", schedule.spec.schedule));
            }
            let backup_labels = schedule
                .spec
                .template
                .metadata
                .as_ref()
                .map(|m| m.labels.clone())
                .unwrap_or_default();
            check_labels(&backup_labels)?;
        }
        DesiredObject::LimitRange(_) | DesiredObject::ResourceQuota(_) => {}
    }
    Ok(())
}
