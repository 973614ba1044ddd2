//! `mode: Audit`: drift is reported in status and nothing is written.

use anyhow::{Result, ensure};
use baseliner_e2e::baseline::{
    STRICT_SPEC, all_object_versions, delete_profile, kubectl_apply, profile_field, profile_yaml,
};
use baseliner_e2e::{random_name, wait_until};
use kube::api::Api;

use super::support::{CONVERGE, case_labels, setup};

#[tokio::test]
async fn audit_mode_writes_nothing_and_reports_drift() -> Result<()> {
    let env = setup().await?;
    let client = env.client();
    let case = random_name("audit");
    let profile = random_name("prof");
    let ns = env
        .namespace_with_labels("audit", case_labels(&case, Some("risk")))
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
