//! Test fixtures shared by the render tests: profiles from YAML, namespaces,
//! and lookups in a render's output.

use serde_json::{Value, json};

use super::{RenderOptions, RenderedNamespace, render_namespace};
use crate::api::ProductionProfile;
use crate::namespace::NamespaceInfo;

pub(crate) const UID: &str = "7c9e6679-7425-40de-944b-e07fc1f90ae7";

/// A profile named `prod` without a uid (as read from a file), with
/// `spec` given as YAML indented by eight spaces.
pub(crate) fn profile(spec: &str) -> ProductionProfile {
    let yaml = format!(
        "apiVersion: baseliner.dev/v1alpha1\nkind: ProductionProfile\nmetadata:\n  name: prod\nspec:\n{spec}"
    );
    serde_saphyr::from_str(&yaml).unwrap_or_else(|error| panic!("fixture: {error}\n{yaml}"))
}

pub(crate) fn profile_with_uid(spec: &str) -> ProductionProfile {
    let mut profile = profile(spec);
    profile.metadata.uid = Some(UID.to_owned());
    profile
}

pub(crate) fn namespace(name: &str, labels: &[(&str, &str)]) -> NamespaceInfo {
    NamespaceInfo::new(name, labels)
}

pub(crate) fn render(profile: &ProductionProfile, namespace: &NamespaceInfo) -> RenderedNamespace {
    render_namespace(profile, namespace, &RenderOptions::default())
}

/// The rendered object named `name`, as JSON.
pub(crate) fn object(rendered: &RenderedNamespace, name: &str) -> Value {
    rendered
        .objects
        .iter()
        .find(|object| object.name() == name)
        .unwrap_or_else(|| panic!("no object {name} in {:?}", names(rendered)))
        .to_json()
}

pub(crate) fn names(rendered: &RenderedNamespace) -> Vec<String> {
    rendered
        .objects
        .iter()
        .map(|object| format!("{}/{}", object.kind(), object.name()))
        .collect()
}

pub(crate) fn metadata(name: &str) -> Value {
    json!({
        "name": name,
        "namespace": "shop",
        "labels": {
            "app.kubernetes.io/managed-by": "baseliner",
            "baseliner.dev/profile": "prod",
        },
    })
}

pub(crate) const SELECT_ALL: &str = "  namespaces:\n    selector: {}\n";

pub(crate) const BACKUP: &str = "  backup:
    schedule: '0 2 * * *'
    storageLocation: s3-eu
    snapshotVolumes: false
";
