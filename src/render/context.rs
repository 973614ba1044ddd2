//! What every rendered object of one (profile, namespace) shares: its
//! metadata (labels, owner reference) and the [`RenderProblem`] a kind
//! reports instead of an object it cannot render.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;
use serde::Serialize;

use crate::api::{MANAGED_BY_LABEL, MANAGER_NAME, PROFILE_LABEL, ProductionProfile};
use crate::namespace::NamespaceInfo;
use crate::reason::Reason;

/// Prefix of every managed object's name in a selected namespace.
pub const NAME_PREFIX: &str = "baseliner-";

/// Something the profile asks for that cannot be rendered for a namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RenderProblem {
    /// Why, e.g. [`Reason::RoleNotAllowed`], [`Reason::InvalidSubject`].
    pub reason: Reason,
    /// Path of the offending field, e.g. `spec.roleBindings[1].subjects[0].name`.
    pub field: String,
    /// What is wrong, for a human.
    pub message: String,
}

impl fmt::Display for RenderProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.reason, self.field, self.message)
    }
}

/// What every object rendered for one (profile, namespace) shares.
pub(crate) struct RenderContext<'a> {
    pub(crate) profile_name: &'a str,
    pub(crate) namespace: &'a NamespaceInfo,
    /// Set only when the profile came from the cluster (it has a uid): an
    /// offline render has nothing to point at.
    owner_reference: Option<OwnerReference>,
}

impl<'a> RenderContext<'a> {
    pub(crate) fn new(profile: &'a ProductionProfile, namespace: &'a NamespaceInfo) -> Self {
        Self {
            profile_name: profile.metadata.name.as_deref().unwrap_or_default(),
            namespace,
            // controller: true so the owner is unambiguous; blockOwnerDeletion
            // stays unset: setting it needs `update` on the profiles'
            // finalizers subresource, and background GC does not need it.
            owner_reference: profile.controller_owner_ref(&()),
        }
    }

    pub(crate) fn labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (MANAGED_BY_LABEL.to_owned(), MANAGER_NAME.to_owned()),
            (PROFILE_LABEL.to_owned(), self.profile_name.to_owned()),
        ])
    }

    /// Metadata of an object in the selected namespace.
    pub(crate) fn metadata(&self, name: String) -> ObjectMeta {
        self.metadata_in(name, self.namespace.name.clone(), self.labels())
    }

    pub(crate) fn metadata_in(
        &self,
        name: String,
        namespace: String,
        labels: BTreeMap<String, String>,
    ) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: Some(namespace),
            labels: Some(labels),
            owner_references: self.owner_reference.clone().map(|owner| vec![owner]),
            ..ObjectMeta::default()
        }
    }
}
