//! Running baseliner in production, against the real API server: the
//! install manifests are accepted (and the operator's own Pod passes the
//! `restricted` Pod Security level), the operator's RBAC is exactly what it
//! uses, replicas elect one writer and hand over quickly, and `/metrics`,
//! `/healthz` and `/readyz` tell the truth.
//!
//! The operators here run as a ServiceAccount holding the rules of
//! `config/rbac` (copied into objects owned by the test's namespace), with a
//! Lease in the test's own namespace so they never meet another test's.
//! Other operators may run on the plane at the same time (the suite's shared
//! one, a developer's `make run`); the assertions hold regardless. Nothing
//! here depends on Velero, so these tests do not wait for its lock.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail, ensure};
use baseliner_e2e::baseline::{
    STRICT_SPEC, all_object_versions, keys, kubectl_apply, managed_objects, profile_yaml,
    strict_objects,
};
use baseliner_e2e::operator::Operator;
use baseliner_e2e::{
    Grant, Identity, KubectlOutput, TestEnv, TestNamespace, Velero, random_name, wait_for,
    wait_until, workspace_root,
};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule, Role};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CONVERGE: Duration = Duration::from_secs(30);
const LEASE_NAME: &str = "baseliner-leader";
const LEASE_DURATION_SECONDS: u64 = 4;
const RENEW_DEADLINE_SECONDS: u64 = 3;
const RETRY_PERIOD_SECONDS: u64 = 1;

// ---------------------------------------------------------------------------
// The manifests

/// `kubectl kustomize config/default`, one JSON value per object.
async fn rendered_install(env: &TestEnv) -> Result<Vec<Value>> {
    let dir = workspace_root().join("config").join("default");
    let yaml = env
        .kubectl(["kustomize", &dir.to_string_lossy()])
        .await?
        .ok()?;
    serde_saphyr::from_multiple::<Value>(&yaml).context("parsing kubectl kustomize output")
}

fn object<'a>(objects: &'a [Value], kind: &str, name: &str) -> Result<&'a Value> {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .ok_or_else(|| anyhow!("config/default renders no {kind} {name}"))
}

fn rules_of(objects: &[Value], kind: &str, name: &str) -> Result<Vec<PolicyRule>> {
    serde_json::from_value(object(objects, kind, name)?["rules"].clone())
        .with_context(|| format!("rules of {kind} {name}"))
}

#[tokio::test]
async fn install_manifests_pass_server_dry_run_and_restricted_pod_security() -> Result<()> {
    let env = TestEnv::with_velero(Velero::Any).await?;
    let objects = rendered_install(&env).await?;
    let namespace = object(&objects, "Namespace", "baseliner-system")?;
    ensure!(
        namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted",
        "the install namespace enforces restricted: {namespace}"
    );
    let deployment = object(&objects, "Deployment", "baseliner-controller-manager")?;
    ensure!(deployment["spec"]["replicas"] == 2, "{deployment}");

    // A server-side dry run creates nothing, so the objects that go into the
    // namespace would find it missing: the namespace must exist first, as it
    // does on a real install by the time they are applied.
    env.kubectl_with_stdin(
        &env.plane().kubeconfig,
        [
            "apply",
            "--server-side",
            "--field-manager=e2e-install",
            "-f",
            "-",
        ],
        Some(&namespace.to_string()),
    )
    .await?
    .ok()?;
    let dir = workspace_root().join("config").join("default");
    let applied = env
        .kubectl([
            "apply",
            "--server-side",
            "--dry-run=server",
            "-k",
            &dir.to_string_lossy(),
        ])
        .await?
        .ok()?;
    let dry_runs = applied
        .lines()
        .filter(|l| l.ends_with("(server dry run)"))
        .count();
    ensure!(
        dry_runs == objects.len(),
        "every one of {} objects passes the server's checks:\n{applied}",
        objects.len()
    );

    // No kubelet or scheduler here: ask the API server to admit a Pod made
    // from the Deployment's template in a namespace enforcing `restricted`.
    let restricted = env
        .namespace_with_labels(
            "psa",
            BTreeMap::from([(
                "pod-security.kubernetes.io/enforce".to_owned(),
                "restricted".to_owned(),
            )]),
        )
        .await?;
    // The ServiceAccount admission plugin wants the Pod's account to exist.
    env.kubectl([
        "create",
        "serviceaccount",
        "baseliner",
        "-n",
        restricted.name(),
    ])
    .await?
    .ok()?;
    let template = &deployment["spec"]["template"];
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "baseliner", "namespace": restricted.name(), "labels": template["metadata"]["labels"]},
        "spec": template["spec"],
    });
    let admitted = dry_run_create(&env, &pod).await?;
    ensure!(
        admitted.success,
        "the operator's Pod is admitted under restricted: {}",
        admitted.stderr
    );
    // The same check refuses a Pod that breaks the level, so it has teeth.
    let mut escalating = pod;
    escalating["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] =
        json!(true);
    let refused = dry_run_create(&env, &escalating).await?;
    ensure!(
        !refused.success && refused.stderr.contains("restricted"),
        "a Pod that allows privilege escalation is refused: {refused:?}"
    );
    restricted.cleanup().await
}

async fn dry_run_create(env: &TestEnv, object: &Value) -> Result<KubectlOutput> {
    env.kubectl_with_stdin(
        &env.plane().kubeconfig,
        ["create", "--dry-run=server", "-f", "-"],
        Some(&object.to_string()),
    )
    .await
}

// ---------------------------------------------------------------------------
// RBAC

/// Creates ServiceAccount `baseliner` in `namespace` holding the rules of
/// the manifests' ClusterRole `baseliner-manager` (cluster-wide, less any
/// rule about `without_resource`) and Role `baseliner-leader-election` (in
/// `namespace`, where the test's Lease lives). Everything goes with the
/// namespace.
async fn operator_identity(
    env: &TestEnv,
    namespace: &TestNamespace,
    without_resource: Option<&str>,
) -> Result<Identity> {
    let objects = rendered_install(env).await?;
    let mut manager_rules = rules_of(&objects, "ClusterRole", "baseliner-manager")?;
    if let Some(resource) = without_resource {
        for rule in &mut manager_rules {
            if let Some(resources) = rule.resources.as_mut() {
                resources.retain(|r| r != resource);
            }
        }
        manager_rules.retain(|r| r.resources.as_ref().is_some_and(|r| !r.is_empty()));
    }
    let cluster_role = format!("{}-manager", namespace.name());
    Api::<ClusterRole>::all(env.client())
        .create(
            &PostParams::default(),
            &ClusterRole {
                metadata: ObjectMeta {
                    name: Some(cluster_role.clone()),
                    owner_references: Some(vec![namespace.owner_reference()]),
                    ..ObjectMeta::default()
                },
                rules: Some(manager_rules),
                aggregation_rule: None,
            },
        )
        .await
        .with_context(|| format!("creating ClusterRole {cluster_role}"))?;
    Api::<Role>::namespaced(env.client(), namespace.name())
        .create(
            &PostParams::default(),
            &Role {
                metadata: ObjectMeta {
                    name: Some("baseliner-leader-election".to_owned()),
                    ..ObjectMeta::default()
                },
                rules: Some(rules_of(&objects, "Role", "baseliner-leader-election")?),
            },
        )
        .await
        .context("creating the leader election Role")?;
    env.service_account(
        namespace,
        "baseliner",
        &[
            Grant::ClusterRole(cluster_role),
            Grant::role_in(namespace.name(), "baseliner-leader-election"),
        ],
    )
    .await
}

/// `kubectl auth can-i --list` rows: (resource, resource names, verb).
async fn can_i_list(
    env: &TestEnv,
    identity: &Identity,
    namespace: &str,
) -> Result<BTreeSet<(String, String, String)>> {
    let out = env
        .kubectl_as(
            &identity.kubeconfig,
            ["auth", "can-i", "--list", "-n", namespace, "--no-headers"],
        )
        .await?
        .ok()?;
    let mut rows = BTreeSet::new();
    for line in out.lines().filter(|l| !l.trim().is_empty()) {
        // Columns: resource, non-resource URLs, resource names, verbs, each
        // list in brackets; only resource rows matter here.
        let Some((resource, rest)) = line.trim().split_once(char::is_whitespace) else {
            continue;
        };
        if resource.starts_with('[') {
            // A non-resource URL row: its resource column is empty.
            continue;
        }
        let lists: Vec<&str> = rest
            .split(']')
            .map(|s| s.trim().trim_start_matches('['))
            .collect();
        let [urls, names, verbs, ..] = lists.as_slice() else {
            bail!("unexpected kubectl auth can-i line: {line}");
        };
        if !urls.is_empty() {
            continue;
        }
        // One row per name: kubectl lists a rule's names together.
        let names: Vec<&str> = match names.split_whitespace().collect::<Vec<_>>() {
            split if split.is_empty() => vec![""],
            split => split,
        };
        for name in names {
            for verb in verbs.split_whitespace() {
                rows.insert((resource.to_owned(), name.to_owned(), verb.to_owned()));
            }
        }
    }
    Ok(rows)
}

/// What the operator may do, written out by hand: each row should be
/// explainable by a line of the operator's code (see config/rbac/role.yaml).
fn expected_operator_rights(with_lease: bool) -> BTreeSet<(String, String, String)> {
    let mut rows = vec![
        ("productionprofiles.baseliner.dev", "", "list"),
        ("productionprofiles.baseliner.dev", "", "watch"),
        ("productionprofiles.baseliner.dev/status", "", "patch"),
        (
            "customresourcedefinitions.apiextensions.k8s.io",
            "productionprofiles.baseliner.dev",
            "get",
        ),
        ("namespaces", "", "list"),
        ("namespaces", "", "watch"),
        ("namespaces", "", "patch"),
        ("clusterroles.rbac.authorization.k8s.io", "admin", "bind"),
        ("clusterroles.rbac.authorization.k8s.io", "edit", "bind"),
        ("clusterroles.rbac.authorization.k8s.io", "view", "bind"),
        ("events.events.k8s.io", "", "create"),
        ("events.events.k8s.io", "", "patch"),
    ];
    for resource in [
        "validatingadmissionpolicies.admissionregistration.k8s.io",
        "validatingadmissionpolicybindings.admissionregistration.k8s.io",
    ] {
        for verb in ["get", "list", "watch"] {
            rows.push((resource, "baseliner-author-rights", verb));
        }
    }
    let managed = [
        "limitranges",
        "resourcequotas",
        "networkpolicies.networking.k8s.io",
        "rolebindings.rbac.authorization.k8s.io",
        "schedules.velero.io",
    ];
    for resource in managed {
        for verb in ["get", "list", "watch", "create", "patch", "delete"] {
            rows.push((resource, "", verb));
        }
    }
    if with_lease {
        rows.push(("leases.coordination.k8s.io", "", "create"));
        rows.push(("leases.coordination.k8s.io", LEASE_NAME, "get"));
        rows.push(("leases.coordination.k8s.io", LEASE_NAME, "update"));
    }
    rows.into_iter()
        .map(|(r, n, v)| (r.to_owned(), n.to_owned(), v.to_owned()))
        .collect()
}

#[tokio::test]
async fn operator_rbac_is_least_privilege() -> Result<()> {
    let env = TestEnv::with_velero(Velero::Any).await?;
    let objects = rendered_install(&env).await?;
    let manager = rules_of(&objects, "ClusterRole", "baseliner-manager")?;
    let leases = rules_of(&objects, "Role", "baseliner-leader-election")?;
    for rule in manager.iter().chain(&leases) {
        let everything = [
            rule.api_groups.clone().unwrap_or_default(),
            rule.resources.clone().unwrap_or_default(),
            rule.verbs.clone(),
            rule.resource_names.clone().unwrap_or_default(),
        ]
        .concat();
        ensure!(
            !everything.iter().any(|s| s.contains('*')),
            "no wildcards: {rule:?}"
        );
        for verb in ["escalate", "impersonate"] {
            ensure!(!rule.verbs.iter().any(|v| v == verb), "no {verb}: {rule:?}");
        }
        if rule.verbs.iter().any(|v| v == "bind") {
            ensure!(
                rule.resources.as_deref() == Some(&["clusterroles".to_owned()][..])
                    && rule.resource_names.as_ref().is_some_and(|n| !n.is_empty()),
                "bind only on named ClusterRoles: {rule:?}"
            );
        }
        if rule.resources.iter().flatten().any(|r| r == "namespaces") {
            ensure!(
                !rule.verbs.iter().any(|v| v == "create" || v == "delete"),
                "the operator never creates or deletes namespaces: {rule:?}"
            );
        }
    }

    let namespace = env.namespace("rbac-least").await?;
    let operator = operator_identity(&env, &namespace, None).await?;
    // What any ServiceAccount may do (discovery, self-reviews) is not the
    // operator's doing: subtract it.
    let nobody = env.service_account(&namespace, "nobody", &[]).await?;
    let baseline = can_i_list(&env, &nobody, namespace.name()).await?;
    for (where_, with_lease) in [(namespace.name(), true), ("default", false)] {
        let rights: BTreeSet<_> = can_i_list(&env, &operator, where_)
            .await?
            .difference(&baseline)
            .cloned()
            .collect();
        let expected = expected_operator_rights(with_lease);
        ensure!(
            rights == expected,
            "in namespace {where_}, the operator may do exactly what it uses\nextra: {:?}\nmissing: {:?}",
            rights.difference(&expected).collect::<Vec<_>>(),
            expected.difference(&rights).collect::<Vec<_>>()
        );
    }
    namespace.cleanup().await
}

// ---------------------------------------------------------------------------
// Replicas, leader election and the HTTP endpoints

/// A port free on loopback right now (bound, then released for the operator).
fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// One `baseliner run` process and its HTTP port.
struct Replica {
    operator: Operator,
    port: u16,
}

impl Replica {
    fn start(identity: &Identity, namespace: &str, extra: &[&str]) -> Result<Self> {
        let port = free_port()?;
        let addr = format!("127.0.0.1:{port}");
        let mut args = vec![
            "--http-addr",
            addr.as_str(),
            "--operator-namespace",
            namespace,
        ];
        args.extend_from_slice(extra);
        let operator = Operator::start(&identity.kubeconfig, &args)?;
        Ok(Self { operator, port })
    }

    /// Started with leader election on a Lease in `namespace`.
    fn elected(identity: &Identity, namespace: &str) -> Result<Self> {
        let duration = LEASE_DURATION_SECONDS.to_string();
        let deadline = RENEW_DEADLINE_SECONDS.to_string();
        let retry = RETRY_PERIOD_SECONDS.to_string();
        Self::start(
            identity,
            namespace,
            &[
                "--leader-elect=true",
                "--lease-namespace",
                namespace,
                "--lease-name",
                LEASE_NAME,
                "--lease-duration-seconds",
                duration.as_str(),
                "--lease-renew-deadline-seconds",
                deadline.as_str(),
                "--lease-retry-period-seconds",
                retry.as_str(),
            ],
        )
    }

    /// The Lease holder identity this process uses (no POD_NAME here).
    fn identity(&self) -> String {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        format!("{}_{}", host.trim(), self.operator.pid())
    }

    /// GET `path` over HTTP/1.1: (status code, body).
    async fn get(&self, path: &str) -> Result<(u16, String)> {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await?;
        let code = response
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| anyhow!("not an HTTP response: {response}"))?;
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        Ok((code, body))
    }

    /// The value of one series on `/metrics`, e.g. `baseliner_leader`.
    async fn metric(&self, series: &str) -> Option<f64> {
        let (_, body) = self.get("/metrics").await.ok()?;
        body.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    async fn is_leader(&self) -> bool {
        self.metric("baseliner_leader").await == Some(1.0)
    }

    async fn is_ready(&self) -> bool {
        self.get("/readyz").await.is_ok_and(|(code, _)| code == 200)
    }

    fn send(&self, signal: i32) {
        // SAFETY: signalling a child process this test started.
        unsafe {
            libc::kill(self.operator.pid() as i32, signal);
        }
    }
}

async fn lease_holder(env: &TestEnv, namespace: &str) -> Option<String> {
    Api::<Lease>::namespaced(env.client(), namespace)
        .get_opt(LEASE_NAME)
        .await
        .ok()
        .flatten()
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
}

/// Polls every 20 ms until `replica` leads; returns how long that took.
async fn time_until_leader(replica: &Replica, since: Instant, limit: Duration) -> Result<Duration> {
    loop {
        if replica.is_leader().await {
            return Ok(since.elapsed());
        }
        if since.elapsed() > limit {
            bail!(
                "no new leader within {limit:?}; its log:\n{}",
                replica.operator.output()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_for_baseline(env: &TestEnv, namespace: &str) -> Result<()> {
    let client = env.client();
    wait_until(
        &format!("the baseline in {namespace}"),
        CONVERGE,
        || async {
            managed_objects(&client, namespace)
                .await
                .is_ok_and(|o| keys(&o) == strict_objects())
        },
    )
    .await
}

/// A profile applied by a test, deleted when the test ends, pass or fail.
struct TestProfile {
    name: String,
    kubectl: std::path::PathBuf,
    kubeconfig: std::path::PathBuf,
}

impl TestProfile {
    /// Applies [`STRICT_SPEC`] selecting namespaces labelled `e2e-case=<case>`.
    async fn strict(env: &TestEnv, case: &str) -> Result<Self> {
        let name = random_name(case);
        kubectl_apply(env, &profile_yaml(&name, case, STRICT_SPEC)).await?;
        Ok(Self {
            name,
            kubectl: env.plane().kubectl.clone(),
            kubeconfig: env.plane().kubeconfig.clone(),
        })
    }
}

impl Drop for TestProfile {
    fn drop(&mut self) {
        let _ = std::process::Command::new(&self.kubectl)
            .env("KUBECONFIG", &self.kubeconfig)
            .args([
                "delete",
                "productionprofile",
                &self.name,
                "--wait=false",
                "--ignore-not-found",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

fn case_labels(case: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("e2e-case".to_owned(), case.to_owned()),
        ("team".to_owned(), "platform".to_owned()),
    ])
}

#[tokio::test]
async fn one_replica_leads_and_hands_over_on_sigterm_and_on_crash() -> Result<()> {
    let env = TestEnv::with_velero(Velero::Any).await?;
    let home = env.namespace("ha").await?;
    let identity = operator_identity(&env, &home, None).await?;
    let case = random_name("ha");
    let _profile = TestProfile::strict(&env, &case).await?;
    let first_ns = env
        .namespace_with_labels("ha-a", case_labels(&case))
        .await?;

    let mut first = Replica::elected(&identity, home.name())?;
    wait_until("the first replica to lead", CONVERGE, || first.is_leader()).await?;
    let mut second = Replica::elected(&identity, home.name())?;
    wait_until("the standby to sync its caches", CONVERGE, || {
        second.is_ready()
    })
    .await?;
    wait_for_baseline(&env, first_ns.name()).await?;

    // Exactly one holds the Lease, and only it writes.
    ensure!(lease_holder(&env, home.name()).await == Some(first.identity()));
    ensure!(!second.is_leader().await, "the standby does not lead");
    ensure!(
        second
            .metric(r#"baseliner_objects_applied_total{kind="NetworkPolicy"}"#)
            .await
            .unwrap_or(0.0)
            == 0.0,
        "the standby wrote nothing"
    );
    let client = env.client();
    let versions_before = all_object_versions(&client, first_ns.name()).await?;

    // SIGTERM: the leader releases the Lease; the standby takes over at its
    // next look (one retry period at most).
    let terminated = Instant::now();
    first.send(libc::SIGTERM);
    let sigterm_handover = time_until_leader(&second, terminated, CONVERGE).await?;
    let status = first.operator.terminate(Duration::from_secs(10))?;
    ensure!(status.success(), "a SIGTERM'd replica exits 0: {status}");
    ensure!(lease_holder(&env, home.name()).await == Some(second.identity()));
    eprintln!(
        "handover after SIGTERM: {} ms",
        sigterm_handover.as_millis()
    );
    ensure!(
        sigterm_handover < Duration::from_secs(2),
        "handover after SIGTERM took {sigterm_handover:?}"
    );

    // The new leader carries on: a namespace created now gets its baseline.
    let second_ns = env
        .namespace_with_labels("ha-b", case_labels(&case))
        .await?;
    wait_for_baseline(&env, second_ns.name()).await?;

    // SIGKILL: nothing is released; the standby waits out the lease it saw
    // last renewed, then takes it.
    let mut third = Replica::elected(&identity, home.name())?;
    wait_until("the new standby to sync its caches", CONVERGE, || {
        third.is_ready()
    })
    .await?;
    // Let the standby see at least one renewal, as it would in a long run.
    tokio::time::sleep(Duration::from_secs(RETRY_PERIOD_SECONDS)).await;
    let killed = Instant::now();
    second.operator.kill();
    let sigkill_handover = time_until_leader(&third, killed, CONVERGE).await?;
    eprintln!(
        "handover after SIGKILL: {} ms (lease duration {LEASE_DURATION_SECONDS} s, retry period {RETRY_PERIOD_SECONDS} s)",
        sigkill_handover.as_millis()
    );
    // The standby waits a full lease duration from the last version it saw;
    // it saw that at most one retry period after the renewal, which came at
    // most one retry period before the kill.
    ensure!(
        sigkill_handover <= Duration::from_secs(LEASE_DURATION_SECONDS + RETRY_PERIOD_SECONDS),
        "handover after SIGKILL took {sigkill_handover:?}"
    );
    ensure!(lease_holder(&env, home.name()).await == Some(third.identity()));
    let third_ns = env
        .namespace_with_labels("ha-c", case_labels(&case))
        .await?;
    wait_for_baseline(&env, third_ns.name()).await?;

    // Nothing was written twice: two new leaders found the first
    // namespace's objects as they were.
    let versions_after = all_object_versions(&client, first_ns.name()).await?;
    ensure!(
        versions_after == versions_before,
        "objects were rewritten across handovers:\nbefore {versions_before:?}\nafter  {versions_after:?}"
    );

    let status = third.operator.terminate(Duration::from_secs(10))?;
    ensure!(status.success(), "{status}");
    for ns in [first_ns, second_ns, third_ns, home] {
        ns.cleanup().await?;
    }
    Ok(())
}

#[tokio::test]
async fn endpoints_report_liveness_readiness_and_reconciles() -> Result<()> {
    let env = TestEnv::with_velero(Velero::Any).await?;
    let home = env.namespace("http").await?;
    let identity = operator_identity(&env, &home, None).await?;
    let replica = Replica::start(&identity, home.name(), &["--leader-elect=false"])?;
    let (code, body) = wait_for("/healthz to answer", CONVERGE, || async {
        replica.get("/healthz").await.ok()
    })
    .await?;
    ensure!((code, body.as_str()) == (200, "ok\n"));
    // Generous: the whole suite shares one API server, and a first list of
    // every namespace can queue behind other tests' bursts.
    wait_until("/readyz to be 200", Duration::from_secs(120), || {
        replica.is_ready()
    })
    .await?;

    let case = random_name("http");
    let _profile = TestProfile::strict(&env, &case).await?;
    let selected = env
        .namespace_with_labels("http-sel", case_labels(&case))
        .await?;
    wait_for_baseline(&env, selected.name()).await?;
    let (code, metrics) = replica.get("/metrics").await?;
    ensure!(code == 200);
    for series in [
        r#"baseliner_reconciles_total{result="success"}"#,
        "baseliner_reconcile_duration_seconds_count",
        "baseliner_leader",
    ] {
        let value = metrics.lines().find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .parse::<f64>()
                .ok()
        });
        ensure!(
            value.is_some_and(|v| v >= 1.0),
            "{series} counts the work done:\n{metrics}"
        );
    }
    for series in [
        r#"baseliner_objects_applied_total{kind="NetworkPolicy"}"#,
        r#"baseliner_objects_pruned_total{kind="NetworkPolicy"}"#,
        r#"baseliner_drift_corrections_total{kind="NetworkPolicy"}"#,
        r#"baseliner_reconciles_total{result="error"}"#,
    ] {
        ensure!(
            metrics.lines().any(|l| l.starts_with(series)),
            "{series} is exported from the start:\n{metrics}"
        );
    }

    drop(replica);
    selected.cleanup().await?;
    home.cleanup().await
}

#[tokio::test]
async fn a_cache_that_cannot_sync_fails_readyz_and_is_logged() -> Result<()> {
    let env = TestEnv::with_velero(Velero::Any).await?;
    let home = env.namespace("unsynced").await?;
    // RBAC denies listing LimitRanges, so that cache never syncs.
    let identity = operator_identity(&env, &home, Some("limitranges")).await?;
    let replica = Replica::start(
        &identity,
        home.name(),
        &["--leader-elect=false", "--cache-sync-grace-seconds", "1"],
    )?;
    let (code, body) = wait_for("/healthz to answer", CONVERGE, || async {
        replica.get("/healthz").await.ok()
    })
    .await?;
    ensure!(code == 200, "alive though not ready: {body}");
    wait_until("the unsynced cache to be logged", CONVERGE, || async {
        replica.operator.output().contains("caches have not synced")
    })
    .await?;
    let (code, body) = replica.get("/readyz").await?;
    ensure!(
        (code, body.as_str()) == (503, "caches not synced: LimitRange\n"),
        "/readyz names the cache: {code} {body}"
    );
    let log = replica.operator.output();
    ensure!(
        log.lines()
            .any(|l| l.contains("ERROR") && l.contains("caches not synced: LimitRange")),
        "the error log names the cache:\n{log}"
    );
    drop(replica);
    home.cleanup().await
}

#[tokio::test]
async fn view_reads_profiles_and_only_the_editor_role_writes_them() -> Result<()> {
    let env = TestEnv::with_velero(Velero::Any).await?;
    let objects = rendered_install(&env).await?;
    // The roles, applied as the install applies them (they are cluster-wide
    // and the same for every test).
    for name in [
        "baseliner-productionprofile-viewer",
        "baseliner-productionprofile-editor",
    ] {
        env.kubectl_with_stdin(
            &env.plane().kubeconfig,
            [
                "apply",
                "--server-side",
                "--field-manager=e2e-install",
                "-f",
                "-",
            ],
            Some(&object(&objects, "ClusterRole", name)?.to_string()),
        )
        .await?
        .ok()?;
    }
    let owner = env.namespace("aggregate").await?;
    let viewer = random_name("viewer");
    let editor = random_name("editor");
    let author = random_name("author");
    for (user, role) in [
        (&viewer, "view"),
        (&editor, "edit"),
        (&author, "baseliner-productionprofile-editor"),
    ] {
        let subject = k8s_openapi::api::rbac::v1::Subject {
            kind: "User".to_owned(),
            name: user.clone(),
            api_group: Some("rbac.authorization.k8s.io".to_owned()),
            namespace: None,
        };
        env.bind(&owner, &subject, user, &Grant::ClusterRole(role.to_owned()))
            .await?;
    }
    let can = |user: String, verb: &'static str| {
        let env = &env;
        async move {
            env.kubectl([
                "auth",
                "can-i",
                verb,
                "productionprofiles.baseliner.dev",
                "--as",
                &user,
            ])
            .await
            .is_ok_and(|out| out.success)
        }
    };
    // The controller manager folds the labelled viewer role into view.
    wait_until("view to include profiles", CONVERGE, || {
        can(viewer.clone(), "list")
    })
    .await?;
    wait_until("the editor role to be bound", CONVERGE, || {
        can(author.clone(), "create")
    })
    .await?;
    ensure!(can(viewer.clone(), "watch").await, "view watches profiles");
    ensure!(
        !can(viewer.clone(), "create").await,
        "view does not write profiles"
    );
    // Profiles make baseliner write RoleBindings and Pod Security labels in
    // many namespaces: `edit` no longer includes them.
    wait_until("edit to read profiles (through view)", CONVERGE, || {
        can(editor.clone(), "list")
    })
    .await?;
    for verb in ["create", "update", "delete"] {
        ensure!(
            !can(editor.clone(), verb).await,
            "edit does not {verb} profiles"
        );
    }
    ensure!(
        can(author.clone(), "delete").await,
        "the editor role deletes profiles"
    );
    let status = env
        .kubectl([
            "auth",
            "can-i",
            "patch",
            "productionprofiles.baseliner.dev",
            "--subresource=status",
            "--as",
            &author,
        ])
        .await?;
    ensure!(!status.success, "status stays the operator's: {status:?}");
    owner.cleanup().await
}

/// Waits for `replica` to exit; returns its exit status.
async fn exit_status(replica: &mut Replica, limit: Duration) -> Result<std::process::ExitStatus> {
    let started = Instant::now();
    loop {
        if let Some(status) = replica.operator.try_wait()? {
            return Ok(status);
        }
        if started.elapsed() > limit {
            bail!(
                "still running after {limit:?}; its log:\n{}",
                replica.operator.output()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_leader_that_loses_its_lease_exits_instead_of_writing_on() -> Result<()> {
    let env = TestEnv::with_velero(Velero::Any).await?;
    let home = env.namespace("lost").await?;
    let identity = operator_identity(&env, &home, None).await?;
    let leases = Api::<Lease>::namespaced(env.client(), home.name());

    // Someone else takes the Lease (as a partitioned leader would find on
    // its return): the next renewal sees it and the process exits.
    let mut taken_over = Replica::elected(&identity, home.name())?;
    wait_until("the replica to lead", CONVERGE, || taken_over.is_leader()).await?;
    let mut lease = leases.get(LEASE_NAME).await?;
    if let Some(spec) = lease.spec.as_mut() {
        spec.holder_identity = Some("another-replica".to_owned());
    }
    leases
        .replace(LEASE_NAME, &PostParams::default(), &lease)
        .await?;
    let status = exit_status(&mut taken_over, CONVERGE).await?;
    ensure!(!status.success(), "exits non-zero: {status}");
    ensure!(
        taken_over
            .operator
            .output()
            .contains("another-replica holds it now"),
        "says why:\n{}",
        taken_over.operator.output()
    );

    // The Lease cannot be renewed at all (its RBAC is revoked): the leader
    // gives up once the renew deadline has passed, before the Lease could
    // expire for anyone else.
    leases.delete(LEASE_NAME, &Default::default()).await?;
    let mut cut_off = Replica::elected(&identity, home.name())?;
    wait_until("the replica to lead", CONVERGE, || cut_off.is_leader()).await?;
    env.kubectl([
        "delete",
        "rolebinding",
        "-n",
        home.name(),
        "-l",
        "baseliner.dev/e2e=true",
    ])
    .await?
    .ok()?;
    let revoked = Instant::now();
    let status = exit_status(&mut cut_off, CONVERGE).await?;
    let took = revoked.elapsed();
    ensure!(!status.success(), "exits non-zero: {status}");
    ensure!(
        took >= Duration::from_secs(RENEW_DEADLINE_SECONDS - RETRY_PERIOD_SECONDS)
            && took < Duration::from_secs(LEASE_DURATION_SECONDS + RETRY_PERIOD_SECONDS),
        "exits at the renew deadline, not before and not after the lease expires: {took:?}"
    );
    ensure!(
        cut_off
            .operator
            .output()
            .contains("not renewed for the renew deadline"),
        "says why:\n{}",
        cut_off.operator.output()
    );
    home.cleanup().await
}
