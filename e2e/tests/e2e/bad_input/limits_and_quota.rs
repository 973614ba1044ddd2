//! Bad input in `spec.limitRange` and `spec.resourceQuota`.

use std::collections::BTreeMap;

use super::table::{Accepted, Refused, accepted, many, refused, reported};

/// Hostile profiles the API server accepts and the operator must handle.
pub(super) fn accepted_cases() -> Vec<Accepted> {
    vec![accepted(
        "limit-request-above-max",
        "  limitRange:\n    defaultRequest: {cpu: \"2\"}\n    max: {cpu: \"1\"}\n",
        BTreeMap::new(),
        reported("Rejected", "LimitRange"),
    )]
}

/// Hostile profiles the API server must refuse, with the field it names.
pub(super) fn refused_cases() -> Vec<Refused> {
    vec![
        refused(
            "quota-as-list",
            "  resourceQuota:\n    hard: [pods]\n",
            "spec.resourceQuota.hard",
        ),
        refused(
            "quota-65-entries",
            &format!(
                "  resourceQuota:\n    hard: {{{}}}\n",
                many(65, &|i| format!("count/t{i}.example.com: \"1\""))
            ),
            "spec.resourceQuota.hard",
        ),
        refused(
            "quota-negative",
            "  resourceQuota:\n    hard: {pods: \"-1\"}\n",
            "spec.resourceQuota.hard",
        ),
        refused(
            "quota-value-padded",
            "  resourceQuota:\n    hard: {pods: \" 5\"}\n",
            "spec.resourceQuota.hard",
        ),
    ]
}
