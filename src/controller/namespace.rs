//! The namespace cache's own type: what reconciling reads of a namespace,
//! kept small, because the cache holds every namespace in the cluster.
//!
//! kube's `ObjectMeta` keeps each label and annotation as two `String`s in a
//! `BTreeMap`: about 2.5 KB for a namespace with Pod Security labels, 25 MB
//! at 10,000 namespaces. Here the labels and the annotations baseliner reads
//! are one string each, and `metadata` keeps only the name,
//! resourceVersion and deletionTimestamp (what the store and the
//! controller's queue need).

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::PartialObjectMeta;
use kube::core::ClusterResourceScope;
use serde::{Deserialize, Deserializer};

/// The annotations baseliner writes on namespaces all start with this.
const OWN_ANNOTATION_PREFIX: &str = "baseliner.dev/";

/// A namespace as the cache keeps it. Its labels and annotations are not in
/// `metadata`: read them with [`CachedNamespace::labels`],
/// [`CachedNamespace::label`] and [`CachedNamespace::annotation`] (which take
/// precedence over `ResourceExt`'s methods of the same names).
#[derive(Clone, Debug, PartialEq)]
pub struct CachedNamespace {
    metadata: ObjectMeta,
    labels: Pairs,
    /// Only baseliner's own (`baseliner.dev/…`): nothing else is read.
    annotations: Pairs,
}

impl CachedNamespace {
    /// Every label, as selectors and templates take them.
    pub fn labels(&self) -> BTreeMap<String, String> {
        self.labels
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key)
    }

    /// One of baseliner's own annotations; any other key is not kept.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.get(key)
    }

    /// The namespace is being deleted.
    pub fn is_terminating(&self) -> bool {
        self.metadata.deletion_timestamp.is_some()
    }
}

impl From<PartialObjectMeta<Namespace>> for CachedNamespace {
    fn from(namespace: PartialObjectMeta<Namespace>) -> Self {
        let meta = namespace.metadata;
        let labels = Pairs::new(meta.labels.iter().flatten());
        let annotations = Pairs::new(
            meta.annotations
                .iter()
                .flatten()
                .filter(|(key, _)| key.starts_with(OWN_ANNOTATION_PREFIX)),
        );
        CachedNamespace {
            metadata: ObjectMeta {
                name: meta.name,
                resource_version: meta.resource_version,
                deletion_timestamp: meta.deletion_timestamp,
                ..ObjectMeta::default()
            },
            labels,
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

/// Key-value pairs in one string: each key and value followed by its end
/// offset. Sorted by key, as the API server gives them.
#[derive(Clone, Debug, Default, PartialEq)]
struct Pairs {
    text: Box<str>,
    ends: Box<[u32]>,
}

impl Pairs {
    fn new<'a>(pairs: impl Iterator<Item = (&'a String, &'a String)>) -> Self {
        let mut text = String::new();
        let mut ends = Vec::new();
        for (key, value) in pairs {
            for part in [key, value] {
                text.push_str(part);
                // Object metadata is capped at 256 KiB in all.
                ends.push(u32::try_from(text.len()).unwrap_or(u32::MAX));
            }
        }
        Pairs {
            text: text.into(),
            ends: ends.into(),
        }
    }

    fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        let parts = starts
            .zip(self.ends.iter().copied())
            .map(|(start, end)| self.text.get(start as usize..end as usize).unwrap_or(""));
        let mut parts = parts.peekable();
        std::iter::from_fn(move || Some((parts.next()?, parts.next()?)))
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
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
}
