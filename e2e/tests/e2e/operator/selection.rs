//! Which namespaces a profile baselines: those its selector matches and
//! `exclude` does not name, never a system namespace unless `include`
//! names it; a namespace created later is baselined at once, and one
//! relabelled out of the selector is released.

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use baseliner_e2e::baseline::{
    STRICT_SPEC, delete_profile, keys, kubectl_apply, managed_objects, namespace_labels,
    profile_field, profile_yaml, strict_objects,
};
use baseliner_e2e::{random_name, wait_until};
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::Api;

use super::support::{CONVERGE, case_labels, setup};

#[tokio::test]
async fn profile_baselines_selected_namespaces_only() -> Result<()> {
    let env = setup().await?;
    let client = env.client();
    let case = random_name("sel");
    let profile = random_name("prof");
    let selected = env
        .namespace_with_labels("sel", case_labels(&case, Some("payments")))
        .await?;
    let excluded = env
        .namespace_with_labels("excl", case_labels(&case, Some("payments")))
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
        "status to count one matched, compliant namespace, none by exception",
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
                    && cols.get(4).map(String::as_str) == Some("0")
                    && cols.get(5).map(String::as_str) == Some("True")
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
        .namespace_with_labels("sys", case_labels(&case, Some("core")))
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
        .namespace_with_labels("late", case_labels(&case, Some("search")))
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
