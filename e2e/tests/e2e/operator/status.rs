//! Status is the operator's: a hand edit is overwritten with the truth.

use anyhow::Result;
use baseliner_e2e::baseline::{delete_profile, kubectl_apply, profile_field, profile_yaml};
use baseliner_e2e::{random_name, wait_until};
use kube::api::{Api, Patch, PatchParams};

use super::support::{CONVERGE, case_labels, setup};

#[tokio::test]
async fn patching_status_by_hand_is_corrected() -> Result<()> {
    // Status is the operator's: a hand edit is overwritten with the truth.
    let env = setup().await?;
    let case = random_name("stat");
    let profile = random_name("prof");
    let ns = env
        .namespace_with_labels("stat", case_labels(&case, Some("ops")))
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
