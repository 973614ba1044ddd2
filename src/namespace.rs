//! The view of a Namespace that rendering, templates and selection take:
//! its name and labels. A leaf module, so everything that reads a namespace
//! can depend on it without depending on the renderer.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// The parts of a Namespace that rendering and selection read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NamespaceInfo {
    /// The namespace's name.
    pub name: String,
    /// The namespace's labels.
    pub labels: BTreeMap<String, String>,
}

impl NamespaceInfo {
    /// A namespace named `name` with `labels`.
    pub fn new(name: &str, labels: &[(&str, &str)]) -> Self {
        Self {
            name: name.to_owned(),
            labels: labels
                .iter()
                .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
                .collect(),
        }
    }

    /// Reads name and labels from a Namespace's (or its metadata-only
    /// projection's) metadata.
    pub fn from_metadata(metadata: &ObjectMeta) -> Self {
        Self {
            name: metadata.name.clone().unwrap_or_default(),
            labels: metadata.labels.clone().unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_info_reads_metadata() {
        let metadata = ObjectMeta {
            name: Some("shop".to_owned()),
            labels: Some(BTreeMap::from([("team".to_owned(), "a".to_owned())])),
            ..ObjectMeta::default()
        };
        assert_eq!(
            NamespaceInfo::from_metadata(&metadata),
            NamespaceInfo::new("shop", &[("team", "a")])
        );
        assert_eq!(
            NamespaceInfo::from_metadata(&ObjectMeta::default()),
            NamespaceInfo::default()
        );
    }
}
