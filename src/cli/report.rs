//! `baseliner report`: compliance evidence per profile, namespace and
//! control ([`crate::inspect::evidence`]), as a table, JSON, CSV or one
//! self-contained HTML page.

use std::io::Write;
use std::sync::Arc;

use askama::Template;
use kube::ResourceExt;

use super::{ClusterArgs, Error, Outcome};
use crate::inspect::evidence::{
    ComplianceReport, Control, ControlCounts, NamespaceEvidence, Status, compliance_report,
    namespace_evidence,
};
use crate::inspect::outcome::{Settings, namespace_outcome};
use crate::inspect::snapshot::{Scope, Snapshot, connect};

/// Arguments of `baseliner report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = ReportFormat::Table)]
    pub output: ReportFormat,

    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// How `report` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// A table per profile, then what is not compliant.
    Table,
    /// The whole report as JSON.
    Json,
    /// One row per namespace, control and object.
    Csv,
    /// One self-contained page: an overview, then every namespace.
    Html,
}

pub(super) fn report(args: &ReportArgs, out: &mut dyn Write) -> Result<Outcome, Error> {
    let runtime = super::runtime()?;
    let snapshot = runtime.block_on(async {
        let client = connect(args.cluster.context.as_deref()).await?;
        Snapshot::read(&client, &Scope::Cluster).await
    })?;
    let report = build_report(&snapshot, &args.cluster.settings());
    match args.output {
        ReportFormat::Json => super::write_json(out, &report)?,
        ReportFormat::Table => out.write_all(super::colour(&table(&report)).as_bytes())?,
        ReportFormat::Csv => out.write_all(&csv(&report)?)?,
        ReportFormat::Html => {
            let page = HtmlReport::new(&report)
                .render()
                .map_err(|e| Error::Format(e.to_string()))?;
            out.write_all(page.as_bytes())?;
        }
    }
    Ok(Outcome::Success)
}

/// The report of every owned namespace in the snapshot.
pub fn build_report(snapshot: &Snapshot, settings: &Settings) -> ComplianceReport {
    let profiles: Vec<_> = snapshot.profiles.iter().cloned().map(Arc::new).collect();
    let mut serving = snapshot.serving_by_namespace();
    let mut owned = Vec::new();
    let mut unowned = 0;
    for (name, namespace) in &snapshot.namespaces {
        let live = serving.remove(name.as_str()).unwrap_or_default();
        let outcome = namespace_outcome(
            snapshot,
            &profiles,
            &snapshot.exceptions,
            settings,
            namespace,
            &live,
        );
        if outcome.plan.terminating {
            continue;
        }
        let owner = outcome.plan.owner.as_ref().and_then(|owner| {
            snapshot
                .profiles
                .iter()
                .find(|p| p.name_any() == owner.profile)
        });
        match owner {
            Some(profile) => owned.push((
                profile.name_any(),
                namespace_evidence(&outcome, namespace, profile),
            )),
            None => unowned += 1,
        }
    }
    compliance_report(now(), &snapshot.profiles, owned, unowned)
}

fn now() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .round(k8s_openapi::jiff::Unit::Second)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// How a verdict is coloured on a terminal.
pub(super) fn status_style(status: Status) -> anstyle::Style {
    use anstyle::AnsiColor;
    match status.tone() {
        "good" => AnsiColor::Green.on_default(),
        "excepted" => AnsiColor::Cyan.on_default(),
        "partial" => AnsiColor::Yellow.on_default(),
        "bad" => AnsiColor::Red.on_default(),
        _ => anstyle::Style::new().dimmed(),
    }
}

/// Column headings of the table.
fn heading(control: Control) -> String {
    control.title().to_uppercase().replace(' ', "-")
}

/// The report for a terminal.
pub fn table(report: &ComplianceReport) -> String {
    let mut text = format!("Compliance report, {}\n", report.generated_at);
    for profile in &report.profiles {
        text.push_str(&format!(
            "\nProfile {} ({:?}, priority {}): {}/{} namespaces compliant{}\n",
            profile.name,
            profile.mode,
            profile.priority,
            profile.compliant_namespaces,
            profile.namespaces.len(),
            by_exception(profile.excepted_namespaces),
        ));
        if profile.namespaces.is_empty() {
            continue;
        }
        let width = profile
            .namespaces
            .iter()
            .map(|n| n.namespace.len())
            .max()
            .unwrap_or(0)
            .max("NAMESPACE".len());
        let widths: Vec<usize> = Control::ALL
            .iter()
            .map(|c| heading(*c).len().max(Status::Missing.word().len()))
            .collect();
        text.push_str(&format!("{:width$}", "NAMESPACE"));
        for (control, column) in Control::ALL.iter().zip(&widths) {
            text.push_str(&format!("  {:column$}", heading(*control)));
        }
        text.push('\n');
        for namespace in &profile.namespaces {
            text.push_str(&format!("{:width$}", namespace.namespace));
            for (control, column) in namespace.controls.iter().zip(&widths) {
                let style = status_style(control.status);
                text.push_str(&format!(
                    "  {style}{:column$}{style:#}",
                    control.status.word()
                ));
            }
            text.push('\n');
        }
        for namespace in &profile.namespaces {
            for exception in &namespace.exceptions {
                text.push_str(&format!(
                    "  {} excepted by {}: {}: {}\n",
                    namespace.namespace,
                    exception.name,
                    exception.controls.join(", "),
                    exception.because()
                ));
            }
        }
        let failing: Vec<&NamespaceEvidence> =
            profile.namespaces.iter().filter(|n| !n.compliant).collect();
        for namespace in failing {
            for control in namespace
                .controls
                .iter()
                .filter(|c| !c.status.is_compliant())
            {
                for evidence in control.evidence.iter().filter(|e| !e.status.is_compliant()) {
                    text.push_str(&format!(
                        "  {} {}: {} {}{}: {}\n",
                        namespace.namespace,
                        control.control.title(),
                        evidence.kind,
                        object_name(&evidence.namespace, &evidence.name),
                        evidence
                            .resource_version
                            .as_ref()
                            .map(|rv| format!(" (resourceVersion {rv})"))
                            .unwrap_or_default(),
                        evidence.detail
                    ));
                }
            }
        }
    }
    text.push_str(&format!(
        "\n{} namespaces owned by no profile\n",
        report.unowned_namespaces
    ));
    text
}

/// `, 2 more by exception`, or nothing.
fn by_exception(excepted: usize) -> String {
    if excepted == 0 {
        String::new()
    } else {
        format!(", {excepted} more by exception")
    }
}

fn object_name(namespace: &str, name: &str) -> String {
    if namespace.is_empty() {
        name.to_owned()
    } else {
        format!("{namespace}/{name}")
    }
}

/// One row per profile, namespace, control and piece of evidence (a
/// control with none has one row without an object).
pub fn csv(report: &ComplianceReport) -> Result<Vec<u8>, Error> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let csv_error = |e: csv::Error| Error::Format(e.to_string());
    writer
        .write_record([
            "profile",
            "mode",
            "namespace",
            "control",
            "status",
            "kind",
            "object",
            "resourceVersion",
            "detail",
        ])
        .map_err(csv_error)?;
    for profile in &report.profiles {
        let mode = format!("{:?}", profile.mode);
        for namespace in &profile.namespaces {
            for control in &namespace.controls {
                let base = [
                    profile.name.as_str(),
                    mode.as_str(),
                    namespace.namespace.as_str(),
                    control.control.title(),
                ];
                if control.evidence.is_empty() {
                    let row = base
                        .iter()
                        .copied()
                        .chain([control.status.word(), "", "", "", ""]);
                    writer.write_record(row).map_err(csv_error)?;
                }
                for evidence in &control.evidence {
                    let object = object_name(&evidence.namespace, &evidence.name);
                    let row = base.iter().copied().chain([
                        evidence.status.word(),
                        evidence.kind.as_str(),
                        object.as_str(),
                        evidence.resource_version.as_deref().unwrap_or_default(),
                        evidence.detail.as_str(),
                    ]);
                    writer.write_record(row).map_err(csv_error)?;
                }
            }
        }
    }
    writer
        .into_inner()
        .map_err(|e| Error::Format(e.to_string()))
}

/// The HTML page (`templates/report.html`).
#[derive(Template)]
#[template(path = "report.html")]
pub struct HtmlReport<'a> {
    report: &'a ComplianceReport,
    controls: Vec<&'static str>,
    overview: Vec<OverviewRow<'a>>,
}

/// One profile's row of the overview: per control, its counts.
struct OverviewRow<'a> {
    profile: &'a str,
    mode: String,
    compliant: usize,
    excepted: usize,
    total: usize,
    cells: Vec<OverviewCell>,
}

struct OverviewCell {
    class: &'static str,
    text: String,
}

impl<'a> HtmlReport<'a> {
    pub fn new(report: &'a ComplianceReport) -> Self {
        let overview = report
            .profiles
            .iter()
            .map(|profile| OverviewRow {
                profile: &profile.name,
                mode: format!("{:?}", profile.mode),
                compliant: profile.compliant_namespaces,
                excepted: profile.excepted_namespaces,
                total: profile.namespaces.len(),
                cells: Control::ALL
                    .iter()
                    .map(|control| {
                        overview_cell(profile.totals.get(control).copied().unwrap_or_default())
                    })
                    .collect(),
            })
            .collect();
        Self {
            report,
            controls: Control::ALL.iter().map(|c| c.title()).collect(),
            overview,
        }
    }
}

fn overview_cell(counts: ControlCounts) -> OverviewCell {
    let required = counts.compliant + counts.excepted + counts.not_compliant;
    if required == 0 {
        return OverviewCell {
            class: "none",
            text: "not required".to_owned(),
        };
    }
    let excepted = if counts.excepted > 0 {
        format!(" (+{} excepted)", counts.excepted)
    } else {
        String::new()
    };
    OverviewCell {
        class: if counts.not_compliant > 0 && counts.compliant + counts.excepted == 0 {
            "bad"
        } else if counts.not_compliant > 0 {
            "partial"
        } else if counts.excepted > 0 {
            "excepted"
        } else {
            "good"
        },
        text: format!("{}/{required}{excepted}", counts.compliant),
    }
}
