//! Readiness: which of the controller's caches have completed their first
//! list. `/readyz` answers 200 only once all have; until then a replica
//! would act on a partial picture of the cluster.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::error;

/// The sync state of each named cache, shared between the controller (which
/// registers and marks them) and the HTTP server (which reports them).
#[derive(Clone, Debug, Default)]
pub struct CacheSync {
    caches: Arc<Mutex<BTreeMap<String, bool>>>,
}

impl CacheSync {
    /// Declares caches that must sync before the process is ready.
    pub fn register<I, S>(&self, names: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut caches = self.caches.lock().unwrap_or_else(|e| e.into_inner());
        for name in names {
            caches.entry(name.into()).or_insert(false);
        }
    }

    /// Records that `name` has completed its first list.
    pub fn mark_synced(&self, name: &str) {
        let mut caches = self.caches.lock().unwrap_or_else(|e| e.into_inner());
        caches.insert(name.to_owned(), true);
    }

    /// Whether `name` has completed its first list.
    pub fn is_synced(&self, name: &str) -> bool {
        let caches = self.caches.lock().unwrap_or_else(|e| e.into_inner());
        caches.get(name).copied().unwrap_or(false)
    }

    /// Caches registered but not synced yet, by name.
    pub fn pending(&self) -> Vec<String> {
        let caches = self.caches.lock().unwrap_or_else(|e| e.into_inner());
        caches
            .iter()
            .filter(|(_, synced)| !**synced)
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// True once caches are registered and every one has synced. Nothing
    /// registered means the controller has not started: not ready.
    pub fn is_ready(&self) -> bool {
        let caches = self.caches.lock().unwrap_or_else(|e| e.into_inner());
        !caches.is_empty() && caches.values().all(|synced| *synced)
    }

    /// What `/readyz` says when not ready.
    pub fn describe_pending(&self) -> String {
        let pending = self.pending();
        if pending.is_empty() && !self.is_ready() {
            "controller not started".to_owned()
        } else {
            format!("caches not synced: {}", pending.join(", "))
        }
    }
}

/// Logs an error every `every` while the caches have not synced, starting
/// `grace` after the call; returns once they have, or on `shutdown`. A cache
/// that never syncs (RBAC denies the list, an API group is broken) must not
/// hide behind a quietly failing readiness probe.
pub async fn log_until_synced(
    caches: CacheSync,
    grace: Duration,
    every: Duration,
    shutdown: CancellationToken,
) {
    let waited = std::time::Instant::now();
    tokio::select! {
        () = shutdown.cancelled() => return,
        () = tokio::time::sleep(grace) => {}
    }
    while !caches.is_ready() {
        error!(
            waited_seconds = waited.elapsed().as_secs(),
            pending = %caches.describe_pending(),
            "caches have not synced; /readyz fails and this replica does no work until they do (check the operator's RBAC and the API server)"
        );
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_every_registered_cache_synced() {
        let caches = CacheSync::default();
        assert!(!caches.is_ready(), "nothing registered is not ready");
        assert_eq!(caches.describe_pending(), "controller not started");
        caches.register(["namespaces", "productionprofiles"]);
        assert!(!caches.is_ready());
        caches.mark_synced("namespaces");
        assert!(caches.is_synced("namespaces"));
        assert!(!caches.is_synced("productionprofiles"));
        assert!(!caches.is_synced("never-registered"));
        assert_eq!(caches.pending(), ["productionprofiles"]);
        assert_eq!(
            caches.describe_pending(),
            "caches not synced: productionprofiles"
        );
        caches.mark_synced("productionprofiles");
        assert!(caches.is_ready());
        // Registering again does not forget that a cache synced.
        caches.register(["namespaces"]);
        assert!(caches.is_ready());
    }
}
