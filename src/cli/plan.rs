//! `baseliner plan -f FILE_OR_DIR...`: what applying profile manifests
//! would do to the live cluster ([`crate::inspect::preview`]), as text,
//! JSON or Markdown.

use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};

use anstyle::{AnsiColor, Style};

use super::{ClusterArgs, Error, Outcome, display_path, read_input};
use crate::api::exception::ProfileException;
use crate::api::{PROFILE_LABEL, ProductionProfile};
use crate::inspect::outcome::FieldChange;
use crate::inspect::preview::{
    Action, Grant, NamespacePreview, OwnerView, Preview, ProfileChange, ProfilePreview,
    apply_exceptions, apply_profiles, preview,
};
use crate::inspect::snapshot::{Scope, Snapshot, connect};
use crate::validate;

/// Namespaces a Markdown plan details; the rest are counted (a pull
/// request comment holds 65,536 characters).
const MARKDOWN_NAMESPACES: usize = 50;

/// Arguments of `baseliner plan`.
#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// Profile manifests: files, or directories of `.yaml`, `.yml` and
    /// `.json` files (not recursive), as `kubectl apply -f` takes them.
    #[arg(
        short = 'f',
        long = "filename",
        required = true,
        value_name = "FILE_OR_DIR"
    )]
    pub files: Vec<PathBuf>,

    /// Plan the deletion of live profiles the files do not hold (as
    /// `kubectl apply --prune` would, for ProductionProfiles).
    #[arg(long)]
    pub prune: bool,

    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = PlanFormat::Text)]
    pub output: PlanFormat,

    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// How `plan` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PlanFormat {
    /// For a terminal (coloured when it is one).
    Text,
    /// The whole plan as JSON.
    Json,
    /// For a pull-request comment.
    Markdown,
}

pub(super) fn plan(
    args: &PlanArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Outcome, Error> {
    let Some((files, exception_files)) = read_profiles(&args.files, err)? else {
        return Ok(Outcome::Problems);
    };
    let settings = args.cluster.settings();
    let runtime = super::runtime()?;
    let snapshot = runtime.block_on(async {
        let client = connect(args.cluster.context.as_deref()).await?;
        Snapshot::read(&client, &Scope::Cluster).await
    })?;
    let (after, profiles) = apply_profiles(&snapshot.profiles, &files, args.prune);
    let after_exceptions = apply_exceptions(&snapshot.exceptions, &exception_files, settings.now);
    let preview = preview(&snapshot, &after, &after_exceptions, profiles, &settings);
    match args.output {
        PlanFormat::Json => super::write_json(out, &preview)?,
        PlanFormat::Markdown => out.write_all(markdown(&preview).as_bytes())?,
        PlanFormat::Text => out.write_all(super::colour(&text(&preview)).as_bytes())?,
    }
    Ok(if preview.has_changes() {
        Outcome::Changes
    } else {
        Outcome::Success
    })
}

/// The valid profiles and exceptions in `paths`; `None` (after printing the
/// problems) if any document is invalid. Documents of other kinds are
/// skipped.
fn read_profiles(
    paths: &[PathBuf],
    err: &mut dyn Write,
) -> Result<Option<ProfilesAndExceptions>, Error> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|source| Error::Read {
                    path: display_path(path),
                    source,
                })?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|p| is_manifest(p))
                .collect();
            entries.sort();
            files.extend(entries);
        } else {
            files.push(path.clone());
        }
    }
    let mut profiles = Vec::new();
    let mut exceptions = Vec::new();
    let mut valid = true;
    for file in &files {
        let name = display_path(file);
        for report in validate::validate_documents(&read_input(file)?) {
            if let Some(profile) = report.profile {
                profiles.push(profile);
                continue;
            }
            if let Some(exception) = report.exception {
                exceptions.push(exception);
                continue;
            }
            if report.problems.iter().all(|p| p.path == "kind") {
                writeln!(
                    err,
                    "{name}: {}: skipped: not a ProductionProfile or ProfileException",
                    report.label()
                )?;
                continue;
            }
            valid = false;
            for problem in &report.problems {
                writeln!(err, "{name}: {}: {problem}", report.label())?;
            }
        }
    }
    Ok(valid.then_some((profiles, exceptions)))
}

type ProfilesAndExceptions = (Vec<ProductionProfile>, Vec<ProfileException>);

fn is_manifest(path: &Path) -> bool {
    path.is_file()
        && path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
}

const ADD: Style = AnsiColor::Green.on_default();
const CHANGE: Style = AnsiColor::Yellow.on_default();
const REMOVE: Style = AnsiColor::Red.on_default();
const QUIET: Style = Style::new().dimmed();
const BOLD: Style = Style::new().bold();

fn action_style(action: Action) -> (&'static str, Style) {
    match action {
        Action::Create => ("+", ADD),
        Action::Update => ("~", CHANGE),
        Action::Replace => ("-/+", CHANGE),
        Action::Delete => ("-", REMOVE),
        Action::Orphan => ("o", CHANGE),
        Action::Report => ("?", QUIET),
        Action::Held => ("!", REMOVE),
    }
}

fn action_word(action: Action) -> &'static str {
    match action {
        Action::Create => "create",
        Action::Update => "update",
        Action::Replace => "replace",
        Action::Delete => "delete",
        Action::Orphan => "orphan",
        Action::Report => "report only (Audit)",
        Action::Held => "held back",
    }
}

fn owner_text(owner: &Option<OwnerView>) -> String {
    match owner {
        None => "no profile".to_owned(),
        Some(owner) => format!(
            "{} (priority {}, {:?})",
            owner.profile, owner.priority, owner.mode
        ),
    }
}

fn value_text(value: &Option<serde_json::Value>) -> String {
    value
        .as_ref()
        .map_or_else(|| "absent".to_owned(), |v| v.to_string())
}

fn change_text(change: &FieldChange) -> String {
    format!(
        "{}: {} → {}",
        change.path,
        value_text(&change.before),
        value_text(&change.after)
    )
}

/// The changes worth a reviewer's line: a namespace moving to another
/// profile rewrites baseliner's owner label and owner reference on every
/// object, which is said once as `ownership` instead.
fn shown_changes(changes: &[FieldChange]) -> (Vec<&FieldChange>, bool) {
    let ownership = |c: &&FieldChange| {
        c.path == format!("metadata.labels.{PROFILE_LABEL}")
            || c.path.starts_with("metadata.ownerReferences")
    };
    let moved = changes.iter().any(|c| ownership(&c));
    (changes.iter().filter(|c| !ownership(c)).collect(), moved)
}

fn grant_text(grant: &Grant, to: &str) -> String {
    format!(
        "{}/{}: ClusterRole {} {to} {}",
        grant.namespace,
        grant.binding,
        grant.cluster_role,
        grant.subjects.join(", ")
    )
}

fn summary_line(preview: &Preview) -> String {
    let s = &preview.summary;
    let mut line = format!(
        "{} namespace{}: {} to create, {} to update, {} to replace, {} to delete, {} to orphan, {} namespace{} relabelled",
        s.namespaces,
        if s.namespaces == 1 { "" } else { "s" },
        s.creates,
        s.updates,
        s.replaces,
        s.deletions,
        s.orphans,
        s.namespace_writes,
        if s.namespace_writes == 1 { "" } else { "s" },
    );
    if s.reported > 0 {
        let _ = write!(line, "; {} differences reported only (Audit)", s.reported);
    }
    if s.held > 0 {
        let _ = write!(line, "; {} grants held back", s.held);
    }
    line
}

/// The profiles the files change.
fn changed_profiles(preview: &Preview) -> Vec<&ProfilePreview> {
    preview
        .profiles
        .iter()
        .filter(|p| p.change != ProfileChange::Unchanged)
        .collect()
}

/// The plan for a terminal, with ANSI colours (stripped when not one).
pub fn text(preview: &Preview) -> String {
    let mut text = String::new();
    let changed = changed_profiles(preview);
    if changed.is_empty() {
        text.push_str("Profiles: no change\n");
    } else {
        text.push_str(&format!("{BOLD}Profiles{BOLD:#}\n"));
        for profile in changed {
            let (sign, style, word) = match profile.change {
                ProfileChange::Created => ("+", ADD, "created"),
                ProfileChange::Changed => ("~", CHANGE, "changed"),
                ProfileChange::Deleted => ("-", REMOVE, "deleted (--prune)"),
                ProfileChange::Unchanged => continue,
            };
            text.push_str(&format!(
                "  {style}{sign} {}{style:#} {word}\n",
                profile.name
            ));
        }
    }
    for namespace in &preview.namespaces {
        text.push('\n');
        namespace_text(namespace, &mut text);
    }
    text.push_str(&format!(
        "\n{BOLD}Summary{BOLD:#}: {}\n",
        summary_line(preview)
    ));
    if preview.summary.unrelated_pending > 0 {
        text.push_str(&format!(
            "{QUIET}{} other namespaces have drift the operator will heal with or without this change (baseliner report lists it){QUIET:#}\n",
            preview.summary.unrelated_pending
        ));
    }
    for (title, grants, to, style) in [
        ("RoleBindings granted", &preview.summary.granted, "to", ADD),
        (
            "RoleBindings revoked",
            &preview.summary.revoked,
            "from",
            REMOVE,
        ),
    ] {
        if grants.is_empty() {
            continue;
        }
        text.push_str(&format!("{BOLD}{title}{BOLD:#} ({})\n", grants.len()));
        for grant in grants {
            text.push_str(&format!("  {style}{}{style:#}\n", grant_text(grant, to)));
        }
    }
    if let Some(why) = &preview.grants_held_because {
        text.push_str(&format!("{REMOVE}Grants are held back: {why}{REMOVE:#}\n"));
    }
    text
}

fn namespace_text(namespace: &NamespacePreview, text: &mut String) {
    let owners = if namespace.owner_before == namespace.owner_after {
        owner_text(&namespace.owner_after)
    } else {
        format!(
            "{} → {}",
            owner_text(&namespace.owner_before),
            owner_text(&namespace.owner_after)
        )
    };
    text.push_str(&format!(
        "{BOLD}Namespace {}{BOLD:#}: {owners}",
        namespace.namespace
    ));
    if !namespace.conflicts.is_empty() {
        text.push_str(&format!(
            "; also selected by {}",
            namespace.conflicts.join(", ")
        ));
    }
    text.push('\n');
    for object in &namespace.objects {
        let (sign, style) = action_style(object.action);
        let pending = if object.pending {
            " (pending without this change)"
        } else {
            ""
        };
        text.push_str(&format!(
            "  {style}{sign} {} {}/{}{style:#} {}{QUIET}{pending}{QUIET:#}\n",
            object.kind,
            object.namespace,
            object.name,
            action_word(object.action)
        ));
        let (changes, moved) = shown_changes(&object.changes);
        if moved {
            text.push_str("      ownership (profile label, owner reference)\n");
        }
        for change in changes {
            text.push_str(&format!("      {}\n", change_text(change)));
        }
        if let Some(detail) = &object.detail {
            text.push_str(&format!("      {detail}\n"));
        }
    }
    let labels = &namespace.labels;
    if labels.writes || labels.detail.is_some() {
        let mut parts: Vec<String> = labels
            .set
            .iter()
            .map(|(k, v)| format!("{ADD}+{k}={v}{ADD:#}"))
            .collect();
        parts.extend(
            labels
                .remove
                .iter()
                .map(|k| format!("{REMOVE}-{k}{REMOVE:#}")),
        );
        if labels.writes && parts.is_empty() {
            parts.push("baseliner's owner markers only".to_owned());
        }
        if let Some(detail) = &labels.detail {
            parts.push(detail.clone());
        }
        text.push_str(&format!("  labels: {}\n", parts.join(" ")));
    }
    for problem in &namespace.problems {
        text.push_str(&format!("  {REMOVE}problem:{REMOVE:#} {problem}\n"));
    }
}

/// The plan as a Markdown pull-request comment.
pub fn markdown(preview: &Preview) -> String {
    let mut md = String::from("### baseliner plan\n\n");
    md.push_str(&format!("**{}**\n\n", summary_line(preview)));
    let changed = changed_profiles(preview);
    if !changed.is_empty() {
        md.push_str("| Profile | Change |\n|---|---|\n");
        for profile in changed {
            md.push_str(&format!("| `{}` | {:?} |\n", profile.name, profile.change));
        }
        md.push('\n');
    }
    for (title, grants, to) in [
        ("RoleBindings granted", &preview.summary.granted, "to"),
        ("RoleBindings revoked", &preview.summary.revoked, "from"),
    ] {
        if grants.is_empty() {
            continue;
        }
        md.push_str(&format!("#### {title} ({})\n\n", grants.len()));
        for grant in grants {
            md.push_str(&format!("- `{}`\n", grant_text(grant, to)));
        }
        md.push('\n');
    }
    if let Some(why) = &preview.grants_held_because {
        md.push_str(&format!("> **Grants are held back:** {}\n\n", cell(why)));
    }
    for namespace in preview.namespaces.iter().take(MARKDOWN_NAMESPACES) {
        md.push_str(&format!("#### Namespace `{}`\n\n", namespace.namespace));
        if namespace.owner_before == namespace.owner_after {
            md.push_str(&format!("Owner: {}", owner_text(&namespace.owner_after)));
        } else {
            md.push_str(&format!(
                "Owner: {} → **{}**",
                owner_text(&namespace.owner_before),
                owner_text(&namespace.owner_after)
            ));
        }
        if !namespace.conflicts.is_empty() {
            md.push_str(&format!(
                "; also selected by {}",
                namespace.conflicts.join(", ")
            ));
        }
        md.push_str("\n\n| Action | Object | What changes |\n|---|---|---|\n");
        for object in &namespace.objects {
            let (changes, moved) = shown_changes(&object.changes);
            let mut what: Vec<String> = moved
                .then(|| "ownership".to_owned())
                .into_iter()
                .chain(changes.into_iter().map(change_text))
                .collect();
            what.extend(object.detail.clone());
            if object.pending {
                what.push("pending without this change".to_owned());
            }
            md.push_str(&format!(
                "| {} | {} `{}/{}` | {} |\n",
                action_word(object.action),
                object.kind,
                object.namespace,
                object.name,
                cell(&what.join("; "))
            ));
        }
        let labels = &namespace.labels;
        if labels.writes || labels.detail.is_some() {
            let mut what: Vec<String> = labels
                .set
                .iter()
                .map(|(k, v)| format!("set {k}={v}"))
                .collect();
            what.extend(labels.remove.iter().map(|k| format!("remove {k}")));
            what.extend(labels.detail.clone());
            md.push_str(&format!(
                "| {} | Namespace `{}` labels | {} |\n",
                if labels.writes {
                    "update"
                } else {
                    "report only"
                },
                namespace.namespace,
                cell(&what.join("; "))
            ));
        }
        for problem in &namespace.problems {
            md.push_str(&format!("| problem | | {} |\n", cell(problem)));
        }
        md.push('\n');
    }
    if preview.namespaces.len() > MARKDOWN_NAMESPACES {
        md.push_str(&format!(
            "…and {} more namespaces (`baseliner plan -o json` lists every one).\n",
            preview.namespaces.len() - MARKDOWN_NAMESPACES
        ));
    }
    md
}

/// Text safe inside a Markdown table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}
