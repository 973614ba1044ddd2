//! Pruning: what a profile no longer asks for is deleted and nothing else
//! is rewritten; with `deletionPolicy: Orphan` objects stay, unmanaged.

use std::time::Duration;

use anyhow::{Result, ensure};
use baseliner_e2e::baseline::{
    STRICT_SPEC, all_object_versions, delete_profile, keys, kubectl_apply, managed_objects,
    namespace_labels, profile_yaml, strict_objects,
};
use baseliner_e2e::{random_name, wait_until};
use kube::api::Api;

use super::support::{CONVERGE, case_labels, setup};

#[tokio::test]
async fn editing_the_profile_prunes_exactly_what_was_removed() -> Result<()> {
    let env = setup().await?;
    let client = env.client();
    let case = random_name("edit");
    let profile = random_name("prof");
    let ns = env
        .namespace_with_labels("edit", case_labels(&case, Some("web")))
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
        .namespace_with_labels("orph", case_labels(&case, Some("data")))
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
