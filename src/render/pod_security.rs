//! Pod Security Admission: the `pod-security.kubernetes.io/*` labels a
//! profile sets on a namespace, and the one place that builds the Namespace
//! objects carrying them (the apply patch the controller sends, and the
//! preview `baseliner render` prints).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::api::{
    DELETION_POLICY_ANNOTATION, DeletionPolicy, POD_SECURITY_ANNOTATION, PROFILE_LABEL,
    PodSecurityLevel, PodSecuritySpec,
};

/// Version label value used when a level is set without a version.
pub const DEFAULT_POD_SECURITY_VERSION: &str = "latest";

/// The `pod-security.kubernetes.io/*` labels for a profile's Pod Security
/// levels. A version label is set only with its level, and is
/// [`DEFAULT_POD_SECURITY_VERSION`] when the profile names none, so the
/// namespace says explicitly which policy version it is held to.
pub fn pod_security_labels(spec: &PodSecuritySpec) -> BTreeMap<String, String> {
    let modes: [(&str, Option<PodSecurityLevel>, &Option<String>); 3] = [
        ("enforce", spec.enforce, &spec.enforce_version),
        ("audit", spec.audit, &spec.audit_version),
        ("warn", spec.warn, &spec.warn_version),
    ];
    let mut labels = BTreeMap::new();
    for (mode, level, version) in modes {
        let Some(level) = level else { continue };
        labels.insert(
            format!("pod-security.kubernetes.io/{mode}"),
            level.as_str().to_owned(),
        );
        labels.insert(
            format!("pod-security.kubernetes.io/{mode}-version"),
            version
                .clone()
                .unwrap_or_else(|| DEFAULT_POD_SECURITY_VERSION.to_owned()),
        );
    }
    labels
}

/// A Namespace object holding `labels`, as `baseliner render` prints it and
/// as the base of the apply patch.
pub fn namespace_object(name: &str, labels: &BTreeMap<String, String>) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "labels": labels,
        },
    })
}

/// The Pod Security labels a profile sets on one namespace, with the
/// annotations that mark them as baseliner's: which keys it set, for which
/// profile, and that profile's deletion policy (so they can be released
/// correctly after the profile is gone).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamespaceLabels<'a> {
    /// The labels, from [`pod_security_labels`].
    pub labels: &'a BTreeMap<String, String>,
    /// The owning profile's name.
    pub profile: &'a str,
    /// The owning profile's deletion policy.
    pub deletion_policy: DeletionPolicy,
}

impl NamespaceLabels<'_> {
    /// The value of the [`POD_SECURITY_ANNOTATION`] marker: the label keys,
    /// sorted, comma-separated.
    pub fn marker(&self) -> String {
        let mut marker = String::new();
        for key in self.labels.keys() {
            if !marker.is_empty() {
                marker.push(',');
            }
            marker.push_str(key);
        }
        marker
    }

    /// The value of the [`DELETION_POLICY_ANNOTATION`] marker.
    pub fn policy(&self) -> &'static str {
        match self.deletion_policy {
            DeletionPolicy::Delete => "Delete",
            DeletionPolicy::Orphan => "Orphan",
        }
    }

    /// The server-side apply patch of namespace `name` that sets the labels
    /// and their markers, and nothing else.
    pub fn apply_patch(&self, name: &str) -> Value {
        let mut body = namespace_object(name, self.labels);
        body["metadata"]["annotations"] = json!({
            POD_SECURITY_ANNOTATION: self.marker(),
            PROFILE_LABEL: self.profile,
            DELETION_POLICY_ANNOTATION: self.policy(),
        });
        body
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::api::POD_SECURITY_LABELS;
    use crate::render::fixtures::*;

    #[test]
    fn pod_security_labels_cases() {
        let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
            (
                "{enforce: restricted}",
                vec![
                    ("pod-security.kubernetes.io/enforce", "restricted"),
                    ("pod-security.kubernetes.io/enforce-version", "latest"),
                ],
            ),
            (
                "{enforce: baseline, enforceVersion: v1.30, warn: restricted, audit: privileged, auditVersion: v1.29}",
                vec![
                    ("pod-security.kubernetes.io/audit", "privileged"),
                    ("pod-security.kubernetes.io/audit-version", "v1.29"),
                    ("pod-security.kubernetes.io/enforce", "baseline"),
                    ("pod-security.kubernetes.io/enforce-version", "v1.30"),
                    ("pod-security.kubernetes.io/warn", "restricted"),
                    ("pod-security.kubernetes.io/warn-version", "latest"),
                ],
            ),
            // A version without its level is not set.
            (
                "{warn: baseline, enforceVersion: v1.30}",
                vec![
                    ("pod-security.kubernetes.io/warn", "baseline"),
                    ("pod-security.kubernetes.io/warn-version", "latest"),
                ],
            ),
        ];
        for (pod_security, expected) in cases {
            let spec = format!("{SELECT_ALL}  podSecurity: {pod_security}\n");
            let rendered = render(&profile(&spec), &namespace("shop", &[]));
            let expected: BTreeMap<String, String> = expected
                .into_iter()
                .map(|(key, value)| (key.to_owned(), value.to_owned()))
                .collect();
            assert_eq!(rendered.namespace_labels, expected, "{pod_security}");
            assert!(
                expected
                    .keys()
                    .all(|key| POD_SECURITY_LABELS.contains(&key.as_str())),
                "{pod_security}"
            );
            assert_eq!(rendered.objects, vec![], "{pod_security}");
        }
        let without = render(&profile(SELECT_ALL), &namespace("shop", &[]));
        assert_eq!(without.namespace_labels, BTreeMap::new());
    }

    #[test]
    fn the_apply_patch_sets_labels_and_markers_only() {
        let labels = BTreeMap::from([
            (
                "pod-security.kubernetes.io/warn".to_owned(),
                "baseline".to_owned(),
            ),
            (
                "pod-security.kubernetes.io/enforce".to_owned(),
                "restricted".to_owned(),
            ),
        ]);
        let marked = NamespaceLabels {
            labels: &labels,
            profile: "prod",
            deletion_policy: DeletionPolicy::Orphan,
        };
        assert_eq!(
            marked.apply_patch("shop"),
            json!({
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {
                    "name": "shop",
                    "labels": {
                        "pod-security.kubernetes.io/enforce": "restricted",
                        "pod-security.kubernetes.io/warn": "baseline",
                    },
                    "annotations": {
                        "baseliner.dev/pod-security-labels":
                            "pod-security.kubernetes.io/enforce,pod-security.kubernetes.io/warn",
                        "baseliner.dev/profile": "prod",
                        "baseliner.dev/deletion-policy": "Orphan",
                    },
                },
            })
        );
        assert_eq!(
            namespace_object("shop", &labels)["metadata"].get("annotations"),
            None
        );
    }
}
