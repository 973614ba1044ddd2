//! Velero's own CRDs as the harness installs them (from the pinned release),
//! present and absent.

use anyhow::{Result, bail, ensure};
use baseliner_e2e::velero::{SCHEDULE_CRD, VELERO_NAMESPACE, schedules};
use baseliner_e2e::{TestEnv, Velero};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use serde_json::json;

fn schedule(name: &str, spec: serde_json::Value) -> Result<DynamicObject> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "velero.io/v1",
        "kind": "Schedule",
        "metadata": {"name": name},
        "spec": spec,
    }))?)
}

#[tokio::test]
async fn velero_schedule_requires_schedule_and_template() -> Result<()> {
    let env = TestEnv::new().await?;
    let client = env.client();
    ensure!(
        Api::<Namespace>::all(client.clone())
            .get_opt(VELERO_NAMESPACE)
            .await?
            .is_some(),
        "the velero namespace is installed"
    );
    let api = schedules(client.clone(), VELERO_NAMESPACE);
    let pp = PostParams::default();
    for (missing, spec) in [
        ("spec.schedule", json!({"template": {"ttl": "1h0m0s"}})),
        ("spec.template", json!({"schedule": "@daily"})),
    ] {
        match api.create(&pp, &schedule("invalid", spec)?).await {
            Err(kube::Error::Api(s)) if s.code == 422 && s.message.contains(missing) => {}
            other => bail!("a Schedule without {missing} should be rejected, got {other:?}"),
        }
    }
    let name = baseliner_e2e::random_name("e2e-valid");
    api.create(
        &pp,
        &schedule(
            &name,
            json!({
                "schedule": "0 1 * * *",
                "template": {"includedNamespaces": ["a"], "ttl": "240h0m0s", "storageLocation": "default"},
            }),
        )?,
    )
    .await?;
    let cron = env
        .kubectl([
            "get",
            "schedules.velero.io",
            &name,
            "-n",
            VELERO_NAMESPACE,
            "-o",
            "jsonpath={.spec.schedule}",
        ])
        .await?
        .ok()?;
    ensure!(cron == "0 1 * * *", "kubectl read schedule {cron:?}");
    api.delete(&name, &Default::default()).await?;
    Ok(())
}

#[tokio::test]
async fn velero_can_be_absent() -> Result<()> {
    let env = TestEnv::with_velero(Velero::Absent).await?;
    let client = env.client();
    ensure!(
        Api::<CustomResourceDefinition>::all(client.clone())
            .get_opt(SCHEDULE_CRD)
            .await?
            .is_none()
    );
    ensure!(
        Api::<Namespace>::all(client.clone())
            .get_opt(VELERO_NAMESPACE)
            .await?
            .is_none()
    );
    match schedules(client.clone(), "default")
        .list(&ListParams::default())
        .await
    {
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        other => bail!("listing Schedules without the CRD should be 404, got {other:?}"),
    }
    let groups = env
        .kubectl(["api-resources", "--api-group=velero.io", "-o", "name"])
        .await?
        .ok()?;
    ensure!(groups.trim().is_empty(), "velero.io still served: {groups}");
    Ok(())
}
