//! The benchmark's side of the cluster: the operator's identity and the
//! FlowSchemas that count its requests, the namespaces, cleaning up between
//! runs, and the operator process (its HTTP endpoints and /proc figures).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use baseliner_e2e::operator::Operator;
use baseliner_e2e::write_token_kubeconfig;
use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::tracker::{Kind, Tracker};
use crate::{BENCH_LABEL, HOME_NAMESPACE, OPERATOR_SA};

/// FlowSchemas that sort the operator's requests (its ServiceAccount's) into
/// writes and everything else, so the API server's own
/// `apiserver_flowcontrol_dispatched_requests_total` counts them.
pub const WRITES_FLOW_SCHEMA: &str = "baseliner-bench-writes";
pub const READS_FLOW_SCHEMA: &str = "baseliner-bench-reads";
/// Takes the operator's Lease requests out of those two: elected replicas
/// renew and poll the lease every 2 s, which is leader election, not work,
/// and would keep the counts from ever settling.
const LEASES_FLOW_SCHEMA: &str = "baseliner-bench-leases";
const FIELD_MANAGER: &str = "baseliner-bench";

/// Counts every request of the CLI's identity (`baseliner plan` and
/// `report` in the benchmark).
pub const CLI_FLOW_SCHEMA: &str = "baseliner-bench-cli";
/// The ServiceAccount `baseliner plan` and `report` run as.
const CLI_SA: &str = "baseliner-cli";

/// Creates the operator's ServiceAccount (cluster-admin: the benchmark
/// measures speed, not RBAC) and a kubeconfig with a token valid for a day,
/// and the FlowSchemas. Service accounts land in `workload-low` by default;
/// the FlowSchemas keep them there, so the operator is treated as a
/// deployed one would be.
pub async fn setup_identity(
    client: &Client,
    admin_kubeconfig: &Path,
    dir: &Path,
) -> Result<PathBuf> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let home = Namespace {
        metadata: ObjectMeta {
            name: Some(HOME_NAMESPACE.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    create_or_exists(namespaces.create(&PostParams::default(), &home).await)?;
    let kubeconfig =
        service_account_kubeconfig(client, admin_kubeconfig, dir, OPERATOR_SA, "cluster-admin")
            .await?;
    let leases = json!([{"verbs": ["*"], "apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "namespaces": ["*"]}]);
    apply_flow_schema(
        client,
        LEASES_FLOW_SCHEMA,
        198,
        OPERATOR_SA,
        leases,
        json!([]),
    )
    .await?;
    for (name, precedence, verbs) in [
        (
            WRITES_FLOW_SCHEMA,
            200,
            json!(["create", "update", "patch", "delete", "deletecollection"]),
        ),
        (READS_FLOW_SCHEMA, 201, json!(["*"])),
    ] {
        let (resources, non_resources) = every_request(&verbs);
        apply_flow_schema(
            client,
            name,
            precedence,
            OPERATOR_SA,
            resources,
            non_resources,
        )
        .await?;
    }
    Ok(kubeconfig)
}

/// The identity `baseliner plan` and `report` run as: a ServiceAccount
/// bound to the shipped `baseliner-reader` ClusterRole (which this applies),
/// every request of it counted by [`CLI_FLOW_SCHEMA`]. Returns its
/// kubeconfig.
pub async fn setup_cli_identity(
    client: &Client,
    admin_kubeconfig: &Path,
    dir: &Path,
) -> Result<PathBuf> {
    let role: serde_json::Value = serde_saphyr::from_str(baseliner_e2e::inspect::READER_ROLE_YAML)
        .context("parsing config/rbac/reader_role.yaml")?;
    let role: ClusterRole = serde_json::from_value(role)?;
    Api::<ClusterRole>::all(client.clone())
        .patch(
            "baseliner-reader",
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&role),
        )
        .await
        .context("applying ClusterRole baseliner-reader")?;
    let kubeconfig =
        service_account_kubeconfig(client, admin_kubeconfig, dir, CLI_SA, "baseliner-reader")
            .await?;
    let (resources, non_resources) = every_request(&json!(["*"]));
    apply_flow_schema(
        client,
        CLI_FLOW_SCHEMA,
        199,
        CLI_SA,
        resources,
        non_resources,
    )
    .await?;
    Ok(kubeconfig)
}

/// ServiceAccount `name` in the home namespace, bound cluster-wide to
/// `cluster_role`, and a kubeconfig with a token for it valid for a day.
async fn service_account_kubeconfig(
    client: &Client,
    admin_kubeconfig: &Path,
    dir: &Path,
    name: &str,
    cluster_role: &str,
) -> Result<PathBuf> {
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), HOME_NAMESPACE);
    let sa = ServiceAccount {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    create_or_exists(sas.create(&PostParams::default(), &sa).await)?;
    let binding = ClusterRoleBinding {
        metadata: ObjectMeta {
            name: Some(format!("baseliner-bench-{name}")),
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "ClusterRole".into(),
            name: cluster_role.into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: name.into(),
            namespace: Some(HOME_NAMESPACE.into()),
            api_group: None,
        }]),
    };
    create_or_exists(
        Api::<ClusterRoleBinding>::all(client.clone())
            .create(&PostParams::default(), &binding)
            .await,
    )?;
    let token = sas
        .create_token_request(
            name,
            &PostParams::default(),
            &TokenRequest {
                spec: Some(TokenRequestSpec {
                    expiration_seconds: Some(24 * 3600),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .await
        .with_context(|| format!("TokenRequest for ServiceAccount {name}"))?
        .status
        .and_then(|s| s.token)
        .ok_or_else(|| anyhow!("TokenRequest returned no token"))?;
    let kubeconfig = dir.join(format!("{name}.kubeconfig"));
    let user = format!("system:serviceaccount:{HOME_NAMESPACE}:{name}");
    write_token_kubeconfig(admin_kubeconfig, &kubeconfig, &user, &token, HOME_NAMESPACE)?;
    Ok(kubeconfig)
}

/// FlowSchema rules matching `verbs` on every resource and URL.
fn every_request(verbs: &serde_json::Value) -> (serde_json::Value, serde_json::Value) {
    (
        json!([{"verbs": verbs, "apiGroups": ["*"], "resources": ["*"], "clusterScope": true, "namespaces": ["*"]}]),
        json!([{"verbs": verbs, "nonResourceURLs": ["*"]}]),
    )
}

/// A FlowSchema matching ServiceAccount `sa`'s (in the home namespace)
/// requests that these rules match, so
/// `apiserver_flowcontrol_dispatched_requests_total` counts them.
async fn apply_flow_schema(
    client: &Client,
    name: &str,
    precedence: u32,
    sa: &str,
    resource_rules: serde_json::Value,
    non_resource_rules: serde_json::Value,
) -> Result<()> {
    let schema = json!({
        "apiVersion": "flowcontrol.apiserver.k8s.io/v1",
        "kind": "FlowSchema",
        "metadata": {"name": name},
        "spec": {
            "priorityLevelConfiguration": {"name": "workload-low"},
            "matchingPrecedence": precedence,
            "distinguisherMethod": {"type": "ByUser"},
            "rules": [{
                "subjects": [{"kind": "ServiceAccount", "serviceAccount": {"name": sa, "namespace": HOME_NAMESPACE}}],
                "resourceRules": resource_rules,
                "nonResourceRules": non_resource_rules,
            }],
        },
    });
    let ar = kube::api::ApiResource {
        group: "flowcontrol.apiserver.k8s.io".into(),
        version: "v1".into(),
        api_version: "flowcontrol.apiserver.k8s.io/v1".into(),
        kind: "FlowSchema".into(),
        plural: "flowschemas".into(),
    };
    Api::<DynamicObject>::all_with(client.clone(), &ar)
        .patch(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&schema),
        )
        .await
        .with_context(|| format!("applying FlowSchema {name}"))?;
    Ok(())
}

/// Requests of the CLI's identity dispatched so far.
pub async fn cli_requests(client: &Client) -> Result<u64> {
    let text = apiserver_metrics(client).await?;
    Ok(flow_schema_sum(&text, DISPATCHED, CLI_FLOW_SCHEMA))
}

const DISPATCHED: &str = "apiserver_flowcontrol_dispatched_requests_total{";
const REJECTED: &str = "apiserver_flowcontrol_rejected_requests_total{";

/// The API server's /metrics.
async fn apiserver_metrics(client: &Client) -> Result<String> {
    let request = http::Request::get("/metrics").body(Vec::new())?;
    client
        .request_text(request)
        .await
        .context("reading the API server's /metrics")
}

/// The sum of one counter's series for FlowSchema `schema`.
fn flow_schema_sum(text: &str, metric: &str, schema: &str) -> u64 {
    let needle = format!("flow_schema=\"{schema}\"");
    text.lines()
        .filter(|l| l.starts_with(metric) && l.contains(&needle))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

fn create_or_exists<T>(result: kube::Result<T>) -> Result<()> {
    match result {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Requests the API server dispatched for the operator, by its own metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Requests {
    pub writes: u64,
    pub reads: u64,
    /// Rejected by API Priority and Fairness (429).
    pub rejected: u64,
}

impl std::ops::Sub for Requests {
    type Output = Requests;
    fn sub(self, rhs: Self) -> Self {
        Requests {
            writes: self.writes.saturating_sub(rhs.writes),
            reads: self.reads.saturating_sub(rhs.reads),
            rejected: self.rejected.saturating_sub(rhs.rejected),
        }
    }
}

pub async fn operator_requests(client: &Client) -> Result<Requests> {
    let text = apiserver_metrics(client).await?;
    let sum = |metric: &str, schema: &str| flow_schema_sum(&text, metric, schema);
    Ok(Requests {
        writes: sum(DISPATCHED, WRITES_FLOW_SCHEMA),
        reads: sum(DISPATCHED, READS_FLOW_SCHEMA),
        rejected: sum(REJECTED, WRITES_FLOW_SCHEMA) + sum(REJECTED, READS_FLOW_SCHEMA),
    })
}

/// Every request the API server served (all clients), by
/// `VERB resource[/subresource] code`, from `apiserver_request_total`: the
/// difference over a run says what the requests were.
pub async fn request_totals(client: &Client) -> Result<BTreeMap<String, f64>> {
    let request = http::Request::get("/metrics").body(Vec::new())?;
    let text = client.request_text(request).await?;
    let mut totals = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("apiserver_request_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let label = |name: &str| -> &str {
            labels
                .split(',')
                .find_map(|l| l.strip_prefix(name)?.strip_prefix("=\""))
                .map(|v| v.trim_end_matches('"'))
                .unwrap_or("")
        };
        let mut resource = label("resource").to_owned();
        if resource.is_empty() {
            continue;
        }
        let sub = label("subresource");
        if !sub.is_empty() {
            resource = format!("{resource}/{sub}");
        }
        let key = format!("{} {resource} {}", label("verb"), label("code"));
        *totals.entry(key).or_insert(0.0) += value.parse::<f64>().unwrap_or(0.0);
    }
    Ok(totals)
}

/// The managed kinds' resources, as `apiserver_request_total` names them.
pub const MANAGED_RESOURCES: [&str; 5] = [
    "networkpolicies",
    "limitranges",
    "resourcequotas",
    "rolebindings",
    "schedules",
];

/// Of a [`request_diff`]: the requests with one of `verbs` (`GET`, `LIST`,
/// `APPLY`, ...) on one of `resources` (subresources not included).
pub fn requests_of(diff: &[(String, u64)], verbs: &[&str], resources: &[&str]) -> u64 {
    diff.iter()
        .filter(|(key, _)| {
            let mut parts = key.split(' ');
            let (verb, resource) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            verbs.contains(&verb) && resources.contains(&resource)
        })
        .map(|(_, count)| count)
        .sum()
}

/// `after - before`, largest first, without zeros.
pub fn request_diff(
    before: &BTreeMap<String, f64>,
    after: &BTreeMap<String, f64>,
) -> Vec<(String, u64)> {
    let mut diff: Vec<(String, u64)> = after
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                (v - before.get(k).copied().unwrap_or(0.0)).round() as u64,
            )
        })
        .filter(|(_, v)| *v > 0)
        .collect();
    diff.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    diff
}

/// Which of the operator's request counts must stop moving.
#[derive(Clone, Copy, Debug)]
pub enum Settle {
    /// Reads and writes.
    All,
    /// Writes only: after a convergence, kube-controller-manager fills in
    /// every ResourceQuota's status at its own pace (20 requests a second),
    /// and the operator reads each quota once as its version moves.
    Writes,
}

/// Waits until the operator's request counts (all, or its writes) stop
/// moving for `quiet` (bounded by `timeout`); returns them and when they
/// last moved.
pub async fn settled_requests(
    client: &Client,
    settle: Settle,
    quiet: Duration,
    timeout: Duration,
) -> Result<(Requests, Instant)> {
    let deadline = Instant::now() + timeout;
    let moving = |r: &Requests| match settle {
        Settle::All => (r.writes, r.reads),
        Settle::Writes => (r.writes, 0),
    };
    let mut last = operator_requests(client).await?;
    let mut moved = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = operator_requests(client).await?;
        if moving(&now) != moving(&last) {
            moved = Instant::now();
        } else if moved.elapsed() >= quiet {
            return Ok((now, moved));
        }
        last = now;
        if Instant::now() > deadline {
            bail!(
                "the operator's requests did not settle ({settle:?}) within {timeout:?} (last {last:?})"
            );
        }
    }
}

/// The benchmark's namespace names and labels.
pub fn namespace_labels(index: usize) -> BTreeMap<String, String> {
    BTreeMap::from([
        (BENCH_LABEL.to_owned(), "true".to_owned()),
        ("team".to_owned(), format!("team{}", index % 10)),
    ])
}

/// Creates the namespaces (those that exist already are left), then waits
/// until kube-controller-manager has given each its `default`
/// ServiceAccount and `kube-root-ca.crt` ConfigMap, so that work is over
/// before anything is timed.
pub async fn create_namespaces(
    client: &Client,
    names: &[(String, BTreeMap<String, String>)],
) -> Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    stream::iter(names.iter().cloned())
        .map(|(name, labels)| {
            let api = api.clone();
            async move {
                let ns = Namespace {
                    metadata: ObjectMeta {
                        name: Some(name.clone()),
                        labels: Some(labels),
                        ..Default::default()
                    },
                    ..Default::default()
                };
                create_or_exists(api.create(&PostParams::default(), &ns).await)
                    .with_context(|| format!("creating namespace {name}"))
            }
        })
        .buffer_unordered(32)
        .try_collect::<()>()
        .await?;
    let wanted = names.len();
    // kube-controller-manager creates both for each namespace at its
    // default 20 requests a second per controller.
    let deadline = Instant::now() + Duration::from_secs(120 + wanted as u64 / 10);
    loop {
        let sas = count_named::<ServiceAccount>(client, "default").await?;
        let cms = count_named::<ConfigMap>(client, "kube-root-ca.crt").await?;
        if sas >= wanted && cms >= wanted {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "kube-controller-manager did not finish with the new namespaces ({sas} ServiceAccounts, {cms} ConfigMaps of {wanted})"
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Objects called `name` in namespaces labelled as the benchmark's.
async fn count_named<K>(client: &Client, name: &str) -> Result<usize>
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let api: Api<kube::api::PartialObjectMeta<K>> = Api::all(client.clone());
    let mut params = ListParams::default()
        .fields(&format!("metadata.name={name}"))
        .limit(5000);
    let mut count = 0;
    loop {
        let page = api.list_metadata(&params).await?;
        count += page
            .items
            .iter()
            .filter(|o| o.namespace().is_some_and(|ns| ns.starts_with("bench-")))
            .count();
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => return Ok(count),
        }
    }
}

/// Deletes every managed object and every Pod Security label in `names`
/// directly (one deletecollection per kind and namespace, one merge patch
/// per namespace), then waits until the watches show nothing left.
pub async fn clean(client: &Client, tracker: &Tracker, names: &[String]) -> Result<()> {
    let selector = format!(
        "{}={}",
        baseliner::api::MANAGED_BY_LABEL,
        baseliner::api::MANAGER_NAME
    );
    let mut labels = serde_json::Map::new();
    for key in baseliner::api::POD_SECURITY_LABELS {
        labels.insert(key.to_owned(), serde_json::Value::Null);
    }
    let annotations = json!({
        baseliner::api::POD_SECURITY_ANNOTATION: null,
        baseliner::api::PROFILE_LABEL: null,
        baseliner::api::DELETION_POLICY_ANNOTATION: null,
    });
    let patch = Arc::new(json!({"metadata": {"labels": labels, "annotations": annotations}}));
    stream::iter(names.iter().cloned())
        .map(|ns| {
            let client = client.clone();
            let selector = selector.clone();
            let patch = patch.clone();
            async move {
                for kind in Kind::OBJECTS {
                    let api: Api<DynamicObject> =
                        Api::namespaced_with(client.clone(), &ns, &kind.api_resource());
                    api.delete_collection(
                        &DeleteParams::background(),
                        &ListParams::default().labels(&selector),
                    )
                    .await
                    .with_context(|| format!("deleting {}s in {ns}", kind.as_str()))?;
                }
                Api::<Namespace>::all(client.clone())
                    .patch(&ns, &PatchParams::default(), &Patch::Merge(&*patch))
                    .await
                    .with_context(|| format!("removing Pod Security labels of {ns}"))?;
                Ok::<(), anyhow::Error>(())
            }
        })
        .buffer_unordered(32)
        .try_collect::<()>()
        .await?;
    tracker
        .wait(
            "the managed objects and labels to be gone",
            Duration::from_secs(120 + names.len() as u64 / 20),
            |s| s.is_clean().then_some(()),
        )
        .await
}

/// When a starting operator's caches were listed and when it was ready
/// (verified every object too).
#[derive(Clone, Copy, Debug)]
pub struct ReadyStages {
    pub listed: Instant,
    pub ready: Instant,
}

/// A `baseliner run` process of a release build, as the ServiceAccount.
pub struct RunningOperator {
    pub process: Operator,
    pub port: u16,
    pub started: Instant,
}

impl RunningOperator {
    pub fn start(
        binary: &Path,
        kubeconfig: &Path,
        resync_seconds: u64,
        workers: Option<u16>,
    ) -> Result<Self> {
        let workers = workers.map(|w| w.to_string());
        let mut args = vec!["--leader-elect=false"];
        if let Some(workers) = &workers {
            args.extend(["--workers", workers.as_str()]);
        }
        Self::start_with(binary, kubeconfig, resync_seconds, &args)
    }

    /// A replica electing its leader on a Lease in the benchmark's home
    /// namespace, with the default lease timings (15 s, 10 s, 2 s), as
    /// deployed.
    pub fn start_elected(binary: &Path, kubeconfig: &Path, resync_seconds: u64) -> Result<Self> {
        Self::start_with(
            binary,
            kubeconfig,
            resync_seconds,
            &[
                "--leader-elect=true",
                "--lease-namespace",
                HOME_NAMESPACE,
                "--operator-namespace",
                HOME_NAMESPACE,
            ],
        )
    }

    fn start_with(
        binary: &Path,
        kubeconfig: &Path,
        resync_seconds: u64,
        extra: &[&str],
    ) -> Result<Self> {
        let port = free_port()?;
        let addr = format!("127.0.0.1:{port}");
        let resync = resync_seconds.to_string();
        let mut args = vec![
            "--resync-seconds",
            resync.as_str(),
            "--http-addr",
            addr.as_str(),
        ];
        args.extend_from_slice(extra);
        let started = Instant::now();
        let process = Operator::start_binary(binary, kubeconfig, &args)?;
        Ok(Self {
            process,
            port,
            started,
        })
    }

    /// Whether this replica says it holds the Lease.
    pub async fn is_leader(&self) -> bool {
        self.metric("baseliner_leader").await.ok() == Some(1.0)
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: signalling a child process the benchmark started.
        unsafe {
            libc::kill(self.pid() as i32, signal);
        }
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Polls `/readyz` every 5 ms; returns when it first answered 200.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<Instant> {
        Ok(self.wait_ready_stages(timeout).await?.ready)
    }

    /// Polls `/readyz` every 5 ms until it answers 200; says when only the
    /// verification pass was left (the caches listed) and when it was over.
    pub async fn wait_ready_stages(&mut self, timeout: Duration) -> Result<ReadyStages> {
        let deadline = Instant::now() + timeout;
        let mut listed = None;
        loop {
            match http_get(self.port, "/readyz").await {
                Ok((200, _)) => {
                    let ready = Instant::now();
                    return Ok(ReadyStages {
                        listed: listed.unwrap_or(ready),
                        ready,
                    });
                }
                Ok((_, body)) if body.trim().ends_with(": verified-objects") => {
                    listed.get_or_insert_with(Instant::now);
                }
                _ => {}
            }
            if !self.process.is_running() {
                bail!(
                    "the operator exited before it was ready; its log: {}",
                    self.process.log.display()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "the operator was not ready within {timeout:?}; its log: {}",
                    self.process.log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// A sample of the operator's own /metrics (summed over label sets).
    pub async fn metric(&self, name: &str) -> Result<f64> {
        let (status, body) = http_get(self.port, "/metrics").await?;
        if status != 200 {
            bail!("operator /metrics answered {status}");
        }
        Ok(body
            .lines()
            .filter(|l| {
                l.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum())
    }

    pub fn memory(&self) -> Result<Memory> {
        memory(self.pid())
    }

    pub fn cpu_seconds(&self) -> Result<f64> {
        cpu_seconds(self.pid())
    }

    pub fn stop(mut self) -> Result<()> {
        let status = self.process.terminate(Duration::from_secs(20))?;
        if !status.success() {
            bail!(
                "the operator exited with {status}; log: {}",
                self.process.log.display()
            );
        }
        Ok(())
    }
}

fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// A minimal HTTP/1.0 GET on 127.0.0.1: status code and body.
async fn http_get(port: u16, path: &str) -> Result<(u16, String)> {
    let io = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        stream
            .write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
            .await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    let response = tokio::time::timeout(Duration::from_secs(10), io).await??;
    let text = String::from_utf8_lossy(&response);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("no HTTP status from 127.0.0.1:{port}{path}"))?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    Ok((status, body.to_owned()))
}

/// Resident memory of a process, in bytes.
#[derive(Clone, Copy, Debug)]
pub struct Memory {
    /// VmHWM: the peak so far.
    pub peak: u64,
    /// VmRSS: now.
    pub current: u64,
}

pub fn memory(pid: u32) -> Result<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> Result<u64> {
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| anyhow!("no {name} in /proc/{pid}/status"))?;
        Ok(kib * 1024)
    };
    Ok(Memory {
        peak: field("VmHWM:")?,
        current: field("VmRSS:")?,
    })
}

/// User plus system CPU time of a process so far, in seconds.
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces; fields after it are plain.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow!("unexpected /proc/{pid}/stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15; `rest` starts at field 3.
    let ticks = |i: usize| -> Result<u64> {
        fields
            .get(i - 3)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| anyhow!("no field {i} in /proc/{pid}/stat"))
    };
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Ok((ticks(14)? + ticks(15)?) as f64 / hz)
}
