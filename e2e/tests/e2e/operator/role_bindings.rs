//! RoleBindings cannot be used to escalate privilege: only allow-listed
//! ClusterRoles are bound, `system:` and unresolvable subjects are refused
//! and reported per namespace, and a changed roleRef replaces the binding.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Result, ensure};
use baseliner::api::PROFILE_LABEL;
use baseliner_e2e::baseline::{delete_profile, keys, kubectl_apply, managed_objects, profile_yaml};
use baseliner_e2e::{TestEnv, random_name, wait_for, wait_until};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding};
use kube::api::{Api, ListParams};

use super::support::{
    CONVERGE, case_labels, condition, current_status, has_condition, objects, profile_events,
    reported, setup,
};

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
