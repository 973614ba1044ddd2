//! Drift is healed: a managed object deleted, edited or relabelled by hand
//! is put back, while objects baseliner did not create are never written,
//! even when named like its own.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Result, ensure};
use baseliner_e2e::baseline::{
    STRICT_SPEC, delete_profile, keys, kubectl_apply, managed_objects, namespace_labels,
    profile_yaml, strict_objects,
};
use baseliner_e2e::{TestEnv, random_name, wait_until};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, DeleteParams, PostParams};

use super::support::{CONVERGE, case_labels, setup};

#[tokio::test]
async fn drift_is_healed_and_foreign_objects_are_left_alone() -> Result<()> {
    let env = setup().await?;
    let client = env.client();
    let case = random_name("drift");
    let profile = random_name("prof");
    let ns = env
        .namespace_with_labels("drift", case_labels(&case, Some("ads")))
        .await?;
    let foreign_rv = create_foreign_objects(&env, ns.name()).await?;
    let policies = Api::<NetworkPolicy>::namespaced(client.clone(), ns.name());

    kubectl_apply(&env, &profile_yaml(&profile, &case, STRICT_SPEC)).await?;
    wait_until("baseline", CONVERGE, || async {
        managed_objects(&client, ns.name())
            .await
            .is_ok_and(|o| keys(&o) == strict_objects())
    })
    .await?;

    drift_is_healed(&env, ns.name()).await?;

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

/// Objects baseliner did not create in `namespace`: a ConfigMap named like
/// one of its own and a NetworkPolicy of the team's. Returns the policy's
/// resourceVersion.
async fn create_foreign_objects(env: &TestEnv, namespace: &str) -> Result<Option<String>> {
    let client = env.client();
    // An object baseliner did not create, named like one it would.
    let foreign = ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some("baseliner-limits".into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([("k".into(), "v".into())])),
        ..Default::default()
    };
    Api::<ConfigMap>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &foreign)
        .await?;
    let foreign_policy: NetworkPolicy = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "team-own-policy"},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}
    }))?;
    let policies = Api::<NetworkPolicy>::namespaced(client.clone(), namespace);
    policies
        .create(&PostParams::default(), &foreign_policy)
        .await?;
    let foreign_rv = policies
        .get("team-own-policy")
        .await?
        .metadata
        .resource_version;
    Ok(foreign_rv)
}

/// Deleted, edited and relabelled by hand: each is put back, and labels
/// others add stay.
async fn drift_is_healed(env: &TestEnv, namespace: &str) -> Result<()> {
    let client = env.client();
    let policies = Api::<NetworkPolicy>::namespaced(client.clone(), namespace);
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
        namespace,
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
        namespace,
        "extra=kept",
    ])
    .await?
    .ok()?;
    env.kubectl([
        "label",
        "namespace",
        namespace,
        "pod-security.kubernetes.io/enforce=privileged",
        "--overwrite",
    ])
    .await?
    .ok()?;
    wait_until(
        "Pod Security label healed",
        Duration::from_secs(10),
        || async {
            namespace_labels(&client, namespace).await.is_ok_and(|l| {
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
    Ok(())
}
