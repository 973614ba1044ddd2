//! The namespace cache's own type: what reconciling reads of a namespace,
//! kept small, because the cache holds every namespace in the cluster.
//!
//! kube's `ObjectMeta` keeps each label and annotation as two `String`s in a
//! `BTreeMap`: about 2.5 KB for a namespace with Pod Security labels, 25 MB
//! at 10,000 namespaces. Here `metadata` keeps only the name,
//! resourceVersion and deletionTimestamp (what the store and the
//! controller's queue need), and the label keys, label values and the
//! annotations baseliner reads are strings laid end to end, each kept once
//! however many namespaces have the same.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, LazyLock, Mutex};

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::PartialObjectMeta;
use kube::core::ClusterResourceScope;
use serde::{Deserialize, Deserializer};

use crate::api::NAMESPACE_NAME_LABEL;

/// The annotations baseliner writes on namespaces all start with this.
const OWN_ANNOTATION_PREFIX: &str = "baseliner.dev/";

/// A namespace as the cache keeps it. Its labels and annotations are not in
/// `metadata`: read them with [`CachedNamespace::labels`],
/// [`CachedNamespace::label`] and [`CachedNamespace::annotation`] (which take
/// precedence over `ResourceExt`'s methods of the same names).
#[derive(Clone, Debug, PartialEq)]
pub struct CachedNamespace {
    metadata: ObjectMeta,
    /// Every label but [`NAMESPACE_NAME_LABEL`] when it holds the name: without the
    /// one label that differs in each, namespaces share their label values.
    labels: Pairs,
    has_name_label: bool,
    /// Only baseliner's own (`baseliner.dev/…`): nothing else is read.
    annotations: Pairs,
}

impl CachedNamespace {
    /// Every label, as selectors and templates take them.
    pub fn labels(&self) -> BTreeMap<String, String> {
        let mut labels: BTreeMap<String, String> = self
            .labels
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        if let Some(name) = self.name_label() {
            labels.insert(NAMESPACE_NAME_LABEL.to_owned(), name.to_owned());
        }
        labels
    }

    pub fn label(&self, key: &str) -> Option<&str> {
        match key {
            NAMESPACE_NAME_LABEL => self.name_label().or_else(|| self.labels.get(key)),
            _ => self.labels.get(key),
        }
    }

    /// One of baseliner's own annotations; any other key is not kept.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.get(key)
    }

    /// The namespace is being deleted.
    pub fn is_terminating(&self) -> bool {
        self.metadata.deletion_timestamp.is_some()
    }

    fn name_label(&self) -> Option<&str> {
        self.metadata
            .name
            .as_deref()
            .filter(|_| self.has_name_label)
    }
}

impl From<PartialObjectMeta<Namespace>> for CachedNamespace {
    fn from(namespace: PartialObjectMeta<Namespace>) -> Self {
        let meta = namespace.metadata;
        let name = meta.name.as_deref();
        let labels = meta.labels.iter().flatten();
        let has_name_label = labels
            .clone()
            .any(|(k, v)| k == NAMESPACE_NAME_LABEL && Some(v.as_str()) == name);
        let labels = Pairs::new(
            labels
                .filter(|(k, _)| !(has_name_label && k.as_str() == NAMESPACE_NAME_LABEL))
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        let annotations = Pairs::new(
            meta.annotations
                .iter()
                .flatten()
                .filter(|(key, _)| key.starts_with(OWN_ANNOTATION_PREFIX))
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        CachedNamespace {
            metadata: ObjectMeta {
                name: meta.name,
                resource_version: meta.resource_version,
                deletion_timestamp: meta.deletion_timestamp,
                ..ObjectMeta::default()
            },
            labels,
            has_name_label,
            annotations,
        }
    }
}

impl kube::Resource for CachedNamespace {
    type DynamicType = ();
    type Scope = ClusterResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        "Namespace".into()
    }

    fn group(_: &()) -> Cow<'_, str> {
        "".into()
    }

    fn version(_: &()) -> Cow<'_, str> {
        "v1".into()
    }

    fn plural(_: &()) -> Cow<'_, str> {
        "namespaces".into()
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// kube's controller asks its object type to be deserializable; the cache
/// itself is fed by converting watch events.
impl<'de> Deserialize<'de> for CachedNamespace {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        PartialObjectMeta::<Namespace>::deserialize(deserializer).map(Self::from)
    }
}

/// Key-value pairs: the keys in one string, the values in another, each
/// shared with every namespace that has the same ones.
#[derive(Clone, Debug, PartialEq)]
struct Pairs {
    keys: Arc<Strings>,
    values: Arc<Strings>,
}

impl Pairs {
    fn new<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)> + Clone) -> Self {
        Pairs {
            keys: Strings::shared(pairs.clone().map(|(key, _)| key)),
            values: Strings::shared(pairs.map(|(_, value)| value)),
        }
    }

    fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.keys.iter().zip(self.values.iter())
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }
}

/// Strings laid end to end, with the offset where each ends.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Strings {
    text: Box<str>,
    ends: Box<[u32]>,
}

/// Every [`Strings`] some namespace holds. Namespaces share most of their
/// label keys and our annotations whole (those alone are about 600 bytes a
/// namespace), so each distinct one is kept once.
static SHARED: LazyLock<Mutex<SharedStrings>> = LazyLock::new(Default::default);

#[derive(Default)]
struct SharedStrings {
    set: HashSet<Arc<Strings>>,
    /// How many were still held at the last sweep.
    live_at_sweep: usize,
}

impl SharedStrings {
    fn get_or_insert(&mut self, strings: Strings) -> Arc<Strings> {
        if let Some(known) = self.set.get(&strings) {
            return known.clone();
        }
        // Drop what no namespace holds any more once the set has doubled:
        // the cost of a sweep is spread over as many insertions.
        if self.set.len() >= (2 * self.live_at_sweep).max(1024) {
            self.set.retain(|s| Arc::strong_count(s) > 1);
            self.live_at_sweep = self.set.len();
        }
        let strings = Arc::new(strings);
        self.set.insert(strings.clone());
        strings
    }
}

impl Strings {
    /// The shared copy of these strings.
    fn shared<'a>(parts: impl Iterator<Item = &'a str>) -> Arc<Strings> {
        SHARED
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert(Strings::new(parts))
    }

    fn new<'a>(parts: impl Iterator<Item = &'a str>) -> Strings {
        let mut text = String::new();
        let mut ends = Vec::new();
        for part in parts {
            text.push_str(part);
            // Object metadata is capped at 256 KiB in all.
            ends.push(u32::try_from(text.len()).unwrap_or(u32::MAX));
        }
        Strings {
            text: text.into(),
            ends: ends.into(),
        }
    }

    fn iter(&self) -> impl Iterator<Item = &str> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(self.ends.iter().copied())
            .map(|(start, end)| self.text.get(start as usize..end as usize).unwrap_or(""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::{Resource, ResourceExt};

    fn namespace() -> PartialObjectMeta<Namespace> {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "meta.k8s.io/v1",
            "kind": "PartialObjectMetadata",
            "metadata": {
                "name": "shop",
                "uid": "0b5f",
                "resourceVersion": "42",
                "creationTimestamp": "2026-01-01T00:00:00Z",
                "deletionTimestamp": "2026-01-02T00:00:00Z",
                "labels": {"a": "", "team": "shop", "tier": "prod"},
                "annotations": {
                    "baseliner.dev/profile": "strict",
                    "kubectl.kubernetes.io/last-applied-configuration": "{}",
                    "team.example.com/owner": "shop",
                },
                "managedFields": [{"manager": "kubectl", "operation": "Apply"}],
            },
        }))
        .expect("a namespace")
    }

    #[test]
    fn keeps_what_reconciling_reads_and_nothing_else() {
        let cached = CachedNamespace::from(namespace());
        assert_eq!(cached.name_any(), "shop");
        assert_eq!(cached.resource_version().as_deref(), Some("42"));
        assert!(cached.is_terminating());
        assert_eq!(
            cached.labels(),
            BTreeMap::from(
                [("a", ""), ("team", "shop"), ("tier", "prod")].map(|(k, v)| (k.into(), v.into()))
            )
        );
        assert_eq!(cached.label("a"), Some(""));
        assert_eq!(cached.label("tier"), Some("prod"));
        assert_eq!(cached.label("prod"), None, "a value is not a key");
        assert_eq!(cached.annotation("baseliner.dev/profile"), Some("strict"));
        assert_eq!(cached.annotation("team.example.com/owner"), None);

        let kept = serde_json::to_value(cached.meta()).expect("serializable");
        assert_eq!(
            kept,
            serde_json::json!({
                "name": "shop",
                "resourceVersion": "42",
                "deletionTimestamp": "2026-01-02T00:00:00Z",
            })
        );
    }

    #[test]
    fn no_labels_is_empty_not_an_error() {
        let mut bare = namespace();
        bare.metadata.labels = None;
        bare.metadata.annotations = None;
        let cached = CachedNamespace::from(bare);
        assert!(cached.labels().is_empty());
        assert_eq!(cached.annotation("baseliner.dev/profile"), None);
    }

    #[test]
    fn deserializes_like_a_namespace() {
        let json = serde_json::to_value(namespace()).expect("serializable");
        let cached: CachedNamespace = serde_json::from_value(json).expect("a namespace");
        assert_eq!(cached, CachedNamespace::from(namespace()));
    }
    fn with_labels(name: &str, labels: &[(&str, &str)]) -> CachedNamespace {
        let mut namespace = namespace();
        namespace.metadata.name = Some(name.to_owned());
        namespace.metadata.labels = Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        CachedNamespace::from(namespace)
    }

    #[test]
    fn the_name_label_is_given_back_and_the_rest_is_shared() {
        let labels = |name| {
            [
                (NAMESPACE_NAME_LABEL, name),
                ("team", "shop"),
                ("x-test", "shared"),
            ]
        };
        let a = with_labels("shop-a", &labels("shop-a"));
        let b = with_labels("shop-b", &labels("shop-b"));
        assert_eq!(a.label(NAMESPACE_NAME_LABEL), Some("shop-a"));
        assert_eq!(
            b.labels().get(NAMESPACE_NAME_LABEL).map(String::as_str),
            Some("shop-b")
        );
        assert_eq!(b.labels().len(), 3);
        assert!(Arc::ptr_eq(&a.labels.keys, &b.labels.keys));
        assert!(Arc::ptr_eq(&a.labels.values, &b.labels.values));
        assert!(Arc::ptr_eq(&a.annotations.values, &b.annotations.values));

        // Not the namespace's name (never from a real API server): kept as is.
        let odd = with_labels("shop-c", &[(NAMESPACE_NAME_LABEL, "elsewhere")]);
        assert_eq!(odd.label(NAMESPACE_NAME_LABEL), Some("elsewhere"));
        assert_eq!(odd.labels().len(), 1);
        let none = with_labels("shop-d", &[("team", "shop")]);
        assert_eq!(none.label(NAMESPACE_NAME_LABEL), None);
    }

    #[test]
    fn strings_no_namespace_holds_are_dropped() {
        let mut shared = SharedStrings::default();
        let strings = |i: usize| Strings::new([format!("value-{i}")].iter().map(String::as_str));
        let held: Vec<_> = (0..1000)
            .map(|i| shared.get_or_insert(strings(i)))
            .collect();
        let again = shared.get_or_insert(strings(7));
        assert!(Arc::ptr_eq(&again, &held[7]), "one copy of equal strings");
        drop(held);
        // `again` alone is still held: the first sweep keeps it only.
        for i in 1000..1025 {
            drop(shared.get_or_insert(strings(i)));
        }
        assert!(shared.set.contains(&strings(7)));
        assert!(!shared.set.contains(&strings(8)));
        assert!(shared.set.len() < 30, "{} kept", shared.set.len());
    }

    #[test]
    fn pairs_split_where_the_parts_end() {
        let ab_c = Strings::new(["ab", "c"].into_iter());
        let a_bc = Strings::new(["a", "bc"].into_iter());
        assert_ne!(ab_c, a_bc);
        assert_eq!(a_bc.iter().collect::<Vec<_>>(), ["a", "bc"]);
        assert_eq!(Strings::new(std::iter::empty()).iter().count(), 0);
    }
}
