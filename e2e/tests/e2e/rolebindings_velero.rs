//! RoleBindings and Velero Schedules against the real API server.
//!
//! RoleBindings cannot be used to escalate privilege: only allow-listed
//! ClusterRoles are bound, `system:` and unresolvable subjects are refused
//! and reported, a changed roleRef replaces the binding, and the operator
//! does all of it as its own ServiceAccount (config/rbac) holding `bind` on
//! the allowed roles only. Velero Schedules follow the profile and its
//! namespaces, and wait for Velero when it is not installed.
//!
//! Other operators may run on the plane at the same time (the suite's shared
//! one, other test binaries'); every assertion holds regardless.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use baseliner::api::{
    MANAGED_BY_LABEL, NAMESPACE_LABEL, PROFILE_LABEL, ProductionProfile, ProductionProfileStatus,
};
use baseliner::render::schedule_name;
use baseliner_e2e::baseline::{delete_profile, keys, kubectl_apply, managed_objects, profile_yaml};
use baseliner_e2e::operator::{Operator, shared_operator};
use baseliner_e2e::velero::{VELERO_NAMESPACE, schedules};
use baseliner_e2e::{
    Grant, Identity, TestEnv, Velero, random_name, wait_for, wait_until, workspace_root,
};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta};
use kube::ResourceExt;
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use serde_json::{Value, json};

const CONVERGE: Duration = Duration::from_secs(30);

fn case_labels(case: &str, team: Option<&str>) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([("e2e-case".to_owned(), case.to_owned())]);
    if let Some(team) = team {
        labels.insert("team".to_owned(), team.to_owned());
    }
    labels
}

async fn setup() -> Result<TestEnv> {
    let env = TestEnv::new().await?;
    shared_operator(env.plane())?;
    Ok(env)
}

fn objects(list: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    list.iter()
        .map(|(k, n)| ((*k).to_owned(), (*n).to_owned()))
        .collect()
}

/// The profile's status, once it describes the profile's current generation.
async fn current_status(env: &TestEnv, profile: &str) -> Option<ProductionProfileStatus> {
    let profile = Api::<ProductionProfile>::all(env.client())
        .get(profile)
        .await
        .ok()?;
    let status = profile.status?;
    (status.observed_generation.is_some()
        && status.observed_generation == profile.metadata.generation)
        .then_some(status)
}

fn condition<'a>(status: &'a ProductionProfileStatus, type_: &str) -> Option<&'a Condition> {
    status.conditions.iter().find(|c| c.type_ == type_)
}

fn has_condition(status: &ProductionProfileStatus, type_: &str, value: &str, reason: &str) -> bool {
    condition(status, type_).is_some_and(|c| c.status == value && c.reason == reason)
}

/// The reason the status gives for `namespace`, if it lists it.
fn reported(status: &ProductionProfileStatus, namespace: &str) -> Option<(String, String)> {
    status
        .non_compliant
        .iter()
        .find(|p| p.namespace == namespace)
        .map(|p| (p.reason.clone(), p.message.clone()))
}

/// events.k8s.io Events about a (cluster-scoped) profile: kube's Recorder
/// puts them in `default`.
async fn profile_events(env: &TestEnv, profile: &str) -> Result<Vec<Event>> {
    let events = Api::<Event>::namespaced(env.client(), "default")
        .list(&ListParams::default())
        .await?;
    Ok(events
        .items
        .into_iter()
        .filter(|e| {
            e.regarding.as_ref().is_some_and(|r| {
                r.kind.as_deref() == Some("ProductionProfile") && r.name.as_deref() == Some(profile)
            })
        })
        .collect())
}

/// Every RoleBinding in a namespace, managed or not: name → (roleRef, subjects).
async fn role_bindings(
    env: &TestEnv,
    namespace: &str,
) -> Result<BTreeMap<String, (String, Vec<String>)>> {
    let list = Api::<RoleBinding>::namespaced(env.client(), namespace)
        .list(&ListParams::default())
        .await?;
    Ok(list
        .items
        .into_iter()
        .map(|rb| {
            let subjects = rb
                .subjects
                .unwrap_or_default()
                .into_iter()
                .map(|s| format!("{}:{}", s.kind, s.name))
                .collect();
            (
                rb.metadata.name.unwrap_or_default(),
                (rb.role_ref.name, subjects),
            )
        })
        .collect())
}

/// The profile's Schedules in the Velero namespace, by the namespace each serves.
async fn profile_schedules(
    env: &TestEnv,
    profile: &str,
) -> Result<BTreeMap<String, DynamicObject>> {
    let list = schedules(env.client(), VELERO_NAMESPACE)
        .list(&ListParams::default().labels(&format!("{PROFILE_LABEL}={profile}")))
        .await?;
    Ok(list
        .items
        .into_iter()
        .map(|s| {
            let served = s.labels().get(NAMESPACE_LABEL).cloned().unwrap_or_default();
            (served, s)
        })
        .collect())
}

const CLUSTER_ADMIN_SPEC: &str = r#"  resourceQuota:
    hard: {pods: "5"}
  roleBindings:
    - name: viewers
      clusterRole: view
      subjects:
        - {kind: Group, name: "team-{{labels.team}}-viewers"}
    - name: root
      clusterRole: cluster-admin
      subjects:
        - {kind: Group, name: "team-{{labels.team}}-admins"}
"#;

#[tokio::test]
async fn cluster_admin_is_refused_and_the_rest_is_applied() -> Result<()> {
    let env = setup().await?;
    let client = env.client();
    let case = random_name("rb-deny");
    let profile = random_name("prof");
    let a = env
        .namespace_with_labels("rb-deny", case_labels(&case, Some("payments")))
        .await?;
    let b = env
        .namespace_with_labels("rb-deny", case_labels(&case, Some("search")))
        .await?;
    kubectl_apply(&env, &profile_yaml(&profile, &case, CLUSTER_ADMIN_SPEC)).await?;

    let expected = objects(&[
        ("ResourceQuota", "baseliner-quota"),
        ("RoleBinding", "baseliner-viewers"),
    ]);
    for ns in [&a, &b] {
        wait_until("the view binding and the quota", CONVERGE, || async {
            managed_objects(&client, ns.name())
                .await
                .is_ok_and(|o| keys(&o) == expected)
        })
        .await?;
    }
    let status = wait_for(
        "Stalled=True/RoleNotAllowed naming both namespaces",
        CONVERGE,
        || async {
            let status = current_status(&env, &profile).await?;
            let both = [&a, &b].iter().all(|ns| {
                reported(&status, ns.name()).is_some_and(|(reason, _)| reason == "RoleNotAllowed")
            });
            (both && has_condition(&status, "Stalled", "True", "RoleNotAllowed")).then_some(status)
        },
    )
    .await?;
    let stalled = condition(&status, "Stalled").expect("checked above");
    ensure!(
        stalled.message.contains("cluster-admin") && stalled.message.contains("allow list"),
        "the condition says which role and why: {stalled:?}"
    );
    ensure!(
        has_condition(&status, "Ready", "False", "NotCompliant"),
        "Ready: {:?}",
        condition(&status, "Ready")
    );
    ensure!(status.matched_namespaces == 2 && status.compliant_namespaces == 0);
    let (_, message) = reported(&status, a.name()).expect("checked above");
    ensure!(
        message.contains("spec.roleBindings[1].clusterRole") && message.contains("cluster-admin"),
        "nonCompliant names the field: {message}"
    );

    // No RoleBinding of cluster-admin anywhere in the namespaces, and the
    // view binding is exactly what the profile asked for.
    for (ns, team) in [(&a, "payments"), (&b, "search")] {
        let bindings = role_bindings(&env, ns.name()).await?;
        ensure!(
            bindings
                == BTreeMap::from([(
                    "baseliner-viewers".to_owned(),
                    (
                        "view".to_owned(),
                        vec![format!("Group:team-{team}-viewers")]
                    )
                )]),
            "bindings in {}: {bindings:?}",
            ns.name()
        );
    }
    let crbs = Api::<ClusterRoleBinding>::all(client.clone())
        .list(&ListParams::default().labels(&format!("{PROFILE_LABEL}={profile}")))
        .await?;
    ensure!(crbs.items.is_empty(), "no ClusterRoleBinding made");

    // A Warning Event on the profile says the same, naming the namespaces.
    let event = wait_for("a RoleNotAllowed Warning Event", CONVERGE, || async {
        profile_events(&env, &profile)
            .await
            .ok()?
            .into_iter()
            .find(|e| {
                e.reason.as_deref() == Some("RoleNotAllowed")
                    && e.type_.as_deref() == Some("Warning")
                    && e.note
                        .as_deref()
                        .is_some_and(|n| n.contains(a.name()) && n.contains(b.name()))
            })
    })
    .await?;
    ensure!(
        event
            .note
            .as_deref()
            .unwrap_or_default()
            .contains("cluster-admin"),
        "event note: {:?}",
        event.note
    );
    // As a user finds it with kubectl.
    let listed = env
        .kubectl([
            "get",
            "events",
            "-n",
            "default",
            "--field-selector",
            &format!("involvedObject.name={profile},reason=RoleNotAllowed,type=Warning"),
            "-o",
            "name",
        ])
        .await?
        .ok()?;
    ensure!(!listed.trim().is_empty(), "kubectl get events found none");

    delete_profile(&env, &profile).await?;
    a.cleanup().await?;
    b.cleanup().await
}

const SUBJECT_SPEC: &str = r#"  resourceQuota:
    hard: {pods: "5"}
  roleBindings:
    - name: viewers
      clusterRole: view
      subjects:
        - {kind: Group, name: "team-{{labels.team}}-viewers"}
    - name: bots
      clusterRole: edit
      subjects:
        - {kind: ServiceAccount, name: "{{labels.team}}-bot"}
"#;

#[tokio::test]
async fn subjects_that_do_not_resolve_are_reported_per_namespace() -> Result<()> {
    let env = setup().await?;
    let client = env.client();
    let case = random_name("rb-subj");
    let profile = random_name("prof");
    let good = env
        .namespace_with_labels("rb-subj-good", case_labels(&case, Some("payments")))
        .await?;
    let unlabelled = env
        .namespace_with_labels("rb-subj-nolabel", case_labels(&case, None))
        .await?;
    // A valid label value that makes an invalid ServiceAccount name.
    let upper = env
        .namespace_with_labels("rb-subj-upper", case_labels(&case, Some("Payments")))
        .await?;
    kubectl_apply(&env, &profile_yaml(&profile, &case, SUBJECT_SPEC)).await?;

    let status = wait_for(
        "InvalidSubject for the two bad namespaces only",
        CONVERGE,
        || async {
            let status = current_status(&env, &profile).await?;
            let bad = [&unlabelled, &upper].iter().all(|ns| {
                reported(&status, ns.name()).is_some_and(|(reason, _)| reason == "InvalidSubject")
            });
            (bad && status.compliant_namespaces == 1).then_some(status)
        },
    )
    .await?;
    ensure!(status.matched_namespaces == 3);
    ensure!(reported(&status, good.name()).is_none(), "{status:?}");
    let (_, missing) = reported(&status, unlabelled.name()).expect("checked above");
    ensure!(
        missing.contains("label `team` missing") && missing.contains(unlabelled.name()),
        "the message names the missing label: {missing}"
    );
    let (_, malformed) = reported(&status, upper.name()).expect("checked above");
    ensure!(
        malformed.contains("Payments-bot") && malformed.contains("DNS-1123"),
        "the message names the bad ServiceAccount: {malformed}"
    );
    ensure!(has_condition(&status, "Stalled", "True", "InvalidSubject"));

    // The good namespace has both bindings with their subjects filled in.
    wait_until("the good namespace's bindings", CONVERGE, || async {
        role_bindings(&env, good.name()).await.is_ok_and(|b| {
            b == BTreeMap::from([
                (
                    "baseliner-bots".to_owned(),
                    (
                        "edit".to_owned(),
                        vec!["ServiceAccount:payments-bot".to_owned()],
                    ),
                ),
                (
                    "baseliner-viewers".to_owned(),
                    (
                        "view".to_owned(),
                        vec!["Group:team-payments-viewers".to_owned()],
                    ),
                ),
            ])
        })
    })
    .await?;
    // Unresolvable: no binding at all (never one with an empty or bad
    // subject); the rest of the profile is still applied. In `upper` the
    // Group `team-Payments-viewers` is a valid name, so that binding stays.
    for (ns, want) in [
        (
            &unlabelled,
            objects(&[("ResourceQuota", "baseliner-quota")]),
        ),
        (
            &upper,
            objects(&[
                ("ResourceQuota", "baseliner-quota"),
                ("RoleBinding", "baseliner-viewers"),
            ]),
        ),
    ] {
        let have = keys(&managed_objects(&client, ns.name()).await?);
        ensure!(have == want, "{}: {have:?}", ns.name());
    }
    let upper_bindings = role_bindings(&env, upper.name()).await?;
    ensure!(
        upper_bindings.len() == 1
            && upper_bindings["baseliner-viewers"].1 == vec!["Group:team-Payments-viewers"],
        "{upper_bindings:?}"
    );
    ensure!(role_bindings(&env, unlabelled.name()).await?.is_empty());

    // Giving the namespace its label fixes it, with no change to the profile.
    env.kubectl(["label", "namespace", unlabelled.name(), "team=ads"])
        .await?
        .ok()?;
    wait_until("the labelled namespace's bindings", CONVERGE, || async {
        role_bindings(&env, unlabelled.name()).await.is_ok_and(|b| {
            b.get("baseliner-viewers")
                .is_some_and(|(_, s)| s == &vec!["Group:team-ads-viewers".to_owned()])
                && b.get("baseliner-bots")
                    .is_some_and(|(_, s)| s == &vec!["ServiceAccount:ads-bot".to_owned()])
        })
    })
    .await?;
    wait_until("the namespace to leave the report", CONVERGE, || async {
        current_status(&env, &profile).await.is_some_and(|s| {
            reported(&s, unlabelled.name()).is_none() && s.compliant_namespaces == 2
        })
    })
    .await?;

    delete_profile(&env, &profile).await?;
    good.cleanup().await?;
    unlabelled.cleanup().await?;
    upper.cleanup().await
}

const SYSTEM_SPEC: &str = r#"  roleBindings:
    - name: masters
      clusterRole: view
      subjects:
        - {kind: Group, name: "system:masters"}
    - name: everyone
      clusterRole: view
      subjects:
        - {kind: Group, name: "system:authenticated"}
    - name: templated
      clusterRole: edit
      subjects:
        - {kind: User, name: "system:{{labels.team}}"}
    - name: node
      clusterRole: view
      subjects:
        - {kind: User, name: "system:node:{{namespace}}"}
    - name: people
      clusterRole: view
      subjects:
        - {kind: User, name: "{{labels.team}}-lead"}
"#;

#[tokio::test]
async fn system_identities_are_never_bound() -> Result<()> {
    let env = setup().await?;
    let case = random_name("rb-sys");
    let profile = random_name("prof");
    let ns = env
        .namespace_with_labels("rb-sys", case_labels(&case, Some("payments")))
        .await?;
    kubectl_apply(&env, &profile_yaml(&profile, &case, SYSTEM_SPEC)).await?;

    wait_until("the one valid binding", CONVERGE, || async {
        role_bindings(&env, ns.name()).await.is_ok_and(|b| {
            b == BTreeMap::from([(
                "baseliner-people".to_owned(),
                ("view".to_owned(), vec!["User:payments-lead".to_owned()]),
            )])
        })
    })
    .await?;
    let status = wait_for("InvalidSubject reported", CONVERGE, || async {
        let status = current_status(&env, &profile).await?;
        reported(&status, ns.name())
            .is_some_and(|(reason, _)| reason == "InvalidSubject")
            .then_some(status)
    })
    .await?;
    let (_, message) = reported(&status, ns.name()).expect("checked above");
    ensure!(
        message.contains("system identity") && message.contains("(and 3 more)"),
        "all four refusals are counted: {message}"
    );
    // Still nothing binds a system: name after another pass.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let bindings = role_bindings(&env, ns.name()).await?;
    ensure!(
        bindings
            .values()
            .flat_map(|(_, s)| s)
            .all(|s| !s.contains(":system:")),
        "{bindings:?}"
    );
    ensure!(bindings.len() == 1, "{bindings:?}");
    let event = wait_for("an InvalidSubject Warning Event", CONVERGE, || async {
        profile_events(&env, &profile)
            .await
            .ok()?
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("InvalidSubject"))
    })
    .await?;
    ensure!(event.type_.as_deref() == Some("Warning"));

    delete_profile(&env, &profile).await?;
    ns.cleanup().await
}

fn binding_spec(role: &str) -> String {
    format!(
        "  roleBindings:\n    - name: team\n      clusterRole: {role}\n      subjects:\n        - {{kind: Group, name: \"team-{{{{labels.team}}}}\"}}\n"
    )
}

#[tokio::test]
async fn changing_the_role_replaces_the_binding() -> Result<()> {
    let env = setup().await?;
    let case = random_name("rb-ref");
    let profile = random_name("prof");
    let ns = env
        .namespace_with_labels("rb-ref", case_labels(&case, Some("web")))
        .await?;
    let api = Api::<RoleBinding>::namespaced(env.client(), ns.name());
    kubectl_apply(&env, &profile_yaml(&profile, &case, &binding_spec("view"))).await?;
    let first = wait_for("the view binding", CONVERGE, || async {
        let rb = api.get_opt("baseliner-team").await.ok()??;
        (rb.role_ref.name == "view").then_some(rb)
    })
    .await?;
    ensure!(
        first.subjects.as_deref().unwrap_or_default()[0].name == "team-web",
        "{first:?}"
    );

    kubectl_apply(&env, &profile_yaml(&profile, &case, &binding_spec("edit"))).await?;
    let second = wait_for("the binding to become edit", CONVERGE, || async {
        let rb = api.get_opt("baseliner-team").await.ok()??;
        (rb.role_ref.name == "edit").then_some(rb)
    })
    .await?;
    ensure!(
        second.metadata.uid != first.metadata.uid,
        "roleRef is immutable, so the binding was replaced"
    );
    wait_until("the profile to be Ready again", CONVERGE, || async {
        current_status(&env, &profile)
            .await
            .is_some_and(|s| has_condition(&s, "Ready", "True", "Compliant"))
    })
    .await?;
    // Settled: one binding of that name, not replaced again and again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let bindings = role_bindings(&env, ns.name()).await?;
    ensure!(
        bindings
            == BTreeMap::from([(
                "baseliner-team".to_owned(),
                ("edit".to_owned(), vec!["Group:team-web".to_owned()])
            )]),
        "{bindings:?}"
    );
    let now = api.get("baseliner-team").await?;
    ensure!(
        now.metadata.uid == second.metadata.uid
            && now.metadata.resource_version == second.metadata.resource_version,
        "the binding keeps being rewritten"
    );
    wait_until("a Replaced Event", CONVERGE, || async {
        profile_events(&env, &profile).await.is_ok_and(|events| {
            events.iter().any(|e| {
                e.reason.as_deref() == Some("Replaced")
                    && e.note.as_deref().is_some_and(|n| n.contains(ns.name()))
            })
        })
    })
    .await?;

    delete_profile(&env, &profile).await?;
    ns.cleanup().await
}

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

// ---------------------------------------------------------------------------
// The operator as its own ServiceAccount (config/rbac)

/// `kubectl auth can-i ARGS...` as `identity`: true for "yes".
async fn can_i(env: &TestEnv, identity: &Identity, args: &[&str]) -> Result<bool> {
    let out = env
        .kubectl_as(
            &identity.kubeconfig,
            ["auth", "can-i"].iter().chain(args).copied(),
        )
        .await?;
    match out.stdout.trim() {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => anyhow::bail!("kubectl auth can-i {args:?}: {out:?}"),
    }
}

/// `kubectl auth can-i --list` rows as printed.
async fn can_i_rows(
    env: &TestEnv,
    identity: &Identity,
    namespace: &str,
) -> Result<BTreeSet<String>> {
    let out = env
        .kubectl_as(
            &identity.kubeconfig,
            ["auth", "can-i", "--list", "-n", namespace, "--no-headers"],
        )
        .await?
        .ok()?;
    Ok(out
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect())
}

fn role_binding(name: &str, role: &str) -> RoleBinding {
    RoleBinding {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".to_owned()),
            kind: "ClusterRole".to_owned(),
            name: role.to_owned(),
        },
        subjects: Some(vec![Subject {
            kind: "Group".to_owned(),
            name: "e2e-nobody".to_owned(),
            api_group: Some("rbac.authorization.k8s.io".to_owned()),
            namespace: None,
        }]),
    }
}

const SERVICE_ACCOUNT_SPEC: &str = r#"  networkPolicy:
    defaultDeny: true
    allowDNS: true
  resourceQuota:
    hard: {pods: "5"}
  podSecurity:
    enforce: restricted
  roleBindings:
    - name: viewers
      clusterRole: view
      subjects:
        - {kind: Group, name: "team-{{labels.team}}-viewers"}
    - name: owners
      clusterRole: admin
      subjects:
        - {kind: Group, name: "team-{{labels.team}}-owners"}
  backup:
    schedule: "15 3 * * *"
    ttl: 240h
    storageLocation: e2e-bsl
    snapshotVolumes: false
"#;

#[tokio::test]
async fn operator_as_its_service_account_binds_only_allowed_roles() -> Result<()> {
    let manifest = workspace_root()
        .join("config")
        .join("rbac")
        .join("role.yaml");
    if !manifest.exists() {
        eprintln!("skipped: {} does not exist", manifest.display());
        return Ok(());
    }
    let env = TestEnv::new().await?;
    let home = env.namespace("rb-sa").await?;
    let case = random_name("rb-sa");
    let target = env
        .namespace_with_labels("rb-sa-target", case_labels(&case, Some("payments")))
        .await?;
    let t = target.name();

    // Exactly the manifests' ClusterRole, under a name of this test's (it
    // goes with `home`). With --leader-elect=false no Lease is needed.
    let mut role: ClusterRole = serde_saphyr::from_str(&std::fs::read_to_string(&manifest)?)?;
    let role_name = format!("{}-manager", home.name());
    role.metadata = ObjectMeta {
        name: Some(role_name.clone()),
        owner_references: Some(vec![home.owner_reference()]),
        ..ObjectMeta::default()
    };
    Api::<ClusterRole>::all(env.client())
        .create(&PostParams::default(), &role)
        .await?;
    let operator_id = env
        .service_account(&home, "baseliner", &[Grant::ClusterRole(role_name)])
        .await?;
    let nobody = env.service_account(&home, "nobody", &[]).await?;

    // What RBAC says it may do.
    for (args, want) in [
        (&["bind", "clusterroles/view"][..], true),
        (&["bind", "clusterroles/edit"][..], true),
        (&["bind", "clusterroles/admin"][..], true),
        (&["bind", "clusterroles/cluster-admin"][..], false),
        (&["bind", "clusterroles"][..], false),
        (&["escalate", "clusterroles"][..], false),
        (&["escalate", "roles", "-n", t][..], false),
        (&["create", "clusterrolebindings"][..], false),
        (&["impersonate", "users"][..], false),
        (&["*", "*"][..], false),
        // It does not hold view's rights itself: `bind` is what lets it
        // grant them.
        (&["get", "pods", "-n", t][..], false),
        (&["list", "configmaps", "-n", t][..], false),
    ] {
        ensure!(
            can_i(&env, &operator_id, args).await? == want,
            "kubectl auth can-i {args:?} should say {}",
            if want { "yes" } else { "no" }
        );
    }
    for namespace in [t, "default", VELERO_NAMESPACE] {
        let baseline = can_i_rows(&env, &nobody, namespace).await?;
        let added: Vec<String> = can_i_rows(&env, &operator_id, namespace)
            .await?
            .difference(&baseline)
            .cloned()
            .collect();
        ensure!(!added.is_empty(), "the operator's own rules are listed");
        ensure!(
            added.iter().all(|row| !row.contains('*')),
            "no wildcard in the operator's rights in {namespace}: {added:#?}"
        );
    }
    // The API server agrees: a RoleBinding of view is allowed (dry run), one
    // of cluster-admin is refused.
    let as_operator = Api::<RoleBinding>::namespaced(operator_id.client.clone(), t);
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    as_operator
        .create(&dry_run, &role_binding("e2e-view", "view"))
        .await?;
    match as_operator
        .create(&dry_run, &role_binding("e2e-root", "cluster-admin"))
        .await
    {
        Err(kube::Error::Api(s)) if s.code == 403 => {}
        other => anyhow::bail!("binding cluster-admin should be Forbidden, got {other:?}"),
    }

    // And it reconciles a whole profile with nothing more.
    let mut operator = Operator::start(
        &operator_id.kubeconfig,
        &[
            "--resync-seconds",
            "30",
            "--leader-elect=false",
            "--http-addr",
            "127.0.0.1:0",
        ],
    )?;
    let profile = random_name("prof");
    kubectl_apply(&env, &profile_yaml(&profile, &case, SERVICE_ACCOUNT_SPEC)).await?;
    let expected = objects(&[
        ("NetworkPolicy", "baseliner-default-deny"),
        ("NetworkPolicy", "baseliner-allow-dns"),
        ("ResourceQuota", "baseliner-quota"),
        ("RoleBinding", "baseliner-viewers"),
        ("RoleBinding", "baseliner-owners"),
    ]);
    wait_until("the baseline", CONVERGE, || async {
        managed_objects(&env.client(), t)
            .await
            .is_ok_and(|o| keys(&o) == expected)
    })
    .await?;
    wait_until("the Schedule", CONVERGE, || async {
        profile_schedules(&env, &profile)
            .await
            .is_ok_and(|s| s.contains_key(t))
    })
    .await?;
    wait_until("the profile to be Ready", CONVERGE, || async {
        current_status(&env, &profile)
            .await
            .is_some_and(|s| has_condition(&s, "Ready", "True", "Compliant"))
    })
    .await?;

    // Other operators on the plane (the suite's shared one) may have written
    // those first. Delete the bindings until this one has written them
    // itself: each write of a RoleBinding is authorized by `bind` alone.
    let bindings = Api::<RoleBinding>::namespaced(env.client(), t);
    let written_by_it = |name: &str| {
        let line = format!("applied key=RoleBinding {t}/{name}");
        operator.output().lines().any(|l| l.contains(&line))
    };
    let mut attempts = 0;
    while !(written_by_it("baseliner-viewers") && written_by_it("baseliner-owners")) {
        attempts += 1;
        ensure!(
            attempts <= 5,
            "the ServiceAccount's operator never wrote the RoleBindings itself; log: {}",
            operator.log.display()
        );
        for name in ["baseliner-viewers", "baseliner-owners"] {
            bindings.delete(name, &Default::default()).await?;
        }
        wait_until("the bindings to be back", CONVERGE, || async {
            managed_objects(&env.client(), t)
                .await
                .is_ok_and(|o| keys(&o) == expected)
        })
        .await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let output = operator.output();
    let refused: Vec<&str> = output
        .lines()
        .filter(|l| l.to_lowercase().contains("forbidden"))
        .collect();
    ensure!(refused.is_empty(), "requests refused: {refused:#?}");
    ensure!(operator.is_running(), "the operator exited: {output}");

    delete_profile(&env, &profile).await?;
    operator.terminate(Duration::from_secs(10))?;
    target.cleanup().await?;
    home.cleanup().await
}
