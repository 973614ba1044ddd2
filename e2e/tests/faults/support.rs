//! What every fault test needs: the plane it may disturb, the operator's
//! identity, many namespaces at once, the end state read back by listing,
//! and its log. The operator's writes are counted by the harness's
//! [`baseliner_e2e::requests::RequestCounter`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail, ensure};
use baseliner_e2e::baseline::{MANAGED_BY, PROFILE_LABEL, kubectl_apply, profile_yaml};
use baseliner_e2e::operator::Operator;
use baseliner_e2e::{
    E2E_LABEL, Grant, Identity, TestEnv, TestNamespace, Velero, kubectl_delete, random_name,
    workspace_root,
};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{LimitRange, Namespace, ResourceQuota};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::RoleBinding;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::{Mutex, MutexGuard};

/// Label the profiles of a test select on (changed to make a namespace stop
/// matching).
pub const CASE_LABEL: &str = "e2e-case";
/// Label that marks every namespace a test made, for cleanup; never changed.
pub const RUN_LABEL: &str = "baseliner.dev/faults-run";
/// The Pod Security label the strict baseline sets on each namespace.
pub const ENFORCE_LABEL: &str = "pod-security.kubernetes.io/enforce";

/// Each fault disturbs the whole plane (or the operator's view of it), so
/// the tests of this binary run one at a time, whatever `--test-threads`.
static SERIAL: Mutex<()> = Mutex::const_new(());

/// The plane a fault test may stop and start, and an admin connection to it.
pub struct Faults {
    pub env: TestEnv,
    dir: PathBuf,
    _serial: MutexGuard<'static, ()>,
}

impl Faults {
    /// Waits for the other fault tests, then connects. Refuses to run unless
    /// `BASELINER_CLUSTER_DIR` names the plane the harness connects to, and
    /// that plane is not the shared e2e plane (`target/cluster`).
    pub async fn new() -> Result<Self> {
        let serial = SERIAL.lock().await;
        let dir = std::env::var_os("BASELINER_CLUSTER_DIR")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .ok_or_else(|| {
                anyhow!(
                    "the fault tests stop and start the control plane's processes; run them with \
                     `make test-faults` (BASELINER_CLUSTER_DIR names the plane they may disturb)"
                )
            })?;
        let dir = if dir.is_relative() {
            workspace_root().join(dir)
        } else {
            dir
        };
        let dir = dir
            .canonicalize()
            .with_context(|| format!("no plane in {}", dir.display()))?;
        ensure!(
            Some(&dir)
                != workspace_root()
                    .join("target/cluster")
                    .canonicalize()
                    .ok()
                    .as_ref(),
            "the fault tests never run on the shared e2e plane (target/cluster); `make test-faults` \
             gives them target/faults-cluster"
        );
        let env = TestEnv::with_velero(Velero::Any).await?;
        let kubeconfig = env.plane().kubeconfig.canonicalize()?;
        ensure!(
            kubeconfig == dir.join("kubeconfig"),
            "the harness uses {} but BASELINER_CLUSTER_DIR is {}: faults would hit the wrong plane",
            kubeconfig.display(),
            dir.display()
        );
        Ok(Self {
            env,
            dir,
            _serial: serial,
        })
    }

    pub fn client(&self) -> Client {
        self.env.client()
    }

    /// Runs `cluster.sh ARGS` on this plane.
    pub async fn cluster(&self, args: &[&str]) -> Result<()> {
        cluster_sync(&self.dir, args)
    }

    /// Stops a component (`etcd`, `apiserver`), with SIGKILL if `kill`. The
    /// guard starts it again if the test ends first.
    pub async fn stop(&self, component: &'static str, kill: bool) -> Result<Stopped> {
        let mut args = vec!["stop-component", component];
        if kill {
            args.push("--kill");
        }
        self.cluster(&args).await?;
        Ok(Stopped {
            dir: self.dir.clone(),
            component,
            started: false,
        })
    }

    /// The apiserver's `--etcd-compaction-interval`, as `cluster.sh up`
    /// recorded it (None: the default, 5 minutes).
    pub fn compaction_interval(&self) -> Option<Duration> {
        let settings = std::fs::read_to_string(self.dir.join("settings")).ok()?;
        let value = settings
            .lines()
            .find_map(|l| l.strip_prefix("etcd-compaction-interval "))?;
        let seconds = value.trim().strip_suffix('s')?.parse().ok()?;
        Some(Duration::from_secs(seconds))
    }

    /// Waits until the apiserver answers `/readyz` with ok.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let out = self
                .env
                .kubectl(["--request-timeout=5s", "get", "--raw", "/readyz"])
                .await;
            if out.is_ok_and(|o| o.success && o.stdout.trim() == "ok") {
                return Ok(());
            }
            ensure!(
                Instant::now() < deadline,
                "the apiserver not ready after {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The operator's identity: ServiceAccount `baseliner` in a namespace of
    /// its own, with cluster-admin (the faults are not about RBAC; the
    /// production tests check the real rules), so a FlowSchema can match
    /// exactly its requests.
    pub async fn operator_account(&self, prefix: &str) -> Result<(TestNamespace, Identity)> {
        let home = self.env.namespace(prefix).await?;
        let identity = self
            .env
            .service_account(
                &home,
                "baseliner",
                &[Grant::ClusterRole("cluster-admin".into())],
            )
            .await?;
        Ok((home, identity))
    }
}

fn cluster_sync(dir: &Path, args: &[&str]) -> Result<()> {
    let script = workspace_root().join("e2e/controlplane/cluster.sh");
    let status = std::process::Command::new("bash")
        .arg(&script)
        .args(args)
        .env("BASELINER_CLUSTER_DIR", dir)
        .stdin(std::process::Stdio::null())
        .status()
        .with_context(|| format!("running {}", script.display()))?;
    ensure!(
        status.success(),
        "cluster.sh {} failed: {status}",
        args.join(" ")
    );
    Ok(())
}

/// A stopped plane component; started again on drop unless [`Stopped::start`]
/// was called, so a failing test does not leave the plane broken for the
/// next one.
pub struct Stopped {
    dir: PathBuf,
    component: &'static str,
    started: bool,
}

impl Stopped {
    /// Starts the component again and waits until it serves.
    pub async fn start(mut self) -> Result<()> {
        self.started = true;
        cluster_sync(&self.dir, &["start-component", self.component])
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        if !self.started {
            let _ = cluster_sync(&self.dir, &["start-component", self.component]);
        }
    }
}

// ---------------------------------------------------------------------------
// Namespaces

/// The namespaces of one test, labelled `e2e-case=<case>` (what its profile
/// selects) and `baseliner.dev/faults-run=<case>` (for cleanup). Deleted
/// (without waiting) on drop.
pub struct CaseNamespaces {
    pub case: String,
    pub names: Vec<String>,
    client: Client,
    kubectl: PathBuf,
    kubeconfig: PathBuf,
}

impl CaseNamespaces {
    /// Creates `count` namespaces `<case>-000`...,16 requests at a time.
    pub async fn create(faults: &Faults, case: &str, count: usize) -> Result<Self> {
        let mut all = Self {
            case: case.to_owned(),
            names: Vec::new(),
            client: faults.client(),
            kubectl: faults.env.plane().kubectl.clone(),
            kubeconfig: faults.env.plane().kubeconfig.clone(),
        };
        all.add(count).await?;
        Ok(all)
    }

    /// Creates `count` more namespaces of this case; returns their names.
    pub async fn add(&mut self, count: usize) -> Result<Vec<String>> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let first = self.names.len();
        let names: Vec<String> = (first..first + count)
            .map(|i| format!("{}-{i:03}", self.case))
            .collect();
        let labels = BTreeMap::from([
            (E2E_LABEL.to_owned(), "true".to_owned()),
            (CASE_LABEL.to_owned(), self.case.clone()),
            (RUN_LABEL.to_owned(), self.case.clone()),
            ("team".to_owned(), "faults".to_owned()),
        ]);
        concurrently(names.clone(), move |name| {
            let api = api.clone();
            let ns = Namespace {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    labels: Some(labels.clone()),
                    ..Default::default()
                },
                ..Default::default()
            };
            async move {
                api.create(&PostParams::default(), &ns)
                    .await
                    .with_context(|| format!("creating namespace {name}"))?;
                Ok(())
            }
        })
        .await?;
        self.names.extend(names.iter().cloned());
        Ok(names)
    }

    /// Starts deleting every namespace of the case; does not wait.
    pub async fn cleanup(self) -> Result<()> {
        delete_namespaces(&self.client, &self.names).await
    }
}

impl Drop for CaseNamespaces {
    fn drop(&mut self) {
        let _ = std::process::Command::new(&self.kubectl)
            .env("KUBECONFIG", &self.kubeconfig)
            .args([
                "delete",
                "namespace",
                "-l",
                &format!("{RUN_LABEL}={}", self.case),
                "--wait=false",
                "--ignore-not-found",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// Deletes the namespaces, 16 requests at a time; gone ones are fine.
pub async fn delete_namespaces(client: &Client, names: &[String]) -> Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    concurrently(names.to_vec(), move |name| {
        let api = api.clone();
        async move {
            match api.delete(&name, &DeleteParams::background()).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(s)) if s.is_not_found() => Ok(()),
                Err(e) => Err(e).with_context(|| format!("deleting namespace {name}")),
            }
        }
    })
    .await
}

/// Runs `task` for every item, 16 at a time; the first error wins.
pub async fn concurrently<T, F, Fut>(items: Vec<T>, task: F) -> Result<()>
where
    F: Fn(T) -> Fut,
    Fut: std::future::Future<Output = Result<()>> + Send + 'static,
{
    let mut running = tokio::task::JoinSet::new();
    for item in items {
        if running.len() >= 16
            && let Some(done) = running.join_next().await
        {
            done??;
        }
        running.spawn(task(item));
    }
    while let Some(done) = running.join_next().await {
        done??;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The end state, by listing

/// Labels or annotations.
pub type Labels = BTreeMap<String, String>;

/// Everything baseliner manages on the plane, read from the API server.
#[derive(Debug, Default)]
pub struct Observed {
    /// namespace -> (kind, name) -> owning profile label, for every object
    /// labelled managed-by baseliner, in every namespace.
    pub objects: BTreeMap<String, BTreeMap<(String, String), String>>,
    /// namespace -> its labels and annotations, for the namespaces asked about.
    pub namespaces: BTreeMap<String, (Labels, Labels)>,
}

impl Observed {
    /// Lists every managed object on the plane (metadata only) and the
    /// namespaces labelled `baseliner.dev/faults-run` with one of `runs`.
    pub async fn list(client: &Client, runs: &[&str]) -> Result<Self> {
        let mut observed = Self::default();
        collect::<NetworkPolicy>(client, &mut observed.objects).await?;
        collect::<LimitRange>(client, &mut observed.objects).await?;
        collect::<ResourceQuota>(client, &mut observed.objects).await?;
        collect::<RoleBinding>(client, &mut observed.objects).await?;
        let api: Api<Namespace> = Api::all(client.clone());
        for run in runs {
            let list = api
                .list_metadata(&ListParams::default().labels(&format!("{RUN_LABEL}={run}")))
                .await
                .context("listing namespaces")?;
            for ns in list {
                observed.namespaces.insert(
                    ns.name_any(),
                    (ns.labels().clone(), ns.annotations().clone()),
                );
            }
        }
        Ok(observed)
    }

    /// Managed objects of `profile`, anywhere.
    pub fn count_of(&self, profile: &str) -> usize {
        self.objects
            .values()
            .flat_map(BTreeMap::values)
            .filter(|p| *p == profile)
            .count()
    }

    /// Namespaces whose Pod Security `enforce` label is `restricted`.
    pub fn labelled(&self) -> usize {
        self.namespaces
            .values()
            .filter(|(labels, _)| labels.get(ENFORCE_LABEL).is_some_and(|v| v == "restricted"))
            .count()
    }
}

async fn collect<K>(
    client: &Client,
    out: &mut BTreeMap<String, BTreeMap<(String, String), String>>,
) -> Result<()>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::all(client.clone());
    let list = api
        .list_metadata(&ListParams::default().labels(MANAGED_BY))
        .await
        .with_context(|| format!("listing {}", K::kind(&())))?;
    for item in list {
        let profile = item
            .labels()
            .get(PROFILE_LABEL)
            .cloned()
            .unwrap_or_default();
        let previous = out
            .entry(item.namespace().unwrap_or_default())
            .or_default()
            .insert((K::kind(&()).to_string(), item.name_any()), profile);
        ensure!(
            previous.is_none(),
            "{} {} listed twice",
            K::kind(&()),
            item.name_any()
        );
    }
    Ok(())
}

/// What the plane must hold once the operator has recovered.
#[derive(Debug, Default)]
pub struct Expected {
    /// The profiles of the test: no object of theirs may exist outside `owned`.
    pub profiles: BTreeSet<String>,
    /// namespace -> (profile, exactly these managed objects); the namespace
    /// carries the strict Pod Security label.
    pub owned: BTreeMap<String, (String, BTreeSet<(String, String)>)>,
    /// Namespaces that must hold no managed object, no Pod Security label and
    /// no baseliner annotation (they stopped matching, or lost their profile).
    pub released: BTreeSet<String>,
    /// Namespaces that are going away: no managed object may be in them.
    pub emptied: BTreeSet<String>,
}

impl Expected {
    pub fn own(
        &mut self,
        profile: &str,
        namespaces: &[String],
        objects: &BTreeSet<(String, String)>,
    ) {
        self.profiles.insert(profile.to_owned());
        for ns in namespaces {
            self.owned
                .insert(ns.clone(), (profile.to_owned(), objects.clone()));
        }
    }

    /// Objects expected in all, for the summary.
    pub fn object_count(&self) -> usize {
        self.owned.values().map(|(_, o)| o.len()).sum()
    }

    /// Namespaces whose state is checked, for the summary.
    pub fn namespace_count(&self) -> usize {
        self.owned.len() + self.released.len() + self.emptied.len()
    }

    /// How `observed` differs from what is expected (empty: it is all there,
    /// nothing more).
    pub fn differences(&self, observed: &Observed) -> Vec<String> {
        let mut out = Vec::new();
        for (ns, (profile, want)) in &self.owned {
            let have: BTreeMap<(String, String), String> =
                observed.objects.get(ns).cloned().unwrap_or_default();
            let missing: Vec<_> = want.iter().filter(|k| !have.contains_key(*k)).collect();
            let extra: Vec<_> = have.keys().filter(|k| !want.contains(*k)).collect();
            let foreign: Vec<_> = have
                .iter()
                .filter(|(k, p)| want.contains(*k) && *p != profile)
                .collect();
            if !missing.is_empty() || !extra.is_empty() || !foreign.is_empty() {
                out.push(format!(
                    "{ns}: missing {missing:?}, not wanted {extra:?}, wrong owner {foreign:?}"
                ));
            }
            match observed.namespaces.get(ns) {
                Some((labels, _))
                    if labels.get(ENFORCE_LABEL).is_some_and(|v| v == "restricted") => {}
                Some(_) => out.push(format!("{ns}: no {ENFORCE_LABEL}=restricted label")),
                None => out.push(format!("{ns}: namespace not found")),
            }
        }
        for ns in &self.released {
            if let Some(objects) = observed.objects.get(ns) {
                out.push(format!(
                    "{ns}: should hold nothing of baseliner's, holds {objects:?}"
                ));
            }
            if let Some((labels, annotations)) = observed.namespaces.get(ns) {
                let psa: Vec<_> = labels
                    .keys()
                    .filter(|k| k.starts_with("pod-security.kubernetes.io/"))
                    .collect();
                let marks: Vec<_> = annotations
                    .keys()
                    .filter(|k| k.starts_with("baseliner.dev/"))
                    .collect();
                if !psa.is_empty() || !marks.is_empty() {
                    out.push(format!(
                        "{ns}: released, still has labels {psa:?}, annotations {marks:?}"
                    ));
                }
            }
        }
        for ns in &self.emptied {
            if let Some(objects) = observed.objects.get(ns) {
                out.push(format!("{ns}: going away, still holds {objects:?}"));
            }
        }
        for (ns, objects) in &observed.objects {
            if self.owned.contains_key(ns) {
                continue;
            }
            let strays: Vec<_> = objects
                .iter()
                .filter(|(_, p)| self.profiles.contains(*p))
                .map(|(k, _)| k)
                .collect();
            if !strays.is_empty() && !self.released.contains(ns) && !self.emptied.contains(ns) {
                out.push(format!(
                    "{ns}: objects of this test's profiles where none belong: {strays:?}"
                ));
            }
        }
        out
    }
}

/// Polls every 500 ms until the plane holds exactly what is expected;
/// returns how long that took and what was observed.
pub async fn wait_converged(
    client: &Client,
    runs: &[&str],
    expected: &Expected,
    timeout: Duration,
    operator: &Operator,
) -> Result<(Duration, Observed)> {
    let started = Instant::now();
    let mut last = Vec::new();
    while started.elapsed() < timeout {
        match Observed::list(client, runs).await {
            Ok(observed) => {
                last = expected.differences(&observed);
                if last.is_empty() {
                    return Ok((started.elapsed(), observed));
                }
            }
            Err(error) => last = vec![format!("listing failed: {error:#}")],
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    bail!(
        "not converged after {timeout:?}; {} differences, first ones:\n{}\noperator log: {}",
        last.len(),
        last.iter().take(10).cloned().collect::<Vec<_>>().join("\n"),
        operator.log.display()
    )
}

/// Polls until `enough` holds of what is listed (e.g. convergence is under
/// way); returns that observation.
pub async fn wait_observed(
    client: &Client,
    runs: &[&str],
    what: &str,
    timeout: Duration,
    enough: impl Fn(&Observed) -> bool,
) -> Result<Observed> {
    let started = Instant::now();
    loop {
        let observed = Observed::list(client, runs).await?;
        if enough(&observed) {
            return Ok(observed);
        }
        ensure!(
            started.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------------------
// Profiles

/// A profile of one test, deleted (without waiting) on drop.
pub struct Profile {
    pub name: String,
    case: String,
    kubectl: PathBuf,
    kubeconfig: PathBuf,
}

impl Profile {
    /// Applies a profile named `<prefix>-<random>` selecting the namespaces
    /// of `case`, with `spec` (see [`profile_yaml`]).
    pub async fn apply(env: &TestEnv, prefix: &str, case: &str, spec: &str) -> Result<Self> {
        let profile = Self {
            name: random_name(prefix),
            case: case.to_owned(),
            kubectl: env.plane().kubectl.clone(),
            kubeconfig: env.plane().kubeconfig.clone(),
        };
        profile.update(env, spec).await?;
        Ok(profile)
    }

    /// Applies a new spec.
    pub async fn update(&self, env: &TestEnv, spec: &str) -> Result<()> {
        kubectl_apply(env, &profile_yaml(&self.name, &self.case, spec)).await?;
        Ok(())
    }

    /// Starts deleting the profile; does not wait.
    pub async fn delete(&self, env: &TestEnv) -> Result<()> {
        env.kubectl(["delete", "productionprofile", &self.name, "--wait=false"])
            .await?
            .ok()?;
        Ok(())
    }
}

impl Drop for Profile {
    fn drop(&mut self) {
        kubectl_delete(
            &self.kubectl,
            &self.kubeconfig,
            &["productionprofile", &self.name],
        );
    }
}

// ---------------------------------------------------------------------------
// The operator

/// `baseliner run` as `identity`, alone (no leader election), with extra args.
pub fn start_operator(identity: &Identity, home: &str, extra: &[&str]) -> Result<Operator> {
    let mut args = vec![
        "--leader-elect=false",
        "--http-addr",
        "127.0.0.1:0",
        "--operator-namespace",
        home,
    ];
    args.extend_from_slice(extra);
    Operator::start(&identity.kubeconfig, &args)
}

/// Lines of the operator's log at WARN or ERROR level from byte `since` on.
pub fn problems_since(operator: &Operator, since: usize) -> Vec<String> {
    let log = operator.output();
    log.get(since.min(log.len())..)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .map(str::to_owned)
        .collect()
}

/// Where the operator's log ends now.
pub fn log_end(operator: &Operator) -> usize {
    operator.output().len()
}

/// Sends `signal` to a process this test started.
pub fn signal(pid: u32, signal: i32) {
    // SAFETY: signalling a child process of this test.
    unsafe {
        libc::kill(pid as i32, signal);
    }
}

/// A process stopped with SIGSTOP; continued with SIGCONT on drop.
pub struct Paused(pub u32);

impl Paused {
    pub fn new(pid: u32) -> Self {
        signal(pid, libc::SIGSTOP);
        Self(pid)
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        signal(self.0, libc::SIGCONT);
    }
}

/// The holder of Lease `home/name`, if any.
pub async fn lease_holder(client: &Client, home: &str, name: &str) -> Option<String> {
    Api::<Lease>::namespaced(client.clone(), home)
        .get_opt(name)
        .await
        .ok()
        .flatten()
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
}

/// The Lease holder identity of an operator process started here (no
/// POD_NAME): `<hostname>_<pid>`.
pub fn holder_identity(pid: u32) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("{}_{pid}", host.trim())
}

/// A port free on loopback right now.
pub fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// The status code of `GET path` on the operator's HTTP port.
pub async fn http_status(port: u16, path: &str) -> Result<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    response
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| anyhow!("not an HTTP response: {response}"))
}

// ---------------------------------------------------------------------------
// Reporting

/// Prints one summary line per fault and appends it to
/// `target/faults-summary.txt`, which `make test-faults` prints at the end.
pub fn summary(fault: &str, line: &str) {
    use std::io::Write;
    let text = format!("{fault}: {line}");
    eprintln!("faults: {text}");
    let path = workspace_root().join("target").join("faults-summary.txt");
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(file, "{text}");
    }
}

/// Seconds with one decimal, for summaries.
pub fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}
