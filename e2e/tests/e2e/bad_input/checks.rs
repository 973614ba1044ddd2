//! The checks each row goes through: refused by the API server and the
//! offline validator alike, the status a profile settles to, what a
//! compliant hostile profile wrote, and the shared operator's health.

use anyhow::{Result, bail, ensure};
use baseliner::api::{ProductionProfile, ProductionProfileStatus};
use baseliner::validate::validate_documents;
use baseliner_e2e::TestEnv;
use baseliner_e2e::baseline::managed_objects;
use baseliner_e2e::velero::{VELERO_NAMESPACE, schedules};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use serde_json::Value;

use super::table::{Check, Expect};

/// Whether the operator treats `reason` as needing a change to the profile.
fn stalls(reason: &str) -> bool {
    reason
        .parse::<baseliner::reason::Reason>()
        .is_ok_and(baseliner::reason::Reason::stalls_profile)
}

/// Whether an API server message names `path` (server-side apply's typed
/// patch errors write it with a leading dot).
fn names_field(message: &str, path: &str) -> bool {
    message.contains(path)
}

/// `kubectl apply --server-side` must fail naming `path`, and the offline
/// validator must refuse the same document at a stage the API server
/// enforces, at the same field. Returns a failure description, if any.
pub(super) async fn check_refused(
    env: &TestEnv,
    id: &str,
    yaml: &str,
    path: &str,
) -> Result<Option<String>> {
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

pub(super) fn condition<'a>(status: &'a ProductionProfileStatus, type_: &str) -> Option<&'a str> {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.status.as_str())
}

/// Whether the status says what `expect` wants for `namespace`; `Err`
/// describes what it says instead.
pub(super) fn status_matches(
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
pub(super) async fn check_written(
    env: &TestEnv,
    check: Check,
    profile: &str,
    namespace: &str,
) -> Result<()> {
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
pub(super) async fn shared_operator_health() -> Result<String> {
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
