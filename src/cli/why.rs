//! `baseliner why NAMESPACE`: which profile owns a namespace and why, which
//! others select it and lose, what is in place, what is missing or
//! drifted, and what baseliner last did there.

use std::io::Write;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Event;
use kube::ResourceExt;
use serde::Serialize;

use super::{ClusterArgs, Error, Outcome};
use crate::api::{Mode, ProductionProfile};
use crate::exception::{Phase, assess, covers};
use crate::inspect::evidence::{ExceptionView, NamespaceEvidence, namespace_evidence};
use crate::inspect::outcome::namespace_outcome;
use crate::inspect::snapshot::{Scope, Snapshot, connect, event_time, profile_events};
use crate::namespace::NamespaceInfo;
use crate::selection::{decide_owner, explain_selection, selects};

/// Events of baseliner's about the namespace shown.
const RECENT_EVENTS: usize = 5;

/// Arguments of `baseliner why`.
#[derive(Debug, clap::Args)]
pub struct WhyArgs {
    /// The namespace.
    pub namespace: String,

    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = WhyFormat::Text)]
    pub output: WhyFormat,

    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// How `why` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum WhyFormat {
    /// For a terminal.
    Text,
    /// As JSON.
    Json,
}

/// What one profile makes of the namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Verdict {
    /// It owns the namespace.
    Owner,
    /// It selects the namespace and loses to the owner.
    Loses,
    /// It does not select the namespace.
    NotSelected,
    /// It is being deleted and owns nothing.
    Deleting,
}

/// One profile's view of the namespace.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProfileVerdict {
    pub profile: String,
    pub priority: i32,
    pub mode: Mode,
    pub verdict: Verdict,
    /// Why, in words.
    pub because: String,
}

/// One thing baseliner did, from its Events.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Action {
    pub time: String,
    pub profile: String,
    pub reason: String,
    pub message: String,
}

/// An exception that names or selects the namespace, and where it stands.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExceptionVerdict {
    #[serde(flatten)]
    pub exception: ExceptionView,
    pub profile: String,
    /// Whether it waives anything here now.
    pub in_force: bool,
    /// InForce, ExpiringSoon, Expired, NotOwner, or what makes it invalid.
    pub state: String,
    /// Why, in words, when it is not in force.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub because: String,
}

/// The whole answer.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Why {
    pub namespace: String,
    pub owner: Option<String>,
    pub profiles: Vec<ProfileVerdict>,
    /// The exceptions that name or select the namespace.
    pub exceptions: Vec<ExceptionVerdict>,
    /// The owner's controls; `None` when no profile owns the namespace.
    pub evidence: Option<NamespaceEvidence>,
    /// The last things baseliner did there, newest last.
    pub recent_actions: Vec<Action>,
}

pub(super) fn why(args: &WhyArgs, out: &mut dyn Write) -> Result<Outcome, Error> {
    let runtime = super::runtime()?;
    let (snapshot, events) = runtime.block_on(async {
        let client = connect(args.cluster.context.as_deref()).await?;
        let snapshot = Snapshot::read(&client, &Scope::Namespace(args.namespace.clone())).await?;
        let events = profile_events(&client).await?;
        Ok::<_, Error>((snapshot, events))
    })?;
    let why = explain(
        &snapshot,
        &args.namespace,
        &events,
        &args.cluster.settings(),
    );
    match args.output {
        WhyFormat::Json => super::write_json(out, &why)?,
        WhyFormat::Text => out.write_all(super::colour(&text(&why)).as_bytes())?,
    }
    Ok(Outcome::Success)
}

/// Explains namespace `name` of the snapshot.
pub fn explain(
    snapshot: &Snapshot,
    name: &str,
    events: &[Event],
    settings: &crate::inspect::outcome::Settings,
) -> Why {
    let Some(namespace) = snapshot.namespaces.get(name) else {
        return Why {
            namespace: name.to_owned(),
            owner: None,
            profiles: Vec::new(),
            exceptions: Vec::new(),
            evidence: None,
            recent_actions: Vec::new(),
        };
    };
    let info = NamespaceInfo {
        name: name.to_owned(),
        labels: namespace.labels(),
    };
    let ownership = decide_owner(&snapshot.profiles, &info, &settings.selection);
    let owner = ownership.owner.map(|p| p.name_any());
    let mut profiles: Vec<ProfileVerdict> = snapshot
        .profiles
        .iter()
        .map(|profile| {
            let selected = selects(profile, &info, &settings.selection);
            let mut because = explain_selection(profile, &info, &settings.selection);
            let verdict = if profile.metadata.deletion_timestamp.is_some() {
                because = "it is being deleted".to_owned();
                Verdict::Deleting
            } else if Some(profile.name_any()) == owner {
                Verdict::Owner
            } else if selected {
                because = lost_to(profile, ownership.owner);
                Verdict::Loses
            } else {
                Verdict::NotSelected
            };
            ProfileVerdict {
                profile: profile.name_any(),
                priority: profile.spec.priority,
                mode: profile.spec.mode,
                verdict,
                because,
            }
        })
        .collect();
    profiles.sort_by_key(|p| {
        (
            p.verdict != Verdict::Owner,
            p.verdict != Verdict::Loses,
            -p.priority,
        )
    });
    let arcs: Vec<_> = snapshot.profiles.iter().cloned().map(Arc::new).collect();
    let outcome = namespace_outcome(
        snapshot,
        &arcs,
        &snapshot.exceptions,
        settings,
        namespace,
        &snapshot.live_serving(name),
    );
    let evidence = ownership
        .owner
        .map(|profile| namespace_evidence(&outcome, namespace, profile));
    let in_force = outcome.plan.exceptions.names();
    let exceptions = snapshot
        .exceptions
        .iter()
        .filter(|e| covers(e, &info))
        .map(|exception| {
            let profile = snapshot
                .profiles
                .iter()
                .find(|p| p.name_any() == exception.spec.profile);
            let phase = assess(exception, profile, settings.now, &settings.exceptions).phase;
            let name = exception.name_any();
            let (state, because) = if in_force.contains(&name) {
                (phase.reason().as_str().to_owned(), String::new())
            } else {
                match &phase {
                    Phase::Invalid(problems) => (
                        phase.reason().as_str().to_owned(),
                        problems
                            .iter()
                            .map(|p| format!("{}: {}", p.field, p.message))
                            .collect::<Vec<_>>()
                            .join("; "),
                    ),
                    Phase::Expired => ("Expired".to_owned(), "it has ended".to_owned()),
                    _ if owner.as_deref() != Some(exception.spec.profile.as_str()) => (
                        "NotOwner".to_owned(),
                        format!(
                            "its profile {} does not own the namespace",
                            exception.spec.profile
                        ),
                    ),
                    _ => (
                        "AuthorRightsNotEnforced".to_owned(),
                        "the author-rights policies are not in force, so no exception is honoured"
                            .to_owned(),
                    ),
                }
            };
            ExceptionVerdict {
                exception: ExceptionView::of(exception),
                profile: exception.spec.profile.clone(),
                in_force: in_force.contains(&name),
                state,
                because,
            }
        })
        .collect();
    Why {
        namespace: name.to_owned(),
        owner,
        profiles,
        exceptions,
        evidence,
        recent_actions: recent_actions(events, name),
    }
}

fn lost_to(profile: &ProductionProfile, owner: Option<&ProductionProfile>) -> String {
    match owner {
        Some(owner) if owner.spec.priority > profile.spec.priority => format!(
            "it selects the namespace, but {} has a higher priority ({} > {})",
            owner.name_any(),
            owner.spec.priority,
            profile.spec.priority
        ),
        Some(owner) => format!(
            "it selects the namespace, but {} has the same priority ({}) and its name sorts first",
            owner.name_any(),
            owner.spec.priority
        ),
        None => "it selects the namespace".to_owned(),
    }
}

/// baseliner's Events that name the namespace or one of its objects, each
/// cut down to the items about this namespace.
fn recent_actions(events: &[Event], namespace: &str) -> Vec<Action> {
    let object = format!(" {namespace}/");
    let labels = format!(" Namespace {namespace} ");
    let about = |item: &str| item.contains(&object) || item.starts_with(&labels);
    let mut actions: Vec<Action> = events
        .iter()
        .filter_map(|event| {
            let message = event.message.as_deref()?;
            // `REASON COUNT: ITEM; ITEM; and N more`, as the operator writes it.
            let items = message.split_once(": ").map_or(message, |(_, items)| items);
            let mine: Vec<&str> = items
                .split("; ")
                .filter(|item| about(&format!(" {item}")))
                .collect();
            (!mine.is_empty()).then(|| Action {
                time: event_time(event).map(|t| t.to_string()).unwrap_or_default(),
                profile: event.involved_object.name.clone().unwrap_or_default(),
                reason: event.reason.clone().unwrap_or_default(),
                message: mine.join("; "),
            })
        })
        .collect();
    let skip = actions.len().saturating_sub(RECENT_EVENTS);
    actions.drain(..skip);
    actions
}

/// The answer for a terminal.
pub fn text(why: &Why) -> String {
    use anstyle::Style;
    let bold = Style::new().bold();
    let mut text = format!("{bold}Namespace {}{bold:#}\n", why.namespace);
    match &why.owner {
        Some(owner) => text.push_str(&format!("Owned by {bold}{owner}{bold:#}\n")),
        None => text.push_str("Owned by no profile\n"),
    }
    for verdict in &why.profiles {
        let word = match verdict.verdict {
            Verdict::Owner => "owns it",
            Verdict::Loses => "loses",
            Verdict::NotSelected => "does not select it",
            Verdict::Deleting => "being deleted",
        };
        text.push_str(&format!(
            "  {} (priority {}, {:?}) {word}: {}\n",
            verdict.profile, verdict.priority, verdict.mode, verdict.because
        ));
    }
    if !why.exceptions.is_empty() {
        text.push_str(&format!("{bold}Exceptions{bold:#}\n"));
        for verdict in &why.exceptions {
            let exception = &verdict.exception;
            let state = if verdict.in_force {
                format!("in force ({})", verdict.state)
            } else {
                format!("not in force ({}): {}", verdict.state, verdict.because)
            };
            text.push_str(&format!(
                "  {} (profile {}) {state}\n      waives {}: {}\n",
                exception.name,
                verdict.profile,
                exception.controls.join(", "),
                exception.because()
            ));
        }
    }
    if let Some(evidence) = &why.evidence {
        text.push_str(&format!("{bold}Controls{bold:#}\n"));
        for control in &evidence.controls {
            let style = super::report::status_style(control.status);
            text.push_str(&format!(
                "  {:18} {style}{}{style:#}\n",
                control.control.title(),
                control.status.word()
            ));
            for item in &control.evidence {
                let name = if item.namespace.is_empty() {
                    item.name.clone()
                } else {
                    format!("{}/{}", item.namespace, item.name)
                };
                let rv = item
                    .resource_version
                    .as_ref()
                    .map(|rv| format!(" (resourceVersion {rv})"))
                    .unwrap_or_default();
                text.push_str(&format!(
                    "      {} {name}{rv}: {}\n",
                    item.kind, item.detail
                ));
            }
        }
    }
    if why.recent_actions.is_empty() {
        text.push_str("No Events of baseliner's name this namespace\n");
    } else {
        text.push_str(&format!("{bold}Last done here{bold:#} (from Events)\n"));
        for action in &why.recent_actions {
            text.push_str(&format!(
                "  {} {} ({}): {}\n",
                action.time, action.reason, action.profile, action.message
            ));
        }
    }
    text
}
