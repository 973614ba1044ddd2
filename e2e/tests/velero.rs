//! baseliner beside the real Velero server (built from its Go module at
//! the release pinned in `e2e/velero/go.mod`, run out of cluster): every
//! Schedule baseliner writes, in every cron form it accepts, is `Enabled`
//! by Velero, neither fights the other over several resync periods, and
//! pruning a Schedule leaves the Backups Velero made from it.
//!
//! A test binary of its own, so no other operator runs while the operator's
//! writes to Schedules are counted by the API server (a FlowSchema matching
//! its ServiceAccount's writes of `schedules.velero.io`).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use baseliner_e2e::baseline::{delete_profile, kubectl_apply, profile_yaml};
use baseliner_e2e::operator::Operator;
use baseliner_e2e::requests::{Requests, counted_operator_identity};
use baseliner_e2e::velero::{VELERO_NAMESPACE, VeleroServer, schedules};
use baseliner_e2e::{TestEnv, Velero, random_name, wait_for, wait_until};
use kube::ResourceExt;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams};

const RESYNC_SECONDS: u64 = 3;

/// Every minute, so Velero makes a Backup during the test; and the fields
/// backup owners ask for.
/// Cron forms of the profile's `schedule` field, beside `* * * * *`.
const CRONS: [&str; 4] = [
    "@weekly",
    "0 2 ? * MON",
    "30 3 1,15 JAN-MAR *",
    "*/15 8-18 * * 1-5",
];

const BACKUP_SPEC: &str = "  backup:
    schedule: \"* * * * *\"
    ttl: 24h
    defaultVolumesToFsBackup: true
    snapshotMoveData: false
";

fn backups(env: &TestEnv) -> Api<DynamicObject> {
    Api::namespaced_with(
        env.client(),
        VELERO_NAMESPACE,
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("velero.io", "v1", "Backup"),
            "backups",
        ),
    )
}

#[tokio::test]
async fn velero_enables_every_schedule_and_neither_fights_the_other() -> Result<()> {
    let env = TestEnv::with_velero(Velero::Installed).await?;
    let mut velero = VeleroServer::start(&env.plane().kubeconfig)?;
    let (home, identity, writes) =
        counted_operator_identity(&env, "velero-home", Requests::Schedules).await?;
    let case = random_name("velero");
    let profile = random_name("velero");
    let mut namespaces = Vec::new();
    for _ in 0..2 {
        let labels = BTreeMap::from([("e2e-case".to_owned(), case.clone())]);
        namespaces.push(env.namespace_with_labels("velero-ns", labels).await?);
    }
    kubectl_apply(&env, &profile_yaml(&profile, &case, BACKUP_SPEC)).await?;
    // The cron forms baseliner accepts, each in a profile of its own: Velero
    // must accept every one (its parser knows no L, W or #, which baseliner
    // refuses offline).
    let mut cron_profiles = Vec::new();
    for (i, cron) in CRONS.iter().enumerate() {
        let case = format!("{case}-cron{i}");
        let labels = BTreeMap::from([("e2e-case".to_owned(), case.clone())]);
        namespaces.push(env.namespace_with_labels("velero-cron", labels).await?);
        let name = format!("{profile}-cron{i}");
        let spec = format!("  backup:\n    schedule: \"{cron}\"\n");
        kubectl_apply(&env, &profile_yaml(&name, &case, &spec)).await?;
        cron_profiles.push(name);
    }
    let resync = RESYNC_SECONDS.to_string();
    let operator = Operator::start(
        &identity.kubeconfig,
        &[
            "--resync-seconds",
            &resync,
            "--leader-elect=false",
            "--http-addr",
            "127.0.0.1:0",
        ],
    )?;

    // Velero validates each Schedule (Enabled) and writes its own fields.
    let api = schedules(env.client(), VELERO_NAMESPACE);
    let mine = ListParams::default().labels(&format!("baseliner.dev/profile={profile}"));
    let managed = ListParams::default().labels("app.kubernetes.io/managed-by=baseliner");
    wait_until(
        "Velero to enable every cron form",
        Duration::from_secs(90),
        || async {
            api.list(&managed).await.is_ok_and(|list| {
                let ours: Vec<_> = list
                    .items
                    .iter()
                    .filter(|s| {
                        s.labels()
                            .get("baseliner.dev/profile")
                            .is_some_and(|p| cron_profiles.contains(p))
                    })
                    .collect();
                ours.len() == CRONS.len()
                    && ours.iter().all(|s| s.data["status"]["phase"] == "Enabled")
            })
        },
    )
    .await
    .with_context(|| velero.output())?;
    let enabled = wait_for(
        "Velero to enable both Schedules",
        Duration::from_secs(90),
        || async {
            let list = api.list(&mine).await.ok()?;
            (list.items.len() == 2
                && list.items.iter().all(|s| {
                    s.data["status"]["phase"] == "Enabled"
                        && s.data["spec"]["skipImmediately"].is_boolean()
                }))
            .then_some(list.items)
        },
    )
    .await
    .with_context(|| format!("{}\n{}", operator.output(), velero.output()))?;
    for schedule in &enabled {
        ensure!(
            schedule.data["status"]["validationErrors"].is_null(),
            "Velero found no fault: {:?}",
            schedule.data["status"]
        );
        ensure!(schedule.data["spec"]["template"]["defaultVolumesToFsBackup"] == true);
    }
    let created = writes.settled(&env, Duration::from_secs(2)).await?;
    ensure!(
        created >= 2 + CRONS.len() as u64,
        "the FlowSchema sees the operator's Schedule writes ({created})"
    );

    // Several resync periods while Velero works: baseliner writes nothing,
    // and Velero's fields stay Velero's.
    tokio::time::sleep(Duration::from_secs(RESYNC_SECONDS * 4)).await;
    let fought = writes.count(&env).await? - created;
    ensure!(
        fought == 0,
        "{fought} Schedule writes while Velero ran:\n{}",
        operator.output()
    );
    for schedule in api.list(&mine).await?.items {
        let baseliner_owns = schedule
            .managed_fields()
            .iter()
            .filter(|f| f.manager.as_deref() == Some("baseliner"))
            .filter_map(|f| f.fields_v1.as_ref())
            .map(|f| f.0.to_string())
            .collect::<String>();
        ensure!(
            !baseliner_owns.contains("skipImmediately") && !baseliner_owns.contains("f:status"),
            "baseliner claims none of Velero's fields: {baseliner_owns}"
        );
    }

    // Velero makes a Backup from the first namespace's Schedule (every
    // minute); the namespace then leaves the profile: its Schedule is
    // pruned, the Backup stays.
    let first = namespaces[0].name().to_owned();
    let schedule_of = |ns: &str| {
        enabled
            .iter()
            .find(|s| {
                s.labels()
                    .get("baseliner.dev/namespace")
                    .map(String::as_str)
                    == Some(ns)
            })
            .map(|s| s.name_any())
    };
    let schedule = schedule_of(&first).context("the first namespace's Schedule")?;
    let by_schedule = ListParams::default().labels(&format!("velero.io/schedule-name={schedule}"));
    // Velero looks at its Schedules once a minute (its schedule
    // controller's sync period), so a Backup due at the next minute can
    // come up to two minutes after the Schedule was made.
    let backup = wait_for(
        "Velero to make a Backup",
        Duration::from_secs(150),
        || async {
            backups(&env)
                .list(&by_schedule)
                .await
                .ok()?
                .items
                .into_iter()
                .next()
        },
    )
    .await
    .with_context(|| velero.output())?;
    ensure!(
        backup.owner_references().is_empty(),
        "the Backup has no owner for the garbage collector to follow"
    );
    env.kubectl(["label", "namespace", &first, "e2e-case-"])
        .await?
        .ok()?;
    wait_until("the Schedule pruned", Duration::from_secs(30), || async {
        matches!(api.get_opt(&schedule).await, Ok(None))
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(RESYNC_SECONDS * 2)).await;
    let kept = backups(&env).get_opt(&backup.name_any()).await?;
    ensure!(
        kept.is_some_and(|b| b.metadata.deletion_timestamp.is_none()),
        "the Backup outlives its pruned Schedule"
    );
    ensure!(
        velero.is_running(),
        "Velero kept running:\n{}",
        velero.output()
    );

    eprintln!(
        "velero: {} Schedules Enabled ({} cron forms), {created} creates, 0 writes over 4 resync periods, Backup {} kept after its Schedule was pruned",
        2 + CRONS.len(),
        1 + CRONS.len(),
        backup.name_any()
    );
    drop(operator);
    delete_profile(&env, &profile).await?;
    for name in &cron_profiles {
        delete_profile(&env, name).await?;
    }
    writes.remove(&env).await?;
    for ns in namespaces {
        ns.cleanup().await?;
    }
    home.cleanup().await
}
