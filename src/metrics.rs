//! Operator metrics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::controller::index::ManagedKind;

/// Counters of what the controller did.
#[derive(Default)]
pub struct Metrics {
    reconciles_ok: AtomicU64,
    reconciles_failed: AtomicU64,
    applied: AtomicU64,
    pruned: AtomicU64,
    drift_corrections: AtomicU64,
}

impl Metrics {
    pub fn reconciled(&self, ok: bool, _took: Duration) {
        let counter = if ok {
            &self.reconciles_ok
        } else {
            &self.reconciles_failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn applied(&self, _kind: ManagedKind) {
        self.applied.fetch_add(1, Ordering::Relaxed);
    }

    pub fn pruned(&self, _kind: ManagedKind) {
        self.pruned.fetch_add(1, Ordering::Relaxed);
    }

    pub fn drift_corrected(&self, _kind: ManagedKind) {
        self.drift_corrections.fetch_add(1, Ordering::Relaxed);
    }

    pub fn set_profile_counts(&self, _profile: &str, _matched: i32, _compliant: i32) {}
}
