//! The harness's own promises.

use anyhow::{Result, ensure};
use baseliner_e2e::{DEFAULT_TIMEOUT, E2E_LABEL, TestEnv, Velero, wait_until};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::Api;

#[tokio::test]
async fn test_namespaces_are_labelled_unique_and_removed_on_drop() -> Result<()> {
    let env = TestEnv::with_velero(Velero::Any).await?;
    let a = env.namespace("harness").await?;
    let b = env.namespace("harness").await?;
    ensure!(a.name() != b.name());
    let api = Api::<Namespace>::all(env.client());
    let got = api.get(a.name()).await?;
    ensure!(
        got.metadata
            .labels
            .unwrap_or_default()
            .get(E2E_LABEL)
            .map(String::as_str)
            == Some("true")
    );
    let name = b.name().to_owned();
    a.cleanup().await?;
    // A test that panics never calls cleanup; drop still deletes.
    drop(b);
    wait_until(
        "a dropped test namespace to be deleted",
        DEFAULT_TIMEOUT,
        || async {
            match api.get_opt(&name).await {
                Ok(None) => true,
                Ok(Some(ns)) => ns.metadata.deletion_timestamp.is_some(),
                Err(_) => false,
            }
        },
    )
    .await
}
