//! End-to-end harness: runs tests against a real local Kubernetes control
//! plane (etcd, kube-apiserver, kube-controller-manager built from their Go
//! modules by `e2e/controlplane/build.sh`).
//!
//! * [`TestEnv::new`] connects to the plane. The plane is the one named by
//!   `$BASELINER_E2E_KUBECONFIG` or `$KUBECONFIG` when either is set;
//!   otherwise the harness runs `e2e/controlplane/cluster.sh up` once per
//!   test process (a no-op when the plane is already up) and uses
//!   `target/cluster/kubeconfig`. It leaves that plane running for the next
//!   run; `make cluster-down` stops it (`make test` does so by itself).
//! * [`TestEnv::namespace`] gives a test its own randomly named namespace,
//!   deleted by [`TestNamespace::cleanup`] (or, as a fallback, on drop).
//! * [`TestEnv::service_account`] makes a non-admin identity with exactly the
//!   grants a test gives it, as a [`kube::Client`] and as a kubeconfig for
//!   [`TestEnv::kubectl_as`].
//! * [`TestEnv::kubectl`] runs the kubectl built with the plane, as a user would.
//! * Velero: the pinned release's CRDs (from `e2e/velero/build.sh`) and a
//!   `velero` namespace are installed for every [`TestEnv`] made with
//!   [`TestEnv::new`]; [`TestEnv::with_velero`] with [`Velero::Absent`] runs a
//!   test with Velero not installed (such tests run alone, see [`Velero`]).
//! * [`requests::RequestCounter`] counts the operator's requests with API Priority
//!   and Fairness.

pub mod baseline;
pub mod inspect;
pub mod operator;
mod plane;
pub mod requests;
pub mod velero;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, anyhow, bail};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

pub use plane::{Plane, repo_root as workspace_root};
pub use velero::{Velero, VeleroGuard};

/// The Kubernetes release the local plane is built from (see
/// `e2e/controlplane/build.sh`).
pub const KUBERNETES_VERSION: &str = "v1.37.1";
/// The etcd release the local plane runs.
pub const ETCD_VERSION: &str = "v3.7.0";

/// Label put on every namespace the harness creates.
pub const E2E_LABEL: &str = "baseliner.dev/e2e";
/// Label naming the test that created a namespace.
pub const E2E_TEST_LABEL: &str = "baseliner.dev/e2e-test";

/// Default time allowed for things the control plane does asynchronously.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// A connection to the control plane for one test.
///
/// Make one per test: a [`kube::Client`] belongs to the tokio runtime it was
/// made in, and every `#[tokio::test]` has its own runtime. Making one is
/// cheap; the plane itself is started only once per test process.
pub struct TestEnv {
    client: Client,
    plane: &'static Plane,
    _velero: VeleroGuard,
}

impl TestEnv {
    /// Connects as cluster admin, with Velero's CRDs installed.
    pub async fn new() -> Result<Self> {
        Self::with_velero(Velero::Installed).await
    }

    /// Connects as cluster admin, with Velero installed, absent, or left as
    /// it is (see [`Velero`]).
    pub async fn with_velero(velero: Velero) -> Result<Self> {
        let plane = plane::plane()?;
        let client = client_from_kubeconfig(&plane.kubeconfig).await?;
        let guard = velero::acquire(&client, &plane.kubeconfig, velero).await?;
        Ok(Self {
            client,
            plane,
            _velero: guard,
        })
    }

    /// An admin client (the kubeconfig's identity).
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    pub fn plane(&self) -> &'static Plane {
        self.plane
    }

    /// Creates a namespace named `e2e-<prefix>-<random>`, labelled
    /// [`E2E_LABEL`]`=true` and [`E2E_TEST_LABEL`]`=<prefix>`.
    pub async fn namespace(&self, prefix: &str) -> Result<TestNamespace> {
        self.namespace_with_labels(prefix, BTreeMap::new()).await
    }

    /// Like [`TestEnv::namespace`], with extra labels.
    pub async fn namespace_with_labels(
        &self,
        prefix: &str,
        labels: BTreeMap<String, String>,
    ) -> Result<TestNamespace> {
        let name = random_name(&format!("e2e-{prefix}"));
        let mut all = labels;
        all.insert(E2E_LABEL.into(), "true".into());
        all.insert(E2E_TEST_LABEL.into(), sanitize_label_value(prefix));
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some(all),
                ..Default::default()
            },
            ..Default::default()
        };
        let created = Api::<Namespace>::all(self.client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .with_context(|| format!("creating namespace {name}"))?;
        Ok(TestNamespace {
            name,
            uid: created.metadata.uid.unwrap_or_default(),
            client: self.client.clone(),
            plane: self.plane,
            cleaned: false,
        })
    }

    /// Runs the plane's kubectl as the admin identity.
    pub async fn kubectl<I, S>(&self, args: I) -> Result<KubectlOutput>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.kubectl_as(&self.plane.kubeconfig, args).await
    }

    /// Runs the plane's kubectl with the given kubeconfig (e.g.
    /// [`Identity::kubeconfig`]).
    pub async fn kubectl_as<I, S>(&self, kubeconfig: &Path, args: I) -> Result<KubectlOutput>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.kubectl_with_stdin(kubeconfig, args, None).await
    }

    /// Runs the plane's kubectl with the given kubeconfig, feeding `stdin`
    /// (for `kubectl apply -f -`).
    pub async fn kubectl_with_stdin<I, S>(
        &self,
        kubeconfig: &Path,
        args: I,
        stdin: Option<&str>,
    ) -> Result<KubectlOutput>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        run_kubectl(&self.plane.kubectl, kubeconfig, args, stdin).await
    }

    /// Creates ServiceAccount `name` in `namespace`, gives it exactly
    /// `grants`, and returns an identity that authenticates with a token
    /// from the TokenRequest API. RoleBindings go into the namespace they
    /// grant in; ClusterRoleBindings are owned by the namespace the
    /// ServiceAccount lives in, so the garbage collector removes them with it.
    pub async fn service_account(
        &self,
        namespace: &TestNamespace,
        name: &str,
        grants: &[Grant],
    ) -> Result<Identity> {
        let ns = namespace.name();
        let sa = ServiceAccount {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(ns.into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let sas = Api::<ServiceAccount>::namespaced(self.client.clone(), ns);
        sas.create(&PostParams::default(), &sa)
            .await
            .with_context(|| format!("creating ServiceAccount {ns}/{name}"))?;
        let subject = Subject {
            kind: "ServiceAccount".into(),
            name: name.into(),
            namespace: Some(ns.into()),
            api_group: None,
        };
        for (i, grant) in grants.iter().enumerate() {
            self.bind(namespace, &subject, &format!("{name}-{i}"), grant)
                .await?;
        }
        let token = sas
            .create_token_request(
                name,
                &PostParams::default(),
                &TokenRequest {
                    spec: Some(TokenRequestSpec {
                        expiration_seconds: Some(3600),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            )
            .await
            .with_context(|| format!("TokenRequest for ServiceAccount {ns}/{name}"))?
            .status
            .and_then(|s| s.token)
            .ok_or_else(|| anyhow!("TokenRequest for {ns}/{name} returned no status"))?;
        let user = format!("system:serviceaccount:{ns}:{name}");
        let path = namespace.scratch_dir()?.join(format!("{name}.kubeconfig"));
        write_token_kubeconfig(&self.plane.kubeconfig, &path, &user, &token, ns)?;
        let client = client_from_kubeconfig(&path).await?;
        Ok(Identity {
            user,
            kubeconfig: path,
            client,
        })
    }

    /// Binds `grant` to `subject`; bindings are named `<binding>`.
    pub async fn bind(
        &self,
        owner: &TestNamespace,
        subject: &Subject,
        binding: &str,
        grant: &Grant,
    ) -> Result<()> {
        let pp = PostParams::default();
        match grant {
            Grant::ClusterRoleIn { namespace, role } | Grant::RoleIn { namespace, role } => {
                let kind = match grant {
                    Grant::RoleIn { .. } => "Role",
                    _ => "ClusterRole",
                };
                let rb = RoleBinding {
                    metadata: ObjectMeta {
                        name: Some(binding.into()),
                        namespace: Some(namespace.clone()),
                        labels: Some(BTreeMap::from([(E2E_LABEL.into(), "true".into())])),
                        ..Default::default()
                    },
                    role_ref: RoleRef {
                        api_group: Some("rbac.authorization.k8s.io".into()),
                        kind: kind.into(),
                        name: role.clone(),
                    },
                    subjects: Some(vec![subject.clone()]),
                };
                Api::<RoleBinding>::namespaced(self.client.clone(), namespace)
                    .create(&pp, &rb)
                    .await
                    .with_context(|| format!("creating RoleBinding {namespace}/{binding}"))?;
            }
            Grant::ClusterRole(role) => {
                let name = format!("{}-{binding}", owner.name());
                let crb = ClusterRoleBinding {
                    metadata: ObjectMeta {
                        name: Some(name.clone()),
                        labels: Some(BTreeMap::from([(E2E_LABEL.into(), "true".into())])),
                        owner_references: Some(vec![owner.owner_reference()]),
                        ..Default::default()
                    },
                    role_ref: RoleRef {
                        api_group: Some("rbac.authorization.k8s.io".into()),
                        kind: "ClusterRole".into(),
                        name: role.clone(),
                    },
                    subjects: Some(vec![subject.clone()]),
                };
                Api::<ClusterRoleBinding>::all(self.client.clone())
                    .create(&pp, &crb)
                    .await
                    .with_context(|| format!("creating ClusterRoleBinding {name}"))?;
            }
        }
        Ok(())
    }

    /// An admin client that impersonates `user` in `groups`: a plain user
    /// identity with only the rights that RBAC gives that user or groups.
    pub async fn impersonate(&self, user: &str, groups: &[&str]) -> Result<Client> {
        let mut config = config_from_kubeconfig(&self.plane.kubeconfig).await?;
        config.auth_info.impersonate = Some(user.into());
        config.auth_info.impersonate_groups = if groups.is_empty() {
            None
        } else {
            Some(groups.iter().map(|g| g.to_string()).collect())
        };
        Client::try_from(config).context("building impersonating client")
    }

    /// Installs Velero's CRDs and the `velero` namespace,
    /// e.g. in a test made with [`Velero::Absent`] that installs it midway.
    /// Prefer [`TestEnv::new`] when Velero should simply be there.
    pub async fn install_velero(&self) -> Result<()> {
        velero::install_during_test(&self.client).await
    }

    /// Removes the Velero Schedule CRD (and every Schedule) and the `velero`
    /// namespace again, in a test made with [`Velero::Absent`].
    pub async fn uninstall_velero(&self) -> Result<()> {
        velero::uninstall_during_test(&self.client).await
    }
}

/// What a test identity is allowed to do.
#[derive(Clone, Debug)]
pub enum Grant {
    /// A RoleBinding in `namespace` to the ClusterRole `role`.
    ClusterRoleIn { namespace: String, role: String },
    /// A RoleBinding in `namespace` to the Role `role` (in that namespace).
    RoleIn { namespace: String, role: String },
    /// A ClusterRoleBinding to `role`, removed with the owning test namespace.
    ClusterRole(String),
}

impl Grant {
    pub fn cluster_role_in(namespace: &str, role: &str) -> Self {
        Grant::ClusterRoleIn {
            namespace: namespace.into(),
            role: role.into(),
        }
    }

    pub fn role_in(namespace: &str, role: &str) -> Self {
        Grant::RoleIn {
            namespace: namespace.into(),
            role: role.into(),
        }
    }
}

/// A non-admin identity made by [`TestEnv::service_account`].
pub struct Identity {
    /// The username the apiserver sees, e.g. `system:serviceaccount:ns:name`.
    pub user: String,
    /// A kubeconfig for this identity, for [`TestEnv::kubectl_as`].
    pub kubeconfig: PathBuf,
    pub client: Client,
}

/// A namespace for one test. Call [`TestNamespace::cleanup`] at the end of
/// the test; if the test panics first, drop deletes it with kubectl.
pub struct TestNamespace {
    name: String,
    uid: String,
    client: Client,
    plane: &'static Plane,
    cleaned: bool,
}

impl TestNamespace {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// An owner reference to this namespace, for cluster-scoped test objects
    /// that should go when it goes.
    pub fn owner_reference(&self) -> OwnerReference {
        OwnerReference {
            api_version: "v1".into(),
            kind: "Namespace".into(),
            name: self.name.clone(),
            uid: self.uid.clone(),
            ..Default::default()
        }
    }

    fn scratch_dir(&self) -> Result<PathBuf> {
        let dir = scratch_root().join(&self.name);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(dir)
    }

    /// Starts deleting the namespace and removes the test's scratch files.
    /// Does not wait for the namespace to be gone; see
    /// [`TestNamespace::delete_and_wait`].
    pub async fn cleanup(mut self) -> Result<()> {
        self.cleaned = true;
        let _ = std::fs::remove_dir_all(scratch_root().join(&self.name));
        match Api::<Namespace>::all(self.client.clone())
            .delete(&self.name, &DeleteParams::background())
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.is_not_found() => Ok(()),
            Err(e) => Err(e).with_context(|| format!("deleting namespace {}", self.name)),
        }
    }

    /// Deletes the namespace and waits until the API no longer has it, which
    /// needs kube-controller-manager's namespace controller to empty it.
    pub async fn delete_and_wait(self, timeout: Duration) -> Result<()> {
        let name = self.name.clone();
        let api = Api::<Namespace>::all(self.client.clone());
        self.cleanup().await?;
        wait_until(&format!("namespace {name} to be gone"), timeout, || {
            let api = api.clone();
            let name = name.clone();
            async move { matches!(api.get_opt(&name).await, Ok(None)) }
        })
        .await
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        if self.cleaned {
            return;
        }
        let _ = std::fs::remove_dir_all(scratch_root().join(&self.name));
        // Drop cannot be async; run kubectl and don't wait for the namespace
        // to finish terminating.
        kubectl_delete(
            &self.plane.kubectl,
            &self.plane.kubeconfig,
            &["namespace", &self.name],
        );
    }
}

/// `kubectl delete ARGS --ignore-not-found --wait=false`, for a `Drop`
/// (which cannot be async): does not wait, ignores failures.
pub fn kubectl_delete(kubectl: &Path, kubeconfig: &Path, args: &[&str]) {
    let _ = std::process::Command::new(kubectl)
        .env("KUBECONFIG", kubeconfig)
        .arg("delete")
        .args(args)
        .args(["--ignore-not-found", "--wait=false"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// What a kubectl run printed and how it exited.
#[derive(Debug, Clone)]
pub struct KubectlOutput {
    pub success: bool,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl KubectlOutput {
    /// stdout if kubectl succeeded, else an error with its stderr.
    pub fn ok(self) -> Result<String> {
        if self.success {
            Ok(self.stdout)
        } else {
            bail!(
                "kubectl failed ({:?}): {}{}",
                self.code,
                self.stderr,
                self.stdout
            )
        }
    }
}

async fn run_kubectl<I, S>(
    kubectl: &Path,
    kubeconfig: &Path,
    args: I,
    stdin: Option<&str>,
) -> Result<KubectlOutput>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    use tokio::io::AsyncWriteExt;
    let args: Vec<String> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let mut cmd = tokio::process::Command::new(kubectl);
    cmd.env("KUBECONFIG", kubeconfig)
        .args(&args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("running {} {}", kubectl.display(), args.join(" ")))?;
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin is piped");
        pipe.write_all(input.as_bytes()).await?;
        drop(pipe);
    }
    let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .map_err(|_| anyhow!("kubectl {} timed out after 120s", args.join(" ")))??;
    Ok(KubectlOutput {
        success: out.status.success(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// Polls `check` every 100 ms until it returns `Some`, or fails after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls `check` every 100 ms until it returns true, or fails after `timeout`.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_for(what, timeout, || {
        let fut = check();
        async move { fut.await.then_some(()) }
    })
    .await
}

/// `prefix-xxxxxxxx`: lowercase, unique within and across test processes.
pub fn random_name(prefix: &str) -> String {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    let suffix = format!("{:08x}", h.finish() as u32);
    let prefix: String = sanitize_label_value(prefix)
        .to_lowercase()
        .chars()
        .map(|c| if c == '_' || c == '.' { '-' } else { c })
        .take(63 - 9)
        .collect();
    format!("{}-{suffix}", prefix.trim_end_matches('-'))
}

fn sanitize_label_value(s: &str) -> String {
    let v: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    v.trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_owned()
}

fn scratch_root() -> PathBuf {
    std::env::temp_dir().join("baseliner-e2e")
}

async fn config_from_kubeconfig(path: &Path) -> Result<Config> {
    let kc = Kubeconfig::read_from(path)
        .with_context(|| format!("reading kubeconfig {}", path.display()))?;
    Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .with_context(|| format!("loading kubeconfig {}", path.display()))
}

/// A client for the kubeconfig at `path` (its current context).
pub async fn client_from_kubeconfig(path: &Path) -> Result<Client> {
    let config = config_from_kubeconfig(path).await?;
    Client::try_from(config).context("building kube client")
}

/// Writes a kubeconfig for `user` with a bearer token, for the cluster of
/// the current context of `base` (JSON, which kubectl and kube read as YAML).
pub fn write_token_kubeconfig(
    base: &Path,
    path: &Path,
    user: &str,
    token: &str,
    namespace: &str,
) -> Result<()> {
    let kc = Kubeconfig::read_from(base)
        .with_context(|| format!("reading kubeconfig {}", base.display()))?;
    let ctx_name = kc
        .current_context
        .clone()
        .ok_or_else(|| anyhow!("{} has no current-context", base.display()))?;
    let ctx = kc
        .contexts
        .iter()
        .find(|c| c.name == ctx_name)
        .and_then(|c| c.context.clone())
        .ok_or_else(|| anyhow!("context {ctx_name} not found in {}", base.display()))?;
    let cluster = kc
        .clusters
        .iter()
        .find(|c| c.name == ctx.cluster)
        .and_then(|c| c.cluster.clone())
        .ok_or_else(|| anyhow!("cluster {} not found in {}", ctx.cluster, base.display()))?;
    let doc = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "e2e", "cluster": cluster}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": user, "namespace": namespace}}],
        "current-context": "e2e",
    });
    write_private(path, &serde_json::to_vec_pretty(&doc)?)
}

fn write_private(path: &Path, data: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(data)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_names_are_valid_and_distinct() {
        let a = random_name("e2e-Some_Test.x");
        let b = random_name("e2e-Some_Test.x");
        assert_ne!(a, b);
        for n in [&a, &b] {
            assert!(n.len() <= 63, "{n}");
            assert!(
                n.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{n}"
            );
            assert!(n.starts_with("e2e-some-test-x-"), "{n}");
        }
    }

    #[test]
    fn versions_match_build_script() {
        let script = include_str!("../controlplane/build.sh");
        assert!(script.contains(&format!("K8S_VERSION=\"{KUBERNETES_VERSION}\"")));
        assert!(script.contains(&format!("ETCD_VERSION=\"{ETCD_VERSION}\"")));
        let k8s_mod = include_str!("../controlplane/kubernetes/go.mod");
        assert!(k8s_mod.contains(&format!("k8s.io/kubernetes {KUBERNETES_VERSION}")));
        let etcd_mod = include_str!("../controlplane/etcd/go.mod");
        assert!(etcd_mod.contains(&format!("go.etcd.io/etcd/server/v3 {ETCD_VERSION}")));
    }

    #[test]
    fn velero_crds_are_those_of_the_pinned_release() {
        let crds = velero::velero_crds().expect("e2e/velero/build.sh provides Velero's CRDs");
        let schedule = crds
            .iter()
            .find(|c| c.metadata.name.as_deref() == Some(velero::SCHEDULE_CRD))
            .expect("Velero ships the Schedule CRD");
        assert_eq!(schedule.spec.scope, "Namespaced");
        assert!(crds.iter().any(|c| c.spec.names.kind == "Backup"));
        assert!(
            crds.iter().all(|c| c
                .metadata
                .labels
                .as_ref()
                .is_some_and(|l| l.contains_key("app.kubernetes.io/part-of"))),
            "labelled as the harness's, so uninstall removes only what it installed"
        );
        let pinned = include_str!("../velero/go.mod")
            .lines()
            .find_map(|l| l.strip_prefix("require github.com/vmware-tanzu/velero "))
            .expect("go.mod pins Velero")
            .trim()
            .to_owned();
        let versions =
            std::fs::read_to_string(velero::velero_dir().unwrap().join("VERSIONS")).unwrap();
        assert!(versions.contains(&format!("velero {pinned}")), "{versions}");
        let ns: Namespace = serde_saphyr::from_str(velero::NAMESPACE_YAML).unwrap();
        assert_eq!(ns.metadata.name.as_deref(), Some(velero::VELERO_NAMESPACE));
    }

    #[test]
    fn label_values_are_sanitized() {
        assert_eq!(sanitize_label_value("-a b/c-"), "a-b-c");
        assert_eq!(sanitize_label_value(&"x".repeat(80)).len(), 63);
    }
}
