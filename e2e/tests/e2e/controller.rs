//! The controller against the real API server: baselines appear, drift is
//! healed, unwanted objects are pruned, ownership follows priority, and
//! status tells the truth. kubectl is the user's client throughout.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use baseliner_e2e::baseline::{
    STRICT_SPEC, all_object_versions, delete_profile, keys, kubectl_apply, managed_objects,
    namespace_labels, profile_field, profile_yaml, strict_objects,
};
use baseliner_e2e::operator::shared_operator;
use baseliner_e2e::{TestEnv, random_name, wait_until};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};

const CONVERGE: Duration = Duration::from_secs(30);

fn case_labels(case: &str, team: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("e2e-case".to_owned(), case.to_owned()),
        ("team".to_owned(), team.to_owned()),
    ])
}

async fn setup() -> Result<TestEnv> {
    let env = TestEnv::new().await?;
    shared_operator(env.plane())?;
    Ok(env)
}

#[tokio::test]
async fn profile_baselines_selected_namespaces_only() -> Result<()> {
    let env = setup().await?;
    let client = env.client();
    let case = random_name("sel");
    let profile = random_name("prof");
    let selected = env
        .namespace_with_labels("sel", case_labels(&case, "payments"))
        .await?;
    let excluded = env
        .namespace_with_labels("excl", case_labels(&case, "payments"))
        .await?;
    let other = env.namespace("other").await?;

    let spec = format!("    exclude: [{}]\n{STRICT_SPEC}", excluded.name());
    kubectl_apply(&env, &profile_yaml(&profile, &case, &spec)).await?;

    wait_until(
        "the selected namespace to get its baseline",
        CONVERGE,
        || async {
            managed_objects(&client, selected.name())
                .await
                .is_ok_and(|o| keys(&o) == strict_objects())
        },
    )
    .await?;
    let objects = managed_objects(&client, selected.name()).await?;
    ensure!(
        objects.values().all(|p| p == &profile),
        "every object names its profile: {objects:?}"
    );
    let labels = namespace_labels(&client, selected.name()).await?;
    ensure!(
        labels
            .get("pod-security.kubernetes.io/enforce")
            .map(String::as_str)
            == Some("restricted")
    );
    ensure!(
        labels.get("team").map(String::as_str) == Some("payments"),
        "other labels are kept: {labels:?}"
    );
    let binding = Api::<RoleBinding>::namespaced(client.clone(), selected.name())
        .get("baseliner-viewers")
        .await?;
    let subject = &binding.subjects.unwrap_or_default()[0];
    ensure!(
        subject.name == "team-payments-viewers",
        "templated subject: {subject:?}"
    );

    wait_until(
        "status to count one matched, compliant namespace",
        CONVERGE,
        || async {
            let line = env
                .kubectl(["get", "prodprofile", &profile, "--no-headers"])
                .await;
            line.is_ok_and(|l| {
                let cols: Vec<String> = l.stdout.split_whitespace().map(str::to_owned).collect();
                cols.get(1).map(String::as_str) == Some("Enforce")
                    && cols.get(2).map(String::as_str) == Some("1")
                    && cols.get(3).map(String::as_str) == Some("1")
                    && cols.get(4).map(String::as_str) == Some("True")
            })
        },
    )
    .await?;

    ensure!(
        managed_objects(&client, excluded.name()).await?.is_empty(),
        "excluded namespace untouched"
    );
    ensure!(
        managed_objects(&client, other.name()).await?.is_empty(),
        "unselected namespace untouched"
    );
    ensure!(
        managed_objects(&client, "kube-system").await?.is_empty(),
        "system namespace untouched"
    );
    ensure!(
        !namespace_labels(&client, excluded.name())
            .await?
            .contains_key("pod-security.kubernetes.io/enforce")
    );

    delete_profile(&env, &profile).await?;
    selected.cleanup().await?;
    excluded.cleanup().await?;
    other.cleanup().await
}

#[tokio::test]
async fn system_namespaces_are_selected_only_by_name() -> Result<()> {
    let env = setup().await?;
    let client = env.client();
    let case = random_name("sys");
    let profile = random_name("prof");
    let ns = env
        .namespace_with_labels("sys", case_labels(&case, "core"))
        .await?;
    // The selector matches kube-public by name, but a system namespace is
    // selected only when listed in `include`.
    let yaml = format!(
        "apiVersion: baseliner.dev/v1alpha1\nkind: ProductionProfile\nmetadata:\n  name: {profile}\nspec:\n  namespaces:\n    selector:\n      matchExpressions:\n        - {{key: kubernetes.io/metadata.name, operator: In, values: [kube-public, {}]}}\n  resourceQuota:\n    hard: {{pods: \"5\"}}\n",
        ns.name()
    );
    kubectl_apply(&env, &yaml).await?;
    wait_until("the test namespace's quota", CONVERGE, || async {
        managed_objects(&client, ns.name())
            .await
            .is_ok_and(|o| o.len() == 1)
    })
    .await?;
    ensure!(
        managed_objects(&client, "kube-public").await?.is_empty(),
        "kube-public untouched"
    );
    delete_profile(&env, &profile).await?;
    ns.cleanup().await
}

#[tokio::test]
async fn new_namespace_is_baselined_and_relabelling_prunes() -> Result<()> {
    let env = setup().await?;
    let client = env.client();
    let case = random_name("late");
    let profile = random_name("prof");
    kubectl_apply(&env, &profile_yaml(&profile, &case, STRICT_SPEC)).await?;
    wait_until("the profile to be reconciled", CONVERGE, || async {
        profile_field(&env, &profile, "{.status.observedGeneration}")
            .await
            .is_ok_and(|g| g == "1")
    })
    .await?;

    let started = Instant::now();
    let ns = env
        .namespace_with_labels("late", case_labels(&case, "search"))
        .await?;
    wait_until(
        "a new namespace's baseline",
        Duration::from_secs(10),
        || async {
            managed_objects(&client, ns.name())
                .await
                .is_ok_and(|o| keys(&o) == strict_objects())
        },
    )
    .await?;
    let took = started.elapsed();
    ensure!(took < Duration::from_secs(5), "baseline took {took:?}");

    env.kubectl(["label", "namespace", ns.name(), "e2e-case-", "--overwrite"])
        .await?
        .ok()?;
    wait_until("objects pruned after relabelling", CONVERGE, || async {
        managed_objects(&client, ns.name())
            .await
            .is_ok_and(|o| o.is_empty())
    })
    .await?;
    wait_until("Pod Security labels released", CONVERGE, || async {
        namespace_labels(&client, ns.name())
            .await
            .is_ok_and(|l| !l.contains_key("pod-security.kubernetes.io/enforce"))
    })
    .await?;
    delete_profile(&env, &profile).await?;
    ns.cleanup().await
}

#[tokio::test]
async fn drift_is_healed_and_foreign_objects_are_left_alone() -> Result<()> {
    let env = setup().await?;
    let client = env.client();
    let case = random_name("drift");
    let profile = random_name("prof");
    let ns = env
        .namespace_with_labels("drift", case_labels(&case, "ads"))
        .await?;
    // An object baseliner did not create, named like one it would.
    let foreign = ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some("baseliner-limits".into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([("k".into(), "v".into())])),
        ..Default::default()
    };
    Api::<ConfigMap>::namespaced(client.clone(), ns.name())
        .create(&PostParams::default(), &foreign)
        .await?;
    let foreign_policy: NetworkPolicy = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "team-own-policy"},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}
    }))?;
    let policies = Api::<NetworkPolicy>::namespaced(client.clone(), ns.name());
    policies
        .create(&PostParams::default(), &foreign_policy)
        .await?;
    let foreign_rv = policies
        .get("team-own-policy")
        .await?
        .metadata
        .resource_version;

    kubectl_apply(&env, &profile_yaml(&profile, &case, STRICT_SPEC)).await?;
    wait_until("baseline", CONVERGE, || async {
        managed_objects(&client, ns.name())
            .await
            .is_ok_and(|o| keys(&o) == strict_objects())
    })
    .await?;

    // Deleted: comes back.
    policies
        .delete("baseliner-default-deny", &DeleteParams::default())
        .await?;
    wait_until(
        "the deleted policy to be recreated",
        Duration::from_secs(10),
        || async {
            policies
                .get_opt("baseliner-default-deny")
                .await
                .is_ok_and(|p| p.is_some())
        },
    )
    .await?;

    // Edited with kubectl: the edit is undone.
    env.kubectl([
        "patch",
        "networkpolicy",
        "baseliner-allow-dns",
        "-n",
        ns.name(),
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/egress/0/ports/0/port","value":5353}]"#,
    ])
    .await?
    .ok()?;
    wait_until(
        "the edited policy to be restored",
        Duration::from_secs(10),
        || async {
            policies.get("baseliner-allow-dns").await.is_ok_and(|p| {
                let ports = p
                    .spec
                    .and_then(|s| s.egress)
                    .map(|e| e[0].ports.clone().unwrap_or_default())
                    .unwrap_or_default();
                ports.iter().all(|port| {
                    port.port
                        == Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(53))
                })
            })
        },
    )
    .await?;

    // A label removed by hand is put back; labels others add stay.
    env.kubectl([
        "label",
        "networkpolicy",
        "baseliner-allow-same-namespace",
        "-n",
        ns.name(),
        "extra=kept",
    ])
    .await?
    .ok()?;
    env.kubectl([
        "label",
        "namespace",
        ns.name(),
        "pod-security.kubernetes.io/enforce=privileged",
        "--overwrite",
    ])
    .await?
    .ok()?;
    wait_until(
        "Pod Security label healed",
        Duration::from_secs(10),
        || async {
            namespace_labels(&client, ns.name()).await.is_ok_and(|l| {
                l.get("pod-security.kubernetes.io/enforce")
                    .map(String::as_str)
                    == Some("restricted")
            })
        },
    )
    .await?;
    let same_ns = policies.get("baseliner-allow-same-namespace").await?;
    ensure!(
        same_ns
            .metadata
            .labels
            .unwrap_or_default()
            .get("extra")
            .map(String::as_str)
            == Some("kept")
    );

    let configmap = Api::<ConfigMap>::namespaced(client.clone(), ns.name())
        .get("baseliner-limits")
        .await?;
    ensure!(
        configmap
            .data
            .unwrap_or_default()
            .get("k")
            .map(String::as_str)
            == Some("v"),
        "foreign ConfigMap untouched"
    );
    let still = policies.get("team-own-policy").await?;
    ensure!(
        still.metadata.resource_version == foreign_rv,
        "foreign NetworkPolicy never written"
    );

    delete_profile(&env, &profile).await?;
    wait_until(
        "managed objects pruned on profile deletion",
        CONVERGE,
        || async {
            managed_objects(&client, ns.name())
                .await
                .is_ok_and(|o| o.is_empty())
        },
    )
    .await?;
    ensure!(
        policies.get_opt("team-own-policy").await?.is_some(),
        "foreign policy survives profile deletion"
    );
    ns.cleanup().await
}

#[tokio::test]
async fn higher_priority_profile_owns_overlapping_namespace() -> Result<()> {
    let env = setup().await?;
    let client = env.client();
    let case = random_name("prio");
    let low = random_name("low");
    let high = random_name("high");
    let ns = env
        .namespace_with_labels("prio", case_labels(&case, "ml"))
        .await?;

    kubectl_apply(&env, &profile_yaml(&low, &case, "  priority: 1\n  resourceQuota:\n    hard: {pods: \"5\"}\n  limitRange:\n    default: {cpu: 200m}\n")).await?;
    wait_until("the low-priority profile's objects", CONVERGE, || async {
        managed_objects(&client, ns.name())
            .await
            .is_ok_and(|o| o.len() == 2 && o.values().all(|p| p == &low))
    })
    .await?;

    kubectl_apply(
        &env,
        &profile_yaml(
            &high,
            &case,
            "  priority: 10\n  resourceQuota:\n    hard: {pods: \"50\"}\n",
        ),
    )
    .await?;
    wait_until(
        "the high-priority profile to take over",
        CONVERGE,
        || async {
            managed_objects(&client, ns.name()).await.is_ok_and(|o| {
                o.len() == 1
                    && o.get(&("ResourceQuota".to_owned(), "baseliner-quota".to_owned()))
                        == Some(&high)
            })
        },
    )
    .await?;
    let quota =
        Api::<k8s_openapi::api::core::v1::ResourceQuota>::namespaced(client.clone(), ns.name())
            .get("baseliner-quota")
            .await?;
    let owners = quota.metadata.owner_references.unwrap_or_default();
    ensure!(
        owners.len() == 1 && owners[0].name == high,
        "exactly one owner, the winner: {owners:?}"
    );
    ensure!(
        quota
            .spec
            .and_then(|s| s.hard)
            .and_then(|h| h.get("pods").cloned())
            .map(|q| q.0)
            == Some("50".into())
    );

    wait_until("the loser to report the conflict", CONVERGE, || async {
        profile_field(&env, &low, "{.status.nonCompliant[*].reason}")
            .await
            .is_ok_and(|r| r.contains("Conflict"))
            && profile_field(&env, &low, "{.status.matchedNamespaces}")
                .await
                .is_ok_and(|m| m == "0")
    })
    .await?;

    delete_profile(&env, &high).await?;
    wait_until(
        "ownership to return to the remaining profile",
        CONVERGE,
        || async {
            managed_objects(&client, ns.name())
                .await
                .is_ok_and(|o| o.len() == 2 && o.values().all(|p| p == &low))
        },
    )
    .await?;
    delete_profile(&env, &low).await?;
    ns.cleanup().await
}

#[tokio::test]
async fn editing_the_profile_prunes_exactly_what_was_removed() -> Result<()> {
    let env = setup().await?;
    let client = env.client();
    let case = random_name("edit");
    let profile = random_name("prof");
    let ns = env
        .namespace_with_labels("edit", case_labels(&case, "web"))
        .await?;
    kubectl_apply(&env, &profile_yaml(&profile, &case, STRICT_SPEC)).await?;
    wait_until("baseline", CONVERGE, || async {
        managed_objects(&client, ns.name())
            .await
            .is_ok_and(|o| keys(&o) == strict_objects())
    })
    .await?;
    let before = all_object_versions(&client, ns.name()).await?;

    let without_quota = STRICT_SPEC.replace(
        "  resourceQuota:\n    hard: {pods: \"20\", requests.cpu: \"4\"}\n",
        "",
    );
    ensure!(without_quota != STRICT_SPEC);
    kubectl_apply(&env, &profile_yaml(&profile, &case, &without_quota)).await?;
    let mut expected = strict_objects();
    expected.remove(&("ResourceQuota".to_owned(), "baseliner-quota".to_owned()));
    wait_until("the quota to be pruned", CONVERGE, || async {
        managed_objects(&client, ns.name())
            .await
            .is_ok_and(|o| keys(&o) == expected)
    })
    .await?;
    let after = all_object_versions(&client, ns.name()).await?;
    for (key, rv) in &after {
        ensure!(
            before.get(key) == Some(rv),
            "{key:?} was rewritten though its part of the profile did not change"
        );
    }
    delete_profile(&env, &profile).await?;
    ns.cleanup().await
}

#[tokio::test]
async fn orphan_policy_leaves_objects_unmanaged() -> Result<()> {
    let env = setup().await?;
    let client = env.client();
    let case = random_name("orph");
    let profile = random_name("prof");
    let ns = env
        .namespace_with_labels("orph", case_labels(&case, "data"))
        .await?;
    let spec = "  deletionPolicy: Orphan\n  resourceQuota:\n    hard: {pods: \"7\"}\n  podSecurity:\n    warn: baseline\n";
    kubectl_apply(&env, &profile_yaml(&profile, &case, spec)).await?;
    wait_until("quota", CONVERGE, || async {
        managed_objects(&client, ns.name())
            .await
            .is_ok_and(|o| o.len() == 1)
    })
    .await?;
    delete_profile(&env, &profile).await?;
    let quotas =
        Api::<k8s_openapi::api::core::v1::ResourceQuota>::namespaced(client.clone(), ns.name());
    wait_until("the quota to be orphaned", CONVERGE, || async {
        quotas.get_opt("baseliner-quota").await.is_ok_and(|q| {
            q.is_some_and(|q| {
                !q.metadata
                    .labels
                    .unwrap_or_default()
                    .contains_key("app.kubernetes.io/managed-by")
            })
        })
    })
    .await?;
    // Garbage collection must not take it either.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let quota = quotas.get("baseliner-quota").await?;
    ensure!(
        quota
            .metadata
            .owner_references
            .unwrap_or_default()
            .is_empty()
    );
    let labels = namespace_labels(&client, ns.name()).await?;
    ensure!(
        labels
            .get("pod-security.kubernetes.io/warn")
            .map(String::as_str)
            == Some("baseline"),
        "orphaned labels stay: {labels:?}"
    );
    ns.cleanup().await
}

#[tokio::test]
async fn audit_mode_writes_nothing_and_reports_drift() -> Result<()> {
    let env = setup().await?;
    let client = env.client();
    let case = random_name("audit");
    let profile = random_name("prof");
    let ns = env
        .namespace_with_labels("audit", case_labels(&case, "risk"))
        .await?;
    let before = all_object_versions(&client, ns.name()).await?;
    let ns_rv = Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
        .get(ns.name())
        .await?
        .metadata
        .resource_version;

    kubectl_apply(
        &env,
        &profile_yaml(&profile, &case, &format!("  mode: Audit\n{STRICT_SPEC}")),
    )
    .await?;
    wait_until("drift to be reported", CONVERGE, || async {
        let reason = profile_field(
            &env,
            &profile,
            "{.status.conditions[?(@.type==\"Ready\")].reason}",
        )
        .await;
        let listed = profile_field(&env, &profile, "{.status.nonCompliant[*].namespace}").await;
        reason.is_ok_and(|r| r == "Drifted") && listed.is_ok_and(|l| l.contains(ns.name()))
    })
    .await?;
    let message = profile_field(&env, &profile, "{.status.nonCompliant[0].message}").await?;
    ensure!(
        message.contains("missing") || message.contains("differ"),
        "the report says what differs: {message}"
    );
    ensure!(
        all_object_versions(&client, ns.name()).await? == before,
        "audit created or changed objects"
    );
    let after_ns = Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
        .get(ns.name())
        .await?;
    ensure!(
        after_ns.metadata.resource_version == ns_rv,
        "audit relabelled the namespace"
    );
    let events = env
        .kubectl([
            "get",
            "events",
            "-A",
            "--field-selector",
            &format!("regarding.name={profile}"),
            "-o",
            "jsonpath={.items[*].reason}",
        ])
        .await;
    let _ = events; // Events are best-effort; status is the contract checked above.

    delete_profile(&env, &profile).await?;
    ns.cleanup().await
}

#[tokio::test]
async fn patching_status_by_hand_is_corrected() -> Result<()> {
    // Status is the operator's: a hand edit is overwritten with the truth.
    let env = setup().await?;
    let case = random_name("stat");
    let profile = random_name("prof");
    let ns = env
        .namespace_with_labels("stat", case_labels(&case, "ops"))
        .await?;
    kubectl_apply(
        &env,
        &profile_yaml(
            &profile,
            &case,
            "  resourceQuota:\n    hard: {pods: \"3\"}\n",
        ),
    )
    .await?;
    wait_until("status", CONVERGE, || async {
        profile_field(&env, &profile, "{.status.compliantNamespaces}")
            .await
            .is_ok_and(|c| c == "1")
    })
    .await?;
    let api: Api<baseliner::api::ProductionProfile> = Api::all(env.client());
    api.patch_status(
        &profile,
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"status": {"compliantNamespaces": 99}})),
    )
    .await?;
    // The next change to the namespace triggers a pass that restores it.
    env.kubectl(["label", "namespace", ns.name(), "touch=1"])
        .await?
        .ok()?;
    wait_until("status restored", CONVERGE, || async {
        profile_field(&env, &profile, "{.status.compliantNamespaces}")
            .await
            .is_ok_and(|c| c == "1")
    })
    .await?;
    delete_profile(&env, &profile).await?;
    ns.cleanup().await
}
