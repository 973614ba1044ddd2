//! Bad input in `spec.podSecurity`.

use std::collections::BTreeMap;

use super::table::{Accepted, Check, Expect, accepted};

/// Hostile profiles the API server accepts and the operator must handle.
pub(super) fn accepted_cases() -> Vec<Accepted> {
    vec![accepted(
        "pod-security-future-version",
        "  podSecurity:\n    enforce: restricted\n    enforceVersion: v1.999\n",
        BTreeMap::new(),
        Expect::Compliant(Check::None),
    )]
}
