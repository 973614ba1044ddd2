//! The pure half of a namespace's reconcile: what to do, decided from what
//! the caches hold, without talking to the API server.
//!
//! [`plan_namespace`] takes a namespace, the profiles, the index entries of
//! the objects serving the namespace and the record of what is known to be
//! in sync, and returns a [`NamespacePlan`]: per object a [`Step`] (in sync,
//! create, heal, replace, prune, orphan, read first, or only report drift),
//! what to do with the namespace's Pod Security labels ([`LabelStep`]), and
//! the problems found on the way. [`super::reconcile`] carries a plan out;
//! `baseliner plan` will print one.
//!
//! The index holds metadata only, so an object it shows that is not known
//! to be in sync is planned as [`Step::NeedsRead`]: the executor reads it
//! and asks [`decide_after_read`] what to do with the body it got.
//!
//! How a plan may be carried out is its [`Strategy`]: `Enforce` writes,
//! `Audit` plans and reports and never writes, so an Audit plan holds only
//! steps that write nothing. While the author-rights policy is not in force
//! ([`super::author_rights`]), Enforce holds back what would grant: a
//! RoleBinding to write or a Pod Security level to lower is planned as
//! [`Step::Held`] / [`LabelStep::Held`], reported and not written.
//!
//! Exceptions in force for the namespace ([`crate::exception`]) are applied
//! to the profile before it is rendered: a waived control is planned as a
//! section removed from the profile.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use serde_json::{Value, json};

use super::author_rights::{AuthorRights, pod_security_lowered};
use super::compare::{comparable_part, desired_matches_live};
use super::index::{LiveObject, ObjectKey};
use super::namespace::CachedNamespace;
use super::report::Problem;
use crate::api::exception::ProfileException;
use crate::api::{
    DELETION_POLICY_ANNOTATION, DeletionPolicy, Mode, POD_SECURITY_ANNOTATION, PROFILE_LABEL,
    ProductionProfile,
};
use crate::exception::{ExceptionSettings, InForce, covering, waived_spec};
use crate::kind::ManagedKind;
use crate::namespace::NamespaceInfo;
use crate::reason::Reason;
use crate::render::{NamespaceLabels, RenderOptions, RenderProblem, render_namespace};
use crate::selection::{SelectionContext, decide_owner};

const SCHEDULE_CRD: &str = "schedules.velero.io";

/// What an Audit plan says of an object no longer desired.
pub const NO_LONGER_DESIRED: &str = "is no longer desired and would be pruned";

/// How a plan may be carried out: stackable's `ClusterResourceApplyStrategy`
/// for baseliner's modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// Create, heal, replace and prune.
    Enforce,
    /// Enforce, but hold back what grants (RoleBinding writes, lowering
    /// Pod Security): the author-rights policy is not in force.
    EnforceHoldingGrants,
    /// Plan and report what differs; never write.
    Audit,
}

impl Strategy {
    /// The strategy a profile's mode asks for, given whether grants are
    /// allowed.
    pub fn new(mode: Mode, grants: &AuthorRights) -> Self {
        match mode {
            Mode::Audit => Self::Audit,
            Mode::Enforce if grants.allows_grants() => Self::Enforce,
            Mode::Enforce => Self::EnforceHoldingGrants,
        }
    }

    /// Whether plans under this strategy may write.
    pub fn writes(self) -> bool {
        self != Self::Audit
    }

    /// Whether writes that grant are held back.
    pub fn holds_grants(self) -> bool {
        self == Self::EnforceHoldingGrants
    }

    /// The strategy for objects of `kind`: writing a RoleBinding grants, so
    /// while grants are held it is only planned, as under Audit.
    pub fn for_kind(self, kind: ManagedKind) -> Self {
        if self.holds_grants() && kind == ManagedKind::RoleBinding {
            Self::Audit
        } else {
            self
        }
    }
}

/// What to do with one managed object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// It holds what the profile wants; nothing to do.
    InSync,
    /// It is missing: create it.
    Create,
    /// It differs: apply the desired object over it.
    Heal,
    /// A RoleBinding whose roleRef differs (immutable): delete, then create.
    Replace,
    /// No longer desired: delete it.
    Prune,
    /// No longer desired, and its profile orphans: drop our labels and
    /// owner reference, leave it in place.
    Orphan,
    /// The index has only its metadata: read it before deciding.
    NeedsRead,
    /// Audit: what differs, reported and written nowhere.
    Drifted(String),
    /// A write that grants, held back while the author-rights policy is not
    /// in force: what it would do.
    Held(String),
}

impl Step {
    /// What a step planned as under Audit means for a write that is held.
    fn held(self) -> Self {
        match self {
            Self::Drifted(what) => Self::Held(what),
            other => other,
        }
    }

    /// Whether carrying the step out writes to the API server.
    pub fn writes(&self) -> bool {
        matches!(
            self,
            Self::Create | Self::Heal | Self::Replace | Self::Prune | Self::Orphan
        )
    }
}

/// An object as baseliner would apply it.
#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    /// The server-side apply body.
    pub body: Value,
    /// Identifies the body within this process (see [`fingerprint`]).
    pub fingerprint: u64,
}

/// One object's part of a plan.
#[derive(Clone, Debug, PartialEq)]
pub struct ObjectPlan {
    /// Which object.
    pub key: ObjectKey,
    /// What to do.
    pub step: Step,
    /// What the profile wants; `None` for an object no longer desired.
    pub desired: Option<Desired>,
    /// The index entry, for an object no longer desired.
    pub live: Option<LiveObject>,
}

/// What to do with the namespace's Pod Security labels.
#[derive(Clone, Debug, PartialEq)]
pub enum LabelStep {
    /// They are as they should be (or there are none to care about).
    InSync,
    /// Apply `body`, the labels and their markers.
    Apply {
        /// The server-side apply patch.
        body: Value,
        /// Identifies the patch, for the verified record.
        fingerprint: u64,
    },
    /// Give them up: remove them (server-side apply of nothing), or with
    /// `orphan` drop only the markers.
    Release {
        /// Keep the labels; drop the markers.
        orphan: bool,
        /// Identifies the release, for the verified record.
        fingerprint: u64,
    },
    /// Audit: what differs.
    Drifted(String),
    /// Lowering Pod Security, held back while the author-rights policy is
    /// not in force: what would be lowered.
    Held(String),
}

/// The owner of a namespace, as the plan saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    /// The profile's name.
    pub profile: String,
    /// The profile's `metadata.generation`.
    pub generation: i64,
    /// How its plan may be carried out.
    pub strategy: Strategy,
}

/// Everything one reconcile of a namespace is to do.
#[derive(Clone, Debug, PartialEq)]
pub struct NamespacePlan {
    /// The namespace.
    pub namespace: String,
    /// The namespace is being deleted: nothing is to be done (everything in
    /// it goes with it; recreating would only race the namespace
    /// controller), and its report is to be forgotten.
    pub terminating: bool,
    /// The profile that owns the namespace; `None` when none does, and what
    /// baseliner put there is released.
    pub owner: Option<Owner>,
    /// Profiles that select the namespace but lost it to the owner.
    pub conflicts: Vec<String>,
    /// What could not be rendered.
    pub render_problems: Vec<RenderProblem>,
    /// Other problems found while planning (Velero not installed).
    pub problems: Vec<Problem>,
    /// The desired objects (sorted by key), then the objects no longer
    /// desired (sorted by key).
    pub objects: Vec<ObjectPlan>,
    /// The namespace's Pod Security labels.
    pub labels: LabelStep,
    /// Why grants are held back, when they are.
    pub held_because: Option<String>,
    /// The exceptions in force for the namespace (their waivers are
    /// already taken out of `objects` and `labels`).
    pub exceptions: InForce,
}

impl NamespacePlan {
    /// The fingerprint of the desired object `key` when `body` (read from
    /// the API server) holds it, else `None`: drifted, or nothing desires it.
    pub fn in_sync_fingerprint(&self, key: &ObjectKey, body: &Value) -> Option<u64> {
        let strategy = self.owner.as_ref()?.strategy;
        let object = self.objects.iter().find(|object| &object.key == key)?;
        let desired = object.desired.as_ref()?;
        (decide_after_read(key, desired, Some(body), strategy) == Step::InSync)
            .then_some(desired.fingerprint)
    }
}

/// What baseliner remembers of its own reads and writes (see
/// [`super::verified`]). Asking it is not I/O; tests use a plain table.
pub trait VerifiedRecord {
    /// The object at `resource_version` holds exactly the desired object
    /// with this fingerprint.
    fn is_verified(&self, key: &ObjectKey, resource_version: &str, fingerprint: u64) -> bool;
    /// We applied exactly this and have not seen it deleted since: an index
    /// without it has not seen our create yet (the echo of our own write).
    fn is_applied(&self, key: &ObjectKey, fingerprint: u64) -> bool;
    /// We already removed this very version of the object.
    fn is_pruned(&self, key: &ObjectKey, resource_version: &str) -> bool;
    /// We made this very patch of the namespace and its cache has not moved.
    fn is_namespace_patched(&self, name: &str, resource_version: &str, fingerprint: u64) -> bool;
}

/// What a namespace's plan is made from.
pub struct PlanInput<'a> {
    /// The namespace, as the cache holds it.
    pub namespace: &'a CachedNamespace,
    /// Every profile.
    pub profiles: &'a [Arc<ProductionProfile>],
    /// Facts selection depends on.
    pub selection: &'a SelectionContext,
    /// Operator-wide render settings.
    pub render: &'a RenderOptions,
    /// The index entries of the objects serving the namespace.
    pub live: &'a BTreeMap<ObjectKey, LiveObject>,
    /// Whether the API server serves Velero Schedules (`false` when Velero
    /// is known not to be installed).
    pub schedules_served: bool,
    /// Whether baseliner may grant (the author-rights policy). Exceptions
    /// are honoured only while it may: lifting a control is guarded by the
    /// same policy.
    pub grants: &'a AuthorRights,
    /// Every exception, and the moment and bounds to judge them by.
    pub exceptions: &'a [Arc<ProfileException>],
    pub now: Timestamp,
    pub exception_settings: &'a ExceptionSettings,
}

/// Plans one namespace's reconcile.
pub fn plan_namespace(input: &PlanInput, verified: &impl VerifiedRecord) -> NamespacePlan {
    let name = input.namespace.name_any();
    let mut plan = NamespacePlan {
        namespace: name,
        terminating: input.namespace.is_terminating(),
        owner: None,
        conflicts: Vec::new(),
        render_problems: Vec::new(),
        problems: Vec::new(),
        objects: Vec::new(),
        labels: LabelStep::InSync,
        held_because: None,
        exceptions: InForce::default(),
    };
    if plan.terminating {
        return plan;
    }
    if !input.grants.allows_grants() {
        plan.held_because = Some(input.grants.reason());
    }
    let info = NamespaceInfo {
        name: plan.namespace.clone(),
        labels: input.namespace.labels(),
    };
    let ownership = decide_owner(
        input.profiles.iter().map(Arc::as_ref),
        &info,
        input.selection,
    );
    plan.conflicts = ownership.conflicts.iter().map(|p| p.name_any()).collect();
    match ownership.owner {
        Some(profile) => plan_owned(&mut plan, input, profile, &info, verified),
        None => plan_unowned(&mut plan, input, verified),
    }
    plan
}

fn plan_owned(
    plan: &mut NamespacePlan,
    input: &PlanInput,
    profile: &ProductionProfile,
    info: &NamespaceInfo,
    verified: &impl VerifiedRecord,
) {
    let strategy = Strategy::new(profile.spec.mode, input.grants);
    let profile_name = profile.name_any();
    if input.grants.allows_grants() {
        plan.exceptions = covering(
            input.exceptions,
            profile,
            info,
            input.now,
            input.exception_settings,
        );
    }
    let rendered = if plan.exceptions.is_empty() {
        render_namespace(profile, info, input.render)
    } else {
        let waived = ProductionProfile {
            metadata: profile.metadata.clone(),
            spec: waived_spec(&profile.spec, &plan.exceptions.exceptions),
            status: None,
        };
        render_namespace(&waived, info, input.render)
    };
    let orphan = profile.spec.deletion_policy == DeletionPolicy::Orphan;

    let mut desired: BTreeMap<ObjectKey, Value> = BTreeMap::new();
    for object in &rendered.objects {
        let kind = object.managed_kind();
        let key = ObjectKey {
            kind,
            namespace: object.namespace().to_owned(),
            name: object.name().to_owned(),
        };
        if kind == ManagedKind::Schedule && !input.schedules_served {
            plan.problems.push(Problem::new(
                Reason::BackupsUnavailable,
                format!("Velero is not installed (the API server does not serve {SCHEDULE_CRD}); backups are not in place"),
            ));
            continue;
        }
        let mut body = object.to_json();
        if orphan {
            // Garbage collection would delete what Orphan promises to keep.
            if let Some(meta) = body["metadata"].as_object_mut() {
                meta.remove("ownerReferences");
            }
            body["metadata"]["annotations"][DELETION_POLICY_ANNOTATION] = json!("Orphan");
        }
        desired.insert(key, body);
    }

    for (key, body) in desired {
        let desired = Desired {
            fingerprint: fingerprint(&body),
            body,
        };
        let step = decide_desired(&key, &desired, input.live.get(&key), strategy, verified);
        plan.objects.push(ObjectPlan {
            key,
            step,
            desired: Some(desired),
            live: None,
        });
    }
    let no_longer_desired: Vec<(&ObjectKey, &LiveObject)> = input
        .live
        .iter()
        .filter(|(key, _)| {
            plan.objects
                .binary_search_by(|object| object.key.cmp(key))
                .is_err()
        })
        .collect();
    for (key, live) in no_longer_desired {
        let step = if strategy.writes() {
            match prune_step(key, live, verified) {
                Some(step) => step,
                None => continue,
            }
        } else {
            Step::Drifted(NO_LONGER_DESIRED.to_owned())
        };
        plan.objects.push(ObjectPlan {
            key: key.clone(),
            step,
            desired: None,
            live: Some(live.clone()),
        });
    }

    let labels = NamespaceLabels {
        labels: &rendered.namespace_labels,
        profile: &profile_name,
        deletion_policy: profile.spec.deletion_policy,
    };
    plan.labels = plan_labels(input.namespace, &labels, strategy, verified);
    plan.render_problems = rendered.problems;
    plan.owner = Some(Owner {
        profile: profile_name,
        generation: profile.metadata.generation.unwrap_or_default(),
        strategy,
    });
}

/// A namespace no profile owns: take back whatever baseliner put there,
/// unless the profile that put it there is in Audit mode (Audit never
/// writes).
fn plan_unowned(plan: &mut NamespacePlan, input: &PlanInput, verified: &impl VerifiedRecord) {
    let audited = |profile: Option<&str>| {
        profile.is_some_and(|name| {
            input
                .profiles
                .iter()
                .any(|p| p.metadata.name.as_deref() == Some(name) && p.spec.mode == Mode::Audit)
        })
    };
    for (key, live) in input.live {
        if audited(live.profile.as_deref()) {
            continue;
        }
        if let Some(step) = prune_step(key, live, verified) {
            plan.objects.push(ObjectPlan {
                key: key.clone(),
                step,
                desired: None,
                live: Some(live.clone()),
            });
        }
    }
    let namespace = input.namespace;
    if namespace.annotation(POD_SECURITY_ANNOTATION).is_some()
        && !audited(namespace.annotation(PROFILE_LABEL))
    {
        let orphan = namespace.annotation(DELETION_POLICY_ANNOTATION) == Some("Orphan");
        let strategy = Strategy::new(Mode::Enforce, input.grants);
        plan.labels = match release_lowers(namespace, orphan, strategy) {
            Some(what) => LabelStep::Held(what),
            None => release_labels(namespace, orphan, verified),
        };
    }
}

/// The step for a desired object, from its index entry and the verified
/// record alone.
pub fn decide_desired(
    key: &ObjectKey,
    desired: &Desired,
    live: Option<&LiveObject>,
    strategy: Strategy,
    verified: &impl VerifiedRecord,
) -> Step {
    let for_kind = strategy.for_kind(key.kind);
    let step = decide_from_index(key, desired, live, for_kind, verified);
    if for_kind == strategy {
        step
    } else {
        step.held()
    }
}

fn decide_from_index(
    key: &ObjectKey,
    desired: &Desired,
    live: Option<&LiveObject>,
    strategy: Strategy,
    verified: &impl VerifiedRecord,
) -> Step {
    match live {
        None if !strategy.writes() => Step::Drifted("missing".to_owned()),
        // We created it; the watch has not brought it back yet.
        None if verified.is_applied(key, desired.fingerprint) => Step::InSync,
        None => Step::Create,
        Some(live) if verified.is_verified(key, &live.resource_version, desired.fingerprint) => {
            Step::InSync
        }
        // A change (or a restart) since we last knew: read it once to see
        // whether our fields are still as they should be.
        Some(_) => Step::NeedsRead,
    }
}

/// The step for a desired object once it has been read: `current` is its
/// body, `None` when it turned out to be gone.
pub fn decide_after_read(
    key: &ObjectKey,
    desired: &Desired,
    current: Option<&Value>,
    strategy: Strategy,
) -> Step {
    let for_kind = strategy.for_kind(key.kind);
    let step = decide_from_body(key, desired, current, for_kind);
    if for_kind == strategy {
        step
    } else {
        step.held()
    }
}

fn decide_from_body(
    key: &ObjectKey,
    desired: &Desired,
    current: Option<&Value>,
    strategy: Strategy,
) -> Step {
    let Some(current) = current else {
        return if strategy.writes() {
            Step::Create
        } else {
            Step::Drifted("missing".to_owned())
        };
    };
    let wanted = comparable_part(&desired.body);
    if desired_matches_live(&wanted, current) {
        return Step::InSync;
    }
    if !strategy.writes() {
        return Step::Drifted(describe_drift(&wanted, current));
    }
    // A RoleBinding's roleRef cannot change in place; replace the binding.
    if key.kind == ManagedKind::RoleBinding && current.get("roleRef") != desired.body.get("roleRef")
    {
        return Step::Replace;
    }
    Step::Heal
}

/// Prune or orphan an object no longer desired; `None` when we already did
/// and the index has not seen it yet.
fn prune_step(key: &ObjectKey, live: &LiveObject, verified: &impl VerifiedRecord) -> Option<Step> {
    if verified.is_pruned(key, &live.resource_version) {
        return None;
    }
    Some(if live.orphan_on_prune {
        Step::Orphan
    } else {
        Step::Prune
    })
}

/// The Pod Security labels of an owned namespace.
fn plan_labels(
    namespace: &CachedNamespace,
    wanted: &NamespaceLabels,
    strategy: Strategy,
    verified: &impl VerifiedRecord,
) -> LabelStep {
    if wanted.labels.is_empty() {
        if namespace.annotation(POD_SECURITY_ANNOTATION).is_none() {
            return LabelStep::InSync;
        }
        if !strategy.writes() {
            return LabelStep::Drifted("Pod Security labels would be removed".to_owned());
        }
        let orphan = wanted.deletion_policy == DeletionPolicy::Orphan;
        if let Some(what) = release_lowers(namespace, orphan, strategy) {
            return LabelStep::Held(what);
        }
        return release_labels(namespace, orphan, verified);
    }
    let marker = wanted.marker();
    let in_sync = wanted
        .labels
        .iter()
        .all(|(k, v)| namespace.label(k) == Some(v.as_str()))
        && namespace.annotation(POD_SECURITY_ANNOTATION) == Some(marker.as_str())
        && namespace.annotation(PROFILE_LABEL) == Some(wanted.profile)
        && namespace.annotation(DELETION_POLICY_ANNOTATION) == Some(wanted.policy());
    if in_sync {
        return LabelStep::InSync;
    }
    if !strategy.writes() {
        let differing: Vec<String> = wanted
            .labels
            .iter()
            .filter(|(k, v)| namespace.label(k) != Some(v.as_str()))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if differing.is_empty() {
            return LabelStep::InSync;
        }
        return LabelStep::Drifted(format!("labels differ: want {}", differing.join(", ")));
    }
    if strategy.holds_grants()
        && let Some(what) = pod_security_lowered(
            |k| namespace.label(k).map(str::to_owned),
            wanted.labels,
            &owned_pod_security_labels(namespace),
        )
    {
        return LabelStep::Held(what);
    }
    let name = namespace.name_any();
    let body = wanted.apply_patch(&name);
    let fingerprint = fingerprint(&body);
    let seen = namespace.resource_version().unwrap_or_default();
    if verified.is_namespace_patched(&name, &seen, fingerprint) {
        // Patched already; the namespace cache has not caught up.
        return LabelStep::InSync;
    }
    LabelStep::Apply { body, fingerprint }
}

/// The labels baseliner set on `namespace`, as its marker annotation lists them.
pub(crate) fn owned_pod_security_labels(namespace: &CachedNamespace) -> Vec<&str> {
    namespace
        .annotation(POD_SECURITY_ANNOTATION)
        .map(|marker| marker.split(',').filter(|k| !k.is_empty()).collect())
        .unwrap_or_default()
}

/// What releasing the namespace's Pod Security labels would lower, when
/// grants are held back (orphaning leaves the labels, so lowers nothing).
fn release_lowers(namespace: &CachedNamespace, orphan: bool, strategy: Strategy) -> Option<String> {
    if orphan || !strategy.holds_grants() {
        return None;
    }
    pod_security_lowered(
        |k| namespace.label(k).map(str::to_owned),
        &BTreeMap::new(),
        &owned_pod_security_labels(namespace),
    )
}

/// Giving the labels up, unless we already did and the namespace cache has
/// not caught up.
fn release_labels(
    namespace: &CachedNamespace,
    orphan: bool,
    verified: &impl VerifiedRecord,
) -> LabelStep {
    let fingerprint = fingerprint(&json!({ "release": { "orphan": orphan } }));
    let seen = namespace.resource_version().unwrap_or_default();
    if verified.is_namespace_patched(&namespace.name_any(), &seen, fingerprint) {
        return LabelStep::InSync;
    }
    LabelStep::Release {
        orphan,
        fingerprint,
    }
}

/// A short account of which top-level fields differ, for Audit reports.
fn describe_drift(desired: &Value, live: &Value) -> String {
    let mut fields = Vec::new();
    if let Some(map) = desired.as_object() {
        for (key, value) in map {
            if key == "metadata" {
                if let Some(meta) = value.as_object() {
                    for (field, want) in meta {
                        if !live
                            .get("metadata")
                            .and_then(|m| m.get(field))
                            .is_some_and(|have| desired_matches_live(want, have))
                        {
                            fields.push(format!("metadata.{field}"));
                        }
                    }
                }
            } else if !live
                .get(key)
                .is_some_and(|have| desired_matches_live(value, have))
            {
                fields.push(key.clone());
            }
        }
    }
    format!("{} differ from the profile", fields.join(", "))
}

/// Stable within one process: identifies what we last applied.
pub fn fingerprint(desired: &Value) -> u64 {
    use std::hash::Hasher;
    /// Feeds serialized JSON straight into the hasher, without building
    /// the string first.
    struct HashWriter(std::collections::hash_map::DefaultHasher);
    impl std::io::Write for HashWriter {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.write(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut writer = HashWriter(Default::default());
    // Writing a Value to a writer that never fails cannot fail.
    let _ = serde_json::to_writer(&mut writer, desired);
    writer.0.finish()
}

#[cfg(test)]
mod tests;
