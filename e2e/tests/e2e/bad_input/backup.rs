//! Bad input in `spec.backup`: crons that never fire or do not parse, a
//! Velero namespace that does not exist, values over their limits.

use std::collections::BTreeMap;

use baseliner_e2e::random_name;

use super::table::{Accepted, Refused, accepted, refused, reported};

/// Hostile profiles the API server accepts and the operator must handle.
pub(super) fn accepted_cases() -> Vec<Accepted> {
    vec![
        accepted(
            "cron-february-30",
            "  backup:\n    schedule: \"15 3 30 2 *\"\n",
            BTreeMap::new(),
            reported("InvalidSchedule", "never"),
        ),
        accepted(
            "cron-letters",
            "  backup:\n    schedule: \"a b c d e\"\n",
            BTreeMap::new(),
            reported("InvalidSchedule", "minute field \"a\""),
        ),
        accepted(
            "velero-namespace-missing",
            &format!(
                "  backup:\n    schedule: \"@daily\"\n    veleroNamespace: {}\n",
                random_name("no-velero")
            ),
            BTreeMap::new(),
            reported("BackupsUnavailable", "is Velero installed"),
        ),
    ]
}

/// Hostile profiles the API server must refuse, with the field it names.
pub(super) fn refused_cases() -> Vec<Refused> {
    vec![
        refused(
            "schedule-101-chars",
            &format!(
                "  backup: {{schedule: \"{}\"}}\n",
                "1,".repeat(50) + "1 * * * *"
            ),
            "spec.backup.schedule",
        ),
        refused(
            "schedule-every",
            "  backup: {schedule: \"@every 1h\"}\n",
            "spec.backup.schedule",
        ),
        refused(
            "schedule-with-timezone",
            "  backup: {schedule: \"CRON_TZ=UTC 0 2 * * *\"}\n",
            "spec.backup.schedule",
        ),
        refused(
            "unknown-nested-field",
            "  backup: {schedule: \"@daily\", retention: 30d}\n",
            "spec.backup.retention",
        ),
        refused(
            "resource-policy-not-a-name",
            "  backup: {schedule: \"@daily\", resourcePolicy: \"Skip Caches\"}\n",
            "spec.backup.resourcePolicy",
        ),
        refused(
            "paused-not-a-boolean",
            "  backup: {schedule: \"@daily\", paused: sometimes}\n",
            "spec.backup.paused",
        ),
        refused(
            "velero-namespace-too-long",
            &format!(
                "  backup: {{schedule: \"@daily\", veleroNamespace: {}}}\n",
                "v".repeat(64)
            ),
            "spec.backup.veleroNamespace",
        ),
        refused(
            "storage-location-injection",
            "  backup: {schedule: \"@daily\", storageLocation: \"default; rm -rf /\"}\n",
            "spec.backup.storageLocation",
        ),
    ]
}
