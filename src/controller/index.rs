//! What the cluster holds of ours: a compact, namespace-indexed view of every
//! object carrying the managed-by label, fed by metadata-only watches.
//!
//! kube's reflector stores are keyed by object, and a reconcile asks "what of
//! ours is in namespace X" thousands of times, so we keep our own index keyed
//! by the namespace each object serves. Only the few metadata fields the
//! reconciler reads are kept, which keeps memory flat at 10,000 namespaces.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, RwLock};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DynamicObject, PartialObjectMeta};
use kube::runtime::watcher;

use crate::api::{DELETION_POLICY_ANNOTATION, NAMESPACE_LABEL, PROFILE_LABEL};
use crate::kind::ManagedKind;

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
    by_namespace: HashMap<Box<str>, Vec<Entry>>,
    /// Object and profile names, shared: most are the same few in every
    /// namespace. An entry leaves once nothing else holds it.
    names: HashSet<Arc<str>>,
    /// objects listed so far in a re-list, per kind, swapped in at InitDone
    relisting: HashMap<ManagedKind, HashMap<Box<str>, Vec<Entry>>>,
    state: HashMap<ManagedKind, WatchState>,
}

/// One managed object as the index keeps it. There is one per object
/// (70,000 at 10,000 namespaces), so it is kept small: names are shared,
/// and the namespace is stored only when it differs from the one served
/// (a Schedule lives in Velero's namespace).
struct Entry {
    kind: ManagedKind,
    orphan_on_prune: bool,
    name: Arc<str>,
    elsewhere: Option<Arc<str>>,
    resource_version: Box<str>,
    profile: Option<Arc<str>>,
}

impl Entry {
    fn is(&self, served: &str, key: &ObjectKey) -> bool {
        self.kind == key.kind
            && *self.name == *key.name
            && self.elsewhere.as_deref().unwrap_or(served) == key.namespace
    }

    fn key(&self, served: &str) -> ObjectKey {
        ObjectKey {
            kind: self.kind,
            namespace: self.elsewhere.as_deref().unwrap_or(served).to_owned(),
            name: self.name.to_string(),
        }
    }

    fn live(&self) -> LiveObject {
        LiveObject {
            resource_version: self.resource_version.to_string(),
            profile: self.profile.as_deref().map(str::to_owned),
            orphan_on_prune: self.orphan_on_prune,
        }
    }
}

/// What [`ManagedIndex::unknown_versions`] found.
#[derive(Debug, Default)]
pub struct KindVersions {
    pub objects: usize,
    pub unknown: usize,
    /// (served namespace, key) of some of the unknown ones.
    pub some_unknown: Vec<(String, ObjectKey)>,
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
            .into_iter()
            .flatten()
            .map(|entry| (entry.key(namespace), entry.live()))
            .collect()
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

    /// How many objects of `kind` the index holds, and which of them
    /// `is_known` does not know at their current resourceVersion: the count,
    /// and up to `keep` of them with the namespace each serves.
    pub fn unknown_versions(
        &self,
        kind: ManagedKind,
        is_known: impl Fn(&ObjectKey, &str) -> bool,
        keep: usize,
    ) -> KindVersions {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        let mut versions = KindVersions::default();
        for (served, entries) in &inner.by_namespace {
            for entry in entries.iter().filter(|e| e.kind == kind) {
                versions.objects += 1;
                let key = entry.key(served);
                if !is_known(&key, &entry.resource_version) {
                    versions.unknown += 1;
                    if versions.some_unknown.len() < keep {
                        versions.some_unknown.push((served.to_string(), key));
                    }
                }
            }
        }
        versions
    }

    /// Number of objects indexed of each kind.
    pub fn count_by_kind(&self) -> HashMap<ManagedKind, usize> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        let mut counts = HashMap::new();
        for entry in inner.by_namespace.values().flatten() {
            *counts.entry(entry.kind).or_default() += 1;
        }
        counts
    }

    /// Number of objects indexed, for metrics and benchmarks.
    pub fn len(&self) -> usize {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        inner.by_namespace.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Applies one watch event and returns the objects that changed: the
    /// namespace each serves, its key, and what is there now (`None`: gone).
    /// A completed re-list reports only what it no longer lists: the caller
    /// reconciles every namespace after one anyway, and listing 70,000
    /// objects again as changed would only fill memory.
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
                let entry = inner.entry(&served, &key, &live);
                push_entry(&mut inner.by_namespace, &served, entry);
                vec![(served, key, Some(live))]
            }
            watcher::Event::Delete(obj) => {
                let (served, key, _) = describe(kind, &obj);
                inner.remove_key(&key);
                vec![(served, key, None)]
            }
            watcher::Event::Init => {
                // A re-list that never finished leaves its entries behind.
                if let Some(unfinished) = inner.relisting.insert(kind, HashMap::new()) {
                    inner.release(unfinished.into_values().flatten().collect());
                }
                Vec::new()
            }
            watcher::Event::InitApply(obj) => {
                let (served, key, live) = describe(kind, &obj);
                let entry = inner.entry(&served, &key, &live);
                let listing = inner.relisting.entry(kind).or_default();
                push_entry(listing, &served, entry);
                Vec::new()
            }
            watcher::Event::InitDone => {
                let listed = inner.relisting.remove(&kind).unwrap_or_default();
                let mut gone = Vec::new();
                let mut dropped = Vec::new();
                {
                    // Keyed by where the object is, not whom it serves: a
                    // Schedule relabelled between lists is not gone.
                    let relisted: HashSet<(&str, &str)> = listed
                        .iter()
                        .flat_map(|(served, entries)| {
                            entries.iter().map(move |entry| {
                                (entry.elsewhere.as_deref().unwrap_or(served), &*entry.name)
                            })
                        })
                        .collect();
                    for (served, entries) in inner.by_namespace.iter_mut() {
                        for entry in take_matching(entries, |e| e.kind == kind) {
                            let at = entry.elsewhere.as_deref().unwrap_or(served);
                            if !relisted.contains(&(at, &*entry.name)) {
                                gone.push((served.to_string(), entry.key(served), None));
                            }
                            dropped.push(entry);
                        }
                    }
                }
                // Add the new list before releasing the old entries, so the
                // names both hold stay shared.
                for (served, entries) in listed {
                    match inner.by_namespace.get_mut(&served) {
                        Some(existing) => existing.extend(entries),
                        None => {
                            inner.by_namespace.insert(served, entries);
                        }
                    }
                }
                inner.release(dropped);
                inner.by_namespace.retain(|_, entries| !entries.is_empty());
                inner.state.insert(kind, WatchState::Synced);
                gone
            }
        }
    }
}

/// Adds `entry` to the objects serving `served`.
fn push_entry(by_namespace: &mut HashMap<Box<str>, Vec<Entry>>, served: &str, entry: Entry) {
    match by_namespace.get_mut(served) {
        Some(entries) => entries.push(entry),
        None => {
            by_namespace.insert(served.into(), vec![entry]);
        }
    }
}

impl Inner {
    fn share(&mut self, name: &str) -> Arc<str> {
        if let Some(shared) = self.names.get(name) {
            return shared.clone();
        }
        let shared: Arc<str> = Arc::from(name);
        self.names.insert(shared.clone());
        shared
    }

    /// The index's entry for an object, sharing the names it can.
    fn entry(&mut self, served: &str, key: &ObjectKey, live: &LiveObject) -> Entry {
        Entry {
            kind: key.kind,
            orphan_on_prune: live.orphan_on_prune,
            name: self.share(&key.name),
            elsewhere: (key.namespace != served).then(|| self.share(&key.namespace)),
            resource_version: live.resource_version.as_str().into(),
            profile: live.profile.as_deref().map(|p| self.share(p)),
        }
    }

    fn remove_key(&mut self, key: &ObjectKey) {
        // An object's served namespace can change only through its label, so
        // look in the likely place first and fall back to a scan.
        let mut removed = Vec::new();
        if let Some(entries) = self.by_namespace.get_mut(key.namespace.as_str()) {
            removed.extend(take_matching(entries, |e| e.is(&key.namespace, key)));
            if entries.is_empty() {
                self.by_namespace.remove(key.namespace.as_str());
            }
        }
        if removed.is_empty() && key.kind == ManagedKind::Schedule {
            self.by_namespace.retain(|served, entries| {
                removed.extend(take_matching(entries, |e| e.is(served, key)));
                !entries.is_empty()
            });
        }
        self.release(removed);
    }

    /// Drops the shared names only `entries` held (a Schedule's name carries
    /// its namespace's, so names come and go with namespaces).
    fn release(&mut self, entries: Vec<Entry>) {
        for entry in entries {
            let Entry {
                name,
                elsewhere,
                profile,
                ..
            } = entry;
            for shared in [Some(name), elsewhere, profile].into_iter().flatten() {
                // Held by this entry and the set alone.
                if Arc::strong_count(&shared) == 2 {
                    self.names.remove(&*shared);
                }
            }
        }
    }
}

/// Removes the entries `matches` picks from `entries` and returns them.
fn take_matching(entries: &mut Vec<Entry>, matches: impl Fn(&Entry) -> bool) -> Vec<Entry> {
    entries.extract_if(.., |entry| matches(entry)).collect()
}

fn describe(
    kind: ManagedKind,
    obj: &PartialObjectMeta<DynamicObject>,
) -> (String, ObjectKey, LiveObject) {
    describe_object(kind, &obj.metadata)
}

/// The namespace an object of `kind` serves (a Schedule's is in its
/// namespace label; it lives in Velero's), its key, and its index entry.
pub fn describe_object(kind: ManagedKind, meta: &ObjectMeta) -> (String, ObjectKey, LiveObject) {
    let namespace = meta.namespace.clone().unwrap_or_default();
    let label = |key: &str| meta.labels.as_ref().and_then(|l| l.get(key)).cloned();
    let served = match kind {
        ManagedKind::Schedule => label(NAMESPACE_LABEL).unwrap_or_else(|| namespace.clone()),
        _ => namespace.clone(),
    };
    let key = ObjectKey {
        kind,
        namespace,
        name: meta.name.clone().unwrap_or_default(),
    };
    let live = LiveObject {
        resource_version: meta.resource_version.clone().unwrap_or_default(),
        profile: label(PROFILE_LABEL),
        orphan_on_prune: meta
            .annotations
            .as_ref()
            .and_then(|a| a.get(DELETION_POLICY_ANNOTATION))
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
        assert_eq!(changed.len(), 1, "only what is gone: {changed:?}");
        assert_eq!(index.len(), 1);
        assert!(index.objects_serving("b").is_empty());
    }

    fn schedule(
        name: &str,
        serves: &str,
        resource_version: &str,
    ) -> PartialObjectMeta<DynamicObject> {
        ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some("velero".to_owned()),
            resource_version: Some(resource_version.to_owned()),
            labels: Some(
                [
                    (NAMESPACE_LABEL.to_owned(), serves.to_owned()),
                    (PROFILE_LABEL.to_owned(), "strict".to_owned()),
                ]
                .into(),
            ),
            annotations: Some(
                [(DELETION_POLICY_ANNOTATION.to_owned(), "Orphan".to_owned())].into(),
            ),
            ..Default::default()
        }
        .into_response_partial()
    }

    fn shared_names(index: &ManagedIndex) -> usize {
        index.inner.read().unwrap().names.len()
    }

    #[test]
    fn objects_come_back_as_they_were_indexed() {
        let index = ManagedIndex::default();
        index.apply_event(
            ManagedKind::LimitRange,
            watcher::Event::Apply(limit_range("a", "7")),
        );
        index.apply_event(
            ManagedKind::Schedule,
            watcher::Event::Apply(schedule("a-daily", "a", "8")),
        );

        let serving_a = index.objects_serving("a");
        let keys: Vec<String> = serving_a.keys().map(ToString::to_string).collect();
        assert_eq!(
            keys,
            ["LimitRange a/baseliner-limits", "Schedule velero/a-daily"]
        );
        let schedule = &serving_a[&ObjectKey {
            kind: ManagedKind::Schedule,
            namespace: "velero".to_owned(),
            name: "a-daily".to_owned(),
        }];
        assert_eq!(
            schedule,
            &LiveObject {
                resource_version: "8".to_owned(),
                profile: Some("strict".to_owned()),
                orphan_on_prune: true,
            }
        );
        assert!(index.objects_serving("velero").is_empty());

        // A newer version replaces the old one rather than joining it.
        index.apply_event(
            ManagedKind::LimitRange,
            watcher::Event::Apply(limit_range("a", "9")),
        );
        let versions: Vec<String> = index
            .objects_serving("a")
            .into_values()
            .map(|live| live.resource_version)
            .collect();
        assert_eq!(versions, ["9", "8"]);
    }

    #[test]
    fn names_are_shared_and_released_with_their_last_object() {
        let index = ManagedIndex::default();
        for ns in ["a", "b", "c"] {
            index.apply_event(
                ManagedKind::LimitRange,
                watcher::Event::Apply(limit_range(ns, "1")),
            );
        }
        // "baseliner-limits" once for the three namespaces.
        assert_eq!(shared_names(&index), 1);

        index.apply_event(
            ManagedKind::Schedule,
            watcher::Event::Apply(schedule("a-daily", "a", "2")),
        );
        // The Schedule's name, its namespace and its profile.
        assert_eq!(shared_names(&index), 4);

        // Moved to serve another namespace: found by the scan, not doubled.
        index.apply_event(
            ManagedKind::Schedule,
            watcher::Event::Apply(schedule("a-daily", "b", "3")),
        );
        assert_eq!(index.len(), 4);
        assert!(index.objects_serving("a").len() == 1);
        assert_eq!(shared_names(&index), 4);

        index.apply_event(
            ManagedKind::Schedule,
            watcher::Event::Delete(schedule("a-daily", "b", "3")),
        );
        assert_eq!(shared_names(&index), 1);

        // A re-list that no longer shows any LimitRange lets the last go.
        index.apply_event(ManagedKind::LimitRange, watcher::Event::Init);
        let changed = index.apply_event(ManagedKind::LimitRange, watcher::Event::InitDone);
        assert_eq!(changed.len(), 3);
        assert!(index.is_empty());
        assert_eq!(shared_names(&index), 0);
    }

    #[test]
    fn a_relist_does_not_lose_a_schedule_that_moved_or_an_unfinished_list() {
        let index = ManagedIndex::default();
        let kind = ManagedKind::Schedule;
        index.apply_event(kind, watcher::Event::Init);
        index.apply_event(kind, watcher::Event::InitApply(schedule("s", "a", "1")));
        index.apply_event(kind, watcher::Event::InitDone);

        // A list cut short (the watch failed) and started again.
        index.apply_event(kind, watcher::Event::Init);
        index.apply_event(kind, watcher::Event::InitApply(schedule("t", "c", "2")));
        index.apply_event(kind, watcher::Event::Init);
        index.apply_event(kind, watcher::Event::InitApply(schedule("s", "b", "3")));
        let changed = index.apply_event(kind, watcher::Event::InitDone);

        assert!(changed.is_empty(), "relabelled, not gone: {changed:?}");
        assert!(index.objects_serving("a").is_empty());
        assert_eq!(index.objects_serving("b").len(), 1);
        // "s", "velero" and the profile; nothing of the unfinished list.
        assert_eq!(shared_names(&index), 3);
    }
}
