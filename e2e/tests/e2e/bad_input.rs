//! Bad input, table-driven, through the API server with kubectl as a user
//! would (issue 8): malformed and hostile profiles are either refused by the
//! API server with a message naming the field (and the offline validator
//! agrees: same verdict, same field), or accepted and reported in status with
//! a clear reason. None stops the operator, none disturbs another profile.
//!
//! * Every fixture of `tests/fixtures/invalid/` whose stage is `schema` or
//!   `rule` must be refused by `kubectl apply --server-side`; every
//!   `semantic` one is accepted and must be reported in status (or, where the
//!   operator cannot do anything wrong with it, is shown to be harmless).
//! * Hostile profiles the API server accepts: roles off the allow list,
//!   templates expanding to names Kubernetes refuses or to `system:`
//!   identities, crons that never fire or do not parse, values the target
//!   objects' own validation refuses, names at their maximum lengths, lists at
//!   their maximum sizes.
//! * `selector: {}` selects every namespace but the system ones. In this
//!   shared plane a profile selecting every namespace would write into other
//!   tests' namespaces, so it is never created here: the API server's verdict
//!   comes from a server-side dry run, the operator's selection from
//!   `baseliner render` (the same pure function the controller calls) for
//!   each system namespace, and on the real operator from a selector naming
//!   every system namespace plus one of this test's own.
//!
//! Each case gets its own namespace labelled with a random `e2e-case`, and
//! its profile selects only that label (fixtures that are about the selector
//! itself keep theirs: those select nothing anywhere).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use baseliner::api::{ProductionProfile, ProductionProfileStatus};
use baseliner::validate::validate_documents;
use baseliner_e2e::baseline::{
    STRICT_SPEC, delete_profile, keys, kubectl_apply, managed_objects, profile_yaml, strict_objects,
};
use baseliner_e2e::operator::{operator_binary, shared_operator};
use baseliner_e2e::velero::{VELERO_NAMESPACE, schedules};
use baseliner_e2e::{TestEnv, TestNamespace, random_name, wait_until, workspace_root};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use serde_json::{Value, json};

/// Time for every case's status to say what it should.
const SETTLE: Duration = Duration::from_secs(90);

/// Whether the operator treats `reason` as needing a change to the profile.
fn stalls(reason: &str) -> bool {
    reason
        .parse::<baseliner::reason::Reason>()
        .is_ok_and(baseliner::reason::Reason::stalls_profile)
}

// ---------------------------------------------------------------------------
// The table

/// What the cluster must do with one profile the API server accepts.
#[derive(Clone, Debug)]
enum Expect {
    /// The namespace is listed in `status.nonCompliant` with this reason and
    /// a message containing `fragment`.
    Reported {
        reason: &'static str,
        fragment: String,
    },
    /// Accepted and applied: the one namespace is compliant, and `check`
    /// (if any) holds for what was written.
    Compliant(Check),
    /// The selector can match no namespace (a label key or value no
    /// namespace can carry): matched 0, and nothing written anywhere.
    SelectsNothing,
}

/// Extra checks on what a compliant hostile profile wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Check {
    None,
    /// Names at their maximum lengths: every derived name fits.
    MaxLengths,
    /// Lists at their maximum sizes: every object is there.
    HugeLists,
    /// A CIDR with host bits set is written canonically.
    CanonicalCidr,
    /// An except outside every CIDR is left out, as it would deny nothing.
    ExceptLeftOut,
}

/// A profile the API server must accept, and what must follow.
struct Accepted {
    id: String,
    /// The profile as JSON, `metadata.name` and `spec.namespaces` filled in
    /// by [`Accepted::prepare`].
    profile: Value,
    /// Whether `spec.namespaces` is replaced by the case's own selector.
    own_selector: bool,
    /// Labels of the case's namespace besides `e2e-case`.
    labels: BTreeMap<String, String>,
    /// A namespace name prefix, to get a long name.
    namespace_prefix: Option<String>,
    /// A fixed profile name (for the maximum-length case).
    profile_name: Option<String>,
    expect: Expect,
}

/// A profile the API server must refuse, naming `path`.
struct Refused {
    id: String,
    yaml: String,
    path: String,
}

fn team_labels() -> BTreeMap<String, String> {
    BTreeMap::from([("team".to_owned(), "payments".to_owned())])
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// `spec` given as YAML (without `namespaces`), as a profile skeleton.
fn hostile(id: &str, spec_body: &str) -> Value {
    let yaml = profile_yaml("placeholder", "placeholder", spec_body);
    serde_saphyr::from_str(&yaml).unwrap_or_else(|e| panic!("case {id} is not YAML: {e}\n{yaml}"))
}

fn reported(reason: &'static str, fragment: &str) -> Expect {
    Expect::Reported {
        reason,
        fragment: fragment.to_owned(),
    }
}

fn accepted(
    id: &str,
    spec_body: &str,
    labels: BTreeMap<String, String>,
    expect: Expect,
) -> Accepted {
    Accepted {
        id: id.to_owned(),
        profile: hostile(id, spec_body),
        own_selector: true,
        labels,
        namespace_prefix: None,
        profile_name: None,
        expect,
    }
}

fn binding(role: &str, kind: &str, name: &str, namespace: Option<&str>) -> String {
    let namespace = namespace.map_or(String::new(), |n| format!(", namespace: {n:?}"));
    format!(
        "  roleBindings:\n    - name: bad\n      clusterRole: {role:?}\n      subjects:\n        - {{kind: {kind}, name: {name:?}{namespace}}}\n"
    )
}

/// Hostile profiles the API server accepts and the operator must handle.
fn hostile_accepted() -> Vec<Accepted> {
    let rb = "spec.roleBindings[0]";
    let subject = "spec.roleBindings[0].subjects[0]";
    let mut cases = vec![
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
            "cron-february-30",
            "  backup:\n    schedule: \"15 3 30 2 *\"\n",
            BTreeMap::new(),
            reported("InvalidSchedule", "never"),
        ),
        accepted(
            "cron-letters",
            "  backup:\n    schedule: \"a b c d e\"\n",
            BTreeMap::new(),
            reported("InvalidSchedule", "minute field \"a\""),
        ),
        accepted(
            "velero-namespace-missing",
            &format!(
                "  backup:\n    schedule: \"@daily\"\n    veleroNamespace: {}\n",
                random_name("no-velero")
            ),
            BTreeMap::new(),
            reported("BackupsUnavailable", "is Velero installed"),
        ),
        accepted(
            "limit-request-above-max",
            "  limitRange:\n    defaultRequest: {cpu: \"2\"}\n    max: {cpu: \"1\"}\n",
            BTreeMap::new(),
            reported("Rejected", "LimitRange"),
        ),
        accepted(
            "pod-security-future-version",
            "  podSecurity:\n    enforce: restricted\n    enforceVersion: v1.999\n",
            BTreeMap::new(),
            Expect::Compliant(Check::None),
        ),
        accepted(
            "group-unicode",
            &binding("view", "Group", "équipe-{{labels.team}}", None),
            team_labels(),
            Expect::Compliant(Check::None),
        ),
        accepted(
            "cidr-host-bits",
            "  networkPolicy:\n    allowEgressTo:\n      - {name: corp, cidrs: [\"10.1.2.3/8\"]}\n",
            BTreeMap::new(),
            Expect::Compliant(Check::CanonicalCidr),
        ),
    ];

    // Names at their limits: a 63-character profile and namespace (the
    // Schedule name must still fit in 63), a 50-character binding name, and
    // 40-character allow names (NetworkPolicy names must fit too).
    let long = |prefix: &str, len: usize| -> String {
        let mut name = prefix.to_owned();
        while name.len() < len {
            name.push(char::from(b'a' + (name.len() % 26) as u8));
        }
        name
    };
    let mut max = accepted(
        "max-lengths",
        &format!(
            "  networkPolicy:\n    allowIngressFrom:\n      - {{name: {}, namespaces: [kube-system]}}\n    allowEgressTo:\n      - {{name: {}, cidrs: [10.0.0.0/8]}}\n  roleBindings:\n    - name: {}\n      clusterRole: view\n      subjects: [{{kind: Group, name: \"{}\"}}]\n  backup:\n    schedule: \"@daily\"\n",
            long("in", 40),
            long("out", 40),
            long("rb", 50),
            "g".repeat(253),
        ),
        BTreeMap::new(),
        Expect::Compliant(Check::MaxLengths),
    );
    max.namespace_prefix = Some(long("bad-max-", 60));
    max.profile_name = Some(format!(
        "{}-{}",
        long("bad-max", 54),
        &random_name("x")[2..]
    ));
    cases.push(max);

    // Lists at their maximum sizes.
    let subjects: Vec<String> = (0..32)
        .map(|j| format!("{{kind: Group, name: \"g-{j}-{{{{labels.team}}}}\"}}"))
        .collect();
    let bindings: String = (0..32)
        .map(|i| {
            format!(
                "    - name: b{i}\n      clusterRole: {}\n      subjects: [{}]\n",
                ["view", "edit", "admin"][i % 3],
                subjects.join(", ")
            )
        })
        .collect();
    let namespaces: Vec<String> = (0..64).map(|i| format!("peer-{i}")).collect();
    let ports: Vec<String> = (0..32).map(|i| format!("{{port: {}}}", 8000 + i)).collect();
    let ingress: String = (0..32)
        .map(|i| {
            format!(
                "      - name: from{i}\n        namespaces: [{}]\n        ports: [{}]\n",
                namespaces.join(", "),
                ports.join(", ")
            )
        })
        .collect();
    let cidrs: Vec<String> = (0..32).map(|i| format!("10.{i}.0.0/16")).collect();
    let excepts: Vec<String> = (0..32).map(|i| format!("10.{i}.1.0/24")).collect();
    let egress: String = (0..32)
        .map(|i| {
            format!(
                "      - name: to{i}\n        cidrs: [{}]\n        except: [{}]\n",
                cidrs.join(", "),
                excepts.join(", ")
            )
        })
        .collect();
    let quota: Vec<String> = (0..64)
        .map(|i| format!("count/things{i}.example.com: \"{i}\""))
        .collect();
    let names: Vec<String> = (0..256).map(|i| format!("unused-{i}")).collect();
    let mut huge = accepted(
        "huge-lists",
        &format!(
            "  networkPolicy:\n    allowIngressFrom:\n{ingress}    allowEgressTo:\n{egress}  resourceQuota:\n    hard: {{{}}}\n  roleBindings:\n{bindings}",
            quota.join(", ")
        ),
        team_labels(),
        Expect::Compliant(Check::HugeLists),
    );
    // 256 names that exist nowhere, in include and in exclude.
    huge.profile["spec"]["namespaces"] = json!({"include": names, "exclude": names});
    cases.push(huge);
    cases
}

/// What a semantic fixture does once the operator has it.
fn semantic_expectation(file: &str, path: &str) -> Expect {
    let number: u32 = file[..2].parse().unwrap_or_default();
    match number {
        // Crons Velero cannot parse, or that match no date.
        41..=43 | 60 => reported("InvalidSchedule", "spec.backup.schedule: "),
        // Quotas the ResourceQuota's own validation refuses.
        63 => reported("Rejected", "cpus"),
        65 => reported("Rejected", "must be an integer"),
        // A label key or value no namespace can carry.
        44 | 45 => Expect::SelectsNothing,
        // Selectors and LimitRanges the target kinds' own validation refuses:
        // the API server's refusal of that object is reported.
        46 | 47 => reported("Rejected", "matchExpressions[0]"),
        50 => reported("Rejected", "k8s app"),
        54 => reported("Rejected", "LimitRange"),
        // An except outside every CIDR would deny nothing; it is left out.
        48 => Expect::Compliant(Check::ExceptLeftOut),
        49 => reported("EgressAllowsNothing", path),
        51..=53 => reported("InvalidSubject", path),
        _ => panic!("{file}: no expectation for this semantic fixture; add one"),
    }
}

/// Hostile profiles the API server must refuse, with the field it names.
fn hostile_refused() -> Vec<Refused> {
    let case = |id: &str, body: &str, path: &str| Refused {
        id: id.to_owned(),
        yaml: profile_yaml(&random_name(&format!("bad-{id}")), "never-applied", body),
        path: path.to_owned(),
    };
    let many = |n: usize, f: &dyn Fn(usize) -> String| (0..n).map(f).collect::<Vec<_>>().join(", ");
    vec![
        case(
            "cidr-prefix-leading-zero",
            "  networkPolicy:\n    allowEgressTo: [{name: a, cidrs: [\"10.0.0.0/08\"]}]\n",
            "spec.networkPolicy.allowEgressTo[0].cidrs",
        ),
        case(
            "cidr-ipv4-mapped",
            "  networkPolicy:\n    allowEgressTo: [{name: a, cidrs: [\"::ffff:10.0.0.0/104\"]}]\n",
            "spec.networkPolicy.allowEgressTo[0].cidrs",
        ),
        case(
            "cidr-zone",
            "  networkPolicy:\n    allowEgressTo: [{name: a, cidrs: [\"fe80::1%eth0/64\"]}]\n",
            "spec.networkPolicy.allowEgressTo[0].cidrs",
        ),
        case(
            "except-not-cidr",
            "  networkPolicy:\n    allowEgressTo: [{name: a, cidrs: [10.0.0.0/8], except: [10.1.0.0]}]\n",
            "spec.networkPolicy.allowEgressTo[0].except",
        ),
        case(
            "quota-as-list",
            "  resourceQuota:\n    hard: [pods]\n",
            "spec.resourceQuota.hard",
        ),
        case("spec-as-list", "  - 1\n", "spec"),
        case(
            "selector-as-string",
            "  priority: 1\n",
            "spec.namespaces.selector.matchLabels",
        ),
        case(
            "bindings-33",
            &format!(
                "  roleBindings: [{}]\n",
                many(33, &|i| format!("{{name: b{i}, clusterRole: view, subjects: [{{kind: Group, name: g}}]}}"))
            ),
            "spec.roleBindings",
        ),
        case(
            "subjects-33",
            &format!(
                "  roleBindings: [{{name: b, clusterRole: view, subjects: [{}]}}]\n",
                many(33, &|i| format!("{{kind: Group, name: g{i}}}"))
            ),
            "spec.roleBindings[0].subjects",
        ),
        case(
            "egress-cidrs-33",
            &format!(
                "  networkPolicy:\n    allowEgressTo: [{{name: a, cidrs: [{}]}}]\n",
                many(33, &|i| format!("10.{i}.0.0/16"))
            ),
            "spec.networkPolicy.allowEgressTo[0].cidrs",
        ),
        case(
            "ingress-namespaces-65",
            &format!(
                "  networkPolicy:\n    allowIngressFrom: [{{name: a, namespaces: [{}]}}]\n",
                many(65, &|i| format!("ns-{i}"))
            ),
            "spec.networkPolicy.allowIngressFrom[0].namespaces",
        ),
        case(
            "quota-65-entries",
            &format!(
                "  resourceQuota:\n    hard: {{{}}}\n",
                many(65, &|i| format!("count/t{i}.example.com: \"1\""))
            ),
            "spec.resourceQuota.hard",
        ),
        case(
            "subject-name-254",
            &format!(
                "  roleBindings: [{{name: b, clusterRole: view, subjects: [{{kind: Group, name: {}}}]}}]\n",
                "g".repeat(254)
            ),
            "spec.roleBindings[0].subjects[0].name",
        ),
        case(
            "subject-name-empty",
            "  roleBindings: [{name: b, clusterRole: view, subjects: [{kind: Group, name: \"\"}]}]\n",
            "spec.roleBindings[0].subjects[0].name",
        ),
        case(
            "cluster-role-uppercase",
            "  roleBindings: [{name: b, clusterRole: Cluster-Admin, subjects: [{kind: Group, name: g}]}]\n",
            "spec.roleBindings[0].clusterRole",
        ),
        case(
            "schedule-101-chars",
            &format!("  backup: {{schedule: \"{}\"}}\n", "1,".repeat(50) + "1 * * * *"),
            "spec.backup.schedule",
        ),
        case(
            "schedule-every",
            "  backup: {schedule: \"@every 1h\"}\n",
            "spec.backup.schedule",
        ),
        case(
            "schedule-with-timezone",
            "  backup: {schedule: \"CRON_TZ=UTC 0 2 * * *\"}\n",
            "spec.backup.schedule",
        ),
        case(
            "quota-negative",
            "  resourceQuota:\n    hard: {pods: \"-1\"}\n",
            "spec.resourceQuota.hard",
        ),
        case(
            "quota-value-padded",
            "  resourceQuota:\n    hard: {pods: \" 5\"}\n",
            "spec.resourceQuota.hard",
        ),
        case("priority-huge", "  priority: 1099511627776\n", "spec.priority"),
        case("priority-negative", "  priority: -1001\n", "spec.priority"),
        case(
            "unknown-nested-field",
            "  backup: {schedule: \"@daily\", retention: 30d}\n",
            "spec.backup.retention",
        ),
        case(
            "velero-namespace-too-long",
            &format!("  backup: {{schedule: \"@daily\", veleroNamespace: {}}}\n", "v".repeat(64)),
            "spec.backup.veleroNamespace",
        ),
        case(
            "storage-location-injection",
            "  backup: {schedule: \"@daily\", storageLocation: \"default; rm -rf /\"}\n",
            "spec.backup.storageLocation",
        ),
        case(
            "allow-name-injection",
            "  networkPolicy:\n    allowEgressTo: [{name: \"../../etc\", cidrs: [10.0.0.0/8]}]\n",
            "spec.networkPolicy.allowEgressTo[0].name",
        ),
        case(
            "dns-namespace-invalid",
            "  networkPolicy:\n    allowDNS: true\n    dns: {namespace: Kube-System}\n",
            "spec.networkPolicy.dns.namespace",
        ),
        case(
            "dns-pod-labels-empty",
            "  networkPolicy:\n    allowDNS: true\n    dns: {podLabels: {}}\n",
            "spec.networkPolicy.dns.podLabels",
        ),
        case(
            "default-deny-as-string",
            "  networkPolicy: {defaultDeny: \"no\"}\n",
            "spec.networkPolicy.defaultDeny",
        ),
    ]
    .into_iter()
    .map(|mut refused| {
        if refused.id == "selector-as-string" {
            // The selector itself is the bad input here.
            refused.yaml = format!(
                "apiVersion: baseliner.dev/v1alpha1\nkind: ProductionProfile\nmetadata:\n  name: {}\nspec:\n  namespaces:\n    selector:\n      matchLabels: everything\n",
                random_name("bad-selector-as-string")
            );
        }
        if refused.id == "spec-as-list" {
            refused.yaml = format!(
                "apiVersion: baseliner.dev/v1alpha1\nkind: ProductionProfile\nmetadata:\n  name: {}\nspec: [1]\n",
                random_name("bad-spec-as-list")
            );
        }
        refused
    })
    .collect()
}

// ---------------------------------------------------------------------------
// Fixtures

struct Fixture {
    file: String,
    text: String,
    path: String,
    stage: String,
}

fn fixtures() -> Result<Vec<Fixture>> {
    let directory = workspace_root().join("tests/fixtures/invalid");
    let mut files: Vec<_> = std::fs::read_dir(&directory)
        .with_context(|| format!("reading {}", directory.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let file = path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let text = std::fs::read_to_string(&path)?;
            let header = |key: &str| {
                text.lines()
                    .find_map(|line| line.strip_prefix(&format!("# {key}: ")))
                    .map(str::to_owned)
                    .with_context(|| format!("{file} has no `# {key}:` line"))
            };
            let expect = header("expect")?;
            let (path, _) = expect
                .split_once(": ")
                .with_context(|| format!("{file}: `# expect: PATH: fragment`"))?;
            Ok(Fixture {
                path: path.to_owned(),
                stage: header("stage")?,
                file,
                text,
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Checks

/// Whether an API server message names `path` (server-side apply's typed
/// patch errors write it with a leading dot).
fn names_field(message: &str, path: &str) -> bool {
    message.contains(path)
}

/// `kubectl apply --server-side` must fail naming `path`, and the offline
/// validator must refuse the same document at a stage the API server
/// enforces, at the same field. Returns a failure description, if any.
async fn check_refused(env: &TestEnv, id: &str, yaml: &str, path: &str) -> Result<Option<String>> {
    let mut failures = Vec::new();
    let reports = validate_documents(yaml);
    // `spec.x: message`, or for a rule on the whole object a message that
    // starts with the field it is about.
    let offline_names = |problem: &baseliner::validate::Problem| {
        problem.path == path
            || (problem.path.is_empty()
                && problem
                    .message
                    .strip_prefix(path)
                    .is_some_and(|rest| rest.starts_with(' ')))
    };
    let refused_offline = reports
        .iter()
        .flat_map(|r| &r.problems)
        .any(|p| p.stage.enforced_by_api_server() && offline_names(p));
    if !refused_offline {
        let all: Vec<String> = reports
            .iter()
            .flat_map(|r| &r.problems)
            .map(|p| format!("[{:?}] {p}", p.stage))
            .collect();
        failures.push(format!(
            "offline validator does not refuse {path} at a stage the API server enforces: {all:?}"
        ));
    }
    let out = env
        .kubectl_with_stdin(
            &env.plane().kubeconfig,
            [
                "apply",
                "--server-side",
                "--field-manager=e2e-user",
                "-f",
                "-",
            ],
            Some(yaml),
        )
        .await?;
    if out.success {
        // Never leave an accepted hostile profile behind.
        let _ = env
            .kubectl_with_stdin(
                &env.plane().kubeconfig,
                ["delete", "--ignore-not-found", "-f", "-"],
                Some(yaml),
            )
            .await;
        failures.push(format!("the API server accepted it: {}", out.stdout.trim()));
    } else if !names_field(&out.stderr, path) {
        failures.push(format!(
            "the API server's message does not name {path}: {}",
            out.stderr.trim()
        ));
    }
    Ok((!failures.is_empty()).then(|| format!("{id}: {}", failures.join("; "))))
}

fn condition<'a>(status: &'a ProductionProfileStatus, type_: &str) -> Option<&'a str> {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.status.as_str())
}

/// Whether the status says what `expect` wants for `namespace`; `Err`
/// describes what it says instead.
fn status_matches(
    profile: &ProductionProfile,
    namespace: &str,
    expect: &Expect,
) -> Result<(), String> {
    let Some(status) = &profile.status else {
        return Err("no status yet".to_owned());
    };
    if status.observed_generation != profile.metadata.generation {
        return Err(format!(
            "observedGeneration {:?}, generation {:?}",
            status.observed_generation, profile.metadata.generation
        ));
    }
    let listed = status
        .non_compliant
        .iter()
        .find(|p| p.namespace == namespace);
    let summary = format!(
        "matched {}, compliant {}, listed {:?}, Ready {:?}, Stalled {:?}",
        status.matched_namespaces,
        status.compliant_namespaces,
        listed.map(|p| (&p.reason, &p.message)),
        condition(status, "Ready"),
        condition(status, "Stalled"),
    );
    let ok = match expect {
        Expect::Reported { reason, fragment } => {
            status.matched_namespaces == 1
                && status.compliant_namespaces == 0
                && listed.is_some_and(|p| p.reason == *reason && p.message.contains(fragment))
                && condition(status, "Ready") == Some("False")
                && (condition(status, "Stalled") == Some("True")) == stalls(reason)
        }
        Expect::Compliant(_) => {
            status.matched_namespaces == 1
                && status.compliant_namespaces == 1
                && listed.is_none()
                && condition(status, "Ready") == Some("True")
        }
        Expect::SelectsNothing => status.matched_namespaces == 0 && listed.is_none(),
    };
    if ok { Ok(()) } else { Err(summary) }
}

/// Checks on what a compliant hostile profile wrote.
async fn check_written(env: &TestEnv, check: Check, profile: &str, namespace: &str) -> Result<()> {
    let client = env.client();
    let objects = managed_objects(&client, namespace).await?;
    match check {
        Check::None => {}
        Check::MaxLengths => {
            ensure!(profile.len() == 63, "profile name {profile} is not 63 long");
            ensure!(
                namespace.len() == 63,
                "namespace {namespace} is not 63 long"
            );
            let names: Vec<&String> = objects.keys().map(|(_, n)| n).collect();
            ensure!(objects.len() == 4, "expected 4 objects, found {names:?}");
            for name in names {
                ensure!(name.len() <= 63, "{name} is longer than 63");
            }
            let list = schedules(client.clone(), VELERO_NAMESPACE)
                .list(
                    &ListParams::default().labels(&format!("baseliner.dev/namespace={namespace}")),
                )
                .await?;
            let [schedule] = list.items.as_slice() else {
                bail!(
                    "expected one Schedule for {namespace}, found {}",
                    list.items.len()
                );
            };
            let name = schedule.name_any();
            ensure!(
                name.len() <= 63 && baseliner::syntax::is_dns1123_label(&name),
                "Schedule name {name:?} is not a DNS-1123 label of at most 63"
            );
            ensure!(
                schedule
                    .labels()
                    .get("baseliner.dev/profile")
                    .map(String::as_str)
                    == Some(profile),
                "the Schedule names its 63-character profile"
            );
        }
        Check::HugeLists => {
            let count = |kind: &str| objects.keys().filter(|(k, _)| k == kind).count();
            ensure!(
                count("RoleBinding") == 32,
                "RoleBindings: {}",
                count("RoleBinding")
            );
            // default-deny plus 32 ingress and 32 egress allows.
            ensure!(
                count("NetworkPolicy") == 65,
                "NetworkPolicies: {}",
                count("NetworkPolicy")
            );
            ensure!(count("ResourceQuota") == 1, "ResourceQuota missing");
        }
        Check::CanonicalCidr => {
            let policy = Api::<NetworkPolicy>::namespaced(client, namespace)
                .get("baseliner-allow-to-corp")
                .await?;
            let cidr = policy
                .spec
                .and_then(|s| s.egress)
                .and_then(|e| e.into_iter().next())
                .and_then(|r| r.to)
                .and_then(|t| t.into_iter().next())
                .and_then(|p| p.ip_block)
                .map(|b| b.cidr);
            ensure!(
                cidr.as_deref() == Some("10.0.0.0/8"),
                "written CIDR: {cidr:?}"
            );
        }
        Check::ExceptLeftOut => {
            let policies = Api::<NetworkPolicy>::namespaced(client, namespace)
                .list(&ListParams::default().labels("app.kubernetes.io/managed-by=baseliner"))
                .await?;
            for policy in policies {
                let text = serde_json::to_string(&policy.spec)?;
                ensure!(!text.contains("except"), "an except was written: {text}");
            }
        }
    }
    Ok(())
}

/// The shared operator's `/healthz`: found through its stdout (a file named
/// by `/proc/PID/fd/1`) among this process's children, where it logged the
/// address it serves on.
async fn shared_operator_health() -> Result<String> {
    let me = std::process::id().to_string();
    let mut logs = Vec::new();
    for entry in std::fs::read_dir("/proc")?.flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let stat = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let parent = stat
            .lines()
            .find_map(|l| l.strip_prefix("PPid:"))
            .map(str::trim);
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let is_operator = cmdline.split(|b| *b == 0).nth(1) == Some(b"run".as_slice());
        if parent == Some(me.as_str())
            && is_operator
            && let Ok(log) = std::fs::read_link(format!("/proc/{pid}/fd/1"))
        {
            logs.push(log);
        }
    }
    for log in logs {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let addr = text
            .lines()
            .filter(|l| l.contains("serving /metrics"))
            .find_map(|l| {
                // JSON logs carry it as a field, text logs as `addr=...`.
                match serde_json::from_str::<Value>(l) {
                    Ok(value) => value["fields"]["addr"].as_str().map(str::to_owned),
                    Err(_) => l
                        .split_whitespace()
                        .find_map(|word| word.strip_prefix("addr="))
                        .map(str::to_owned),
                }
            });
        if let Some(addr) = addr {
            return http_get(&addr, "/healthz").await;
        }
    }
    bail!("no running operator of this test process logged its HTTP address")
}

async fn http_get(addr: &str, path: &str) -> Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    Ok(response)
}

// ---------------------------------------------------------------------------
// The tests

/// One accepted case, running.
struct Running {
    case: Accepted,
    profile: String,
    namespace: TestNamespace,
}

#[tokio::test]
async fn bad_profiles_are_refused_or_reported_and_harm_nothing() -> Result<()> {
    let env = TestEnv::new().await?;
    shared_operator(env.plane())?;
    let client = env.client();
    let mut failures: Vec<String> = Vec::new();
    let mut tried = 0usize;
    let mut refused_count = 0usize;

    // (a) Fixtures the API server must refuse, and hostile ones likewise.
    let fixtures = fixtures()?;
    let mut refused: Vec<Refused> = Vec::new();
    let mut semantic: Vec<Accepted> = Vec::new();
    for fixture in &fixtures {
        match fixture.stage.as_str() {
            "schema" | "rule" => refused.push(Refused {
                id: fixture.file.clone(),
                yaml: fixture.text.clone(),
                path: fixture.path.clone(),
            }),
            "semantic" => {
                let profile: Value = serde_saphyr::from_str(&fixture.text)
                    .with_context(|| format!("{} is not YAML", fixture.file))?;
                semantic.push(Accepted {
                    id: fixture.file.clone(),
                    profile,
                    // Fixtures about the selector keep theirs.
                    own_selector: !fixture.path.starts_with("spec.namespaces"),
                    labels: team_labels(),
                    namespace_prefix: None,
                    profile_name: None,
                    expect: semantic_expectation(&fixture.file, &fixture.path),
                });
            }
            // `document` fixtures are not ProductionProfiles (one is a
            // ConfigMap, which kubectl would create): not API input here.
            _ => {}
        }
    }
    refused.extend(hostile_refused());
    for case in &refused {
        tried += 1;
        match check_refused(&env, &case.id, &case.yaml, &case.path).await? {
            None => refused_count += 1,
            Some(failure) => failures.push(failure),
        }
    }

    // (b) Profiles the API server accepts: each selects a namespace of its
    // own; a healthy control profile runs alongside.
    let mut cases = semantic;
    cases.extend(hostile_accepted());
    let mut running = Vec::new();
    for mut case in cases {
        tried += 1;
        let key = random_name("bad");
        let mut labels = case.labels.clone();
        labels.insert("e2e-case".to_owned(), key.clone());
        let prefix = case
            .namespace_prefix
            .clone()
            .unwrap_or_else(|| format!("bad-{}", case.id.trim_end_matches(".yaml")));
        let namespace = env.namespace_with_labels(&prefix, labels).await?;
        let profile = case
            .profile_name
            .clone()
            .unwrap_or_else(|| random_name(&format!("bad-{}", case.id.trim_end_matches(".yaml"))));
        case.profile["metadata"] = json!({"name": profile});
        if case.own_selector && case.id != "huge-lists" {
            case.profile["spec"]["namespaces"] =
                json!({"selector": {"matchLabels": {"e2e-case": key}}});
        }
        if case.id == "huge-lists" {
            case.profile["spec"]["namespaces"]["selector"] =
                json!({"matchLabels": {"e2e-case": key}});
        }
        let yaml = serde_json::to_string(&case.profile)?;
        // Same verdict offline: nothing the API server would refuse.
        let enforced: Vec<String> = validate_documents(&yaml)
            .iter()
            .flat_map(|r| &r.problems)
            .filter(|p| p.stage.enforced_by_api_server())
            .map(ToString::to_string)
            .collect();
        if !enforced.is_empty() {
            failures.push(format!(
                "{}: the offline validator refuses what the API server accepts: {enforced:?}",
                case.id
            ));
        }
        if let Err(error) = kubectl_apply(&env, &yaml).await {
            failures.push(format!("{}: the API server refused it: {error:#}", case.id));
            namespace.cleanup().await?;
            continue;
        }
        running.push(Running {
            case,
            profile,
            namespace,
        });
    }

    let control_key = random_name("ctl");
    let control = random_name("bad-control");
    let control_ns = env
        .namespace_with_labels(
            "bad-control",
            BTreeMap::from([
                ("e2e-case".to_owned(), control_key.clone()),
                ("team".to_owned(), "payments".to_owned()),
            ]),
        )
        .await?;
    kubectl_apply(&env, &profile_yaml(&control, &control_key, STRICT_SPEC)).await?;

    // Every case's status settles to what it should say.
    let profiles: Api<ProductionProfile> = Api::all(client.clone());
    let mut pending: BTreeMap<String, String> = running
        .iter()
        .map(|r| (r.case.id.clone(), "not checked yet".to_owned()))
        .collect();
    let deadline = std::time::Instant::now() + SETTLE;
    while !pending.is_empty() && std::time::Instant::now() < deadline {
        for run in &running {
            if !pending.contains_key(&run.case.id) {
                continue;
            }
            let verdict = match profiles.get_opt(&run.profile).await? {
                None => Err("the profile is gone".to_owned()),
                Some(profile) => status_matches(&profile, run.namespace.name(), &run.case.expect),
            };
            match verdict {
                Ok(()) => {
                    pending.remove(&run.case.id);
                }
                Err(why) => {
                    pending.insert(run.case.id.clone(), why);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for (id, why) in &pending {
        failures.push(format!("{id}: status did not settle as expected: {why}"));
    }

    // What each case wrote (or did not).
    let mut reported_count = 0usize;
    let mut harmless_count = 0usize;
    let events = Api::<Event>::namespaced(client.clone(), "default")
        .list(&ListParams::default())
        .await?
        .items;
    for run in &running {
        if pending.contains_key(&run.case.id) {
            continue;
        }
        let result = match &run.case.expect {
            Expect::Reported { reason, .. } => {
                reported_count += 1;
                // Problems found while rendering are also Warning Events.
                let rendered = [
                    "RoleNotAllowed",
                    "InvalidSubject",
                    "InvalidSchedule",
                    "EgressAllowsNothing",
                ];
                if rendered.contains(reason) {
                    let found = events.iter().any(|e| {
                        e.reason.as_deref() == Some(*reason)
                            && e.type_.as_deref() == Some("Warning")
                            && e.regarding.as_ref().and_then(|r| r.name.as_deref())
                                == Some(run.profile.as_str())
                    });
                    if found {
                        Ok(())
                    } else {
                        Err(anyhow::anyhow!(
                            "no Warning Event {reason} about the profile"
                        ))
                    }
                } else {
                    Ok(())
                }
            }
            Expect::Compliant(check) => {
                harmless_count += 1;
                check_written(&env, *check, &run.profile, run.namespace.name()).await
            }
            Expect::SelectsNothing => {
                harmless_count += 1;
                let objects = managed_objects(&client, run.namespace.name()).await?;
                if objects.is_empty() {
                    Ok(())
                } else {
                    Err(anyhow::anyhow!("it wrote {objects:?}"))
                }
            }
        };
        if let Err(error) = result {
            failures.push(format!("{}: {error:#}", run.case.id));
        }
    }

    // The control profile converged alongside, untouched by the others.
    let control_ok = wait_until("the control profile to be compliant", SETTLE, || async {
        let objects = managed_objects(&client, control_ns.name()).await;
        let status = profiles.get_opt(&control).await;
        objects.is_ok_and(|o| keys(&o) == strict_objects() && o.values().all(|p| p == &control))
            && status.is_ok_and(|p| {
                p.and_then(|p| p.status).is_some_and(|s| {
                    s.matched_namespaces == 1
                        && s.compliant_namespaces == 1
                        && condition(&s, "Ready") == Some("True")
                })
            })
    })
    .await;
    if let Err(error) = control_ok {
        failures.push(format!("control profile: {error:#}"));
    }

    // The operator is still up and healthy.
    if let Err(error) = shared_operator(env.plane()) {
        failures.push(format!("the operator stopped: {error:#}"));
    }
    match shared_operator_health().await {
        Ok(response) if response.starts_with("HTTP/1.1 200") => {}
        Ok(response) => failures.push(format!("/healthz: {response}")),
        Err(error) => failures.push(format!("/healthz: {error:#}")),
    }

    println!(
        "bad input: tried {tried}, rejected by the API server {refused_count}, reported in status {reported_count}, accepted and harmless {harmless_count}, failures {}",
        failures.len()
    );

    // Nothing left behind: deleting the profiles prunes what they made,
    // Velero Schedules in the Velero namespace included.
    let mut names: Vec<String> = running.iter().map(|r| r.profile.clone()).collect();
    names.push(control.clone());
    let mut args = vec![
        "delete".to_owned(),
        "productionprofile".to_owned(),
        "--wait=true".to_owned(),
    ];
    args.extend(names.iter().cloned());
    env.kubectl(&args).await?.ok()?;
    let namespaces: BTreeSet<String> = running
        .iter()
        .map(|r| r.namespace.name().to_owned())
        .chain([control_ns.name().to_owned()])
        .collect();
    let left = wait_until(
        "Schedules of deleted profiles to be pruned",
        SETTLE,
        || async {
            schedules(client.clone(), VELERO_NAMESPACE)
                .list(&ListParams::default().labels("app.kubernetes.io/managed-by=baseliner"))
                .await
                .is_ok_and(|list| {
                    !list.items.iter().any(|s| {
                        s.labels()
                            .get("baseliner.dev/namespace")
                            .is_some_and(|n| namespaces.contains(n))
                    })
                })
        },
    )
    .await;
    if let Err(error) = left {
        failures.push(format!("left behind: {error:#}"));
    }
    let left = wait_until(
        "managed objects of deleted profiles to be pruned",
        SETTLE,
        || async {
            for namespace in &namespaces {
                if !managed_objects(&client, namespace)
                    .await
                    .is_ok_and(|o| o.is_empty())
                {
                    return false;
                }
            }
            true
        },
    )
    .await;
    if let Err(error) = left {
        failures.push(format!("left behind: {error:#}"));
    }
    for run in running {
        run.namespace.cleanup().await?;
    }
    control_ns.cleanup().await?;

    ensure!(tried >= 40, "only {tried} bad profiles tried");
    ensure!(
        failures.is_empty(),
        "{} of {tried} bad profiles were not handled as they should be:\n{}",
        failures.len(),
        failures.join("\n")
    );
    Ok(())
}

/// `selector: {}` selects every namespace except the system ones. Proven
/// without creating such a profile in this shared plane (see the module
/// docs): the API server accepts it (server-side dry run); `baseliner render`
/// selects an ordinary namespace and none of the system ones; and the real
/// operator, given a selector naming every system namespace and one of this
/// test's own, writes only into the latter.
#[tokio::test]
async fn selecting_everything_never_touches_system_namespaces() -> Result<()> {
    let env = TestEnv::new().await?;
    shared_operator(env.plane())?;
    let client = env.client();
    let everything = format!(
        "apiVersion: baseliner.dev/v1alpha1\nkind: ProductionProfile\nmetadata:\n  name: {}\nspec:\n  namespaces:\n    selector: {{}}\n  resourceQuota:\n    hard: {{pods: \"5\"}}\n  podSecurity:\n    warn: baseline\n",
        random_name("bad-everything")
    );
    let dry = env
        .kubectl_with_stdin(
            &env.plane().kubeconfig,
            ["apply", "--server-side", "--dry-run=server", "-f", "-"],
            Some(&everything),
        )
        .await?;
    ensure!(
        dry.success,
        "the API server refuses selector {{}}: {}",
        dry.stderr
    );
    ensure!(
        validate_documents(&everything)[0].is_valid(),
        "offline refuses selector {{}}"
    );

    let dir = std::env::temp_dir().join(random_name("bad-everything"));
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("everything.yaml");
    std::fs::write(&file, &everything)?;
    let binary = operator_binary()?;
    let render = |namespace: &str| {
        std::process::Command::new(&binary)
            .args(["render", "--profile"])
            .arg(&file)
            .args(["--namespace", namespace])
            .output()
    };
    let ordinary = render("shop")?;
    ensure!(
        ordinary.status.success()
            && String::from_utf8_lossy(&ordinary.stdout).contains("baseliner-quota"),
        "selector {{}} must select an ordinary namespace: {ordinary:?}"
    );
    for system in ["kube-system", "kube-public", "kube-node-lease"] {
        let output = render(system)?;
        ensure!(
            output.status.code() == Some(3) && output.stdout.is_empty(),
            "selector {{}} must not select {system}: {output:?}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);

    // On the real operator: every system namespace by name, and ours.
    let ns = env.namespace("bad-sys").await?;
    let profile = random_name("bad-sys");
    let yaml = format!(
        "apiVersion: baseliner.dev/v1alpha1\nkind: ProductionProfile\nmetadata:\n  name: {profile}\nspec:\n  namespaces:\n    selector:\n      matchExpressions:\n        - {{key: kubernetes.io/metadata.name, operator: In, values: [kube-system, kube-public, kube-node-lease, {}]}}\n  resourceQuota:\n    hard: {{pods: \"5\"}}\n  podSecurity:\n    warn: baseline\n",
        ns.name()
    );
    kubectl_apply(&env, &yaml).await?;
    let profiles: Api<ProductionProfile> = Api::all(client.clone());
    wait_until(
        "the profile to own exactly one namespace",
        SETTLE,
        || async {
            managed_objects(&client, ns.name())
                .await
                .is_ok_and(|o| o.len() == 1)
                && profiles.get_opt(&profile).await.is_ok_and(|p| {
                    p.and_then(|p| p.status)
                        .is_some_and(|s| s.matched_namespaces == 1 && s.compliant_namespaces == 1)
                })
        },
    )
    .await?;
    for system in ["kube-system", "kube-public", "kube-node-lease"] {
        ensure!(
            managed_objects(&client, system).await?.is_empty(),
            "{system} got managed objects"
        );
        let labels = baseliner_e2e::baseline::namespace_labels(&client, system).await?;
        ensure!(
            !labels.contains_key("pod-security.kubernetes.io/warn"),
            "{system} was labelled: {labels:?}"
        );
    }
    delete_profile(&env, &profile).await?;
    ns.cleanup().await
}
