//! Which live objects are known to hold exactly what we would apply, and
//! which of our own writes the caches have not caught up with yet.
//!
//! The index sees only metadata. When we apply an object, or read one and
//! find it in sync, we note its resourceVersion together with a fingerprint
//! of the desired object. Until either changes, no read or write is needed,
//! which is what makes a quiet resync free.
//!
//! Our writes also run ahead of the caches: until the watch brings back the
//! echo of a create, a delete or a namespace patch, the cache still shows
//! the state before it, and another reconcile in that window would write the
//! same thing again. Normally the echo comes within milliseconds; after a
//! watch fails (`410 Gone`, an apiserver restart) it comes only once the
//! watch has re-listed, while every other watch's re-list starts a pass over
//! all namespaces. So, as Kubernetes' own controllers do with their
//! "expectations", we remember each such write until the cache moves.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::Mutex;

use super::index::ObjectKey;
use super::plan::VerifiedRecord;

#[derive(Default)]
pub struct VerifiedObjects {
    /// Per managed object: digests of its key and resourceVersion, and the
    /// desired object's fingerprint. Digests rather than the strings: there
    /// is one record per managed object (80,000 at 10,000 namespaces), and
    /// a false match needs two 64-bit digests to collide at once.
    inner: Mutex<HashMap<u64, Record>>,
    digests: RandomState,
    /// Per managed object read and found not in sync: digests of its key
    /// and of the resourceVersion read (see [`VerifiedObjects::note_read`]).
    read: Mutex<HashMap<u64, u64>>,
    /// Objects we deleted or orphaned: the resourceVersion the index showed.
    pruned: Mutex<HashMap<ObjectKey, String>>,
    /// Namespaces whose labels we patched: the resourceVersion the cache
    /// showed then, and a fingerprint of the patch.
    namespaces: Mutex<HashMap<String, (String, u64)>>,
}

#[derive(Clone, Copy)]
struct Record {
    version: u64,
    fingerprint: u64,
}

impl VerifiedObjects {
    fn digest(&self, value: impl Hash) -> u64 {
        self.digests.hash_one(value)
    }

    fn get(&self, key: &ObjectKey) -> Option<Record> {
        let map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&self.digest(key)).copied()
    }

    pub fn is_verified(&self, key: &ObjectKey, resource_version: &str, fingerprint: u64) -> bool {
        let version = self.digest(resource_version);
        self.get(key)
            .is_some_and(|r| r.version == version && r.fingerprint == fingerprint)
    }

    /// True when `resource_version` is the one we last verified, whatever the
    /// desired object: the watch event is the echo of our own write.
    pub fn is_known_version(&self, key: &ObjectKey, resource_version: &str) -> bool {
        let version = self.digest(resource_version);
        self.get(key).is_some_and(|r| r.version == version)
    }

    /// True when we applied exactly this desired object and no deletion of
    /// it has been seen since: an index without it has not seen the create
    /// yet. (A deletion seen by the watch calls [`VerifiedObjects::forget`].)
    pub fn is_applied(&self, key: &ObjectKey, fingerprint: u64) -> bool {
        self.get(key).is_some_and(|r| r.fingerprint == fingerprint)
    }

    pub fn record(&self, key: &ObjectKey, resource_version: &str, fingerprint: u64) {
        let record = Record {
            version: self.digest(resource_version),
            fingerprint,
        };
        let key = self.digest(key);
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        map.insert(key, record);
        drop(map);
        let mut read = self.read.lock().unwrap_or_else(|e| e.into_inner());
        read.remove(&key);
    }

    /// We read the object at `resource_version` and it was not in sync (or
    /// nothing desires it): reading it again would tell nothing new. The
    /// reconcile still acts on it; this only keeps [`super::verify`] from
    /// reading it over and over.
    pub fn note_read(&self, key: &ObjectKey, resource_version: &str) {
        let (key, version) = (self.digest(key), self.digest(resource_version));
        let mut read = self.read.lock().unwrap_or_else(|e| e.into_inner());
        read.insert(key, version);
    }

    /// True when the object at `resource_version` is verified or was read
    /// and found not in sync: either way its body has been seen.
    pub fn is_read(&self, key: &ObjectKey, resource_version: &str) -> bool {
        if self.is_known_version(key, resource_version) {
            return true;
        }
        let version = self.digest(resource_version);
        let read = self.read.lock().unwrap_or_else(|e| e.into_inner());
        read.get(&self.digest(key)) == Some(&version)
    }

    /// The watch saw the object go (or we are about to remove it).
    pub fn forget(&self, key: &ObjectKey) {
        let digest = self.digest(key);
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&digest);
        drop(map);
        let mut read = self.read.lock().unwrap_or_else(|e| e.into_inner());
        read.remove(&digest);
        drop(read);
        let mut pruned = self.pruned.lock().unwrap_or_else(|e| e.into_inner());
        pruned.remove(key);
    }

    /// We removed the object the index shows at `resource_version`.
    pub fn record_pruned(&self, key: ObjectKey, resource_version: String) {
        let mut pruned = self.pruned.lock().unwrap_or_else(|e| e.into_inner());
        pruned.insert(key, resource_version);
    }

    /// True when we already removed this very version of the object: the
    /// index has not seen the deletion yet.
    pub fn is_pruned(&self, key: &ObjectKey, resource_version: &str) -> bool {
        let pruned = self.pruned.lock().unwrap_or_else(|e| e.into_inner());
        pruned.get(key).is_some_and(|rv| rv == resource_version)
    }

    /// We patched namespace `name`'s labels while the cache showed it at
    /// `resource_version`.
    pub fn record_namespace(&self, name: &str, resource_version: String, fingerprint: u64) {
        let mut map = self.namespaces.lock().unwrap_or_else(|e| e.into_inner());
        map.insert(name.to_owned(), (resource_version, fingerprint));
    }

    /// True when we made this very patch and the cache has not moved since;
    /// once it has, the record is dropped and the cache is to be believed.
    pub fn is_namespace_patched(
        &self,
        name: &str,
        resource_version: &str,
        fingerprint: u64,
    ) -> bool {
        let mut map = self.namespaces.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(name) {
            Some((rv, fp)) if rv == resource_version => *fp == fingerprint,
            Some(_) => {
                map.remove(name);
                false
            }
            None => false,
        }
    }

    pub fn forget_namespace(&self, name: &str) {
        let mut map = self.namespaces.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(name);
    }
}

impl VerifiedRecord for VerifiedObjects {
    fn is_verified(&self, key: &ObjectKey, resource_version: &str, fingerprint: u64) -> bool {
        VerifiedObjects::is_verified(self, key, resource_version, fingerprint)
    }

    fn is_applied(&self, key: &ObjectKey, fingerprint: u64) -> bool {
        VerifiedObjects::is_applied(self, key, fingerprint)
    }

    fn is_pruned(&self, key: &ObjectKey, resource_version: &str) -> bool {
        VerifiedObjects::is_pruned(self, key, resource_version)
    }

    fn is_namespace_patched(&self, name: &str, resource_version: &str, fingerprint: u64) -> bool {
        VerifiedObjects::is_namespace_patched(self, name, resource_version, fingerprint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kind::ManagedKind;

    fn key() -> ObjectKey {
        ObjectKey {
            kind: ManagedKind::LimitRange,
            namespace: "team".to_owned(),
            name: "baseliner-limits".to_owned(),
        }
    }

    #[test]
    fn an_applied_object_stays_applied_until_its_deletion_is_seen() {
        let verified = VerifiedObjects::default();
        assert!(!verified.is_applied(&key(), 7));
        verified.record(&key(), "10", 7);
        assert!(verified.is_applied(&key(), 7));
        assert!(!verified.is_applied(&key(), 8), "another desired object");
        verified.forget(&key());
        assert!(!verified.is_applied(&key(), 7));
    }

    #[test]
    fn verified_means_this_version_and_this_desired_object() {
        let verified = VerifiedObjects::default();
        verified.record(&key(), "10", 7);
        assert!(verified.is_verified(&key(), "10", 7));
        assert!(verified.is_known_version(&key(), "10"));
        assert!(!verified.is_verified(&key(), "11", 7), "changed since");
        assert!(!verified.is_known_version(&key(), "11"));
        assert!(!verified.is_verified(&key(), "10", 8), "desired changed");
        let other = ObjectKey {
            name: "baseliner-other".to_owned(),
            ..key()
        };
        assert!(!verified.is_verified(&other, "10", 7), "another object");
    }

    #[test]
    fn a_version_read_out_of_sync_is_read_until_it_changes() {
        let verified = VerifiedObjects::default();
        assert!(!verified.is_read(&key(), "10"));
        verified.note_read(&key(), "10");
        assert!(verified.is_read(&key(), "10"));
        assert!(
            !verified.is_known_version(&key(), "10"),
            "read is not verified"
        );
        assert!(!verified.is_read(&key(), "11"), "changed since");
        verified.record(&key(), "12", 7);
        assert!(verified.is_read(&key(), "12"), "verified counts as read");
        assert!(!verified.is_read(&key(), "10"), "the old note is gone");
        verified.note_read(&key(), "13");
        verified.forget(&key());
        assert!(!verified.is_read(&key(), "13"));
    }

    #[test]
    fn a_pruned_version_is_pruned_until_the_object_changes_or_goes() {
        let verified = VerifiedObjects::default();
        verified.record_pruned(key(), "10".to_owned());
        assert!(verified.is_pruned(&key(), "10"));
        assert!(!verified.is_pruned(&key(), "11"), "recreated since");
        verified.forget(&key());
        assert!(!verified.is_pruned(&key(), "10"));
    }

    #[test]
    fn a_namespace_patch_counts_until_the_cache_moves() {
        let verified = VerifiedObjects::default();
        verified.record_namespace("team", "5".to_owned(), 1);
        assert!(verified.is_namespace_patched("team", "5", 1));
        assert!(
            !verified.is_namespace_patched("team", "5", 2),
            "another patch"
        );
        assert!(
            !verified.is_namespace_patched("team", "6", 1),
            "the cache moved"
        );
        assert!(
            !verified.is_namespace_patched("team", "5", 1),
            "and the record is gone"
        );
    }
}
