//! The Velero Schedule (`velero.io/v1`) backing up each selected namespace,
//! in Velero's namespace, and its collision-free name.

use std::collections::BTreeMap;

use super::context::{RenderContext, RenderProblem};
use crate::api::{BackupSpec, NAMESPACE_LABEL, PROFILE_LABEL};
use crate::cron;
use crate::reason::Reason;
use crate::velero::{
    BackupTemplate, BackupTemplateMetadata, ResourcePolicyRef, Schedule, ScheduleSpec,
};

/// Longest name of a Velero Schedule: Velero copies it into a label value.
pub const MAX_SCHEDULE_NAME_LEN: usize = 63;

const SCHEDULE_HASH_LEN: usize = 10;

/// The Velero Schedule backing up the namespace; a cron Velero cannot
/// parse, or one that matches no date, would give a Schedule that never
/// backs up, so it is reported instead.
pub(crate) fn render_backup_schedule(
    context: &RenderContext,
    spec: &BackupSpec,
) -> Result<Schedule, RenderProblem> {
    match cron::check_schedule(&spec.schedule) {
        Ok(()) => Ok(schedule(context, spec)),
        Err(why) => Err(RenderProblem {
            reason: Reason::InvalidSchedule,
            field: "spec.backup.schedule".to_owned(),
            message: why,
        }),
    }
}

fn schedule(context: &RenderContext, spec: &BackupSpec) -> Schedule {
    let namespace = &context.namespace.name;
    let mut labels = context.labels();
    labels.insert(NAMESPACE_LABEL.to_owned(), namespace.clone());
    // Velero copies these onto every Backup. The managed-by label is left
    // out: Backups are not baseliner's to prune, and GitOps tools must not
    // take them for tracked objects.
    let backup_labels = BTreeMap::from([
        (PROFILE_LABEL.to_owned(), context.profile_name.to_owned()),
        (NAMESPACE_LABEL.to_owned(), namespace.clone()),
    ]);
    Schedule {
        metadata: context.metadata_in(
            schedule_name(context.profile_name, namespace),
            spec.velero_namespace.clone(),
            labels,
        ),
        spec: ScheduleSpec {
            schedule: spec.schedule.clone(),
            template: BackupTemplate {
                included_namespaces: Some(vec![namespace.clone()]),
                ttl: Some(spec.ttl.clone()),
                storage_location: spec.storage_location.clone(),
                snapshot_volumes: spec.snapshot_volumes,
                default_volumes_to_fs_backup: spec.default_volumes_to_fs_backup,
                snapshot_move_data: spec.snapshot_move_data,
                resource_policy: spec.resource_policy.as_ref().map(|name| ResourcePolicyRef {
                    kind: "configmap".to_owned(),
                    name: name.clone(),
                }),
                metadata: Some(BackupTemplateMetadata {
                    labels: backup_labels,
                }),
            },
            // Backups must survive the Schedule being pruned.
            use_owner_references_in_backup: Some(false),
            paused: spec.paused,
        },
    }
}

/// Name of the Velero Schedule for one (profile, namespace): a readable
/// `<profile>-<namespace>` prefix, cut to fit, plus `-` and 10 hex digits of
/// a stable hash of both names.
///
/// The hash is always there: `<profile>-<namespace>` alone is ambiguous
/// (`team-a` + `prod` and `team` + `a-prod` would share a Schedule), and all
/// Schedules live in the one Velero namespace. The result is a DNS-1123 label
/// of at most 63 characters, as Velero copies it into a label value.
pub fn schedule_name(profile: &str, namespace: &str) -> String {
    // '/' appears in neither name, so the hashed input is unambiguous.
    let hash = fnv1a_64(format!("{profile}/{namespace}").as_bytes());
    let hash = format!("{hash:016x}");
    let readable: String = format!("{profile}-{namespace}")
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .take(MAX_SCHEDULE_NAME_LEN - SCHEDULE_HASH_LEN - 1)
        .collect();
    let readable = readable.trim_matches('-');
    if readable.is_empty() {
        hash[..SCHEDULE_HASH_LEN].to_owned()
    } else {
        format!("{readable}-{}", &hash[..SCHEDULE_HASH_LEN])
    }
}

/// 64-bit FNV-1a: tiny, well known and stable across Rust versions, unlike
/// the standard library's `DefaultHasher`.
fn fnv1a_64(bytes: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.iter().fold(OFFSET_BASIS, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(PRIME)
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use std::collections::BTreeSet;

    use crate::render::fixtures::*;
    use crate::syntax::is_dns1123_label;

    #[test]
    fn an_unusable_backup_schedule_is_reported_not_written() {
        for (schedule, fragment) in [
            ("0 0 31 2 *", "never fires"),
            ("0 2 * * 7", "out of range 0-6"),
        ] {
            let spec = format!("{SELECT_ALL}  backup: {{schedule: '{schedule}'}}\n");
            let rendered = render(&profile(&spec), &namespace("shop", &[]));
            assert!(
                rendered.objects.is_empty(),
                "{schedule}: {:?}",
                names(&rendered)
            );
            let [problem] = rendered.problems.as_slice() else {
                panic!("{schedule}: {:?}", rendered.problems);
            };
            assert_eq!(problem.reason, Reason::InvalidSchedule);
            assert_eq!(problem.field, "spec.backup.schedule");
            assert!(problem.message.contains(fragment), "{}", problem.message);
        }
    }

    #[test]
    fn velero_schedule_renders_in_the_velero_namespace() {
        let spec = format!("{SELECT_ALL}{BACKUP}");
        let rendered = render(&profile(&spec), &namespace("shop", &[]));
        let name = schedule_name("prod", "shop");
        assert_eq!(
            object(&rendered, &name),
            json!({
                "apiVersion": "velero.io/v1",
                "kind": "Schedule",
                "metadata": {
                    "name": name,
                    "namespace": "velero",
                    "labels": {
                        "app.kubernetes.io/managed-by": "baseliner",
                        "baseliner.dev/profile": "prod",
                        "baseliner.dev/namespace": "shop",
                    },
                },
                "spec": {
                    "schedule": "0 2 * * *",
                    "useOwnerReferencesInBackup": false,
                    "template": {
                        "includedNamespaces": ["shop"],
                        "ttl": "720h",
                        "storageLocation": "s3-eu",
                        "snapshotVolumes": false,
                        "metadata": {"labels": {
                            "baseliner.dev/profile": "prod",
                            "baseliner.dev/namespace": "shop",
                        }},
                    },
                },
            })
        );
        let only_defaults = format!(
            "{SELECT_ALL}  backup: {{schedule: '@daily', veleroNamespace: backups, ttl: 72h30m}}\n"
        );
        let rendered = render(&profile(&only_defaults), &namespace("shop", &[]));
        let schedule = object(&rendered, &name);
        assert_eq!(schedule["metadata"]["namespace"], "backups");
        assert_eq!(
            schedule["spec"]["template"],
            json!({
                "includedNamespaces": ["shop"],
                "ttl": "72h30m",
                "metadata": {"labels": {
                    "baseliner.dev/profile": "prod",
                    "baseliner.dev/namespace": "shop",
                }},
            })
        );
    }

    #[test]
    fn backup_owners_fields_render_only_when_set() {
        let spec = format!(
            "{SELECT_ALL}  backup: {{schedule: '@daily', paused: true, defaultVolumesToFsBackup: true, snapshotMoveData: false, resourcePolicy: skip-caches}}\n"
        );
        let rendered = render(&profile(&spec), &namespace("shop", &[]));
        let schedule = object(&rendered, &schedule_name("prod", "shop"));
        assert_eq!(schedule["spec"]["paused"], true);
        let template = &schedule["spec"]["template"];
        assert_eq!(template["defaultVolumesToFsBackup"], true);
        assert_eq!(template["snapshotMoveData"], false);
        assert_eq!(
            template["resourcePolicy"],
            json!({"kind": "configmap", "name": "skip-caches"})
        );
        let plain = render(
            &profile(&format!("{SELECT_ALL}  backup: {{schedule: '@daily'}}\n")),
            &namespace("shop", &[]),
        );
        let plain = object(&plain, &schedule_name("prod", "shop"));
        for absent in [
            "/spec/paused",
            "/spec/template/defaultVolumesToFsBackup",
            "/spec/template/snapshotMoveData",
            "/spec/template/resourcePolicy",
        ] {
            assert!(
                plain.pointer(absent).is_none(),
                "{absent} is Velero's unless set"
            );
        }
    }

    #[test]
    fn schedule_name_cases() {
        let long_profile = "platform-baseline-for-production-workloads";
        let long_namespace = "payments-settlement-reconciliation-service";
        let longest_namespace = "n".repeat(63);
        let cases: Vec<(&str, &str)> = vec![
            ("prod", "shop"),
            // `<profile>-<namespace>` alone would collide for these two.
            ("team-a", "prod"),
            ("team", "a-prod"),
            // Dots are allowed in profile names but not in the result.
            ("prod.example.com", "shop"),
            (long_profile, long_namespace),
            (long_profile, "payments-settlement-reconciliation-service-2"),
            (long_profile, "payments-settlement-reconciliation-service-3"),
            ("p", &longest_namespace),
        ];
        let mut seen = BTreeSet::new();
        for (profile, namespace) in &cases {
            let name = schedule_name(profile, namespace);
            assert!(is_dns1123_label(&name), "{name} for {profile}/{namespace}");
            assert!(name.len() <= MAX_SCHEDULE_NAME_LEN, "{name}");
            assert!(seen.insert(name.clone()), "{name} is not unique");
            assert_eq!(name, schedule_name(profile, namespace), "stable");
        }
        assert!(schedule_name("prod", "shop").starts_with("prod-shop-"));
        assert_eq!(schedule_name("prod", "shop").len(), "prod-shop-".len() + 10);
        assert!(schedule_name("prod.example.com", "shop").starts_with("prod-example-com-shop-"));
        // Cut to 52 characters, then the dangling '-' is dropped.
        let long = schedule_name(long_profile, long_namespace);
        assert_eq!(long.len(), 62, "{long}");
        assert!(long.starts_with("platform-baseline-for-production-workloads-payments-"));
        let longest = schedule_name("p", &longest_namespace);
        assert_eq!(longest.len(), 63, "{longest}");
    }

    #[test]
    fn schedule_name_is_pinned() {
        // The name is stored in the cluster; a change would orphan every
        // existing Schedule. Pin it to catch accidental changes.
        assert_eq!(fnv1a_64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a_64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a_64(b"foobar"), 0x8594_4171_f739_67e8);
        let hash = format!("{:016x}", fnv1a_64(b"prod/shop"));
        assert_eq!(
            schedule_name("prod", "shop"),
            format!("prod-shop-{}", &hash[..10])
        );
    }
}
