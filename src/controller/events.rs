//! Events gathered between status passes: reconciles note what they did
//! here, and the status writer sends one Event per profile and reason.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::reason::Reason;

/// Events gathered between status passes.
#[derive(Default)]
pub struct EventBatcher {
    pending: Mutex<BTreeMap<(String, Reason, bool), Vec<String>>>,
}

impl EventBatcher {
    pub fn normal(&self, profile: &str, reason: Reason, what: String) {
        self.push(profile, reason, false, what);
    }

    pub fn warning(&self, profile: &str, reason: Reason, what: String) {
        self.push(profile, reason, true, what);
    }

    fn push(&self, profile: &str, reason: Reason, warning: bool, what: String) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending
            .entry((profile.to_owned(), reason, warning))
            .or_default()
            .push(what);
    }

    /// Everything gathered since the last call, by profile, reason and
    /// whether it is a warning.
    pub fn take(&self) -> BTreeMap<(String, Reason, bool), Vec<String>> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()))
    }
}
