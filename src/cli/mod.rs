//! The `baseliner` command line: `crd`, `validate` and `render`, the
//! offline half a GitOps pipeline runs without a cluster; `plan`, `why`
//! and `report` ([`plan`], [`why`], [`report`]), which read a live cluster
//! and write nothing to it; and `run`, the operator itself.
//!
//! Installed as `kubectl-baseliner` too, it is a kubectl plugin:
//! `kubectl baseliner plan -f ...`.

mod plan;
mod report;
mod why;

pub use plan::{PlanArgs, PlanFormat};
pub use report::{ReportArgs, ReportFormat, build_report};
pub use why::{WhyArgs, WhyFormat, explain};

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use kube::CustomResourceExt;
use serde_json::{Value, json};
use thiserror::Error;

use crate::access_review;
use crate::api::exception::ProfileException;
use crate::api::{NAMESPACE_NAME_LABEL, ProductionProfile};
use crate::exception::ExceptionSettings;
use crate::inspect::outcome::Settings;
use crate::inspect::snapshot;
use crate::namespace::NamespaceInfo;
use crate::render::{
    DEFAULT_ALLOWED_CLUSTER_ROLES, RenderOptions, namespace_object, render_namespace,
};
use crate::selection::{SelectionContext, explain_selection, selects};
use crate::syntax::{check_label_key, check_label_value, is_dns1123_label};
use crate::validate::{self, DocumentReport};

/// Exit code when a profile does not select the namespace given to `render`.
pub const EXIT_NOT_SELECTED: u8 = 3;

/// Exit code of `plan` when applying the files would change something.
pub const EXIT_CHANGES: u8 = 2;

/// Reconcile namespaces to a declared production baseline.
#[derive(Debug, Parser)]
#[command(name = "baseliner", version, about, max_term_width = 100)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Arguments of `baseliner crd`.
#[derive(Debug, clap::Args)]
pub struct CrdArgs {
    /// Only this CRD; both, as two YAML documents, when unset.
    #[arg(value_enum)]
    pub kind: Option<CrdKind>,
}

/// A CRD baseliner defines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum CrdKind {
    /// ProductionProfile.
    Productionprofiles,
    /// ProfileException.
    Profileexceptions,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print baseliner's CustomResourceDefinitions as YAML.
    Crd(CrdArgs),
    /// Check ProductionProfile and ProfileException manifests without a cluster.
    ///
    /// Applies the CRDs' schemas and CEL rules, as the API server would, and
    /// checks what the API server cannot: label selectors, CIDRs, cron
    /// schedules, TTLs and subject templates; an exception's expiry (in the
    /// future, at most 90 days away) and, when its profile is among the
    /// files, that every control it waives exists there. Prints one line per problem
    /// (`FILE: document N (NAME): FIELD: MESSAGE`) and exits 1 if there is
    /// any; prints `ok` per valid document and exits 0 otherwise.
    ///
    /// With `--as-user` or `--as-group` it also asks the cluster in
    /// $KUBECONFIG (SubjectAccessReviews, which need `create` on
    /// `subjectaccessreviews`) whether that identity holds, cluster-wide,
    /// every right creating each profile implies: the rule the API server
    /// enforces at admission (for an exception: every right the controls it
    /// waives protect). A missing right is a problem line naming the field
    /// and the permission.
    Validate(ValidateArgs),
    /// Print the objects a profile would create for one namespace.
    ///
    /// The output is what the operator would apply, ready for
    /// `kubectl apply -f -` or a diff: the Namespace's Pod Security labels
    /// (as a partial Namespace) and every managed object. Exits 1 when the
    /// profile is invalid or part of it cannot be rendered for this
    /// namespace (the rest is still printed, as the operator would still
    /// apply it), and 3 when the profile does not select the namespace
    /// (nothing is printed).
    Render(RenderArgs),
    /// Show what applying profile manifests would do to the live cluster.
    ///
    /// Reads the cluster in $KUBECONFIG (or --context) and writes nothing:
    /// the profiles in the files as `kubectl apply` would leave them,
    /// planned against the live namespaces, profiles and managed objects
    /// with the operator's own plan. For every namespace whose outcome
    /// changes: its owner before and after, each object to create, update
    /// (the fields baseliner owns that differ), replace, delete or orphan,
    /// and the Pod Security labels set or removed; then a summary, with
    /// the RoleBindings granted and revoked. Exits 0 when nothing would
    /// change, 2 when something would, 1 on an error or invalid manifests.
    Plan(PlanArgs),
    /// Explain one namespace: which profile owns it and why, which others
    /// select it and lose, what is in place, what is missing or drifted,
    /// and what baseliner last did there.
    Why(WhyArgs),
    /// Compliance evidence for every profile, namespace and control: the
    /// object, its resourceVersion, in sync or how it differs.
    Report(ReportArgs),
    /// Run the operator against the cluster in $KUBECONFIG (or in-cluster).
    Run(crate::run::RunArgs),
}

/// Arguments of `baseliner validate`.
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// YAML files, each holding one or more documents; `-` reads stdin.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// Check that this user (as the API server names it, e.g.
    /// `system:serviceaccount:argocd:argocd-application-controller`) may
    /// write the profiles.
    #[arg(long, value_name = "USER")]
    pub as_user: Option<String>,

    /// A group of that identity; repeat for more.
    #[arg(long = "as-group", value_name = "GROUP")]
    pub as_groups: Vec<String>,
}

/// Arguments of `baseliner render`.
#[derive(Debug, clap::Args)]
pub struct RenderArgs {
    /// File holding the ProductionProfile; `-` reads stdin.
    #[arg(long, value_name = "FILE")]
    pub profile: PathBuf,

    /// Name of the namespace to render for.
    #[arg(long, value_name = "NAME")]
    pub namespace: String,

    /// A label of the namespace, for selection and subject templates; repeat for more.
    #[arg(long = "label", short = 'l', value_name = "KEY=VALUE", value_parser = parse_label)]
    pub labels: Vec<(String, String)>,

    #[command(flatten)]
    pub roles: AllowedRoles,

    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Yaml)]
    pub output: OutputFormat,
}

/// The operator's allow list, for commands that render as it does.
#[derive(Debug, clap::Args)]
pub struct AllowedRoles {
    /// ClusterRoles the operator may bind (its --allowed-cluster-roles).
    #[arg(
        long,
        value_name = "ROLE,...",
        value_delimiter = ',',
        default_values_t = DEFAULT_ALLOWED_CLUSTER_ROLES.map(str::to_owned)
    )]
    pub allowed_cluster_roles: Vec<String>,
}

impl AllowedRoles {
    fn render_options(&self) -> RenderOptions {
        RenderOptions {
            allowed_cluster_roles: self.allowed_cluster_roles.iter().cloned().collect(),
        }
    }
}

/// Where the cluster is, and the operator's settings that shape its plan
/// (give the same values as its `run` flags).
#[derive(Debug, clap::Args)]
pub struct ClusterArgs {
    /// The kubeconfig context [default: the current one].
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,

    #[command(flatten)]
    pub roles: AllowedRoles,

    /// The operator's namespace (never selected by label).
    #[arg(long, value_name = "NAME", default_value = "baseliner-system")]
    pub operator_namespace: String,

    /// The operator runs with --unsafe-grant-without-author-rights-policy.
    #[arg(long)]
    pub unsafe_grant_without_author_rights_policy: bool,

    /// The operator's --max-exception-days.
    #[arg(long, value_name = "DAYS", default_value_t = ExceptionSettings::default().max_days)]
    pub max_exception_days: u32,
}

impl ClusterArgs {
    /// The operator's settings as given.
    pub fn settings(&self) -> Settings {
        Settings {
            render: self.roles.render_options(),
            selection: SelectionContext {
                operator_namespace: Some(self.operator_namespace.clone()),
            },
            grants_waived: self.unsafe_grant_without_author_rights_policy,
            exceptions: ExceptionSettings {
                max_days: self.max_exception_days,
                ..ExceptionSettings::default()
            },
            now: k8s_openapi::jiff::Timestamp::now(),
        }
    }
}

/// A runtime for the commands that talk to a cluster.
fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Write)
}

/// `text` with its ANSI colours when standard output is a terminal that
/// takes them (NO_COLOR and CLICOLOR_FORCE are honoured), else without.
fn colour(text: &str) -> String {
    match anstream::AutoStream::choice(&io::stdout()) {
        anstream::ColorChoice::Never => anstream::adapter::strip_str(text).to_string(),
        _ => text.to_owned(),
    }
}

/// How `render` prints objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// A multi-document YAML stream.
    Yaml,
    /// A v1 List.
    Json,
}

/// Why the command line could not do its job (as opposed to finding
/// problems in a profile, which is its job).
#[derive(Debug, Error)]
pub enum Error {
    /// A file could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: io::Error,
    },
    /// A directory was given where a file was expected.
    #[error("{path}: is a directory; pass the YAML files in it (e.g. {path}/*.yaml)")]
    Directory {
        /// The directory.
        path: String,
    },
    /// The file holds no YAML documents.
    #[error("{path}: holds no YAML documents")]
    Empty {
        /// The file.
        path: String,
    },
    /// `render` was given a file with more than one document.
    #[error(
        "{path}: holds {count} documents; render takes a file with exactly one ProductionProfile"
    )]
    NotOneDocument {
        /// The file.
        path: String,
        /// How many documents it holds.
        count: usize,
    },
    /// The namespace name is not a DNS-1123 label.
    #[error(
        "--namespace {0:?}: not a namespace name (at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit)"
    )]
    NamespaceName(String),
    /// A `--label` is not a valid label.
    #[error("--label {key}={value}: {reason}")]
    Label {
        /// The key given.
        key: String,
        /// The value given.
        value: String,
        /// Why it is not a label.
        reason: String,
    },
    /// The cluster could not answer `validate --as-user`.
    #[error(transparent)]
    Cluster(#[from] access_review::Error),
    /// The cluster could not be read (`plan`, `why`, `report`).
    #[error(transparent)]
    Snapshot(#[from] snapshot::Error),
    /// Output cannot be formatted (JSON, CSV, HTML).
    #[error("cannot format the output: {0}")]
    Format(String),
    /// The CRD or an object cannot be written as YAML.
    #[error("cannot write YAML: {0}")]
    Yaml(String),
    /// Standard output or error cannot be written.
    #[error("cannot write output: {0}")]
    Write(#[from] io::Error),
}

/// How a command ended, for the exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Everything was fine (exit 0).
    Success,
    /// Problems were found and reported (exit 1).
    Problems,
    /// `plan`: applying the files would change something (exit 2).
    Changes,
    /// `render`: the profile does not select the namespace (exit 3).
    NotSelected,
}

impl From<Outcome> for ExitCode {
    fn from(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Success => ExitCode::SUCCESS,
            Outcome::Problems => ExitCode::FAILURE,
            Outcome::Changes => ExitCode::from(EXIT_CHANGES),
            Outcome::NotSelected => ExitCode::from(EXIT_NOT_SELECTED),
        }
    }
}

/// The binaries' `main`: parses the command line (usage names `bin_name`),
/// runs it, and turns the outcome into the exit code.
pub fn main(bin_name: &str) -> ExitCode {
    let mut command = <Cli as clap::CommandFactory>::command().bin_name(bin_name);
    let cli = match command
        .try_get_matches_from_mut(std::env::args_os())
        .and_then(|matches| <Cli as clap::FromArgMatches>::from_arg_matches(&matches))
    {
        Ok(cli) => cli,
        Err(error) => error.format(&mut command).exit(),
    };
    // Not locked: `run` logs to stdout from many threads.
    let (mut out, mut err) = (io::stdout(), io::stderr());
    match run(cli, &mut out, &mut err) {
        Ok(outcome) => outcome.into(),
        Err(error) => {
            // Nothing better to do if stderr itself is gone.
            let _ = writeln!(err, "error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a parsed command line, writing results to `out` and diagnostics to
/// `err`.
pub fn run(cli: Cli, out: &mut dyn Write, err: &mut dyn Write) -> Result<Outcome, Error> {
    match cli.command {
        Command::Crd(args) => print_crd(args.kind, out),
        Command::Validate(args) => validate_files(&args, out, err),
        Command::Render(args) => render(&args, out, err),
        Command::Plan(args) => plan::plan(&args, out, err),
        Command::Why(args) => why::why(&args, out),
        Command::Report(args) => report::report(&args, out),
        Command::Run(args) => match crate::run::run(args) {
            Ok(()) => Ok(Outcome::Success),
            Err(error) => {
                writeln!(err, "error: {error}")?;
                Ok(Outcome::Problems)
            }
        },
    }
}

fn print_crd(kind: Option<CrdKind>, out: &mut dyn Write) -> Result<Outcome, Error> {
    match kind {
        Some(kind) => out.write_all(crd_yaml(kind)?.as_bytes())?,
        None => {
            out.write_all(crd_yaml(CrdKind::Productionprofiles)?.as_bytes())?;
            out.write_all(b"---\n")?;
            out.write_all(crd_yaml(CrdKind::Profileexceptions)?.as_bytes())?;
        }
    }
    Ok(Outcome::Success)
}

/// A CRD as `baseliner crd KIND` prints it and `crds/` holds it.
pub fn crd_yaml(kind: CrdKind) -> Result<String, Error> {
    let crd = match kind {
        CrdKind::Productionprofiles => ProductionProfile::crd(),
        CrdKind::Profileexceptions => ProfileException::crd(),
    };
    serde_saphyr::to_string(&crd).map_err(|e| Error::Yaml(e.to_string()))
}

fn validate_files(
    args: &ValidateArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Outcome, Error> {
    let identity =
        (args.as_user.is_some() || !args.as_groups.is_empty()).then(|| access_review::Identity {
            user: args.as_user.clone(),
            groups: args.as_groups.clone(),
        });
    let mut reviewer = match &identity {
        Some(identity) => Some(access_review::Reviewer::connect(identity.clone())?),
        None => None,
    };
    let mut outcome = Outcome::Success;
    let mut all: Vec<(String, DocumentReport)> = Vec::new();
    for file in &args.files {
        let name = display_path(file);
        let reports = match read_input(file).and_then(|text| {
            let reports = validate::validate_documents(&text);
            if reports.is_empty() {
                Err(Error::Empty { path: name.clone() })
            } else {
                Ok(reports)
            }
        }) {
            Ok(reports) => reports,
            Err(Error::Write(e)) => return Err(Error::Write(e)),
            Err(error) => {
                writeln!(err, "{error}")?;
                outcome = Outcome::Problems;
                continue;
            }
        };
        for report in &reports {
            if let Some(reviewer) = &mut reviewer {
                let denied = match (&report.profile, &report.exception) {
                    (Some(profile), _) => reviewer.denied(&profile.spec)?,
                    (_, Some(exception)) => reviewer.denied_exception(&exception.spec)?,
                    _ => Vec::new(),
                };
                for line in &denied {
                    writeln!(err, "{name}: {}: {line}", report.label())?;
                }
                if !denied.is_empty() {
                    outcome = Outcome::Problems;
                    if report.is_valid() {
                        continue;
                    }
                }
            }
            if report.is_valid() {
                writeln!(out, "{name}: {}: ok", report.label())?;
            } else {
                write_problems(&name, report, err)?;
                outcome = Outcome::Problems;
            }
        }
        all.extend(reports.into_iter().map(|r| (name.clone(), r)));
    }
    // An exception against a profile given with it: the controls it waives
    // must be there.
    let profiles: Vec<&ProductionProfile> =
        all.iter().filter_map(|(_, r)| r.profile.as_ref()).collect();
    for (file, report) in &all {
        let Some(exception) = &report.exception else {
            continue;
        };
        for (_, problem) in validate::check_exceptions_against(&[exception], &profiles) {
            writeln!(err, "{file}: {}: {problem}", report.label())?;
            outcome = Outcome::Problems;
        }
    }
    Ok(outcome)
}

fn write_problems(file: &str, report: &DocumentReport, err: &mut dyn Write) -> io::Result<()> {
    for problem in &report.problems {
        writeln!(err, "{file}: {}: {problem}", report.label())?;
    }
    Ok(())
}

fn render(args: &RenderArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<Outcome, Error> {
    let namespace = namespace_info(args)?;
    let file = display_path(&args.profile);
    let text = read_input(&args.profile)?;
    let reports = validate::validate_documents(&text);
    let report = match reports.as_slice() {
        [] => return Err(Error::Empty { path: file }),
        [report] => report,
        _ => {
            return Err(Error::NotOneDocument {
                path: file,
                count: reports.len(),
            });
        }
    };
    let Some(profile) = &report.profile else {
        write_problems(&file, report, err)?;
        return Ok(Outcome::Problems);
    };

    if !selects(profile, &namespace, &SelectionContext::default()) {
        writeln!(
            err,
            "{file}: {}: does not select namespace {:?}: {}; nothing to render",
            report.label(),
            namespace.name,
            why_not_selected(profile, &namespace)
        )?;
        return Ok(Outcome::NotSelected);
    }

    let options = args.roles.render_options();
    let rendered = render_namespace(profile, &namespace, &options);
    let mut objects = Vec::new();
    if !rendered.namespace_labels.is_empty() {
        objects.push(namespace_object(
            &namespace.name,
            &rendered.namespace_labels,
        ));
    }
    objects.extend(rendered.objects.iter().map(|object| object.to_json()));
    write_objects(&objects, args.output, out)?;

    for problem in &rendered.problems {
        writeln!(
            err,
            "{file}: {}: {}: {} ({})",
            report.label(),
            problem.field,
            problem.message,
            problem.reason
        )?;
    }
    Ok(if rendered.problems.is_empty() {
        Outcome::Success
    } else {
        Outcome::Problems
    })
}

fn write_objects(
    objects: &[Value],
    format: OutputFormat,
    out: &mut dyn Write,
) -> Result<(), Error> {
    match format {
        OutputFormat::Json => {
            write_json(
                out,
                &json!({"apiVersion": "v1", "kind": "List", "items": objects}),
            )?;
        }
        OutputFormat::Yaml => {
            for (index, object) in objects.iter().enumerate() {
                if index > 0 {
                    writeln!(out, "---")?;
                }
                let text =
                    serde_saphyr::to_string(object).map_err(|e| Error::Yaml(e.to_string()))?;
                out.write_all(text.as_bytes())?;
            }
        }
    }
    Ok(())
}

/// `value` as indented JSON and a newline.
fn write_json(out: &mut dyn Write, value: &impl serde::Serialize) -> Result<(), Error> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::Format(e.to_string()))?;
    writeln!(out, "{text}")?;
    Ok(())
}

/// The namespace as the API server would hold it: the given labels plus
/// `kubernetes.io/metadata.name`, which the API server always sets.
fn namespace_info(args: &RenderArgs) -> Result<NamespaceInfo, Error> {
    if !is_dns1123_label(&args.namespace) {
        return Err(Error::NamespaceName(args.namespace.clone()));
    }
    let mut labels: BTreeMap<String, String> = args.labels.iter().cloned().collect();
    for (key, value) in &labels {
        let invalid = |reason: String| Error::Label {
            key: key.clone(),
            value: value.clone(),
            reason,
        };
        check_label_key(key).map_err(|why| invalid(format!("invalid key: {why}")))?;
        check_label_value(value).map_err(|why| invalid(format!("invalid value: {why}")))?;
    }
    labels.insert(NAMESPACE_NAME_LABEL.to_owned(), args.namespace.clone());
    Ok(NamespaceInfo {
        name: args.namespace.clone(),
        labels,
    })
}

fn why_not_selected(profile: &ProductionProfile, namespace: &NamespaceInfo) -> String {
    let why = explain_selection(profile, namespace, &SelectionContext::default());
    if why.starts_with("its labels do not match") {
        format!("{why} (pass the namespace's labels with --label KEY=VALUE)")
    } else {
        why
    }
}

fn read_input(path: &Path) -> Result<String, Error> {
    let name = display_path(path);
    let read_error = |source| Error::Read {
        path: name.clone(),
        source,
    };
    if path == Path::new("-") {
        let mut text = String::new();
        io::stdin().read_to_string(&mut text).map_err(read_error)?;
        return Ok(text);
    }
    if path.is_dir() {
        return Err(Error::Directory { path: name });
    }
    std::fs::read_to_string(path).map_err(read_error)
}

fn display_path(path: &Path) -> String {
    if path == Path::new("-") {
        "<stdin>".to_owned()
    } else {
        path.display().to_string()
    }
}

fn parse_label(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}

impl fmt::Display for OutputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Yaml => "yaml",
            Self::Json => "json",
        })
    }
}
