//! The kinds of object baseliner writes for a namespace, named once for
//! rendering, the controller, metrics and the benchmarks.

use k8s_openapi::api::{
    core::v1::{LimitRange, ResourceQuota},
    networking::v1::NetworkPolicy,
    rbac::v1::RoleBinding,
};
use kube::api::ApiResource;

use crate::velero::Schedule;

/// A kind of object baseliner writes inside or for a namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ManagedKind {
    /// `networking.k8s.io/v1` NetworkPolicy.
    NetworkPolicy,
    /// `v1` LimitRange.
    LimitRange,
    /// `v1` ResourceQuota.
    ResourceQuota,
    /// `rbac.authorization.k8s.io/v1` RoleBinding.
    RoleBinding,
    /// `velero.io/v1` Schedule, in the Velero namespace.
    Schedule,
}

impl ManagedKind {
    /// Every kind, in the order objects are sorted and metrics listed.
    pub const ALL: [ManagedKind; 5] = [
        Self::NetworkPolicy,
        Self::LimitRange,
        Self::ResourceQuota,
        Self::RoleBinding,
        Self::Schedule,
    ];

    /// The API resource, for dynamic clients and watches.
    pub fn api_resource(self) -> ApiResource {
        match self {
            Self::NetworkPolicy => ApiResource::erase::<NetworkPolicy>(&()),
            Self::LimitRange => ApiResource::erase::<LimitRange>(&()),
            Self::ResourceQuota => ApiResource::erase::<ResourceQuota>(&()),
            Self::RoleBinding => ApiResource::erase::<RoleBinding>(&()),
            Self::Schedule => ApiResource::erase::<Schedule>(&()),
        }
    }

    /// The kind named `kind` (e.g. `NetworkPolicy`), if baseliner manages it.
    pub fn from_kind(kind: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == kind)
    }

    /// The Kubernetes kind, e.g. `NetworkPolicy`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NetworkPolicy => "NetworkPolicy",
            Self::LimitRange => "LimitRange",
            Self::ResourceQuota => "ResourceQuota",
            Self::RoleBinding => "RoleBinding",
            Self::Schedule => "Schedule",
        }
    }

    /// The `apiVersion`, e.g. `networking.k8s.io/v1`.
    pub fn api_version(self) -> &'static str {
        match self {
            Self::NetworkPolicy => <NetworkPolicy as k8s_openapi::Resource>::API_VERSION,
            Self::LimitRange => <LimitRange as k8s_openapi::Resource>::API_VERSION,
            Self::ResourceQuota => <ResourceQuota as k8s_openapi::Resource>::API_VERSION,
            Self::RoleBinding => <RoleBinding as k8s_openapi::Resource>::API_VERSION,
            Self::Schedule => "velero.io/v1",
        }
    }
}

impl serde::Serialize for ManagedKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl std::fmt::Display for ManagedKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for kind in ManagedKind::ALL {
            assert_eq!(ManagedKind::from_kind(kind.as_str()), Some(kind));
            assert_eq!(kind.api_resource().kind, kind.as_str());
            assert_eq!(kind.api_resource().api_version, kind.api_version());
        }
        assert_eq!(ManagedKind::from_kind("Namespace"), None);
    }
}
