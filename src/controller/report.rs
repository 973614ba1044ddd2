//! What each namespace's last reconcile found, kept in memory so the status
//! writer can summarise it per profile.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::Notify;

use crate::reason::Reason;

/// One reason a namespace is not compliant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub reason: Reason,
    pub message: String,
}

impl Problem {
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }
}

/// Outcome of the last reconcile of one namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NamespaceReport {
    /// The profile that owns the namespace, if any.
    pub owner: Option<String>,
    /// The owner's `metadata.generation` this reconcile used.
    pub generation: i64,
    /// Profiles that select the namespace but lost it to `owner`.
    pub conflicts: Vec<String>,
    /// The owner's exceptions in force there (see [`crate::exception`]).
    pub exceptions: Vec<String>,
    pub problems: Vec<Problem>,
}

impl NamespaceReport {
    /// The namespace holds the baseline (as its exceptions leave it).
    pub fn is_compliant(&self) -> bool {
        self.problems.is_empty()
    }

    /// Compliant only by exception: some control is waived.
    pub fn is_excepted(&self) -> bool {
        self.is_compliant() && !self.exceptions.is_empty()
    }
}

/// Reports of every namespace, and a signal that some changed.
#[derive(Default)]
pub struct Reports {
    by_namespace: Mutex<HashMap<String, NamespaceReport>>,
    pub changed: Notify,
}

impl Reports {
    pub fn record(&self, namespace: &str, report: NamespaceReport) {
        let mut map = self.by_namespace.lock().unwrap_or_else(|e| e.into_inner());
        if map.get(namespace) != Some(&report) {
            map.insert(namespace.to_owned(), report);
            self.changed.notify_one();
        }
    }

    pub fn forget(&self, namespace: &str) {
        let mut map = self.by_namespace.lock().unwrap_or_else(|e| e.into_inner());
        if map.remove(namespace).is_some() {
            self.changed.notify_one();
        }
    }

    /// A copy of every report, for one status pass.
    pub fn snapshot(&self) -> HashMap<String, NamespaceReport> {
        self.by_namespace
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}
