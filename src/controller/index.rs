//! What the cluster holds of ours: a compact, namespace-indexed view of every
//! object carrying the managed-by label, fed by metadata-only watches.
//!
//! kube's reflector stores are keyed by object, and a reconcile asks "what of
//! ours is in namespace X" thousands of times, so we keep our own index keyed
//! by the namespace each object serves. Only the few metadata fields the
//! reconciler reads are kept, which keeps memory flat at 10,000 namespaces.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::RwLock;

use k8s_openapi::api::{
    core::v1::{LimitRange, ResourceQuota},
    networking::v1::NetworkPolicy,
    rbac::v1::RoleBinding,
};
use kube::ResourceExt;
use kube::api::{ApiResource, DynamicObject, PartialObjectMeta};
use kube::runtime::watcher;

use crate::api::{NAMESPACE_LABEL, PROFILE_LABEL};
use crate::velero::Schedule;

/// Annotation recording the owning profile's deletion policy on each object,
/// so an object can be pruned correctly even after its profile is gone.
pub const DELETION_POLICY_ANNOTATION: &str = "baseliner.dev/deletion-policy";

/// The kinds of object baseliner writes inside or for a namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ManagedKind {
    NetworkPolicy,
    LimitRange,
    ResourceQuota,
    RoleBinding,
    Schedule,
}

impl ManagedKind {
    pub const ALL: [ManagedKind; 5] = [
        Self::NetworkPolicy,
        Self::LimitRange,
        Self::ResourceQuota,
        Self::RoleBinding,
        Self::Schedule,
    ];

    pub fn api_resource(self) -> ApiResource {
        match self {
            Self::NetworkPolicy => ApiResource::erase::<NetworkPolicy>(&()),
            Self::LimitRange => ApiResource::erase::<LimitRange>(&()),
            Self::ResourceQuota => ApiResource::erase::<ResourceQuota>(&()),
            Self::RoleBinding => ApiResource::erase::<RoleBinding>(&()),
            Self::Schedule => ApiResource::erase::<Schedule>(&()),
        }
    }

    pub fn from_kind(kind: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == kind)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::NetworkPolicy => "NetworkPolicy",
            Self::LimitRange => "LimitRange",
            Self::ResourceQuota => "ResourceQuota",
            Self::RoleBinding => "RoleBinding",
            Self::Schedule => "Schedule",
        }
    }
}

/// Identity of one managed object.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    pub kind: ManagedKind,
    pub namespace: String,
    pub name: String,
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}/{}", self.kind.as_str(), self.namespace, self.name)
    }
}

/// The metadata of a managed object that reconciling needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveObject {
    pub resource_version: String,
    pub profile: Option<String>,
    pub orphan_on_prune: bool,
}

#[derive(Default)]
struct Inner {
    /// served namespace -> objects serving it
    by_namespace: HashMap<String, BTreeMap<ObjectKey, LiveObject>>,
    /// objects listed so far in a re-list, per kind, swapped in at InitDone
    relisting: HashMap<ManagedKind, Vec<(String, ObjectKey, LiveObject)>>,
    state: HashMap<ManagedKind, WatchState>,
}

/// How far the watch of one kind has got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatchState {
    /// Listed completely at least once; the index is authoritative.
    Synced,
    /// The API server does not serve this kind (Velero not installed).
    NotServed,
}

/// Namespace-indexed metadata of every managed object.
#[derive(Default)]
pub struct ManagedIndex {
    inner: RwLock<Inner>,
}

impl ManagedIndex {
    /// Objects that serve `namespace` (its own objects, and Schedules elsewhere).
    pub fn objects_serving(&self, namespace: &str) -> BTreeMap<ObjectKey, LiveObject> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        inner
            .by_namespace
            .get(namespace)
            .cloned()
            .unwrap_or_default()
    }

    /// Namespaces some managed object serves.
    pub fn served_namespaces(&self) -> Vec<String> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        inner.by_namespace.keys().cloned().collect()
    }

    pub fn state(&self, kind: ManagedKind) -> Option<WatchState> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        inner.state.get(&kind).copied()
    }

    /// True once every kind has either been listed or is known not to be
    /// served: before that, a missing entry may just not be listed yet.
    pub fn is_ready(&self) -> bool {
        ManagedKind::ALL
            .into_iter()
            .all(|kind| self.state(kind).is_some())
    }

    pub fn mark_not_served(&self, kind: ManagedKind) {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        inner.state.insert(kind, WatchState::NotServed);
    }

    /// Number of objects indexed, for metrics and benchmarks.
    pub fn len(&self) -> usize {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        inner.by_namespace.values().map(BTreeMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Applies one watch event and returns the objects that changed: the
    /// namespace each serves, its key, and what is there now (`None`: gone).
    /// A completed re-list reports every object listed, and as gone only
    /// those it no longer lists.
    pub fn apply_event(
        &self,
        kind: ManagedKind,
        event: watcher::Event<PartialObjectMeta<DynamicObject>>,
    ) -> Vec<(String, ObjectKey, Option<LiveObject>)> {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        match event {
            watcher::Event::Apply(obj) => {
                let (served, key, live) = describe(kind, &obj);
                inner.remove_key(&key);
                inner
                    .by_namespace
                    .entry(served.clone())
                    .or_default()
                    .insert(key.clone(), live.clone());
                vec![(served, key, Some(live))]
            }
            watcher::Event::Delete(obj) => {
                let (served, key, _) = describe(kind, &obj);
                inner.remove_key(&key);
                vec![(served, key, None)]
            }
            watcher::Event::Init => {
                inner.relisting.insert(kind, Vec::new());
                Vec::new()
            }
            watcher::Event::InitApply(obj) => {
                inner
                    .relisting
                    .entry(kind)
                    .or_default()
                    .push(describe(kind, &obj));
                Vec::new()
            }
            watcher::Event::InitDone => {
                let listed = inner.relisting.remove(&kind).unwrap_or_default();
                let relisted: HashSet<ObjectKey> =
                    listed.iter().map(|(_, key, _)| key.clone()).collect();
                let mut changed = Vec::new();
                // Everything of this kind not in the new list is gone; what
                // is in it comes back below, as listed.
                for (served, objects) in inner.by_namespace.iter_mut() {
                    objects.retain(|key, _| {
                        let keep = key.kind != kind;
                        if !keep && !relisted.contains(key) {
                            changed.push((served.clone(), key.clone(), None));
                        }
                        keep
                    });
                }
                for (served, key, live) in listed {
                    inner
                        .by_namespace
                        .entry(served.clone())
                        .or_default()
                        .insert(key.clone(), live.clone());
                    changed.push((served, key, Some(live)));
                }
                inner.by_namespace.retain(|_, objects| !objects.is_empty());
                inner.state.insert(kind, WatchState::Synced);
                changed
            }
        }
    }
}

impl Inner {
    fn remove_key(&mut self, key: &ObjectKey) {
        // An object's served namespace can change only through its label, so
        // look in the likely place first and fall back to a scan.
        if let Some(objects) = self.by_namespace.get_mut(&key.namespace)
            && objects.remove(key).is_some()
        {
            if objects.is_empty() {
                self.by_namespace.remove(&key.namespace);
            }
            return;
        }
        if key.kind == ManagedKind::Schedule {
            self.by_namespace.retain(|_, objects| {
                objects.remove(key);
                !objects.is_empty()
            });
        }
    }
}

fn describe(
    kind: ManagedKind,
    obj: &PartialObjectMeta<DynamicObject>,
) -> (String, ObjectKey, LiveObject) {
    let namespace = obj.namespace().unwrap_or_default();
    let labels = obj.labels();
    let served = match kind {
        ManagedKind::Schedule => labels
            .get(NAMESPACE_LABEL)
            .cloned()
            .unwrap_or_else(|| namespace.clone()),
        _ => namespace.clone(),
    };
    let key = ObjectKey {
        kind,
        namespace,
        name: obj.name_any(),
    };
    let live = LiveObject {
        resource_version: obj.resource_version().unwrap_or_default(),
        profile: labels.get(PROFILE_LABEL).cloned(),
        orphan_on_prune: obj
            .annotations()
            .get(DELETION_POLICY_ANNOTATION)
            .is_some_and(|p| p == "Orphan"),
    };
    (served, key, live)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::{ObjectMeta, PartialObjectMetaExt};

    fn limit_range(namespace: &str, resource_version: &str) -> PartialObjectMeta<DynamicObject> {
        ObjectMeta {
            name: Some("baseliner-limits".to_owned()),
            namespace: Some(namespace.to_owned()),
            resource_version: Some(resource_version.to_owned()),
            ..Default::default()
        }
        .into_response_partial()
    }

    #[test]
    fn a_relist_reports_gone_only_what_it_no_longer_lists() {
        let index = ManagedIndex::default();
        let kind = ManagedKind::LimitRange;
        index.apply_event(kind, watcher::Event::Init);
        for ns in ["a", "b"] {
            index.apply_event(kind, watcher::Event::InitApply(limit_range(ns, "1")));
        }
        index.apply_event(kind, watcher::Event::InitDone);
        assert_eq!(index.len(), 2);

        index.apply_event(kind, watcher::Event::Init);
        index.apply_event(kind, watcher::Event::InitApply(limit_range("a", "1")));
        let changed = index.apply_event(kind, watcher::Event::InitDone);
        let gone: Vec<&str> = changed
            .iter()
            .filter(|(_, _, live)| live.is_none())
            .map(|(served, _, _)| served.as_str())
            .collect();
        assert_eq!(gone, ["b"]);
        assert!(
            changed
                .iter()
                .any(|(served, _, live)| served == "a" && live.is_some())
        );
        assert_eq!(index.len(), 1);
        assert!(index.objects_serving("b").is_empty());
    }
}
