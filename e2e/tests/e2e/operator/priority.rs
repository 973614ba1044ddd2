//! Two profiles selecting one namespace: the higher priority owns it, the
//! other reports the conflict, and ownership returns when the winner goes.

use anyhow::{Result, ensure};
use baseliner_e2e::baseline::{
    delete_profile, kubectl_apply, managed_objects, profile_field, profile_yaml,
};
use baseliner_e2e::{random_name, wait_until};
use kube::api::Api;

use super::support::{CONVERGE, case_labels, setup};

#[tokio::test]
async fn higher_priority_profile_owns_overlapping_namespace() -> Result<()> {
    let env = setup().await?;
    let client = env.client();
    let case = random_name("prio");
    let low = random_name("low");
    let high = random_name("high");
    let ns = env
        .namespace_with_labels("prio", case_labels(&case, Some("ml")))
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
