//! `baseliner plan`: what applying a set of profiles would do, namespace by
//! namespace, object by object.
//!
//! The profiles after the change are the live ones with the files applied
//! as `kubectl apply` would (a profile of the same name is replaced, a new
//! one created, and with `prune` one missing from the files deleted). Every
//! namespace is planned twice, before and after, with the controller's own
//! plan ([`super::outcome`]); the preview is the after-plan of each
//! namespace whose owner or steps change. A step the before-plan holds as
//! well is marked `pending`: the operator would take it without the change.

use std::collections::{BTreeMap, BTreeSet};

use kube::ResourceExt;
use serde::Serialize;
use serde_json::Value;

use std::sync::Arc;

use super::outcome::{FieldChange, NamespaceOutcome, ObjectOutcome, Settings, namespace_outcome};
use super::snapshot::Snapshot;
use crate::api::exception::ProfileException;
use crate::api::{Mode, ProductionProfile};
use crate::controller::plan::{LabelStep, Step};
use crate::kind::ManagedKind;

/// What `kubectl apply` would do to one profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ProfileChange {
    /// New.
    Created,
    /// Its spec changes.
    Changed,
    /// Its spec stays as it is.
    Unchanged,
    /// Deleted (`--prune`: not in the files).
    Deleted,
}

/// One profile of the change.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProfilePreview {
    pub name: String,
    pub change: ProfileChange,
}

/// What the operator would do to one object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Action {
    /// Create it.
    Create,
    /// Apply over it: the fields in `changes` differ.
    Update,
    /// Delete and create it (a RoleBinding's roleRef changes).
    Replace,
    /// Delete it.
    Delete,
    /// Leave it, without baseliner's labels.
    Orphan,
    /// Audit: report that it differs; write nothing.
    Report,
    /// A grant held back while the author-rights policy is not in force.
    Held,
}

impl Action {
    fn of(step: &Step) -> Option<Self> {
        Some(match step {
            Step::Create => Self::Create,
            Step::Heal => Self::Update,
            Step::Replace => Self::Replace,
            Step::Prune => Self::Delete,
            Step::Orphan => Self::Orphan,
            Step::Drifted(_) => Self::Report,
            Step::Held(_) => Self::Held,
            Step::InSync | Step::NeedsRead => return None,
        })
    }

    /// Whether the operator writes for it.
    pub fn writes(self) -> bool {
        !matches!(self, Self::Report | Self::Held)
    }
}

/// One object's part of the preview.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectPreview {
    pub action: Action,
    pub kind: ManagedKind,
    pub namespace: String,
    pub name: String,
    /// For an update or replace, what differs (what baseliner owns only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<FieldChange>,
    /// For a report or a held grant, what differs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The operator would do this without the change too.
    pub pending: bool,
}

/// A namespace's owner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OwnerView {
    pub profile: String,
    pub priority: i32,
    pub mode: Mode,
}

/// The Pod Security labels' part of the preview.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelsPreview {
    /// Whether the namespace is written (labels or baseliner's markers).
    pub writes: bool,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub set: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
    /// Audit or held: what would differ.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub pending: bool,
}

/// One namespace whose outcome changes.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NamespacePreview {
    pub namespace: String,
    pub owner_before: Option<OwnerView>,
    pub owner_after: Option<OwnerView>,
    /// Profiles that select the namespace after the change and lose it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<String>,
    pub objects: Vec<ObjectPreview>,
    pub labels: LabelsPreview,
    /// What could not be rendered after the change.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

/// A RoleBinding's grant, as reviewers read it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Grant {
    pub namespace: String,
    pub binding: String,
    pub cluster_role: String,
    /// `Group NAME`, `User NAME` or `ServiceAccount NS/NAME`.
    pub subjects: Vec<String>,
}

/// Totals.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub namespaces: usize,
    pub creates: usize,
    pub updates: usize,
    pub replaces: usize,
    pub deletions: usize,
    pub orphans: usize,
    /// Namespaces whose labels (or baseliner's markers on them) are written.
    pub namespace_writes: usize,
    /// Audit: differences reported, nothing written.
    pub reported: usize,
    pub held: usize,
    pub granted: Vec<Grant>,
    pub revoked: Vec<Grant>,
    /// Namespaces not listed, whose pending writes (drift the operator has
    /// not healed yet) happen with or without the change.
    pub unrelated_pending: usize,
}

/// The whole preview.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Preview {
    pub profiles: Vec<ProfilePreview>,
    pub namespaces: Vec<NamespacePreview>,
    pub summary: Summary,
    /// Why grants would be held back, when they would.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grants_held_because: Option<String>,
}

impl Preview {
    /// Whether applying the files changes anything: a profile, or what the
    /// operator writes.
    pub fn has_changes(&self) -> bool {
        self.profiles
            .iter()
            .any(|p| p.change != ProfileChange::Unchanged)
            || self
                .namespaces
                .iter()
                .any(|n| n.labels.writes || n.objects.iter().any(|o| o.action.writes()))
            || self
                .namespaces
                .iter()
                .any(|n| n.owner_before != n.owner_after)
    }
}

/// The profiles after applying `files` to `live` as `kubectl apply` would,
/// and what happens to each.
pub fn apply_profiles(
    live: &[ProductionProfile],
    files: &[ProductionProfile],
    prune: bool,
) -> (Vec<ProductionProfile>, Vec<ProfilePreview>) {
    let from_files: BTreeMap<String, &ProductionProfile> =
        files.iter().map(|p| (p.name_any(), p)).collect();
    let mut after = Vec::new();
    let mut changes = Vec::new();
    for profile in live {
        let name = profile.name_any();
        match from_files.get(&name) {
            Some(file) if file.spec != profile.spec => {
                let mut changed = profile.clone();
                changed.spec = file.spec.clone();
                changed.metadata.generation = profile.metadata.generation.map(|g| g + 1);
                after.push(changed);
                changes.push(ProfilePreview {
                    name,
                    change: ProfileChange::Changed,
                });
            }
            Some(_) => {
                after.push(profile.clone());
                changes.push(ProfilePreview {
                    name,
                    change: ProfileChange::Unchanged,
                });
            }
            None if prune => changes.push(ProfilePreview {
                name,
                change: ProfileChange::Deleted,
            }),
            None => after.push(profile.clone()),
        }
    }
    let live_names: BTreeSet<String> = live.iter().map(|p| p.name_any()).collect();
    for (name, file) in from_files {
        if !live_names.contains(&name) {
            let mut created = (*file).clone();
            created.metadata.generation = Some(1);
            after.push(created);
            changes.push(ProfilePreview {
                name,
                change: ProfileChange::Created,
            });
        }
    }
    changes.sort_by(|a, b| a.name.cmp(&b.name));
    (after, changes)
}

/// The preview of replacing the snapshot's profiles with `after`.
/// The exceptions after applying `files` over `live` as `kubectl apply`
/// would: same name replaced, new ones created (stamped as created now, so
/// their expiry is judged as the operator will judge it).
pub fn apply_exceptions(
    live: &[Arc<ProfileException>],
    files: &[ProfileException],
    now: k8s_openapi::jiff::Timestamp,
) -> Vec<Arc<ProfileException>> {
    let mut after: Vec<Arc<ProfileException>> = live
        .iter()
        .filter(|e| !files.iter().any(|f| f.name_any() == e.name_any()))
        .cloned()
        .collect();
    for file in files {
        let mut applied = file.clone();
        let existing = live.iter().find(|e| e.name_any() == file.name_any());
        applied.metadata.creation_timestamp = Some(
            existing
                .and_then(|e| e.metadata.creation_timestamp.clone())
                .unwrap_or(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now)),
        );
        after.push(Arc::new(applied));
    }
    after
}

pub fn preview(
    snapshot: &Snapshot,
    after: &[ProductionProfile],
    after_exceptions: &[Arc<ProfileException>],
    profiles: Vec<ProfilePreview>,
    settings: &Settings,
) -> Preview {
    let before_profiles: Vec<Arc<ProductionProfile>> =
        snapshot.profiles.iter().cloned().map(Arc::new).collect();
    let after_profiles: Vec<Arc<ProductionProfile>> = after.iter().cloned().map(Arc::new).collect();
    let mut serving = snapshot.serving_by_namespace();
    let owner = |profiles: &[ProductionProfile], outcome: &NamespaceOutcome| {
        let name = &outcome.plan.owner.as_ref()?.profile;
        let profile = profiles.iter().find(|p| &p.name_any() == name)?;
        Some(OwnerView {
            profile: name.clone(),
            priority: profile.spec.priority,
            mode: profile.spec.mode,
        })
    };
    let mut namespaces = Vec::new();
    let mut grants_held_because = None;
    let mut unrelated_pending = 0;
    let mut grants = Summary::default();
    // One namespace at a time: its two outcomes hold every object's body.
    for (name, namespace) in &snapshot.namespaces {
        let live = serving.remove(name.as_str()).unwrap_or_default();
        let before = &namespace_outcome(
            snapshot,
            &before_profiles,
            &snapshot.exceptions,
            settings,
            namespace,
            &live,
        );
        let after_outcome = &namespace_outcome(
            snapshot,
            &after_profiles,
            after_exceptions,
            settings,
            namespace,
            &live,
        );
        let previewed = namespace_preview(before, after_outcome);
        let owner_before = owner(&snapshot.profiles, before);
        let owner_after = owner(after, after_outcome);
        let changed = owner_before != owner_after
            || previewed.objects.iter().any(|o| !o.pending)
            || (has_label_step(&previewed.labels) && !previewed.labels.pending)
            || before.plan.render_problems != after_outcome.plan.render_problems;
        if !changed {
            if after_outcome.writes() {
                unrelated_pending += 1;
            }
            continue;
        }
        if previewed.objects.iter().any(|o| o.action == Action::Held) {
            grants_held_because = after_outcome.plan.held_because.clone();
        }
        for object in &after_outcome.objects {
            if object.key.kind == ManagedKind::RoleBinding {
                role_binding_grants(object, &mut grants);
            }
        }
        namespaces.push(NamespacePreview {
            namespace: after_outcome.plan.namespace.clone(),
            owner_before,
            owner_after,
            conflicts: after_outcome.plan.conflicts.clone(),
            problems: after_outcome
                .plan
                .render_problems
                .iter()
                .map(|p| format!("{}: {}", p.field, p.message))
                .chain(
                    after_outcome
                        .plan
                        .problems
                        .iter()
                        .map(|p| p.message.clone()),
                )
                .collect(),
            ..previewed
        });
    }
    let mut summary = summarize(&namespaces);
    summary.unrelated_pending = unrelated_pending;
    summary.granted = grants.granted;
    summary.revoked = grants.revoked;
    summary.granted.sort();
    summary.revoked.sort();
    Preview {
        profiles,
        namespaces,
        summary,
        grants_held_because,
    }
}

fn has_label_step(labels: &LabelsPreview) -> bool {
    labels.writes || labels.detail.is_some()
}

/// The after-plan's steps, each marked pending when the before-plan holds
/// the same.
fn namespace_preview(before: &NamespaceOutcome, after: &NamespaceOutcome) -> NamespacePreview {
    let before_actions: BTreeMap<_, _> = before
        .objects
        .iter()
        .filter_map(|o| Some((&o.key, (Action::of(&o.step)?, &o.desired))))
        .collect();
    let objects = after
        .objects
        .iter()
        .filter_map(|object| {
            let action = Action::of(&object.step)?;
            let pending = before_actions.get(&object.key) == Some(&(action, &object.desired));
            Some(ObjectPreview {
                action,
                kind: object.key.kind,
                namespace: object.key.namespace.clone(),
                name: object.key.name.clone(),
                changes: object.changes.clone(),
                detail: match &object.step {
                    Step::Drifted(what) | Step::Held(what) => Some(what.clone()),
                    _ => None,
                },
                pending,
            })
        })
        .collect();
    let detail = match &after.labels.step {
        LabelStep::Drifted(what) | LabelStep::Held(what) => Some(what.clone()),
        _ => None,
    };
    let labels = LabelsPreview {
        writes: after.labels.writes(),
        set: after.labels.set.clone(),
        remove: after.labels.remove.clone(),
        pending: same_label_step(&before.labels.step, &after.labels.step),
        detail,
    };
    NamespacePreview {
        namespace: after.plan.namespace.clone(),
        owner_before: None,
        owner_after: None,
        conflicts: Vec::new(),
        objects,
        labels,
        problems: Vec::new(),
    }
}

fn same_label_step(before: &LabelStep, after: &LabelStep) -> bool {
    match (before, after) {
        (LabelStep::InSync, _) | (_, LabelStep::InSync) => false,
        (LabelStep::Apply { body: a, .. }, LabelStep::Apply { body: b, .. }) => a == b,
        (a, b) => a == b,
    }
}

fn summarize(namespaces: &[NamespacePreview]) -> Summary {
    let mut summary = Summary {
        namespaces: namespaces.len(),
        ..Summary::default()
    };
    for namespace in namespaces {
        if namespace.labels.writes {
            summary.namespace_writes += 1;
        }
        for object in &namespace.objects {
            match object.action {
                Action::Create => summary.creates += 1,
                Action::Update => summary.updates += 1,
                Action::Replace => summary.replaces += 1,
                Action::Delete => summary.deletions += 1,
                Action::Orphan => summary.orphans += 1,
                Action::Report => summary.reported += 1,
                Action::Held => summary.held += 1,
            }
        }
    }
    summary
}

/// What writing a RoleBinding grants and revokes.
fn role_binding_grants(object: &ObjectOutcome, summary: &mut Summary) {
    let grant = |body: &Value, subjects: Vec<String>| Grant {
        namespace: object.key.namespace.clone(),
        binding: object.key.name.clone(),
        cluster_role: body["roleRef"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        subjects,
    };
    let desired = object.desired.as_ref();
    let live = object.live.as_ref();
    match (&object.step, desired, live) {
        (Step::Create, Some(want), _) => summary.granted.push(grant(want, subjects(want))),
        (Step::Replace, Some(want), Some(have)) => {
            summary.revoked.push(grant(have, subjects(have)));
            summary.granted.push(grant(want, subjects(want)));
        }
        (Step::Heal, Some(want), Some(have)) => {
            let (wanted, held) = (subjects(want), subjects(have));
            let added: Vec<String> = wanted
                .iter()
                .filter(|s| !held.contains(s))
                .cloned()
                .collect();
            let removed: Vec<String> = held
                .iter()
                .filter(|s| !wanted.contains(s))
                .cloned()
                .collect();
            if !added.is_empty() {
                summary.granted.push(grant(want, added));
            }
            if !removed.is_empty() {
                summary.revoked.push(grant(have, removed));
            }
        }
        (Step::Prune, _, Some(have)) => summary.revoked.push(grant(have, subjects(have))),
        _ => {}
    }
}

/// A RoleBinding's subjects as `Kind name`.
fn subjects(binding: &Value) -> Vec<String> {
    binding["subjects"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|subject| {
            let kind = subject["kind"].as_str().unwrap_or_default();
            let name = subject["name"].as_str().unwrap_or_default();
            match subject["namespace"].as_str() {
                Some(namespace) if kind == "ServiceAccount" => format!("{kind} {namespace}/{name}"),
                _ => format!("{kind} {name}"),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::author_rights::AuthorRights;
    use crate::controller::namespace::CachedNamespace;
    use k8s_openapi::api::core::v1::Namespace;
    use kube::api::PartialObjectMeta;
    use serde_json::json;

    fn profile(name: &str, generation: i64, spec: &str) -> ProductionProfile {
        let mut profile: ProductionProfile = serde_saphyr::from_str(&format!(
            "apiVersion: baseliner.dev/v1alpha1\nkind: ProductionProfile\nmetadata: {{name: {name}}}\nspec:\n  namespaces: {{selector: {{matchLabels: {{tier: a}}}}}}\n{spec}"
        ))
        .expect("a profile");
        profile.metadata.generation = Some(generation);
        profile
    }

    const QUOTA: &str = "  resourceQuota: {hard: {pods: \"10\"}}\n";
    const LIMITS: &str = "  limitRange: {default: {cpu: 500m}}\n";

    #[test]
    fn files_replace_create_and_with_prune_delete_profiles() {
        let live = [
            profile("a", 3, QUOTA),
            profile("b", 1, QUOTA),
            profile("c", 2, QUOTA),
        ];
        let files = [
            profile("a", 0, LIMITS),
            profile("c", 0, QUOTA),
            profile("d", 0, QUOTA),
        ];
        let (after, changes) = apply_profiles(&live, &files, false);
        let change = |changes: &[ProfilePreview], name: &str| {
            changes.iter().find(|p| p.name == name).map(|p| p.change)
        };
        assert_eq!(change(&changes, "a"), Some(ProfileChange::Changed));
        assert_eq!(change(&changes, "b"), None, "not in the files, not pruned");
        assert_eq!(change(&changes, "c"), Some(ProfileChange::Unchanged));
        assert_eq!(change(&changes, "d"), Some(ProfileChange::Created));
        let a = after.iter().find(|p| p.name_any() == "a").expect("a");
        assert_eq!(
            a.metadata.generation,
            Some(4),
            "a changed spec is a new generation"
        );
        assert!(a.spec.limit_range.is_some() && a.spec.resource_quota.is_none());
        assert_eq!(after.len(), 4);

        let (after, changes) = apply_profiles(&live, &files, true);
        assert_eq!(change(&changes, "b"), Some(ProfileChange::Deleted));
        assert!(after.iter().all(|p| p.name_any() != "b"));
    }

    fn snapshot(profiles: Vec<ProductionProfile>) -> Snapshot {
        let namespace: PartialObjectMeta<Namespace> = serde_json::from_value(json!({
            "apiVersion": "meta.k8s.io/v1",
            "kind": "PartialObjectMetadata",
            "metadata": {"name": "shop", "resourceVersion": "7", "labels": {"tier": "a"}},
        }))
        .expect("a namespace");
        Snapshot {
            namespaces: [("shop".to_owned(), CachedNamespace::from(namespace))].into(),
            profiles,
            author_rights: AuthorRights::Enforced,
            schedules_served: true,
            ..Snapshot::default()
        }
    }

    #[test]
    fn a_new_profile_creates_and_an_audit_one_only_reports() {
        let snapshot = snapshot(Vec::new());
        let settings = Settings::default();
        let files = [profile(
            "p",
            0,
            &format!("{QUOTA}  podSecurity: {{enforce: restricted}}\n"),
        )];
        let (after, profiles) = apply_profiles(&snapshot.profiles, &files, false);
        let preview = super::preview(&snapshot, &after, &snapshot.exceptions, profiles, &settings);
        assert!(preview.has_changes());
        assert_eq!(preview.namespaces.len(), 1);
        let shop = &preview.namespaces[0];
        assert_eq!(shop.owner_before, None);
        assert_eq!(
            shop.owner_after.as_ref().map(|o| o.profile.as_str()),
            Some("p")
        );
        assert_eq!(shop.objects.len(), 1);
        assert_eq!(shop.objects[0].action, Action::Create);
        assert_eq!(shop.objects[0].name, "baseliner-quota");
        assert!(shop.labels.writes);
        assert_eq!(
            shop.labels
                .set
                .get("pod-security.kubernetes.io/enforce")
                .map(String::as_str),
            Some("restricted")
        );
        assert_eq!(
            (preview.summary.creates, preview.summary.namespace_writes),
            (1, 1)
        );

        let audit = [profile("p", 0, &format!("{QUOTA}  mode: Audit\n"))];
        let (after, profiles) = apply_profiles(&snapshot.profiles, &audit, false);
        let preview = super::preview(&snapshot, &after, &snapshot.exceptions, profiles, &settings);
        let shop = &preview.namespaces[0];
        assert_eq!(shop.objects[0].action, Action::Report);
        assert!(!shop.objects[0].action.writes());
        assert_eq!((preview.summary.creates, preview.summary.reported), (0, 1));
    }

    #[test]
    fn an_unchanged_profile_plans_nothing() {
        let live = profile("p", 2, QUOTA);
        let snapshot = snapshot(vec![live.clone()]);
        let (after, profiles) = apply_profiles(&snapshot.profiles, &[live], false);
        let preview = super::preview(
            &snapshot,
            &after,
            &snapshot.exceptions,
            profiles,
            &Settings::default(),
        );
        // The quota is missing, but it was before too: pending drift, not
        // this change's doing.
        assert!(preview.namespaces.is_empty(), "{:?}", preview.namespaces);
        assert_eq!(preview.summary.unrelated_pending, 1);
        assert!(!preview.has_changes());
    }

    #[test]
    fn an_exception_in_the_files_is_planned_with_the_profile() {
        let live = profile("p", 2, QUOTA);
        let snapshot = snapshot(vec![live.clone()]);
        let settings = Settings {
            now: "2026-12-02T00:00:00Z".parse().expect("a timestamp"),
            ..Settings::default()
        };
        let exception: ProfileException = serde_saphyr::from_str(
            "apiVersion: baseliner.dev/v1alpha1\nkind: ProfileException\nmetadata: {name: more-pods}\nspec: {profile: p, namespaces: {names: [shop]}, reason: migration, expires: '2026-12-20T00:00:00Z', replace: {resourceQuota: {hard: {pods: '20'}}}}",
        )
        .expect("an exception");
        let (after, profiles) = apply_profiles(&snapshot.profiles, &[live], false);
        let exceptions = apply_exceptions(&snapshot.exceptions, &[exception], settings.now);
        assert!(exceptions[0].metadata.creation_timestamp.is_some());
        let preview = super::preview(&snapshot, &after, &exceptions, profiles, &settings);
        assert_eq!(preview.namespaces.len(), 1, "{:?}", preview.namespaces);
        let quota = &preview.namespaces[0].objects[0];
        assert_eq!(quota.name, "baseliner-quota");
        assert!(
            quota.action == Action::Create && !quota.pending,
            "the quota is created with the replaced value, a change of the files: {quota:?}"
        );
        // Without the exception the same quota would be pending drift only.
        let (after, profiles) = apply_profiles(&snapshot.profiles, &[], false);
        let preview = super::preview(&snapshot, &after, &snapshot.exceptions, profiles, &settings);
        assert!(preview.namespaces.is_empty());
    }
}
