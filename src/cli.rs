//! The `baseliner` command line: `crd`, `validate` and `render`, the
//! offline half a GitOps pipeline runs without a cluster, and `run`, the
//! operator itself.

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
use crate::api::{NAMESPACE_NAME_LABEL, ProductionProfile};
use crate::namespace::NamespaceInfo;
use crate::render::{
    DEFAULT_ALLOWED_CLUSTER_ROLES, RenderOptions, namespace_object, render_namespace,
};
use crate::selection::{SelectionContext, selects};
use crate::syntax::{check_label_key, check_label_value, is_dns1123_label};
use crate::validate::{self, DocumentReport};

/// Exit code when a profile does not select the namespace given to `render`.
pub const EXIT_NOT_SELECTED: u8 = 3;

/// Reconcile namespaces to a declared production baseline.
#[derive(Debug, Parser)]
#[command(name = "baseliner", version, about, max_term_width = 100)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the ProductionProfile CustomResourceDefinition as YAML.
    Crd,
    /// Check ProductionProfile manifests without a cluster.
    ///
    /// Applies the CRD's schema and CEL rules, as the API server would, and
    /// checks what the API server cannot: label selectors, CIDRs, cron
    /// schedules, TTLs and subject templates. Prints one line per problem
    /// (`FILE: document N (NAME): FIELD: MESSAGE`) and exits 1 if there is
    /// any; prints `ok` per valid document and exits 0 otherwise.
    ///
    /// With `--as-user` or `--as-group` it also asks the cluster in
    /// $KUBECONFIG (SubjectAccessReviews, which need `create` on
    /// `subjectaccessreviews`) whether that identity holds, cluster-wide,
    /// every right creating each profile implies: the rule the API server
    /// enforces at admission. A missing right is a problem line naming the
    /// field and the permission.
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

    /// ClusterRoles the operator may bind (its --allowed-cluster-roles).
    #[arg(
        long,
        value_name = "ROLE,...",
        value_delimiter = ',',
        default_values_t = DEFAULT_ALLOWED_CLUSTER_ROLES.map(str::to_owned)
    )]
    pub allowed_cluster_roles: Vec<String>,

    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Yaml)]
    pub output: OutputFormat,
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
    /// `render`: the profile does not select the namespace (exit 3).
    NotSelected,
}

impl From<Outcome> for ExitCode {
    fn from(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Success => ExitCode::SUCCESS,
            Outcome::Problems => ExitCode::FAILURE,
            Outcome::NotSelected => ExitCode::from(EXIT_NOT_SELECTED),
        }
    }
}

/// Runs a parsed command line, writing results to `out` and diagnostics to
/// `err`.
pub fn run(cli: Cli, out: &mut dyn Write, err: &mut dyn Write) -> Result<Outcome, Error> {
    match cli.command {
        Command::Crd => print_crd(out),
        Command::Validate(args) => validate_files(&args, out, err),
        Command::Render(args) => render(&args, out, err),
        Command::Run(args) => match crate::run::run(args) {
            Ok(()) => Ok(Outcome::Success),
            Err(error) => {
                writeln!(err, "error: {error}")?;
                Ok(Outcome::Problems)
            }
        },
    }
}

fn print_crd(out: &mut dyn Write) -> Result<Outcome, Error> {
    out.write_all(crd_yaml()?.as_bytes())?;
    Ok(Outcome::Success)
}

/// The CRD as `baseliner crd` prints it and `crds/` holds it.
pub fn crd_yaml() -> Result<String, Error> {
    serde_saphyr::to_string(&ProductionProfile::crd()).map_err(|e| Error::Yaml(e.to_string()))
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
            if let (Some(reviewer), Some(profile)) = (&mut reviewer, &report.profile) {
                let denied = reviewer.denied(&profile.spec)?;
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

    let options = RenderOptions {
        allowed_cluster_roles: args.allowed_cluster_roles.iter().cloned().collect(),
    };
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
            let list = json!({"apiVersion": "v1", "kind": "List", "items": objects});
            let text =
                serde_json::to_string_pretty(&list).map_err(|e| Error::Yaml(e.to_string()))?;
            writeln!(out, "{text}")?;
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
    let selection = &profile.spec.namespaces;
    let context = SelectionContext::default();
    if selection.exclude.contains(&namespace.name) {
        "it is listed in spec.namespaces.exclude".to_owned()
    } else if selection.selector.is_none() {
        "it is not listed in spec.namespaces.include and the profile has no selector".to_owned()
    } else if context.is_system_namespace(&namespace.name) {
        "system namespaces are selected only when listed in spec.namespaces.include".to_owned()
    } else {
        "its labels do not match spec.namespaces.selector (pass the namespace's labels with --label KEY=VALUE)".to_owned()
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
