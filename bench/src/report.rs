//! The figures, as JSON (`BENCHMARKS.json`, one entry per namespace count,
//! so runs at 1,000 and 10,000 sit side by side) and as `BENCHMARKS.md`,
//! generated from all entries.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

/// One `make bench` run at one namespace count.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    pub namespaces: usize,
    pub config: RunConfig,
    pub machine: Machine,
    pub floor: Floor,
    pub convergence: Convergence,
    pub new_namespace: Latency,
    pub drift_delete: Latency,
    pub drift_edit: Latency,
    pub steady_state: SteadyState,
    pub memory: MemoryFigures,
    pub restart: Restart,
    /// Two elected replicas, the leader stopped (absent in entries
    /// measured before it was).
    #[serde(default)]
    pub failover: Option<Failover>,
    /// `baseliner plan` and `report` over every namespace (absent in
    /// entries measured before they existed).
    #[serde(default)]
    pub inspect: Option<Inspect>,
    /// Another build's convergence, restart and failover, measured in the
    /// same run (`BENCH_BASELINE`; absent when none was asked for).
    #[serde(default)]
    pub baseline: Option<Baseline>,
}

/// The figures of another build of the operator, measured beside these.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Baseline {
    /// The revision it was built from.
    pub label: String,
    pub convergence: Convergence,
    pub restart: Option<Restart>,
    pub failover: Option<Failover>,
    /// What could not be measured, and why.
    #[serde(default)]
    pub failed: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunConfig {
    /// Runs per figure (medians are over these).
    pub runs: usize,
    /// Samples per latency run.
    pub samples: usize,
    pub resync_seconds: u64,
    /// Objects the profile yields per namespace, plus the namespace's labels.
    pub writes_per_namespace: usize,
    pub profile_yaml: String,
    pub operator_args: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Machine {
    pub date: String,
    pub commit: String,
    pub cores: usize,
    pub cpu_model: String,
    pub memory_bytes: u64,
    pub kernel: String,
    pub kubernetes: String,
    pub etcd: String,
    pub rustc: String,
    /// /proc/loadavg (1, 5, 15 minutes) when the run started and ended: the
    /// machine is shared, so this says how quiet it was.
    pub load_before: String,
    pub load_after: String,
    pub bench_seconds: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FloorSweepPoint {
    pub concurrency: usize,
    pub namespaces: usize,
    pub seconds: f64,
    pub objects_per_second: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FloorRun {
    /// Until the watch had seen every object (as for the operator).
    pub seconds: f64,
    /// Until the last response.
    pub responses_seconds: f64,
    /// CPU of the benchmark process meanwhile: the client's requests and
    /// the benchmark's own watches.
    #[serde(default)]
    pub client_cpu_seconds: f64,
    pub requests: usize,
    pub retries: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Floor {
    pub method: String,
    pub sweep: Vec<FloorSweepPoint>,
    pub concurrency: usize,
    pub runs: Vec<FloorRun>,
    pub median_seconds: f64,
    pub objects_per_second: f64,
    /// The same objects created with POST instead, at the same concurrency.
    pub create_runs: Vec<FloorRun>,
    pub create_median_seconds: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ConvergenceRun {
    pub seconds: f64,
    /// Operator CPU (user + system) from the profile's apply to convergence.
    pub cpu_seconds: f64,
    /// Operator CPU from its start until the profile was applied.
    pub startup_cpu_seconds: f64,
    /// CPU of the benchmark process meanwhile (its watches), to set
    /// against the floor's client CPU.
    #[serde(default)]
    pub bench_cpu_seconds: f64,
    pub peak_rss_bytes: u64,
    pub writes: u64,
    pub reads: u64,
    pub rejected: u64,
    /// Every request the API server served during the run (all clients,
    /// so kube-controller-manager's too): `VERB resource code` → count.
    #[serde(default)]
    pub api_requests: Vec<(String, u64)>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Convergence {
    pub runs: Vec<ConvergenceRun>,
    pub median_seconds: f64,
    pub ratio_to_floor: f64,
    pub median_cpu_seconds: f64,
    pub median_peak_rss_bytes: u64,
    pub median_writes: u64,
    pub median_reads: u64,
}

impl Convergence {
    /// The medians of `runs`, beside the floor's median.
    pub fn of(runs: Vec<ConvergenceRun>, floor_seconds: f64) -> Self {
        let median_seconds = median(&runs.iter().map(|r| r.seconds).collect::<Vec<_>>());
        Convergence {
            median_seconds,
            ratio_to_floor: median_seconds / floor_seconds,
            median_cpu_seconds: median(&runs.iter().map(|r| r.cpu_seconds).collect::<Vec<_>>()),
            median_peak_rss_bytes: median_u64(
                &runs.iter().map(|r| r.peak_rss_bytes).collect::<Vec<_>>(),
            ),
            median_writes: median_u64(&runs.iter().map(|r| r.writes).collect::<Vec<_>>()),
            median_reads: median_u64(&runs.iter().map(|r| r.reads).collect::<Vec<_>>()),
            runs,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LatencyRun {
    pub samples: usize,
    pub timeouts: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Latency {
    pub what: String,
    pub runs: Vec<LatencyRun>,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SteadyWindow {
    pub seconds: f64,
    pub writes: u64,
    pub reads: u64,
    /// Reconciles the operator counted in the window: at least two per
    /// namespace shows the window spanned two resyncs.
    pub reconciles: u64,
    pub cpu_seconds: f64,
    /// Every request the API server served meanwhile (all clients).
    #[serde(default)]
    pub api_requests: Vec<(String, u64)>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SteadyState {
    pub windows: Vec<SteadyWindow>,
    pub median_writes: u64,
    pub median_reads: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MemoryFigures {
    /// Median over the convergence runs of the operator's VmHWM.
    pub peak_rss_bytes: u64,
    /// VmRSS of the long-running operator after the steady-state windows.
    pub settled_rss_bytes: u64,
    /// Its VmHWM then (convergence, latency and drift runs behind it).
    pub long_run_peak_rss_bytes: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RestartRun {
    /// From starting the new process until only the verification pass kept
    /// `/readyz` from 200 (its caches listed); entries measured before that
    /// pass existed have 0.
    #[serde(default)]
    pub listed_seconds: f64,
    /// From starting the new process to its first 200 on /readyz.
    pub ready_seconds: f64,
    /// From starting it until its reads stopped (every object re-checked).
    pub caught_up_seconds: f64,
    pub writes: u64,
    pub reads: u64,
    /// Of the API server's requests (all clients, the operator alone
    /// active): GETs of one managed object, and LIST pages of managed kinds.
    #[serde(default)]
    pub object_gets: u64,
    #[serde(default)]
    pub object_lists: u64,
    pub peak_rss_bytes: u64,
    pub cpu_seconds: f64,
    /// Every request the API server served meanwhile (all clients).
    #[serde(default)]
    pub api_requests: Vec<(String, u64)>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Restart {
    pub runs: Vec<RestartRun>,
    pub median_ready_seconds: f64,
    pub median_caught_up_seconds: f64,
    pub median_writes: u64,
    #[serde(default)]
    pub median_reads: u64,
}

/// One handover between two elected replicas.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FailoverRun {
    /// `SIGTERM` (the leader releases its Lease) or `SIGKILL` (the standby
    /// waits the Lease out).
    pub signal: String,
    /// From the signal until the standby said it leads.
    pub takeover_seconds: f64,
    /// The operator's requests from the signal until they settled (the
    /// standby's: the old leader is gone), counted by its FlowSchemas.
    pub reads: u64,
    pub writes: u64,
    /// Of the API server's requests meanwhile: GETs of one managed object,
    /// LIST pages of managed kinds, and writes of managed objects (the
    /// object deleted after the takeover is one).
    pub object_gets: u64,
    pub object_lists: u64,
    pub object_writes: u64,
    /// A managed object deleted 1 s after the takeover: until it was back.
    pub restored_ms: f64,
    pub api_requests: Vec<(String, u64)>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Failover {
    pub runs: Vec<FailoverRun>,
}

/// One run of `baseliner plan` and `baseliner report` against the
/// converged cluster.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InspectRun {
    pub plan_seconds: f64,
    pub plan_requests: u64,
    pub plan_peak_rss_bytes: u64,
    pub report_seconds: f64,
    pub report_requests: u64,
    pub report_peak_rss_bytes: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Inspect {
    /// The change planned (a quota raised: every namespace updates).
    pub change: String,
    /// Namespaces the plan listed, and objects it would update.
    pub planned_namespaces: u64,
    pub planned_updates: u64,
    pub runs: Vec<InspectRun>,
    pub median_plan_seconds: f64,
    pub median_plan_requests: u64,
    pub median_report_seconds: f64,
    pub median_report_requests: u64,
    pub median_plan_peak_rss_bytes: u64,
    pub median_report_peak_rss_bytes: u64,
}

/// Median of the values (the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

pub fn median_u64(values: &[u64]) -> u64 {
    median(&values.iter().map(|&v| v as f64).collect::<Vec<_>>()).round() as u64
}

/// Nearest-rank percentile (p in 0..=100) of durations, in milliseconds.
pub fn percentile_ms(samples: &[Duration], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    let mut v: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil().max(1.0) as usize;
    v[rank.min(v.len()) - 1]
}

pub fn latency_run(samples: &[Duration], timeouts: usize) -> LatencyRun {
    LatencyRun {
        samples: samples.len(),
        timeouts,
        p50_ms: percentile_ms(samples, 50.0),
        p99_ms: percentile_ms(samples, 99.0),
        max_ms: percentile_ms(samples, 100.0),
    }
}

pub fn latency(what: &str, runs: Vec<LatencyRun>) -> Latency {
    Latency {
        what: what.to_owned(),
        p50_ms: median(&runs.iter().map(|r| r.p50_ms).collect::<Vec<_>>()),
        p99_ms: median(&runs.iter().map(|r| r.p99_ms).collect::<Vec<_>>()),
        runs,
    }
}

/// All entries of BENCHMARKS.json, keyed by namespace count.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Results {
    pub about: String,
    pub results: BTreeMap<usize, Report>,
}

const ABOUT: &str = "Written by `make bench` (bench/). One entry per namespace count; each entry is one run, its floor measured in the same run.";

/// Writes `md` anew from the JSON beside it (`BENCH_REGENERATE=1`: after
/// a change to this file's formatting, without measuring again).
pub fn regenerate(json: &Path, md: &Path) -> Result<()> {
    let text =
        std::fs::read_to_string(json).with_context(|| format!("reading {}", json.display()))?;
    let all: Results =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", json.display()))?;
    std::fs::write(md, markdown(&all)).with_context(|| format!("writing {}", md.display()))?;
    Ok(())
}

/// Adds `report` to the JSON beside `md` (replacing an entry for the same
/// namespace count) and regenerates the Markdown from every entry.
pub fn write(json: &Path, md: &Path, report: Report) -> Result<()> {
    let mut all: Results = match std::fs::read_to_string(json) {
        Ok(text) => serde_json::from_str(&text).unwrap_or_else(|error| {
            eprintln!(
                "bench: {} does not parse ({error}); starting it afresh",
                json.display()
            );
            Results::default()
        }),
        Err(_) => Results::default(),
    };
    all.about = ABOUT.to_owned();
    all.results.insert(report.namespaces, report);
    std::fs::write(json, serde_json::to_string_pretty(&all)? + "\n")
        .with_context(|| format!("writing {}", json.display()))?;
    std::fs::write(md, markdown(&all)).with_context(|| format!("writing {}", md.display()))?;
    Ok(())
}

/// Entries measured before restarts verified from LISTs (they did not
/// record when the caches were listed, nor the reads).
fn measured_before_list_verification(r: &Report) -> bool {
    r.restart.runs.iter().all(|x| x.listed_seconds == 0.0)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn secs(s: f64) -> String {
    if s < 10.0 {
        format!("{s:.2} s")
    } else {
        format!("{s:.1} s")
    }
}

fn ms(v: f64) -> String {
    format!("{v:.0} ms")
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "**missed**" }
}

const MIB64: u64 = 64 * 1024 * 1024;

/// The Markdown document.
pub fn markdown(all: &Results) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Benchmarks\n\n\
         Generated by `make bench` (`bench/`); do not edit by hand. \
         `BENCH_NAMESPACES=N make bench` measures at N namespaces (default 1000) on a fresh \
         local control plane of its own and replaces that N's section here and in \
         `BENCHMARKS.json`; sections for other N stay, each with the machine and commit it \
         was measured on. Every figure is the median of the runs listed with it; the floor \
         was measured in the same run as the operator, against the same API server.\n"
    );
    if all.results.is_empty() {
        return out;
    }
    let ns: Vec<&usize> = all.results.keys().collect();
    let _ = writeln!(out, "## Summary\n");
    let _ = write!(out, "| figure | goal |");
    for n in &ns {
        let _ = write!(out, " {n} namespaces |");
    }
    let _ = write!(out, "\n| --- | --- |");
    for _ in &ns {
        let _ = write!(out, " --- |");
    }
    out.push('\n');
    type Row = (&'static str, &'static str, fn(&Report) -> String);
    let rows: [Row; 18] = [
        ("convergence (operator)", "≤ 1.1 × floor", |r| {
            format!(
                "{} = {:.2} × floor ({})",
                secs(r.convergence.median_seconds),
                r.convergence.ratio_to_floor,
                verdict(r.convergence.ratio_to_floor <= 1.1)
            )
        }),
        ("convergence vs the create (POST) floor", "—", |r| {
            format!(
                "{:.2} × ({} floor)",
                r.convergence.median_seconds / r.floor.create_median_seconds.max(f64::EPSILON),
                secs(r.floor.create_median_seconds)
            )
        }),
        ("convergence floor (plain client, SSA)", "—", |r| {
            format!(
                "{} ({:.0} objects/s, {} workers)",
                secs(r.floor.median_seconds),
                r.floor.objects_per_second,
                r.floor.concurrency
            )
        }),
        ("operator CPU for the convergence", "—", |r| {
            secs(r.convergence.median_cpu_seconds)
        }),
        (
            "new namespace → full baseline, p50 / p99",
            "p99 < 250 ms",
            |r| {
                format!(
                    "{} / {} ({})",
                    ms(r.new_namespace.p50_ms),
                    ms(r.new_namespace.p99_ms),
                    verdict(r.new_namespace.p99_ms < 250.0)
                )
            },
        ),
        (
            "drift: deleted object restored, p50 / p99",
            "p99 < 500 ms",
            |r| {
                format!(
                    "{} / {} ({})",
                    ms(r.drift_delete.p50_ms),
                    ms(r.drift_delete.p99_ms),
                    verdict(r.drift_delete.p99_ms < 500.0)
                )
            },
        ),
        (
            "drift: edited object restored, p50 / p99",
            "p99 < 500 ms",
            |r| {
                format!(
                    "{} / {} ({})",
                    ms(r.drift_edit.p50_ms),
                    ms(r.drift_edit.p99_ms),
                    verdict(r.drift_edit.p99_ms < 500.0)
                )
            },
        ),
        (
            "steady state: writes per quiet window (≥ 2 resyncs)",
            "0",
            |r| {
                format!(
                    "{} ({})",
                    r.steady_state.median_writes,
                    verdict(r.steady_state.median_writes == 0)
                )
            },
        ),
        ("peak RSS during convergence", "< 64 MiB at 10,000", |r| {
            let met = r.memory.peak_rss_bytes < MIB64;
            format!("{} ({})", mib(r.memory.peak_rss_bytes), verdict(met))
        }),
        ("settled RSS", "< 64 MiB at 10,000", |r| {
            let met = r.memory.settled_rss_bytes < MIB64;
            format!("{} ({})", mib(r.memory.settled_rss_bytes), verdict(met))
        }),
        (
            "restart: start → /readyz (every object verified)",
            "—",
            |r| {
                if measured_before_list_verification(r) {
                    format!(
                        "{} (not verified yet then)",
                        secs(r.restart.median_ready_seconds)
                    )
                } else {
                    secs(r.restart.median_ready_seconds)
                }
            },
        ),
        ("restart: start → requests stop", "—", |r| {
            secs(r.restart.median_caught_up_seconds)
        }),
        (
            "restart: reads (object GETs, LIST pages)",
            "≤ 700 at 10,000",
            |r| {
                let run = r.restart.runs.first();
                if measured_before_list_verification(r) {
                    return "not counted (measured before LIST verification)".to_owned();
                }
                format!(
                    "{} ({}, {})",
                    r.restart.median_reads,
                    run.map_or(0, |x| x.object_gets),
                    run.map_or(0, |x| x.object_lists)
                )
            },
        ),
        (
            "failover: takeover / reads / deleted object back (SIGTERM; SIGKILL)",
            "reads ≤ 100",
            |r| {
                r.failover.as_ref().map_or("—".to_owned(), |f| {
                    f.runs
                        .iter()
                        .take(2)
                        .map(|x| {
                            format!(
                                "{} / {} / {}",
                                secs(x.takeover_seconds),
                                x.reads,
                                ms(x.restored_ms)
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("; ")
                })
            },
        ),
        ("restart: writes", "0", |r| {
            format!(
                "{} ({})",
                r.restart.median_writes,
                verdict(r.restart.median_writes == 0)
            )
        }),
        (
            "`baseliner plan` of a change to every namespace: time / requests / peak RSS",
            "seconds",
            |r| {
                r.inspect.as_ref().map_or("—".to_owned(), |i| {
                    format!(
                        "{} / {} / {}",
                        secs(i.median_plan_seconds),
                        i.median_plan_requests,
                        mib(i.median_plan_peak_rss_bytes)
                    )
                })
            },
        ),
        (
            "`baseliner report`: time / requests / peak RSS",
            "seconds",
            |r| {
                r.inspect.as_ref().map_or("—".to_owned(), |i| {
                    format!(
                        "{} / {} / {}",
                        secs(i.median_report_seconds),
                        i.median_report_requests,
                        mib(i.median_report_peak_rss_bytes)
                    )
                })
            },
        ),
        ("runs per figure", "—", |r| {
            format!(
                "{} (latencies: {} samples each)",
                r.config.runs, r.config.samples
            )
        }),
    ];
    for (name, goal, cell) in rows {
        let _ = write!(out, "| {name} | {goal} |");
        for n in &ns {
            let _ = write!(out, " {} |", cell(&all.results[n]));
        }
        out.push('\n');
    }
    out.push('\n');
    for report in all.results.values() {
        section(&mut out, report);
    }
    out
}

fn section(out: &mut String, r: &Report) {
    let m = &r.machine;
    let _ = writeln!(out, "## {} namespaces\n", r.namespaces);
    let _ = writeln!(
        out,
        "Measured {} at commit `{}`, in {:.0} s.\n\n\
         | machine | |\n| --- | --- |\n\
         | cores | {} ({}) |\n| memory | {:.1} GiB |\n| kernel | {} |\n\
         | Kubernetes (kube-apiserver) | {} |\n| etcd | {} |\n| rustc | {} |\n\
         | load average before / after | {} / {} |\n",
        m.date,
        m.commit,
        m.bench_seconds,
        m.cores,
        m.cpu_model,
        m.memory_bytes as f64 / (1024.0 * 1024.0 * 1024.0),
        m.kernel,
        m.kubernetes,
        m.etcd,
        m.rustc,
        m.load_before,
        m.load_after
    );
    let c = &r.config;
    let _ = writeln!(
        out,
        "The operator: `baseliner run {}` (release build, as a ServiceAccount whose requests \
         two FlowSchemas count; its Lease requests, leader election's own, a third keeps \
         out of those counts). Every namespace gets {} writes: {} objects and its Pod \
         Security labels. The profile:\n\n```yaml\n{}```\n",
        c.operator_args,
        c.writes_per_namespace,
        c.writes_per_namespace - 1,
        c.profile_yaml
    );

    let f = &r.floor;
    let _ = writeln!(
        out,
        "### 1. Convergence\n\n\
         From applying the profile to the moment the last object (or label) matching it \
         arrived on the benchmark's watch; then every object is listed and compared with \
         the rendered profile. The floor writes the same objects (from \
         `baseliner::render::render_namespace`) with {}, with nothing else to do, at the \
         best concurrency of the sweep below, timed the same way.\n",
        f.method
    );
    let _ = writeln!(
        out,
        "Concurrency sweep of the floor:\n\n| workers | namespaces | time | objects/s |\n| --- | --- | --- | --- |"
    );
    for p in &f.sweep {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.0} |",
            p.concurrency,
            p.namespaces,
            secs(p.seconds),
            p.objects_per_second
        );
    }
    let _ = writeln!(
        out,
        "\n| run | floor, SSA ({} workers) | floor, POST | operator | operator / floor | floor client CPU | operator CPU | operator peak RSS | operator writes | operator reads |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        f.concurrency
    );
    let rows = f.runs.len().max(r.convergence.runs.len());
    for i in 0..rows {
        let floor = f.runs.get(i);
        let op = r.convergence.runs.get(i);
        let cell = |v: Option<String>| v.unwrap_or_default();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            i + 1,
            cell(floor.map(|x| secs(x.seconds))),
            cell(f.create_runs.get(i).map(|x| secs(x.seconds))),
            cell(op.map(|x| secs(x.seconds))),
            cell(
                floor
                    .zip(op)
                    .map(|(f, o)| format!("{:.2}", o.seconds / f.seconds))
            ),
            cell(floor.map(|x| secs(x.client_cpu_seconds))),
            cell(op.map(|x| secs(x.cpu_seconds))),
            cell(op.map(|x| mib(x.peak_rss_bytes))),
            cell(op.map(|x| x.writes.to_string())),
            cell(op.map(|x| x.reads.to_string())),
        );
    }
    let floor_cpu = median(
        &f.runs
            .iter()
            .map(|x| x.client_cpu_seconds)
            .collect::<Vec<_>>(),
    );
    let watch_cpu = median(
        &r.convergence
            .runs
            .iter()
            .map(|x| x.bench_cpu_seconds)
            .collect::<Vec<_>>(),
    );
    let _ = writeln!(
        out,
        "| **median** | **{}** | **{}** | **{}** | **{:.2}** | **{}** | **{}** | **{}** | **{}** | **{}** |\n\n\
         Ratio of the medians, operator / floor: **{:.2}** (goal ≤ 1.1). The operator's \
         minimum is {} writes ({} per namespace); the floor's client CPU includes the \
         benchmark's own watches, which took {} (median) while the operator converged. \
         Requests are counted until the operator's writes stop; its reads go on while \
         kube-controller-manager fills in each ResourceQuota's status (20 requests a \
         second), as the operator reads each quota once when its version moves.\n\n\
         The create floor is the cheapest write the API server takes, and baseliner does \
         not create that way on purpose: a field created by a POST, even with baseliner's \
         field manager, belongs to an `Update` entry of that manager, and a later \
         server-side apply of a profile without the field leaves it in place (a label \
         dropped from the profile would stay forever). The e2e suite checks this on the \
         real API server (`plane_is_real`: `a_field_created_by_post_outlives_its_removal_\
         from_the_applied_config`), so the SSA floor is the one to hold baseliner to.\n",
        secs(f.median_seconds),
        secs(f.create_median_seconds),
        secs(r.convergence.median_seconds),
        r.convergence.ratio_to_floor,
        secs(floor_cpu),
        secs(r.convergence.median_cpu_seconds),
        mib(r.convergence.median_peak_rss_bytes),
        r.convergence.median_writes,
        r.convergence.median_reads,
        r.convergence.ratio_to_floor,
        r.namespaces * r.config.writes_per_namespace,
        r.config.writes_per_namespace,
        secs(watch_cpu),
    );

    for (title, l, goal) in [
        (
            "### 2. New namespace to full baseline",
            &r.new_namespace,
            250.0,
        ),
        (
            "### 3a. Drift healing: deleted object",
            &r.drift_delete,
            500.0,
        ),
        ("### 3b. Drift healing: edited object", &r.drift_edit, 500.0),
    ] {
        let _ = writeln!(
            out,
            "{title}\n\n{}\n\n| run | samples | timeouts | p50 | p99 | max |\n| --- | --- | --- | --- | --- | --- |",
            l.what
        );
        for (i, run) in l.runs.iter().enumerate() {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                i + 1,
                run.samples,
                run.timeouts,
                ms(run.p50_ms),
                ms(run.p99_ms),
                ms(run.max_ms)
            );
        }
        let _ = writeln!(
            out,
            "| **median** | | | **{}** | **{}** | |\n\np99 goal < {goal:.0} ms: {}.\n",
            ms(l.p50_ms),
            ms(l.p99_ms),
            verdict(l.p99_ms < goal)
        );
    }

    let s = &r.steady_state;
    let _ = writeln!(
        out,
        "### 4. Steady state\n\n\
         Everything converged, nothing changing: write (POST/PUT/PATCH/DELETE) and read \
         requests the API server dispatched for the operator's ServiceAccount \
         (`apiserver_flowcontrol_dispatched_requests_total` of the two FlowSchemas), over \
         quiet windows of two resync intervals ({} s) and 5 s more; the operator's own \
         reconcile count shows the resyncs happened.\n\n\
         | window | length | writes | reads | reconciles | operator CPU |\n| --- | --- | --- | --- | --- | --- |",
        c.resync_seconds
    );
    for (i, w) in s.windows.iter().enumerate() {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            i + 1,
            secs(w.seconds),
            w.writes,
            w.reads,
            w.reconciles,
            secs(w.cpu_seconds)
        );
    }
    let _ = writeln!(
        out,
        "| **median** | | **{}** | **{}** | | |\n",
        s.median_writes, s.median_reads
    );

    let mem = &r.memory;
    let _ = writeln!(
        out,
        "### 5. Memory and CPU\n\n\
         | | |\n| --- | --- |\n\
         | peak RSS (VmHWM) of a fresh operator converging {} namespaces, median | {} |\n\
         | settled RSS (VmRSS) of the long-running operator after the steady-state windows | {} |\n\
         | peak RSS of that long-running operator (convergence, latency and drift runs behind it) | {} |\n\
         | operator CPU for the convergence, median | {} |\n",
        r.namespaces,
        mib(mem.peak_rss_bytes),
        mib(mem.settled_rss_bytes),
        mib(mem.long_run_peak_rss_bytes),
        secs(r.convergence.median_cpu_seconds)
    );

    let rs = &r.restart;
    let _ = writeln!(
        out,
        "### 6. Restart\n\n\
         With {} namespaces converged, SIGTERM the operator and start a new one; time \
         from its start until its caches were listed, until its first 200 on `/readyz` \
         (which waits for the managed objects to be verified from paginated LISTs), and \
         until its requests stopped; requests from the SIGTERM until then: the operator's, \
         counted by its FlowSchemas (watches included), and of the API server's, the GETs \
         of single managed objects and the LIST pages of managed kinds.\n\n\
         | run | caches listed | ready (verified) | caught up | writes | reads | object GETs | LIST pages | peak RSS | CPU |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        r.namespaces
    );
    for (i, x) in rs.runs.iter().enumerate() {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            i + 1,
            secs(x.listed_seconds),
            secs(x.ready_seconds),
            secs(x.caught_up_seconds),
            x.writes,
            x.reads,
            x.object_gets,
            x.object_lists,
            mib(x.peak_rss_bytes),
            secs(x.cpu_seconds)
        );
    }
    let _ = writeln!(
        out,
        "| **median** | | **{}** | **{}** | **{}** | **{}** | | | | |\n",
        secs(rs.median_ready_seconds),
        secs(rs.median_caught_up_seconds),
        rs.median_writes,
        rs.median_reads
    );
    failover_section(out, r);
    inspect_section(out, r);
    baseline_section(out, r);
}

/// This build beside the baseline build, figure by figure.
fn baseline_section(out: &mut String, r: &Report) {
    let Some(b) = &r.baseline else { return };
    let _ = writeln!(
        out,
        "### 9. Beside `{}`, in the same run\n\n\
         The operator built from `{}` (`BENCH_BASELINE`), measured on the same plane in \
         the same run: a convergence beside each of this build's (same floor; the two take \
         turns at going first, this build last in the last run), then, after this build's, \
         the same restart and failover. Medians of {} runs; failover figures are each \
         signal's first run.\n\n\
         | figure | this build (`{}`) | `{}` |\n| --- | --- | --- |",
        b.label, b.label, r.config.runs, r.machine.commit, b.label
    );
    let convergence = |c: &Convergence| {
        format!(
            "{} = {:.2} × floor, CPU {}, peak RSS {}, {} writes, {} reads",
            secs(c.median_seconds),
            c.ratio_to_floor,
            secs(c.median_cpu_seconds),
            mib(c.median_peak_rss_bytes),
            c.median_writes,
            c.median_reads
        )
    };
    let restart = |x: &Restart| {
        let gets = median_u64(&x.runs.iter().map(|r| r.object_gets).collect::<Vec<_>>());
        let lists = median_u64(&x.runs.iter().map(|r| r.object_lists).collect::<Vec<_>>());
        let cpu = median(&x.runs.iter().map(|r| r.cpu_seconds).collect::<Vec<_>>());
        format!(
            "ready {}, requests stop {}; {} reads ({} object GETs, {} LIST pages), {} writes, CPU {}",
            secs(x.median_ready_seconds),
            secs(x.median_caught_up_seconds),
            x.median_reads,
            gets,
            lists,
            x.median_writes,
            secs(cpu)
        )
    };
    let takeover = |f: &Failover, signal: &str| {
        f.runs
            .iter()
            .find(|x| x.signal == signal)
            .map_or("—".to_owned(), |x| {
                format!(
                    "took over in {}; {} reads ({} object GETs, {} LIST pages), {} object writes; deleted object back in {}",
                    secs(x.takeover_seconds),
                    x.reads,
                    x.object_gets,
                    x.object_lists,
                    x.object_writes,
                    ms(x.restored_ms)
                )
            })
    };
    let mut row = |figure: &str, this: String, other: String| {
        let _ = writeln!(out, "| {figure} | {this} | {other} |");
    };
    row(
        "convergence",
        convergence(&r.convergence),
        convergence(&b.convergence),
    );
    let not_measured = || "not measured".to_owned();
    row(
        "restart",
        restart(&r.restart),
        b.restart.as_ref().map_or_else(not_measured, restart),
    );
    let none = Failover::default();
    let this_failover = r.failover.as_ref().unwrap_or(&none);
    for signal in ["SIGTERM", "SIGKILL"] {
        row(
            &format!("failover ({signal})"),
            takeover(this_failover, signal),
            b.failover
                .as_ref()
                .map_or_else(not_measured, |f| takeover(f, signal)),
        );
    }
    out.push('\n');
    for failure in &b.failed {
        let _ = writeln!(out, "`{}` could not be measured: {failure}\n", b.label);
    }
}

fn failover_section(out: &mut String, r: &Report) {
    let Some(failover) = &r.failover else { return };
    let _ = writeln!(
        out,
        "### 7. Failover\n\n\
         Two replicas elect a leader (default lease timings: 15 s duration, 2 s retry); \
         once the standby is ready (warm), the leader gets SIGTERM (it releases the \
         Lease) or SIGKILL (the standby waits the Lease out). Time from the signal until \
         the standby leads; 1 s later a managed object is deleted and timed until it is \
         back. Requests from the signal until they settled: the operator's (its Lease \
         requests apart; writes include an Event), and of the API server's, single-object GETs, LIST pages and writes \
         of managed objects (the restored object is one).\n\n\
         | run | signal | takeover | reads | object GETs | LIST pages | writes | object writes | deleted object back |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    );
    for (i, x) in failover.runs.iter().enumerate() {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            i / 2 + 1,
            x.signal,
            secs(x.takeover_seconds),
            x.reads,
            x.object_gets,
            x.object_lists,
            x.writes,
            x.object_writes,
            ms(x.restored_ms)
        );
    }
    out.push('\n');
}

fn inspect_section(out: &mut String, r: &Report) {
    let Some(inspect) = &r.inspect else { return };
    let _ = writeln!(
        out,
        "### 8. `baseliner plan` and `baseliner report`\n\n\
         With {} namespaces converged and the operator idle, the release binary runs as a \
         ServiceAccount holding only `config/rbac/reader_role.yaml`; the API server counts \
         its requests (a FlowSchema of its own). The plan is of {}: it listed {} namespaces \
         and {} updates. `report -o json` covers every namespace and control.\n\n\
         | run | plan | plan requests | plan peak RSS | report | report requests | report peak RSS |\n| --- | --- | --- | --- | --- | --- | --- |",
        r.namespaces, inspect.change, inspect.planned_namespaces, inspect.planned_updates
    );
    for (i, x) in inspect.runs.iter().enumerate() {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            i + 1,
            secs(x.plan_seconds),
            x.plan_requests,
            mib(x.plan_peak_rss_bytes),
            secs(x.report_seconds),
            x.report_requests,
            mib(x.report_peak_rss_bytes)
        );
    }
    let _ = writeln!(
        out,
        "| **median** | **{}** | **{}** | **{}** | **{}** | **{}** | **{}** |\n",
        secs(inspect.median_plan_seconds),
        inspect.median_plan_requests,
        mib(inspect.median_plan_peak_rss_bytes),
        secs(inspect.median_report_seconds),
        inspect.median_report_requests,
        mib(inspect.median_report_peak_rss_bytes)
    );
}
