//! The install manifests (`config/default`) pass the API server's checks,
//! and the operator's own Pod passes the `restricted` Pod Security level.

use std::collections::BTreeMap;

use anyhow::{Result, ensure};
use baseliner_e2e::{KubectlOutput, TestEnv, Velero, workspace_root};
use serde_json::{Value, json};

use super::support::{object, rendered_install};

#[tokio::test]
async fn install_manifests_pass_server_dry_run_and_restricted_pod_security() -> Result<()> {
    let env = TestEnv::with_velero(Velero::Any).await?;
    let objects = rendered_install(&env).await?;
    let namespace = object(&objects, "Namespace", "baseliner-system")?;
    ensure!(
        namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted",
        "the install namespace enforces restricted: {namespace}"
    );
    let deployment = object(&objects, "Deployment", "baseliner-controller-manager")?;
    ensure!(deployment["spec"]["replicas"] == 2, "{deployment}");

    // A server-side dry run creates nothing, so the objects that go into the
    // namespace would find it missing: the namespace must exist first, as it
    // does on a real install by the time they are applied.
    env.kubectl_with_stdin(
        &env.plane().kubeconfig,
        [
            "apply",
            "--server-side",
            "--field-manager=e2e-install",
            "-f",
            "-",
        ],
        Some(&namespace.to_string()),
    )
    .await?
    .ok()?;
    let dir = workspace_root().join("config").join("default");
    let applied = env
        .kubectl([
            "apply",
            "--server-side",
            "--dry-run=server",
            "-k",
            &dir.to_string_lossy(),
        ])
        .await?
        .ok()?;
    let dry_runs = applied
        .lines()
        .filter(|l| l.ends_with("(server dry run)"))
        .count();
    ensure!(
        dry_runs == objects.len(),
        "every one of {} objects passes the server's checks:\n{applied}",
        objects.len()
    );

    // No kubelet or scheduler here: ask the API server to admit a Pod made
    // from the Deployment's template in a namespace enforcing `restricted`.
    let restricted = env
        .namespace_with_labels(
            "psa",
            BTreeMap::from([(
                "pod-security.kubernetes.io/enforce".to_owned(),
                "restricted".to_owned(),
            )]),
        )
        .await?;
    // The ServiceAccount admission plugin wants the Pod's account to exist.
    env.kubectl([
        "create",
        "serviceaccount",
        "baseliner",
        "-n",
        restricted.name(),
    ])
    .await?
    .ok()?;
    let template = &deployment["spec"]["template"];
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "baseliner", "namespace": restricted.name(), "labels": template["metadata"]["labels"]},
        "spec": template["spec"],
    });
    let admitted = dry_run_create(&env, &pod).await?;
    ensure!(
        admitted.success,
        "the operator's Pod is admitted under restricted: {}",
        admitted.stderr
    );
    // The same check refuses a Pod that breaks the level, so it has teeth.
    let mut escalating = pod;
    escalating["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] =
        json!(true);
    let refused = dry_run_create(&env, &escalating).await?;
    ensure!(
        !refused.success && refused.stderr.contains("restricted"),
        "a Pod that allows privilege escalation is refused: {refused:?}"
    );
    restricted.cleanup().await
}

async fn dry_run_create(env: &TestEnv, object: &Value) -> Result<KubectlOutput> {
    env.kubectl_with_stdin(
        &env.plane().kubeconfig,
        ["create", "--dry-run=server", "-f", "-"],
        Some(&object.to_string()),
    )
    .await
}
