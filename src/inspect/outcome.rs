//! What the operator's next reconcile would do to a namespace, decided by
//! the controller's own pure plan ([`plan_namespace`]) from a
//! [`Snapshot`] instead of its caches.
//!
//! The operator plans from metadata and reads an object whose version it
//! has not verified before deciding ([`Step::NeedsRead`]). A snapshot has
//! every body already, so here nothing is taken as verified and each such
//! step is decided at once by [`decide_after_read`] on the listed body:
//! the same functions, in the same order, as the executor runs.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use super::snapshot::Snapshot;
use crate::api::ProductionProfile;
use crate::api::exception::ProfileException;
use crate::controller::author_rights::AuthorRights;
use crate::controller::compare::{comparable_part, desired_matches_live};
use crate::controller::index::{LiveObject, ObjectKey};
use crate::controller::namespace::CachedNamespace;
use crate::controller::plan::{
    LabelStep, NamespacePlan, PlanInput, Step, VerifiedRecord, decide_after_read,
    owned_pod_security_labels, plan_namespace,
};
use crate::exception::ExceptionSettings;
use crate::render::RenderOptions;
use crate::selection::SelectionContext;
use k8s_openapi::jiff::Timestamp;

/// The operator's settings a plan depends on (its `run` flags).
#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// `--allowed-cluster-roles`.
    pub render: RenderOptions,
    /// `--operator-namespace`.
    pub selection: SelectionContext,
    /// `--unsafe-grant-without-author-rights-policy`.
    pub grants_waived: bool,
    /// `--max-exception-days`.
    pub exceptions: ExceptionSettings,
    /// The moment exceptions are judged at.
    pub now: Timestamp,
}

/// One field that differs between what baseliner applies and what is there.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FieldChange {
    /// Where, e.g. `spec.limits[0].default.cpu`.
    pub path: String,
    /// What is there now (`None`: absent).
    pub before: Option<Value>,
    /// What baseliner would put there (`None`: removed).
    pub after: Option<Value>,
}

/// One object's outcome.
#[derive(Clone, Debug, PartialEq)]
pub struct ObjectOutcome {
    /// Which object.
    pub key: ObjectKey,
    /// What the operator would do, decided with the listed body.
    pub step: Step,
    /// The object as baseliner would apply it; `None` if no longer desired.
    pub desired: Option<Value>,
    /// The object as listed; `None` if it does not exist.
    pub live: Option<Value>,
    /// The listed object's resourceVersion.
    pub resource_version: Option<String>,
    /// For an object to heal or replace, the fields that differ.
    pub changes: Vec<FieldChange>,
}

/// What happens to a namespace's Pod Security labels.
#[derive(Clone, Debug, PartialEq)]
pub struct LabelOutcome {
    /// The plan's step.
    pub step: LabelStep,
    /// Labels set, with their new values.
    pub set: BTreeMap<String, String>,
    /// Labels removed.
    pub remove: Vec<String>,
}

impl LabelOutcome {
    /// Whether the namespace is written.
    pub fn writes(&self) -> bool {
        matches!(
            self.step,
            LabelStep::Apply { .. } | LabelStep::Release { .. }
        )
    }
}

/// A namespace's outcome: the plan, each object decided, the labels.
#[derive(Clone, Debug, PartialEq)]
pub struct NamespaceOutcome {
    /// The plan as the controller makes it (objects may be `NeedsRead`).
    pub plan: NamespacePlan,
    /// Every object of the plan, decided.
    pub objects: Vec<ObjectOutcome>,
    /// The namespace's Pod Security labels.
    pub labels: LabelOutcome,
}

impl NamespaceOutcome {
    /// Whether the operator would write anything here.
    pub fn writes(&self) -> bool {
        self.labels.writes() || self.objects.iter().any(|o| o.step.writes())
    }
}

/// Nothing is known to be in sync: every listed object is decided on its
/// body, as after a restart.
struct NothingVerified;

impl VerifiedRecord for NothingVerified {
    fn is_verified(&self, _: &ObjectKey, _: &str, _: u64) -> bool {
        false
    }
    fn is_applied(&self, _: &ObjectKey, _: u64) -> bool {
        false
    }
    fn is_pruned(&self, _: &ObjectKey, _: &str) -> bool {
        false
    }
    fn is_namespace_patched(&self, _: &str, _: &str, _: u64) -> bool {
        false
    }
}

/// The outcome of one namespace, given the listed objects serving it.
pub fn namespace_outcome(
    snapshot: &Snapshot,
    profiles: &[Arc<ProductionProfile>],
    exceptions: &[Arc<ProfileException>],
    settings: &Settings,
    namespace: &CachedNamespace,
    live: &BTreeMap<ObjectKey, LiveObject>,
) -> NamespaceOutcome {
    let grants = if settings.grants_waived {
        AuthorRights::Waived
    } else {
        snapshot.author_rights.clone()
    };
    let input = PlanInput {
        namespace,
        profiles,
        selection: &settings.selection,
        render: &settings.render,
        live,
        schedules_served: snapshot.schedules_served,
        grants: &grants,
        exceptions,
        now: settings.now,
        exception_settings: &settings.exceptions,
    };
    let plan = plan_namespace(&input, &NothingVerified);
    let strategy = plan.owner.as_ref().map(|owner| owner.strategy);
    let objects = plan
        .objects
        .iter()
        .map(|object| {
            let listed = snapshot.objects.get(&object.key);
            let body = listed.map(|l| l.body());
            let body = body.as_ref();
            let step = match (&object.step, &object.desired, strategy) {
                (Step::NeedsRead, Some(desired), Some(strategy)) => {
                    decide_after_read(&object.key, desired, body, strategy)
                }
                (step, _, _) => step.clone(),
            };
            let desired = object.desired.as_ref().map(|d| d.body.clone());
            let changes = match (&step, &desired, body) {
                (Step::Heal | Step::Replace | Step::Drifted(_), Some(want), Some(have)) => {
                    field_changes(&comparable_part(want), have)
                }
                _ => Vec::new(),
            };
            ObjectOutcome {
                key: object.key.clone(),
                step,
                desired,
                live: body.cloned(),
                resource_version: listed.map(|l| l.live.resource_version.clone()),
                changes,
            }
        })
        .collect();
    let labels = label_outcome(namespace, &plan.labels);
    NamespaceOutcome {
        plan,
        objects,
        labels,
    }
}

fn label_outcome(namespace: &CachedNamespace, step: &LabelStep) -> LabelOutcome {
    let owned = owned_pod_security_labels(namespace);
    let present = |key: &&&str| namespace.label(key).is_some();
    let (set, remove) = match step {
        LabelStep::Apply { body, .. } => {
            let wanted: BTreeMap<String, String> = body["metadata"]["labels"]
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect();
            let set = wanted
                .iter()
                .filter(|(k, v)| namespace.label(k) != Some(v.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let remove = owned
                .iter()
                .filter(|k| present(k))
                .filter(|k| !wanted.contains_key(**k))
                .map(|k| (*k).to_owned())
                .collect();
            (set, remove)
        }
        LabelStep::Release { orphan: false, .. } => (
            BTreeMap::new(),
            owned
                .iter()
                .filter(|k| present(k))
                .map(|k| (*k).to_owned())
                .collect(),
        ),
        _ => (BTreeMap::new(), Vec::new()),
    };
    LabelOutcome {
        step: step.clone(),
        set,
        remove,
    }
}

/// The fields of `desired` (the part baseliner applies) that `live` does
/// not hold with an equal value. Lists of equal length are compared
/// element by element; a list whose length differs is one change.
pub fn field_changes(desired: &Value, live: &Value) -> Vec<FieldChange> {
    let mut changes = Vec::new();
    diff("", desired, Some(live), &mut changes);
    changes
}

fn diff(path: &str, want: &Value, have: Option<&Value>, changes: &mut Vec<FieldChange>) {
    match (want, have) {
        (Value::Object(want), Some(Value::Object(have))) => {
            for (key, value) in want {
                let path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                diff(&path, value, have.get(key), changes);
            }
        }
        (Value::Array(want), Some(Value::Array(have))) if want.len() == have.len() => {
            for (index, (w, h)) in want.iter().zip(have).enumerate() {
                diff(&format!("{path}[{index}]"), w, Some(h), changes);
            }
        }
        (want, Some(have)) if desired_matches_live(want, have) => {}
        (want, have) => changes.push(FieldChange {
            path: path.to_owned(),
            before: have.cloned(),
            after: Some(want.clone()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn field_changes_name_each_differing_field() {
        let desired = json!({
            "metadata": {"name": "baseliner-limits", "labels": {"a": "1"}},
            "spec": {"limits": [{"type": "Container", "default": {"cpu": "500m", "memory": "1Gi"}}]}
        });
        let live = json!({
            "metadata": {"name": "baseliner-limits", "labels": {"a": "1", "other": "x"}, "uid": "u"},
            "spec": {"limits": [{"type": "Container", "default": {"cpu": "1", "memory": "1073741824"}}]}
        });
        assert_eq!(
            field_changes(&desired, &live),
            vec![FieldChange {
                path: "spec.limits[0].default.cpu".into(),
                before: Some(json!("1")),
                after: Some(json!("500m")),
            }]
        );
    }

    #[test]
    fn a_list_of_another_length_is_one_change_and_a_missing_field_is_absent_before() {
        let desired =
            json!({"subjects": [{"name": "a"}, {"name": "b"}], "roleRef": {"name": "edit"}});
        let live = json!({"subjects": [{"name": "a"}]});
        let changes = field_changes(&desired, &live);
        // Fields come in key order.
        assert_eq!(changes.len(), 2, "{changes:?}");
        assert_eq!(changes[0].path, "roleRef");
        assert_eq!(changes[0].before, None);
        assert_eq!(changes[1].path, "subjects");
        assert_eq!(changes[1].before, Some(json!([{"name": "a"}])));
    }

    #[test]
    fn equal_objects_have_no_changes() {
        let object = json!({"spec": {"podSelector": {}, "policyTypes": ["Ingress"]}});
        assert!(field_changes(&object, &object).is_empty());
    }
}
