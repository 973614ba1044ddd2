//! Which live objects are known to hold exactly what we would apply.
//!
//! The index sees only metadata. When we apply an object, or read one and
//! find it in sync, we note its resourceVersion together with a fingerprint
//! of the desired object. Until either changes, no read or write is needed,
//! which is what makes a quiet resync free.

use std::collections::HashMap;
use std::sync::Mutex;

use super::index::ObjectKey;

#[derive(Default)]
pub struct VerifiedObjects {
    inner: Mutex<HashMap<ObjectKey, (String, u64)>>,
}

impl VerifiedObjects {
    pub fn is_verified(&self, key: &ObjectKey, resource_version: &str, fingerprint: u64) -> bool {
        let map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        map.get(key)
            .is_some_and(|(rv, fp)| rv == resource_version && *fp == fingerprint)
    }

    /// True when `resource_version` is the one we last verified, whatever the
    /// desired object: the watch event is the echo of our own write.
    pub fn is_known_version(&self, key: &ObjectKey, resource_version: &str) -> bool {
        let map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        map.get(key).is_some_and(|(rv, _)| rv == resource_version)
    }

    pub fn record(&self, key: ObjectKey, resource_version: String, fingerprint: u64) {
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        map.insert(key, (resource_version, fingerprint));
    }

    pub fn forget(&self, key: &ObjectKey) {
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(key);
    }
}
