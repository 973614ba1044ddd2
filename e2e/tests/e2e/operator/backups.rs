//! Backups: Velero Schedules follow the profile and its namespaces, and
//! wait for Velero when it is not installed.

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use baseliner::api::{MANAGED_BY_LABEL, NAMESPACE_LABEL, ProductionProfileStatus};
use baseliner::render::schedule_name;
use baseliner_e2e::baseline::{delete_profile, keys, kubectl_apply, managed_objects, profile_yaml};
use baseliner_e2e::operator::Operator;
use baseliner_e2e::velero::VELERO_NAMESPACE;
use baseliner_e2e::{TestEnv, Velero, random_name, wait_for, wait_until};
use kube::ResourceExt;
use kube::api::DynamicObject;
use serde_json::{Value, json};

use super::support::{
    CONVERGE, case_labels, current_status, has_condition, objects, profile_schedules, reported,
    setup,
};

/// Checks one Schedule against the backup spec used in these tests.
fn check_schedule(schedule: &DynamicObject, profile: &str, namespace: &str) -> Result<()> {
    let name = schedule.name_any();
    ensure!(
        name == schedule_name(profile, namespace) && name.len() <= 63,
        "Schedule name {name:?}"
    );
    let labels = schedule.labels();
    ensure!(
        labels.get(MANAGED_BY_LABEL).map(String::as_str) == Some("baseliner"),
        "{labels:?}"
    );
    let spec = &schedule.data["spec"];
    let template = &spec["template"];
    ensure!(spec["schedule"] == "15 3 * * *", "{spec}");
    ensure!(template["ttl"] == "240h", "{spec}");
    ensure!(template["storageLocation"] == "e2e-bsl", "{spec}");
    ensure!(template["snapshotVolumes"] == false, "{spec}");
    ensure!(
        template["includedNamespaces"] == json!([namespace]),
        "{spec}"
    );
    ensure!(spec["useOwnerReferencesInBackup"] == false, "{spec}");
    // Velero copies the Schedule's own labels onto Backups unless the
    // template has labels: they must be set, and not claim the Backups.
    let backup_labels = template["metadata"]["labels"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    ensure!(!backup_labels.is_empty(), "{spec}");
    ensure!(
        !backup_labels.contains_key(MANAGED_BY_LABEL)
            && !backup_labels
                .keys()
                .any(|k| k.contains("argocd") || k == "app.kubernetes.io/instance"),
        "tracking labels on Backups: {backup_labels:?}"
    );
    ensure!(
        backup_labels.get(NAMESPACE_LABEL) == Some(&Value::from(namespace)),
        "{backup_labels:?}"
    );
    Ok(())
}

const BACKUP_SPEC: &str = r#"  resourceQuota:
    hard: {pods: "5"}
  backup:
    schedule: "15 3 * * *"
    ttl: 240h
    storageLocation: e2e-bsl
    snapshotVolumes: false
"#;

/// A profile that carries the labels GitOps tools add to what they track.
fn tracked_profile_yaml(profile: &str, case: &str, spec: &str) -> String {
    profile_yaml(profile, case, spec).replacen(
        &format!("  name: {profile}\n"),
        &format!(
            "  name: {profile}\n  labels:\n    app.kubernetes.io/instance: gitops-app\n    argocd.argoproj.io/instance: gitops-app\n"
        ),
        1,
    )
}

#[tokio::test]
async fn schedules_follow_the_profile_and_its_namespaces() -> Result<()> {
    let env = setup().await?;
    let case = random_name("velero");
    // Long names: the Schedule name must still fit in 63 characters and be
    // unique though both namespaces share a long prefix.
    let profile = random_name("profile-with-a-name-long-enough-to-be-cut");
    let prefix = "velero-schedule-for-a-rather-long-namespace";
    let a = env
        .namespace_with_labels(prefix, case_labels(&case, None))
        .await?;
    let b = env
        .namespace_with_labels(prefix, case_labels(&case, None))
        .await?;
    let yaml = tracked_profile_yaml(&profile, &case, BACKUP_SPEC);
    ensure!(yaml.contains("argocd.argoproj.io/instance"), "{yaml}");
    kubectl_apply(&env, &yaml).await?;

    let found = wait_for("a Schedule per namespace", CONVERGE, || async {
        let found = profile_schedules(&env, &profile).await.ok()?;
        (found.len() == 2 && found.contains_key(a.name()) && found.contains_key(b.name()))
            .then_some(found)
    })
    .await?;
    for (ns, schedule) in &found {
        check_schedule(schedule, &profile, ns)?;
    }
    ensure!(
        found[a.name()].name_any() != found[b.name()].name_any(),
        "Schedule names are unique"
    );
    wait_until("the profile to be Ready", CONVERGE, || async {
        current_status(&env, &profile).await.is_some_and(|s| {
            has_condition(&s, "Ready", "True", "Compliant") && s.compliant_namespaces == 2
        })
    })
    .await?;

    // An edit by hand is undone.
    let a_schedule = found[a.name()].name_any();
    env.kubectl([
        "patch",
        "schedules.velero.io",
        &a_schedule,
        "-n",
        VELERO_NAMESPACE,
        "--type=merge",
        "-p",
        r#"{"spec":{"schedule":"@hourly"}}"#,
    ])
    .await?
    .ok()?;
    wait_until("the Schedule's cron to be restored", CONVERGE, || async {
        profile_schedules(&env, &profile).await.is_ok_and(|f| {
            f.get(a.name())
                .is_some_and(|s| s.data["spec"]["schedule"] == "15 3 * * *")
        })
    })
    .await?;

    // A deleted namespace takes its Schedule with it, and only its own.
    let gone = b.name().to_owned();
    b.delete_and_wait(Duration::from_secs(90)).await?;
    wait_until(
        "the deleted namespace's Schedule to be pruned",
        CONVERGE,
        || async {
            profile_schedules(&env, &profile)
                .await
                .is_ok_and(|f| !f.contains_key(&gone) && f.contains_key(a.name()))
        },
    )
    .await?;

    // Removing `backup` from the profile prunes the rest.
    let without_backup = BACKUP_SPEC
        .split("  backup:")
        .next()
        .expect("split yields a first part");
    kubectl_apply(&env, &tracked_profile_yaml(&profile, &case, without_backup)).await?;
    wait_until("Schedules pruned", CONVERGE, || async {
        profile_schedules(&env, &profile)
            .await
            .is_ok_and(|f| f.is_empty())
    })
    .await?;
    let left = keys(&managed_objects(&env.client(), a.name()).await?);
    ensure!(
        left == objects(&[("ResourceQuota", "baseliner-quota")]),
        "{left:?}"
    );

    delete_profile(&env, &profile).await?;
    a.cleanup().await
}

const ABSENT_SPEC: &str = r#"  resourceQuota:
    hard: {pods: "5"}
  roleBindings:
    - name: viewers
      clusterRole: view
      subjects:
        - {kind: Group, name: "team-{{namespace}}"}
  backup:
    schedule: "15 3 * * *"
    ttl: 240h
    storageLocation: e2e-bsl
    snapshotVolumes: false
"#;

/// How long Velero stays absent before it is installed, so the operator's
/// watch of Schedules has been failing for a while: a watch backoff that grew
/// with the failures (kube's default may reach 30 s, plus jitter) would miss
/// the limit below.
const ABSENT_FOR: Duration = Duration::from_secs(25);

/// How soon Schedules must appear once Velero is installed.
const DISCOVERY_LIMIT: Duration = Duration::from_secs(10);

/// Waits until the status reports BackupsUnavailable for every namespace.
async fn wait_backups_unavailable(
    env: &TestEnv,
    profile: &str,
    namespaces: &[&str],
) -> Result<ProductionProfileStatus> {
    wait_for(
        "BackupsUnavailable for every namespace",
        CONVERGE,
        || async {
            let status = current_status(env, profile).await?;
            let all = namespaces.iter().all(|ns| {
                reported(&status, ns).is_some_and(|(reason, _)| reason == "BackupsUnavailable")
            });
            (all && has_condition(&status, "Stalled", "True", "BackupsUnavailable"))
                .then_some(status)
        },
    )
    .await
}

/// Installs Velero and returns how long until the profile's Schedules exist
/// for every namespace.
async fn install_and_time(env: &TestEnv, profile: &str, namespaces: &[&str]) -> Result<Duration> {
    let started = Instant::now();
    env.install_velero().await?;
    let installed = started.elapsed();
    wait_until(
        "the Schedules after Velero is installed",
        Duration::from_secs(90),
        || async {
            profile_schedules(env, profile)
                .await
                .is_ok_and(|f| namespaces.iter().all(|ns| f.contains_key(*ns)))
        },
    )
    .await?;
    let took = started.elapsed();
    eprintln!(
        "Velero installed in {installed:?}; the Schedules existed {took:?} after the install began"
    );
    Ok(took)
}

#[tokio::test]
async fn backups_wait_for_velero_and_start_when_it_is_installed() -> Result<()> {
    // Velero absent, then installed, removed and installed again by the test
    // itself; the operator starts while it is absent, so it has never seen
    // Schedules, and it is never restarted.
    let env = TestEnv::with_velero(Velero::Absent).await?;
    let mut operator = Operator::start(
        &env.plane().kubeconfig,
        &[
            "--resync-seconds",
            "300",
            "--leader-elect=false",
            "--http-addr",
            "127.0.0.1:0",
        ],
    )?;
    let pid = operator.pid();
    let case = random_name("no-velero");
    let profile = random_name("prof");
    let a = env
        .namespace_with_labels("no-velero", case_labels(&case, None))
        .await?;
    let b = env
        .namespace_with_labels("no-velero", case_labels(&case, None))
        .await?;
    let both = [a.name(), b.name()];
    kubectl_apply(&env, &profile_yaml(&profile, &case, ABSENT_SPEC)).await?;

    let everything_else = objects(&[
        ("ResourceQuota", "baseliner-quota"),
        ("RoleBinding", "baseliner-viewers"),
    ]);
    for ns in both {
        wait_until("everything but the Schedule", CONVERGE, || async {
            managed_objects(&env.client(), ns)
                .await
                .is_ok_and(|o| keys(&o) == everything_else)
        })
        .await?;
    }
    let status = wait_backups_unavailable(&env, &profile, &both).await?;
    let (_, message) = reported(&status, a.name()).expect("checked above");
    ensure!(
        message.contains("Velero") && !message.contains("more)"),
        "backups are the only problem, and the message says why: {message}"
    );
    ensure!(status.compliant_namespaces == 0 && status.matched_namespaces == 2);

    tokio::time::sleep(ABSENT_FOR).await;
    ensure!(
        operator.is_running(),
        "the operator exited: {}",
        operator.output()
    );
    let took = install_and_time(&env, &profile, &both).await?;
    ensure!(
        took < DISCOVERY_LIMIT,
        "Schedules took {took:?} to appear after Velero was installed (limit {DISCOVERY_LIMIT:?})"
    );
    for (ns, schedule) in profile_schedules(&env, &profile).await? {
        check_schedule(&schedule, &profile, &ns)?;
    }
    let ready = || async {
        current_status(&env, &profile).await.is_some_and(|s| {
            has_condition(&s, "Ready", "True", "Compliant") && s.compliant_namespaces == 2
        })
    };
    wait_until("the profile to be Ready", CONVERGE, ready).await?;

    // Velero removed under the running operator: the status says so again
    // (it must not keep believing in Schedules that went with the CRD)...
    env.uninstall_velero().await?;
    wait_backups_unavailable(&env, &profile, &both).await?;
    for ns in both {
        let have = keys(&managed_objects(&env.client(), ns).await?);
        ensure!(have == everything_else, "{ns}: {have:?}");
    }
    // ...and it comes back.
    let again = install_and_time(&env, &profile, &both).await?;
    ensure!(
        again < DISCOVERY_LIMIT,
        "Schedules took {again:?} to reappear (limit {DISCOVERY_LIMIT:?})"
    );
    wait_until("the profile to be Ready again", CONVERGE, ready).await?;
    ensure!(
        operator.is_running() && operator.pid() == pid,
        "the same operator process did it all, never restarted"
    );

    delete_profile(&env, &profile).await?;
    wait_until("Schedules pruned with the profile", CONVERGE, || async {
        profile_schedules(&env, &profile)
            .await
            .is_ok_and(|f| f.is_empty())
    })
    .await?;
    a.cleanup().await?;
    b.cleanup().await?;
    operator.terminate(Duration::from_secs(10))?;
    Ok(())
}
