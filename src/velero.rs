//! A minimal typed Velero `Schedule` (`velero.io/v1`), holding only the
//! fields baseliner sets. Velero's own CRD defines the rest; this type is
//! never part of baseliner's CRD output.
//!
//! Every optional field is skipped when unset so that a server-side apply
//! never sends nulls and never claims fields Velero or a user may own.

use std::collections::BTreeMap;

use kube::CustomResource;
use serde::{Deserialize, Serialize};

/// Desired state of a Velero Schedule.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "velero.io",
    version = "v1",
    kind = "Schedule",
    plural = "schedules",
    namespaced,
    schema = "disabled",
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleSpec {
    /// Cron expression or descriptor (`@daily`).
    pub schedule: String,

    /// The Backup each run creates.
    #[serde(default)]
    pub template: BackupTemplate,

    /// Whether Velero records the Schedule as owner of its Backups. Set to
    /// false: Backups must outlive the Schedule baseliner may prune.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_owner_references_in_backup: Option<bool>,

    /// Whether Velero skips this Schedule's runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
}

/// The parts of a Velero BackupSpec baseliner sets.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BackupTemplate {
    /// Namespaces to back up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub included_namespaces: Option<Vec<String>>,

    /// How long each Backup is kept, e.g. `720h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,

    /// BackupStorageLocation to write to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_location: Option<String>,

    /// Whether to snapshot volumes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_volumes: Option<bool>,

    /// Whether pod volumes are backed up with file-system backup by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_volumes_to_fs_backup: Option<bool>,

    /// Whether snapshot data is moved to the storage location.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_move_data: Option<bool>,

    /// The resource policies (a ConfigMap in Velero's namespace) each Backup follows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_policy: Option<ResourcePolicyRef>,

    /// Metadata Velero puts on each Backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BackupTemplateMetadata>,
}

/// A reference to Velero resource policies: `{kind: configmap, name}`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct ResourcePolicyRef {
    /// Always `configmap`, the one kind Velero reads policies from.
    pub kind: String,
    /// The ConfigMap's name.
    pub name: String,
}

/// Metadata Velero copies onto the Backups a Schedule creates.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BackupTemplateMetadata {
    /// Labels of each Backup.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn unset_fields_are_not_serialized() {
        let schedule = Schedule::new(
            "s",
            ScheduleSpec {
                schedule: "@daily".to_owned(),
                ..ScheduleSpec::default()
            },
        );
        assert_eq!(
            serde_json::to_value(&schedule).expect("serializes"),
            json!({
                "apiVersion": "velero.io/v1",
                "kind": "Schedule",
                "metadata": {"name": "s"},
                "spec": {"schedule": "@daily", "template": {}},
            })
        );
    }

    #[test]
    fn reads_a_schedule_velero_has_filled_in() {
        // Fields Velero adds (paused, status, other template fields) must not
        // stop a Schedule from being read.
        let schedule: Schedule = serde_json::from_value(json!({
            "apiVersion": "velero.io/v1",
            "kind": "Schedule",
            "metadata": {"name": "s", "namespace": "velero"},
            "spec": {
                "schedule": "0 2 * * *",
                "paused": false,
                "useOwnerReferencesInBackup": false,
                "template": {
                    "includedNamespaces": ["shop"],
                    "ttl": "720h0m0s",
                    "csiSnapshotTimeout": "10m0s",
                    "metadata": {"labels": {"a": "b"}},
                },
            },
            "status": {"phase": "Enabled"},
        }))
        .expect("deserializes");
        assert_eq!(schedule.spec.schedule, "0 2 * * *");
        assert_eq!(schedule.spec.use_owner_references_in_backup, Some(false));
        assert_eq!(
            schedule.spec.template.included_namespaces,
            Some(vec!["shop".to_owned()])
        );
        assert_eq!(schedule.spec.template.ttl.as_deref(), Some("720h0m0s"));
        assert_eq!(
            schedule.spec.template.metadata.map(|m| m.labels),
            Some(BTreeMap::from([("a".to_owned(), "b".to_owned())]))
        );
    }
}
