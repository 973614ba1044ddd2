//! `baseliner-bench`: the operator's performance, measured against a real
//! local control plane beside the floor a plain client reaches on the same
//! API server, written to `BENCHMARKS.md` and `BENCHMARKS.json`.
//!
//! Run it with `make bench` (`hack/bench.sh`), which starts a plane of its
//! own and stops it afterwards. Settings come from the environment:
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `BENCH_NAMESPACES` | 1000 | namespaces the profile selects |
//! | `BENCH_RUNS` | 3 | runs per figure (medians are over these) |
//! | `BENCH_SAMPLES` | 200 | samples per latency run |
//! | `BENCH_RESYNC_SECONDS` | 20 | the operator's `--resync-seconds` |
//! | `BENCH_FLOOR_CONCURRENCY` | 8,16,32,64,128 | concurrencies the floor tries |
//! | `BENCH_OUTPUT` | the repository root | where the two files go |
//! | `BENCH_REGENERATE` | unset | if set, only write `BENCHMARKS.md` anew from `BENCHMARKS.json` |
//! | `BENCH_BASELINE` | unset | a git revision: `make bench` builds its operator too, and its convergence, restart and failover are measured beside this build's, in the same run |
//!
//! The plane is the one `BASELINER_E2E_KUBECONFIG` names (the e2e harness's
//! rules); the operator is `BASELINER_BIN`, else a release build made here.

mod cluster;
mod floor;
mod report;
mod tracker;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail, ensure};
use baseliner::api::ProductionProfile;
use baseliner::kind::ManagedKind;
use baseliner::namespace::NamespaceInfo;
use baseliner::render::{NamespaceLabels, RenderOptions, render_namespace};
use baseliner_e2e::{TestEnv, workspace_root};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use cluster::{
    MANAGED_RESOURCES, Requests, RunningOperator, Settle, operator_requests, settled_requests,
};
use floor::{Item, Method};
use report::{
    ConvergenceRun, FloorRun, FloorSweepPoint, Report, RestartRun, SteadyWindow, median, median_u64,
};
use tracker::{Key, Kind, Tracker};

/// Label on every namespace the benchmark creates; the profile selects it.
pub const BENCH_LABEL: &str = "baseliner.dev/bench";
/// Label telling the namespaces of one new-namespace latency run apart.
const BATCH_LABEL: &str = "baseliner.dev/bench-batch";
/// Where the operator's ServiceAccount lives.
pub const HOME_NAMESPACE: &str = "baseliner-bench";
pub const OPERATOR_SA: &str = "baseliner";
const PROFILE_NAME: &str = "bench-strict";
const FIELD_MANAGER: &str = "baseliner-bench";

/// The strict profile of the issue: default-deny with DNS and
/// same-namespace allows, a LimitRange, a ResourceQuota, Pod Security
/// labels and two RoleBindings.
const PROFILE_YAML: &str = r#"apiVersion: baseliner.dev/v1alpha1
kind: ProductionProfile
metadata:
  name: bench-strict
spec:
  namespaces:
    selector:
      matchLabels:
        baseliner.dev/bench: "true"
  networkPolicy:
    defaultDeny: true
    allowDNS: true
    allowSameNamespace: true
  limitRange:
    defaultRequest: {cpu: 100m, memory: 128Mi}
    default: {cpu: 500m, memory: 512Mi}
  resourceQuota:
    hard: {pods: "20", requests.cpu: "4", requests.memory: 8Gi}
  podSecurity:
    enforce: restricted
    audit: restricted
    warn: restricted
  roleBindings:
    - name: viewers
      clusterRole: view
      subjects:
        - kind: Group
          name: "team-{{labels.team}}-viewers"
    - name: developers
      clusterRole: edit
      subjects:
        - kind: Group
          name: "team-{{labels.team}}-developers"
"#;

struct Config {
    namespaces: usize,
    runs: usize,
    samples: usize,
    resync_seconds: u64,
    floor_concurrency: Vec<usize>,
    output: PathBuf,
    /// Another build measured beside this one (`BENCH_BASELINE`, which
    /// `hack/bench.sh` builds and passes on as `BENCH_BASELINE_BIN` and
    /// `BENCH_BASELINE_LABEL`).
    baseline: Option<OtherBuild>,
}

/// A build of the operator other than the one measured first.
struct OtherBuild {
    /// What it is built from (a commit), as the report names it.
    label: String,
    binary: PathBuf,
}

impl Config {
    fn from_env() -> Result<Self> {
        fn var<T: std::str::FromStr>(name: &str, default: T) -> Result<T> {
            match std::env::var(name) {
                Ok(v) if !v.trim().is_empty() => v
                    .trim()
                    .parse()
                    .map_err(|_| anyhow!("{name}={v} is not a valid value")),
                _ => Ok(default),
            }
        }
        let floor_concurrency = match std::env::var("BENCH_FLOOR_CONCURRENCY") {
            Ok(v) if !v.trim().is_empty() => v
                .split(',')
                .map(|c| c.trim().parse::<usize>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| anyhow!("BENCH_FLOOR_CONCURRENCY={v}: want e.g. 8,16,32"))?,
            _ => vec![8, 16, 32, 64, 128],
        };
        let config = Self {
            namespaces: var("BENCH_NAMESPACES", 1000)?,
            runs: var("BENCH_RUNS", 3)?,
            samples: var("BENCH_SAMPLES", 200)?,
            resync_seconds: var("BENCH_RESYNC_SECONDS", 20)?,
            floor_concurrency,
            output: std::env::var_os("BENCH_OUTPUT")
                .map(PathBuf::from)
                .unwrap_or_else(workspace_root),
            baseline: std::env::var_os("BENCH_BASELINE_BIN").map(|binary| OtherBuild {
                label: std::env::var("BENCH_BASELINE_LABEL").unwrap_or_else(|_| "baseline".into()),
                binary: PathBuf::from(binary),
            }),
        };
        if let Some(other) = &config.baseline {
            ensure!(
                other.binary.is_file(),
                "BENCH_BASELINE_BIN={} is not a file",
                other.binary.display()
            );
        }
        ensure!(
            config.namespaces >= 1,
            "BENCH_NAMESPACES must be at least 1"
        );
        ensure!(config.runs >= 1, "BENCH_RUNS must be at least 1");
        ensure!(config.samples >= 1, "BENCH_SAMPLES must be at least 1");
        ensure!(
            config.floor_concurrency.iter().all(|&c| c >= 1)
                && !config.floor_concurrency.is_empty(),
            "BENCH_FLOOR_CONCURRENCY needs at least one concurrency of 1 or more"
        );
        Ok(config)
    }
}

fn main() -> Result<()> {
    let config = Config::from_env()?;
    if std::env::var_os("BENCH_REGENERATE").is_some() {
        let (json, md) = (
            config.output.join("BENCHMARKS.json"),
            config.output.join("BENCHMARKS.md"),
        );
        return report::regenerate(&json, &md);
    }
    prepare_operator_binary()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(config))
}

/// Points the e2e harness at a release build of the operator (building it
/// unless `BASELINER_BIN` names one) and keeps its log at `info`, as
/// deployed. Runs before any other thread exists.
fn prepare_operator_binary() -> Result<()> {
    if std::env::var_os("BASELINER_BIN").is_none() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args([
                "build",
                "--release",
                "-p",
                "baseliner",
                "--bin",
                "baseliner",
            ])
            .current_dir(workspace_root())
            .status()
            .context("running cargo build --release -p baseliner")?;
        ensure!(
            status.success(),
            "cargo build --release -p baseliner failed"
        );
        let binary = workspace_root().join("target/release/baseliner");
        // SAFETY: single-threaded here: the runtime is not built yet.
        unsafe { std::env::set_var("BASELINER_BIN", binary) };
    }
    if std::env::var_os("BASELINER_E2E_LOG").is_none() {
        // SAFETY: as above.
        unsafe { std::env::set_var("BASELINER_E2E_LOG", "info") };
    }
    Ok(())
}

/// Everything the phases share.
struct Bench {
    config: Config,
    admin: Client,
    /// The operator's identity, for the floor too, so both get the same
    /// treatment from API Priority and Fairness.
    operator_client: Client,
    operator_kubeconfig: PathBuf,
    tracker: Arc<Tracker>,
    profile: ProductionProfile,
    names: Vec<String>,
    labels: BTreeMap<String, BTreeMap<String, String>>,
    writes_per_namespace: usize,
    /// The operator measured (`BASELINER_BIN`).
    binary: PathBuf,
}

fn say(what: impl std::fmt::Display) {
    eprintln!("bench: {what}");
}

async fn run(config: Config) -> Result<()> {
    let started = Instant::now();
    let load_before = load_average();
    // Velero's own CRDs installed, as in a cluster that runs Velero: the
    // profile asks for no backups, and without the CRD the operator retries
    // listing Schedules about once a second (see README, Performance).
    let env = TestEnv::new().await?;
    let admin = env.client();
    let plane = env.plane();
    let work_dir = workspace_root().join("target").join("bench");
    std::fs::create_dir_all(&work_dir)?;
    let operator_kubeconfig = cluster::setup_identity(&admin, &plane.kubeconfig, &work_dir).await?;
    let operator_client = baseliner_e2e::client_from_kubeconfig(&operator_kubeconfig).await?;

    let n = config.namespaces;
    let names: Vec<String> = (0..n).map(|i| format!("bench-{i:05}")).collect();
    let mut labels = BTreeMap::new();
    for (i, name) in names.iter().enumerate() {
        labels.insert(name.clone(), cluster::namespace_labels(i));
    }
    say(format!("creating {n} namespaces"));
    let with_labels: Vec<_> = names
        .iter()
        .map(|n| (n.clone(), labels[n].clone()))
        .collect();
    cluster::create_namespaces(&admin, &with_labels).await?;

    let profile: ProductionProfile =
        serde_saphyr::from_str(PROFILE_YAML).context("parsing the benchmark's profile")?;
    let tracker = Tracker::start(&admin).await?;
    let mut writes_per_namespace = 0;
    for name in &names {
        let rendered = render(&profile, name, &labels[name]);
        ensure!(
            rendered.problems.is_empty(),
            "the profile does not render cleanly: {:?}",
            rendered.problems
        );
        writes_per_namespace = rendered.objects.len() + 1;
        tracker.set_desired(name, tracker::desired_from(&rendered));
    }
    let bench = Bench {
        config,
        admin,
        operator_client,
        operator_kubeconfig,
        tracker,
        profile,
        names,
        labels,
        writes_per_namespace,
        binary: PathBuf::from(
            std::env::var_os("BASELINER_BIN").ok_or_else(|| anyhow!("BASELINER_BIN is not set"))?,
        ),
    };
    bench.reset().await?;

    let (floor, convergence, baseline_convergence, mut operator) = bench.convergence().await?;
    let new_namespace = bench.new_namespace_latency(&mut operator).await?;
    let drift_delete = bench.drift(&mut operator, Drift::Delete).await?;
    let drift_edit = bench.drift(&mut operator, Drift::Edit).await?;
    let steady_state = bench.steady_state(&mut operator).await?;
    let inspect = bench.inspect(&plane.kubeconfig, &work_dir).await?;
    let settled = operator.memory()?;
    let memory = report::MemoryFigures {
        peak_rss_bytes: convergence.median_peak_rss_bytes,
        settled_rss_bytes: settled.current,
        long_run_peak_rss_bytes: settled.peak,
    };
    let (restart, operator) = bench.restart(&bench.binary, operator).await?;
    let failover = bench.failover(&bench.binary, operator).await?;
    let baseline = match (&bench.config.baseline, baseline_convergence) {
        (Some(other), Some(convergence)) => {
            say(format!("restart and failover of {}", other.label));
            // What could be measured is written, and this build's figures
            // all the same.
            let mut failed = Vec::new();
            let mut restart = None;
            let mut failover = None;
            match bench.start_operator(&other.binary).await {
                Err(error) => failed.push(format!("starting it: {error:#}")),
                Ok(operator) => match bench.restart(&other.binary, operator).await {
                    Err(error) => failed.push(format!("restart: {error:#}")),
                    Ok((measured, operator)) => {
                        restart = Some(measured);
                        match bench.failover(&other.binary, operator).await {
                            Err(error) => failed.push(format!("failover: {error:#}")),
                            Ok(measured) => failover = Some(measured),
                        }
                    }
                },
            }
            for failure in &failed {
                say(format!("{}: {failure}", other.label));
            }
            Some(report::Baseline {
                label: other.label.clone(),
                convergence,
                restart,
                failover,
                failed,
            })
        }
        _ => None,
    };
    bench.delete_profile().await?;

    let report = Report {
        namespaces: n,
        config: report::RunConfig {
            runs: bench.config.runs,
            samples: bench.config.samples,
            resync_seconds: bench.config.resync_seconds,
            writes_per_namespace: bench.writes_per_namespace,
            profile_yaml: PROFILE_YAML.to_owned(),
            operator_args: format!(
                "--resync-seconds {} --leader-elect=false --http-addr 127.0.0.1:<free port>",
                bench.config.resync_seconds
            ),
        },
        machine: machine(&bench.admin, plane, load_before, started).await?,
        floor,
        convergence,
        new_namespace,
        drift_delete,
        drift_edit,
        steady_state,
        memory,
        restart,
        failover: Some(failover),
        inspect: Some(inspect),
        baseline,
    };
    std::fs::create_dir_all(&bench.config.output)
        .with_context(|| format!("creating {}", bench.config.output.display()))?;
    let json = bench.config.output.join("BENCHMARKS.json");
    let md = bench.config.output.join("BENCHMARKS.md");
    report::write(&json, &md, report)?;
    say(format!(
        "wrote {} and {} in {:.0} s",
        md.display(),
        json.display(),
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

fn render(
    profile: &ProductionProfile,
    name: &str,
    labels: &BTreeMap<String, String>,
) -> baseliner::render::RenderedNamespace {
    let mut labels = labels.clone();
    // The API server adds this label to every namespace; the operator sees it.
    labels.insert(
        baseliner::api::NAMESPACE_NAME_LABEL.to_owned(),
        name.to_owned(),
    );
    let info = NamespaceInfo {
        name: name.to_owned(),
        labels,
    };
    render_namespace(profile, &info, &RenderOptions::default())
}

/// A drift sample not healed within this counts as a timeout.
const DRIFT_TIMEOUT: Duration = Duration::from_secs(10);

enum Drift {
    Delete,
    Edit,
}

impl Bench {
    fn timeout_for(&self, namespaces: usize) -> Duration {
        Duration::from_secs(120 + namespaces as u64 / 10)
    }

    /// No profile, no managed objects, no Pod Security labels.
    async fn reset(&self) -> Result<()> {
        self.delete_profile().await?;
        if !self.tracker.with(tracker::State::is_clean) {
            say("removing what an earlier run left");
            cluster::clean(&self.admin, &self.tracker, &self.names).await?;
        }
        Ok(())
    }

    async fn apply_profile(&self) -> Result<ProductionProfile> {
        let api: Api<ProductionProfile> = Api::all(self.admin.clone());
        api.patch(
            PROFILE_NAME,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&self.profile),
        )
        .await
        .context("applying the benchmark's profile")
    }

    async fn delete_profile(&self) -> Result<()> {
        let api: Api<ProductionProfile> = Api::all(self.admin.clone());
        match api.delete(PROFILE_NAME, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
            Err(e) => return Err(e).context("deleting the benchmark's profile"),
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while api.get_opt(PROFILE_NAME).await?.is_some() {
            ensure!(
                Instant::now() < deadline,
                "the profile was not deleted within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }

    /// The floor's writes for `names`, rendered from the profile as it is
    /// in the cluster (its uid goes into the owner references), exactly as
    /// the operator would send them.
    fn floor_items(&self, profile: &ProductionProfile, names: &[String]) -> Vec<Item> {
        let mut items = Vec::with_capacity(names.len() * self.writes_per_namespace);
        for name in names {
            let rendered = render(profile, name, &self.labels[name]);
            for object in &rendered.objects {
                let Some(kind) = Kind::from_kind(object.kind()) else {
                    continue;
                };
                items.push(Item {
                    kind,
                    namespace: object.namespace().to_owned(),
                    name: object.name().to_owned(),
                    body: object.to_json(),
                });
            }
            items.push(Item {
                kind: Kind::Namespace,
                namespace: name.clone(),
                name: name.clone(),
                body: namespace_labels_body(profile, name, &rendered.namespace_labels),
            });
        }
        items
    }

    /// One floor run against a profile object of its own (no operator
    /// runs): write everything, then wait until the watch has seen it all,
    /// as for the operator; then clean up.
    async fn floor_run(
        &self,
        names: &[String],
        concurrency: usize,
        method: Method,
    ) -> Result<FloorRun> {
        ensure!(
            self.tracker.with(tracker::State::is_clean),
            "not clean before a floor run"
        );
        let profile = self.apply_profile().await?;
        let items = self.floor_items(&profile, names);
        self.tracker.set_target(names.iter().map(String::as_str));
        let cpu_before = cluster::cpu_seconds(std::process::id())?;
        let started = Instant::now();
        let outcome =
            floor::write_all(&self.operator_client, Arc::new(items), concurrency, method).await?;
        let complete = self
            .tracker
            .wait("the floor's objects", self.timeout_for(names.len()), |s| {
                s.complete_at()
            })
            .await?;
        let seconds = outcome
            .elapsed
            .max(complete.saturating_duration_since(started))
            .as_secs_f64();
        let client_cpu_seconds = cluster::cpu_seconds(std::process::id())? - cpu_before;
        self.clean(names).await?;
        Ok(FloorRun {
            seconds,
            responses_seconds: outcome.elapsed.as_secs_f64(),
            client_cpu_seconds,
            requests: outcome.requests,
            retries: outcome.retries,
        })
    }

    /// Removes every managed object and label, then the profile: in that
    /// order, so the garbage collector has no dependents left to chase
    /// (it would still be at it during the next run).
    async fn clean(&self, names: &[String]) -> Result<()> {
        cluster::clean(&self.admin, &self.tracker, names).await?;
        self.delete_profile().await
    }

    /// The floor's concurrency sweep, on at most 1,000 namespaces.
    async fn floor_sweep(&self) -> Result<Vec<FloorSweepPoint>> {
        let sample: Vec<String> = self.names.iter().take(1000).cloned().collect();
        let mut sweep = Vec::new();
        for &concurrency in &self.config.floor_concurrency {
            let run = self
                .floor_run(&sample, concurrency, Method::ServerSideApply)
                .await?;
            say(format!(
                "floor sweep: {concurrency} workers, {} namespaces: {:.2} s (last response at {:.2} s)",
                sample.len(),
                run.seconds,
                run.responses_seconds
            ));
            sweep.push(FloorSweepPoint {
                concurrency,
                namespaces: sample.len(),
                seconds: run.seconds,
                objects_per_second: run.requests as f64 / run.seconds,
            });
        }
        Ok(sweep)
    }

    async fn start_operator(&self, binary: &Path) -> Result<RunningOperator> {
        let mut operator = RunningOperator::start(
            binary,
            &self.operator_kubeconfig,
            self.config.resync_seconds,
            None,
        )?;
        operator.wait_ready(Duration::from_secs(120)).await?;
        Ok(operator)
    }

    /// The floor and the operator, run for run in turn, so both meet the
    /// same conditions on a shared machine. The operator is a fresh process
    /// each run, started with no profile; the profile is applied and the
    /// time taken until every namespace complies. With a baseline build,
    /// each run measures it too, the two taking turns at going first. The
    /// last run's operator (this build's) keeps running for the figures
    /// after.
    async fn convergence(
        &self,
    ) -> Result<(
        report::Floor,
        report::Convergence,
        Option<report::Convergence>,
        RunningOperator,
    )> {
        let runs = self.config.runs;
        let sweep = self.floor_sweep().await?;
        let concurrency = sweep
            .iter()
            .min_by(|a, b| a.seconds.total_cmp(&b.seconds))
            .map(|p| p.concurrency)
            .unwrap_or(32);
        let mut floor_runs = Vec::new();
        let mut create_runs = Vec::new();
        let mut results = Vec::new();
        let mut baseline_results = Vec::new();
        let mut kept = None;
        for r in 0..runs {
            for method in [Method::ServerSideApply, Method::Create] {
                let run = self.floor_run(&self.names, concurrency, method).await?;
                say(format!(
                    "floor run {}/{runs} ({}, {concurrency} workers): {:.2} s",
                    r + 1,
                    method.as_str(),
                    run.seconds
                ));
                match method {
                    Method::ServerSideApply => floor_runs.push(run),
                    Method::Create => create_runs.push(run),
                }
            }
            let floor_seconds = floor_runs.last().map_or(f64::NAN, |f| f.seconds);
            // The two builds take turns at going first (a later run meets a
            // plane with more history); in the last run this build goes
            // second, so its operator keeps running for the figures after.
            let baseline_first = (runs - 1 - r) % 2 == 0;
            let mut builds = vec![(&self.binary, "this build", false)];
            if let Some(other) = &self.config.baseline {
                let at = if baseline_first { 0 } else { 1 };
                builds.insert(at, (&other.binary, other.label.as_str(), true));
            }
            let last = builds.len() - 1;
            for (i, (binary, label, is_baseline)) in builds.into_iter().enumerate() {
                let (run, operator) = self
                    .convergence_run(binary, label, r, floor_seconds)
                    .await?;
                if is_baseline {
                    baseline_results.push(run);
                } else {
                    results.push(run);
                }
                if r + 1 == runs && i == last {
                    kept = Some(operator);
                } else {
                    operator.stop()?;
                    self.clean(&self.names).await?;
                }
            }
        }
        let seconds =
            |runs: &[FloorRun]| median(&runs.iter().map(|r| r.seconds).collect::<Vec<_>>());
        let floor_seconds = seconds(&floor_runs);
        let objects = self.names.len() * self.writes_per_namespace;
        let floor = report::Floor {
            method: format!(
                "{} (what the operator uses; POST for comparison)",
                Method::ServerSideApply.as_str()
            ),
            sweep,
            concurrency,
            median_seconds: floor_seconds,
            objects_per_second: objects as f64 / floor_seconds,
            create_median_seconds: seconds(&create_runs),
            runs: floor_runs,
            create_runs,
        };
        let convergence = report::Convergence::of(results, floor_seconds);
        let baseline = (!baseline_results.is_empty())
            .then(|| report::Convergence::of(baseline_results, floor_seconds));
        let operator = kept.ok_or_else(|| anyhow!("no convergence run"))?;
        Ok((floor, convergence, baseline, operator))
    }

    /// One convergence of `binary`: a fresh operator, the profile applied,
    /// timed until every namespace complies. Gives back the operator, running.
    async fn convergence_run(
        &self,
        binary: &Path,
        label: &str,
        r: usize,
        floor_seconds: f64,
    ) -> Result<(ConvergenceRun, RunningOperator)> {
        let runs = self.config.runs;
        ensure!(
            self.tracker.with(tracker::State::is_clean),
            "not clean before convergence run {} ({label})",
            r + 1
        );
        self.tracker
            .set_target(self.names.iter().map(String::as_str));
        let operator = self.start_operator(binary).await?;
        // Its first pass over the (unselected) namespaces writes nothing;
        // let it finish so only the convergence is measured.
        let (before, _) = settled_requests(
            &self.admin,
            Settle::All,
            Duration::from_secs(2),
            Duration::from_secs(120),
        )
        .await?;
        let startup_cpu = operator.cpu_seconds()?;
        let totals_before = cluster::request_totals(&self.admin).await?;
        let bench_cpu = cluster::cpu_seconds(std::process::id())?;
        let applied = Instant::now();
        self.apply_profile().await?;
        let complete = self
            .tracker
            .wait(
                "every namespace to comply",
                self.timeout_for(self.names.len()),
                |s| s.complete_at(),
            )
            .await
            .with_context(|| format!("operator log: {}", operator.process.log.display()))?;
        let cpu = operator.cpu_seconds()? - startup_cpu;
        let bench_cpu = cluster::cpu_seconds(std::process::id())? - bench_cpu;
        let seconds = complete.saturating_duration_since(applied).as_secs_f64();
        tracker::verify_by_listing(&self.admin, &self.tracker, &self.names).await?;
        let (after, _) = settled_requests(
            &self.admin,
            Settle::Writes,
            Duration::from_secs(3),
            Duration::from_secs(300),
        )
        .await?;
        let requests = after - before;
        let by_resource =
            cluster::request_diff(&totals_before, &cluster::request_totals(&self.admin).await?);
        let memory = operator.memory()?;
        say(format!(
            "convergence run {}/{runs} ({label}): {seconds:.2} s ({:.2} × this run's floor), CPU {cpu:.2} s, peak RSS {:.1} MiB, {} writes, {} reads; the API server served (all clients): {}",
            r + 1,
            seconds / floor_seconds,
            memory.peak as f64 / 1048576.0,
            requests.writes,
            requests.reads,
            summary(&by_resource)
        ));
        let run = ConvergenceRun {
            seconds,
            cpu_seconds: cpu,
            startup_cpu_seconds: startup_cpu,
            bench_cpu_seconds: bench_cpu,
            peak_rss_bytes: memory.peak,
            writes: requests.writes,
            reads: requests.reads,
            rejected: requests.rejected,
            api_requests: by_resource,
        };
        Ok((run, operator))
    }

    /// Creates namespaces one at a time; time from the create request to
    /// the last of its objects and labels arriving on the watch.
    async fn new_namespace_latency(
        &self,
        operator: &mut RunningOperator,
    ) -> Result<report::Latency> {
        let profile = self.profile.clone();
        let mut runs = Vec::new();
        let api: Api<Namespace> = Api::all(self.admin.clone());
        for r in 0..self.config.runs {
            let batch = format!("new-{r}");
            let mut samples = Vec::new();
            let mut timeouts = 0;
            let mut created = Vec::new();
            for i in 0..self.config.samples {
                ensure!(
                    operator.process.is_running(),
                    "the operator exited: {}",
                    operator.process.log.display()
                );
                let name = format!("bench-new-{r}-{i:04}");
                let mut labels = cluster::namespace_labels(i);
                labels.insert(BATCH_LABEL.to_owned(), batch.clone());
                self.tracker.set_desired(
                    &name,
                    tracker::desired_from(&render(&profile, &name, &labels)),
                );
                let ns = Namespace {
                    metadata: kube::api::ObjectMeta {
                        name: Some(name.clone()),
                        labels: Some(labels),
                        ..Default::default()
                    },
                    ..Default::default()
                };
                let sent = Instant::now();
                api.create(&PostParams::default(), &ns)
                    .await
                    .with_context(|| format!("creating namespace {name}"))?;
                created.push(name.clone());
                match self
                    .tracker
                    .wait(
                        &format!("namespace {name} to comply"),
                        Duration::from_secs(10),
                        |s| s.namespace_compliant_at(&name),
                    )
                    .await
                {
                    Ok(at) => samples.push(at.saturating_duration_since(sent)),
                    Err(error) => {
                        say(error);
                        timeouts += 1;
                        ensure!(timeouts <= 10, "too many new namespaces never complied");
                    }
                }
            }
            let run = report::latency_run(&samples, timeouts);
            say(format!(
                "new-namespace run {}/{}: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
                r + 1,
                self.config.runs,
                run.p50_ms,
                run.p99_ms,
                run.max_ms
            ));
            runs.push(run);
            // Back to N managed namespaces before the next run.
            for name in &created {
                let _ = api.delete(name, &DeleteParams::background()).await;
                self.tracker.forget_desired(name);
            }
            wait_gone(
                &api,
                &format!("{BATCH_LABEL}={batch}"),
                Duration::from_secs(300),
            )
            .await?;
        }
        Ok(report::latency(
            &format!(
                "{} namespaces created one at a time (each after the previous one complied), \
                 with {} already managed: from sending the create to the last of its {} objects \
                 and labels matching the profile on the benchmark's watch.",
                self.config.samples,
                self.names.len(),
                self.writes_per_namespace
            ),
            runs,
        ))
    }

    /// Deletes (or edits) managed objects one at a time, spread over the
    /// namespaces and kinds; time until the object is back as desired.
    async fn drift(&self, operator: &mut RunningOperator, drift: Drift) -> Result<report::Latency> {
        let mut runs = Vec::new();
        let n = self.names.len();
        let per_namespace = self.writes_per_namespace - 1;
        for r in 0..self.config.runs {
            let mut samples = Vec::new();
            let mut timeouts = 0;
            for i in 0..self.config.samples {
                ensure!(
                    operator.process.is_running(),
                    "the operator exited: {}",
                    operator.process.log.display()
                );
                let namespace = &self.names[(i * 7919 + r * 104_729) % n];
                let key = self
                    .tracker
                    .with(|s| s.desired_keys(namespace))
                    .get((i + r) % per_namespace)
                    .cloned()
                    .ok_or_else(|| anyhow!("no desired objects for {namespace}"))?;
                let before = self
                    .tracker
                    .with(|s| s.observed(&key).cloned())
                    .filter(|o| o.compliant)
                    .ok_or_else(|| anyhow!("{key} is not in place before the drift run"))?;
                let api: Api<DynamicObject> = Api::namespaced_with(
                    self.admin.clone(),
                    &key.namespace,
                    &key.kind.api_resource(),
                );
                let sent = Instant::now();
                let restored = match drift {
                    Drift::Delete => match self.delete_and_wait_restored(&key, DRIFT_TIMEOUT).await
                    {
                        Ok(took) => Ok(sent + took),
                        Err(error) => Err(error),
                    },
                    Drift::Edit => {
                        let patch = edit_patch(&key, &self.tracker);
                        let edited = api
                            .patch(&key.name, &PatchParams::default(), &Patch::Merge(&patch))
                            .await
                            .with_context(|| format!("editing {key}"))?;
                        let edited_rv: u64 = edited
                            .resource_version()
                            .and_then(|v| v.parse().ok())
                            .unwrap_or_default();
                        ensure!(
                            edited_rv > before.resource_version,
                            "editing {key} changed nothing (the edit must be drift)"
                        );
                        // resourceVersions are etcd revisions here: a later
                        // write has a larger one.
                        self.tracker
                            .wait(&format!("{key} to be restored"), DRIFT_TIMEOUT, |s| {
                                s.observed(&key)
                                    .filter(|o| o.compliant && o.resource_version > edited_rv)
                                    .map(|o| o.at)
                            })
                            .await
                    }
                };
                match restored {
                    Ok(at) => samples.push(at.saturating_duration_since(sent)),
                    Err(error) => {
                        say(error);
                        timeouts += 1;
                        ensure!(timeouts <= 10, "too many drifted objects never came back");
                        // Put it right by hand so the next sample starts clean.
                        self.tracker
                            .wait(
                                &format!("{key} to come back"),
                                Duration::from_secs(60),
                                |s| s.observed(&key).filter(|o| o.compliant).map(|_| ()),
                            )
                            .await?;
                    }
                }
            }
            let run = report::latency_run(&samples, timeouts);
            say(format!(
                "drift ({}) run {}/{}: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
                match drift {
                    Drift::Delete => "delete",
                    Drift::Edit => "edit",
                },
                r + 1,
                self.config.runs,
                run.p50_ms,
                run.p99_ms,
                run.max_ms
            ));
            runs.push(run);
        }
        let what = match drift {
            Drift::Delete => format!(
                "{} managed objects deleted one at a time (spread over namespaces and the {} \
                 kinds), with {} namespaces managed: from sending the delete to the recreated \
                 object (new uid, desired content) arriving on the benchmark's watch.",
                self.config.samples,
                Kind::OBJECTS.len(),
                self.names.len()
            ),
            Drift::Edit => format!(
                "{} managed objects edited one at a time with a JSON merge patch that changes a \
                 field the profile sets (NetworkPolicy policyTypes, LimitRange limits, \
                 ResourceQuota hard.pods, RoleBinding subjects), with {} namespaces managed: \
                 from sending the edit to a later version with the desired content arriving on \
                 the benchmark's watch.",
                self.config.samples,
                self.names.len()
            ),
        };
        Ok(report::latency(&what, runs))
    }

    /// Quiet windows of two resync intervals: requests the API server
    /// dispatched for the operator, and the reconciles it counted.
    async fn steady_state(&self, operator: &mut RunningOperator) -> Result<report::SteadyState> {
        self.tracker
            .wait("every namespace to comply", Duration::from_secs(60), |s| {
                s.complete_at()
            })
            .await?;
        // Quiet for longer than the status writer's longest delay (one
        // resync), so nothing from the drift runs is still on its way.
        let quiet = Duration::from_secs(self.config.resync_seconds + 2);
        settled_requests(&self.admin, Settle::All, quiet, Duration::from_secs(600)).await?;
        let window = Duration::from_secs(2 * self.config.resync_seconds + 5);
        let mut windows = Vec::new();
        for w in 0..self.config.runs {
            let before = operator_requests(&self.admin).await?;
            let reconciles = operator.metric("baseliner_reconciles_total").await?;
            let cpu = operator.cpu_seconds()?;
            let totals_before = cluster::request_totals(&self.admin).await?;
            let started = Instant::now();
            tokio::time::sleep(window).await;
            let requests = operator_requests(&self.admin).await? - before;
            let by_resource =
                cluster::request_diff(&totals_before, &cluster::request_totals(&self.admin).await?);
            let reconciles = operator.metric("baseliner_reconciles_total").await? - reconciles;
            let result = SteadyWindow {
                seconds: started.elapsed().as_secs_f64(),
                writes: requests.writes,
                reads: requests.reads,
                reconciles: reconciles as u64,
                cpu_seconds: operator.cpu_seconds()? - cpu,
                api_requests: by_resource,
            };
            say(format!(
                "steady-state window {}/{}: {} writes, {} reads, {} reconciles in {:.0} s; the API server served (all clients): {}",
                w + 1,
                self.config.runs,
                result.writes,
                result.reads,
                result.reconciles,
                result.seconds,
                summary(&result.api_requests)
            ));
            windows.push(result);
        }
        Ok(report::SteadyState {
            median_writes: median_u64(&windows.iter().map(|w| w.writes).collect::<Vec<_>>()),
            median_reads: median_u64(&windows.iter().map(|w| w.reads).collect::<Vec<_>>()),
            windows,
        })
    }

    /// `baseliner plan` (of a quota raised in every namespace) and
    /// `baseliner report`, each timed and its requests counted, as the
    /// reader identity.
    async fn inspect(&self, admin_kubeconfig: &Path, dir: &Path) -> Result<report::Inspect> {
        let kubeconfig = cluster::setup_cli_identity(&self.admin, admin_kubeconfig, dir).await?;
        let binary = &self.binary;
        let changed = PROFILE_YAML.replace("pods: \"20\"", "pods: \"25\"");
        ensure!(
            changed != PROFILE_YAML,
            "the planned change changes nothing"
        );
        let file = dir.join("changed-profile.yaml");
        std::fs::write(&file, &changed)?;
        let mut runs = Vec::new();
        let mut planned = (0, 0);
        for r in 0..self.config.runs {
            let timed = |args: Vec<String>| {
                let binary = binary.clone();
                let kubeconfig = kubeconfig.clone();
                let admin = self.admin.clone();
                let out = dir.join("cli-output.json");
                async move {
                    let before = cluster::cli_requests(&admin).await?;
                    let run = tokio::task::spawn_blocking(move || {
                        run_measured(&binary, &args, &kubeconfig, &out)
                    })
                    .await??;
                    let requests = cluster::cli_requests(&admin).await? - before;
                    anyhow::Ok((run, requests))
                }
            };
            let plan_args = vec![
                "plan".into(),
                "-f".into(),
                file.display().to_string(),
                "-o".into(),
                "json".into(),
            ];
            let (plan, plan_requests) = timed(plan_args).await?;
            ensure!(
                plan.exit == Some(2),
                "baseliner plan exited {:?}: {}",
                plan.exit,
                plan.stderr
            );
            let summary: Value = serde_json::from_slice::<Value>(&plan.stdout)?["summary"].clone();
            planned = (
                summary["namespaces"].as_u64().unwrap_or_default(),
                summary["updates"].as_u64().unwrap_or_default(),
            );
            ensure!(
                planned.0 as usize == self.names.len(),
                "the plan listed {} namespaces, not {}",
                planned.0,
                self.names.len()
            );
            let (report, report_requests) =
                timed(vec!["report".into(), "-o".into(), "json".into()]).await?;
            ensure!(
                report.exit == Some(0),
                "baseliner report failed: {}",
                report.stderr
            );
            let run = report::InspectRun {
                plan_seconds: plan.seconds,
                plan_requests,
                plan_peak_rss_bytes: plan.peak_rss_bytes,
                report_seconds: report.seconds,
                report_requests,
                report_peak_rss_bytes: report.peak_rss_bytes,
            };
            say(format!(
                "plan/report {}/{}: plan {:.2} s, {} requests, peak RSS {} MiB; report {:.2} s, {} requests, peak RSS {} MiB",
                r + 1,
                self.config.runs,
                run.plan_seconds,
                run.plan_requests,
                run.plan_peak_rss_bytes >> 20,
                run.report_seconds,
                run.report_requests,
                run.report_peak_rss_bytes >> 20
            ));
            runs.push(run);
        }
        Ok(report::Inspect {
            change: "the profile's quota raised (`pods: \"20\"` → `\"25\"`)".to_owned(),
            planned_namespaces: planned.0,
            planned_updates: planned.1,
            median_plan_seconds: median(&runs.iter().map(|r| r.plan_seconds).collect::<Vec<_>>()),
            median_plan_requests: median_u64(
                &runs.iter().map(|r| r.plan_requests).collect::<Vec<_>>(),
            ),
            median_report_seconds: median(
                &runs.iter().map(|r| r.report_seconds).collect::<Vec<_>>(),
            ),
            median_report_requests: median_u64(
                &runs.iter().map(|r| r.report_requests).collect::<Vec<_>>(),
            ),
            median_plan_peak_rss_bytes: median_u64(
                &runs
                    .iter()
                    .map(|r| r.plan_peak_rss_bytes)
                    .collect::<Vec<_>>(),
            ),
            median_report_peak_rss_bytes: median_u64(
                &runs
                    .iter()
                    .map(|r| r.report_peak_rss_bytes)
                    .collect::<Vec<_>>(),
            ),
            runs,
        })
    }

    async fn restart(
        &self,
        binary: &Path,
        mut operator: RunningOperator,
    ) -> Result<(report::Restart, RunningOperator)> {
        let mut runs = Vec::new();
        for r in 0..self.config.runs {
            let (before, _) = self.settle_all().await?;
            let totals_before = cluster::request_totals(&self.admin).await?;
            operator.stop()?;
            let mut next = RunningOperator::start(
                binary,
                &self.operator_kubeconfig,
                self.config.resync_seconds,
                None,
            )?;
            let stages = next.wait_ready_stages(Duration::from_secs(300)).await?;
            let since_start =
                |at: Instant| at.saturating_duration_since(next.started).as_secs_f64();
            let (listed_seconds, ready_seconds) =
                (since_start(stages.listed), since_start(stages.ready));
            let (after, last_moved) = settled_requests(
                &self.admin,
                Settle::All,
                Duration::from_secs(3),
                Duration::from_secs(600),
            )
            .await?;
            let requests: Requests = after - before;
            let by_resource =
                cluster::request_diff(&totals_before, &cluster::request_totals(&self.admin).await?);
            let memory = next.memory()?;
            let result = RestartRun {
                listed_seconds,
                ready_seconds,
                caught_up_seconds: last_moved
                    .saturating_duration_since(next.started)
                    .as_secs_f64()
                    .max(ready_seconds),
                writes: requests.writes,
                reads: requests.reads,
                object_gets: cluster::requests_of(&by_resource, &["GET"], &MANAGED_RESOURCES),
                object_lists: cluster::requests_of(&by_resource, &["LIST"], &MANAGED_RESOURCES),
                peak_rss_bytes: memory.peak,
                cpu_seconds: next.cpu_seconds()?,
                api_requests: by_resource,
            };
            say(format!(
                "restart {}/{}: caches listed in {:.2} s, ready (verified) in {:.2} s, caught up in {:.2} s, {} writes, {} reads ({} GETs, {} LIST pages of managed objects); the API server served (all clients): {}",
                r + 1,
                self.config.runs,
                result.listed_seconds,
                result.ready_seconds,
                result.caught_up_seconds,
                result.writes,
                result.reads,
                result.object_gets,
                result.object_lists,
                summary(&result.api_requests)
            ));
            ensure!(
                self.tracker.with(|s| s.complete_at().is_some()),
                "the namespaces no longer comply after the restart"
            );
            runs.push(result);
            operator = next;
        }
        let restart = report::Restart {
            median_ready_seconds: median(&runs.iter().map(|r| r.ready_seconds).collect::<Vec<_>>()),
            median_caught_up_seconds: median(
                &runs.iter().map(|r| r.caught_up_seconds).collect::<Vec<_>>(),
            ),
            median_writes: median_u64(&runs.iter().map(|r| r.writes).collect::<Vec<_>>()),
            median_reads: median_u64(&runs.iter().map(|r| r.reads).collect::<Vec<_>>()),
            runs,
        };
        Ok((restart, operator))
    }

    /// Two elected replicas over the converged namespaces; the leader is
    /// stopped (SIGTERM, then SIGKILL, each run) and the standby takes
    /// over. What the takeover cost, and how soon a managed object deleted
    /// 1 s after it is back.
    async fn failover(&self, binary: &Path, operator: RunningOperator) -> Result<report::Failover> {
        operator.stop()?;
        let resync = self.config.resync_seconds;
        let mut leader = RunningOperator::start_elected(binary, &self.operator_kubeconfig, resync)?;
        leader.wait_ready(Duration::from_secs(300)).await?;
        wait_for("the first replica to lead", Duration::from_secs(60), || {
            leader.is_leader()
        })
        .await?;
        let mut failover = report::Failover::default();
        for r in 0..self.config.runs {
            for (signal, name) in [(libc::SIGTERM, "SIGTERM"), (libc::SIGKILL, "SIGKILL")] {
                // A standby that is ready has verified every object.
                let mut standby =
                    RunningOperator::start_elected(binary, &self.operator_kubeconfig, resync)?;
                standby.wait_ready(Duration::from_secs(300)).await?;
                let (before, _) = self.settle_all().await?;
                let totals_before = cluster::request_totals(&self.admin).await?;
                let sent = Instant::now();
                leader.signal(signal);
                wait_for("the standby to take over", Duration::from_secs(60), || {
                    standby.is_leader()
                })
                .await?;
                let takeover_seconds = sent.elapsed().as_secs_f64();
                let _ = leader.process.terminate(Duration::from_secs(20));
                tokio::time::sleep(Duration::from_secs(1)).await;
                let namespace = &self.names[(r * 7919 + signal as usize) % self.names.len()];
                let key = self
                    .tracker
                    .with(|s| s.desired_keys(namespace))
                    .first()
                    .cloned()
                    .ok_or_else(|| anyhow!("no desired objects for {namespace}"))?;
                // A cold leader (one that read nothing before it led) may
                // take a minute: that is what is measured.
                let restored = self
                    .delete_and_wait_restored(&key, Duration::from_secs(180))
                    .await?;
                let (after, _) = self.settle_all().await?;
                let requests = after - before;
                let by_resource = cluster::request_diff(
                    &totals_before,
                    &cluster::request_totals(&self.admin).await?,
                );
                let mut written = MANAGED_RESOURCES.to_vec();
                written.push("namespaces");
                let run = report::FailoverRun {
                    signal: name.to_owned(),
                    takeover_seconds,
                    reads: requests.reads,
                    writes: requests.writes,
                    object_gets: cluster::requests_of(&by_resource, &["GET"], &MANAGED_RESOURCES),
                    object_lists: cluster::requests_of(&by_resource, &["LIST"], &MANAGED_RESOURCES),
                    object_writes: cluster::requests_of(
                        &by_resource,
                        &["APPLY", "PATCH", "POST", "PUT"],
                        &written,
                    ),
                    restored_ms: restored.as_secs_f64() * 1000.0,
                    api_requests: by_resource,
                };
                say(format!(
                    "failover {}/{} ({name}): took over in {:.2} s; {} reads ({} GETs, {} LIST pages of managed objects), {} writes ({} of managed objects); {key} deleted 1 s later was back in {:.0} ms; the API server served (all clients): {}",
                    r + 1,
                    self.config.runs,
                    run.takeover_seconds,
                    run.reads,
                    run.object_gets,
                    run.object_lists,
                    run.writes,
                    run.object_writes,
                    run.restored_ms,
                    summary(&run.api_requests)
                ));
                ensure!(
                    self.tracker.with(|s| s.complete_at().is_some()),
                    "the namespaces no longer comply after the failover"
                );
                failover.runs.push(run);
                leader = standby;
            }
        }
        leader.stop()?;
        Ok(failover)
    }

    /// Waits until the operator's reads and writes stop moving for 3 s
    /// (5 minutes at most): the requests so far, and when they last moved.
    async fn settle_all(&self) -> Result<(Requests, Instant)> {
        settled_requests(
            &self.admin,
            Settle::All,
            Duration::from_secs(3),
            Duration::from_secs(300),
        )
        .await
    }

    /// Deletes `key` as a person would and waits until the operator has
    /// recreated it (a new uid, the desired content) on the benchmark's
    /// watch; gives back how long that took.
    async fn delete_and_wait_restored(&self, key: &Key, timeout: Duration) -> Result<Duration> {
        let before = self
            .tracker
            .with(|s| s.observed(key).cloned())
            .filter(|o| o.compliant)
            .ok_or_else(|| anyhow!("{key} is not in place before it is deleted"))?;
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.admin.clone(), &key.namespace, &key.kind.api_resource());
        let sent = Instant::now();
        api.delete(&key.name, &DeleteParams::default())
            .await
            .with_context(|| format!("deleting {key}"))?;
        let at = self
            .tracker
            .wait(&format!("{key} to be recreated"), timeout, |s| {
                s.observed(key)
                    .filter(|o| o.compliant && o.uid != before.uid)
                    .map(|o| o.at)
            })
            .await?;
        Ok(at.saturating_duration_since(sent))
    }
}

/// Polls `condition` every 10 ms until it holds.
async fn wait_for<F, Fut>(what: &str, timeout: Duration, mut condition: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !condition().await {
        ensure!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// One run of the CLI: how long, its peak RSS, its exit code and output.
struct MeasuredRun {
    seconds: f64,
    peak_rss_bytes: u64,
    exit: Option<i32>,
    stdout: Vec<u8>,
    stderr: String,
}

/// Runs `binary ARGS` as `kubeconfig`'s identity, stdout into `out`. The
/// peak RSS is the process's VmHWM (a high-water mark), read every 5 ms
/// until it exits, so only growth in its last 5 ms could be missed.
/// (`wait4`'s `ru_maxrss` cannot be used: a child spawned with vfork
/// inherits the parent's high-water mark at exec.)
fn run_measured(
    binary: &Path,
    args: &[String],
    kubeconfig: &Path,
    out: &Path,
) -> Result<MeasuredRun> {
    let err = out.with_extension("stderr");
    let started = Instant::now();
    let mut child = Command::new(binary)
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .stdout(std::fs::File::create(out)?)
        .stderr(std::fs::File::create(&err)?)
        .spawn()
        .with_context(|| format!("running {}", binary.display()))?;
    let mut peak_rss_bytes = 0;
    let status = loop {
        if let Ok(memory) = cluster::memory(child.id()) {
            peak_rss_bytes = peak_rss_bytes.max(memory.peak);
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Ok(MeasuredRun {
        seconds: started.elapsed().as_secs_f64(),
        peak_rss_bytes,
        exit: status.code(),
        stdout: std::fs::read(out)?,
        stderr: std::fs::read_to_string(&err)?,
    })
}

/// The Namespace patch the operator sends for Pod Security labels.
fn namespace_labels_body(
    profile: &ProductionProfile,
    name: &str,
    labels: &BTreeMap<String, String>,
) -> Value {
    let profile_name = profile.name_any();
    NamespaceLabels {
        labels,
        profile: &profile_name,
        deletion_policy: profile.spec.deletion_policy,
    }
    .apply_patch(name)
}

/// A merge patch that changes a field the profile sets, so the object
/// drifts.
fn edit_patch(key: &Key, tracker: &Tracker) -> Value {
    match key.kind {
        Kind::Object(ManagedKind::NetworkPolicy) => {
            let types = tracker.with(|s| s.desired_field(key, &["spec", "policyTypes"]));
            let has_egress = types
                .as_ref()
                .and_then(Value::as_array)
                .is_some_and(|t| t.iter().any(|v| v == "Egress"));
            let drifted = if has_egress {
                json!(["Ingress"])
            } else {
                json!(["Egress"])
            };
            json!({"spec": {"policyTypes": drifted}})
        }
        Kind::Object(ManagedKind::LimitRange) => {
            json!({"spec": {"limits": [{"type": "Container", "default": {"cpu": "3"}}]}})
        }
        Kind::Object(ManagedKind::ResourceQuota) => json!({"spec": {"hard": {"pods": "999"}}}),
        Kind::Object(ManagedKind::RoleBinding) => json!({"subjects": [{
            "kind": "Group",
            "name": "bench-drifted",
            "apiGroup": "rbac.authorization.k8s.io",
        }]}),
        Kind::Object(ManagedKind::Schedule) | Kind::Namespace => json!({}),
    }
}

/// Waits until no namespace matches `selector`.
async fn wait_gone(api: &Api<Namespace>, selector: &str, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = api
            .list_metadata(&ListParams::default().labels(selector))
            .await?
            .items
            .len();
        if left == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{left} namespaces ({selector}) still there after {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The largest entries of a request count difference, for the log.
fn summary(requests: &[(String, u64)]) -> String {
    requests
        .iter()
        .take(20)
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn command_output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .current_dir(workspace_root())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

async fn machine(
    client: &Client,
    plane: &baseliner_e2e::Plane,
    load_before: String,
    started: Instant,
) -> Result<report::Machine> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_bytes = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap_or_default()
        * 1024;
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_default();
    let mut commit = command_output("git", &["rev-parse", "--short", "HEAD"]);
    let dirty = command_output(
        "git",
        &[
            "status",
            "--porcelain",
            "--",
            ".",
            ":!BENCHMARKS.md",
            ":!BENCHMARKS.json",
        ],
    );
    if !dirty.is_empty() {
        commit.push_str("-dirty");
    }
    let etcd_binary = plane
        .kubeconfig
        .parent()
        .map(|dir| dir.join("bin").join("etcd"))
        .filter(|p| p.exists());
    let etcd = etcd_binary
        .and_then(|b| {
            let out = command_output(&b.to_string_lossy(), &["--version"]);
            out.lines()
                .find_map(|l| l.strip_prefix("etcd Version:"))
                .map(|v| format!("v{}", v.trim()))
        })
        .unwrap_or_else(|| format!("{} (pinned)", baseliner_e2e::ETCD_VERSION));
    Ok(report::Machine {
        date: command_output("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]),
        commit,
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model,
        memory_bytes,
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_owned(),
        kubernetes: client.apiserver_version().await?.git_version,
        etcd,
        rustc: command_output("rustc", &["--version"]),
        load_before,
        load_after: load_average(),
        bench_seconds: started.elapsed().as_secs_f64(),
    })
}
