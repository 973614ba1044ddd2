//! Bad input in `spec.namespaces`: a selector that is not one, and
//! `selector: {}`, which selects every namespace but the system ones.
//!
//! In this shared plane a profile selecting every namespace would write
//! into other tests' namespaces, so it is never created here: the API
//! server's verdict comes from a server-side dry run, the operator's
//! selection from `baseliner render` (the same pure function the controller
//! calls) for each system namespace, and on the real operator from a
//! selector naming every system namespace plus one of this test's own.

use anyhow::{Result, ensure};
use baseliner::api::ProductionProfile;
use baseliner::validate::validate_documents;
use baseliner_e2e::baseline::{delete_profile, kubectl_apply, managed_objects};
use baseliner_e2e::operator::{operator_binary, shared_operator};
use baseliner_e2e::{TestEnv, random_name, wait_until};
use kube::api::Api;

use super::SETTLE;
use super::table::Refused;

/// Hostile profiles the API server must refuse, with the field it names.
pub(super) fn refused_cases() -> Vec<Refused> {
    vec![Refused {
        id: "selector-as-string".to_owned(),
        // The selector itself is the bad input here.
        yaml: format!(
            "apiVersion: baseliner.dev/v1alpha1\nkind: ProductionProfile\nmetadata:\n  name: {}\nspec:\n  namespaces:\n    selector:\n      matchLabels: everything\n",
            random_name("bad-selector-as-string")
        ),
        path: "spec.namespaces.selector.matchLabels".to_owned(),
    }]
}

/// `selector: {}` selects every namespace except the system ones. Proven
/// without creating such a profile in this shared plane (see the module
/// docs): the API server accepts it (server-side dry run); `baseliner render`
/// selects an ordinary namespace and none of the system ones; and the real
/// operator, given a selector naming every system namespace and one of this
/// test's own, writes only into the latter.
#[tokio::test]
async fn selecting_everything_never_touches_system_namespaces() -> Result<()> {
    let env = TestEnv::new().await?;
    shared_operator(env.plane())?;
    let client = env.client();
    let everything = format!(
        "apiVersion: baseliner.dev/v1alpha1\nkind: ProductionProfile\nmetadata:\n  name: {}\nspec:\n  namespaces:\n    selector: {{}}\n  resourceQuota:\n    hard: {{pods: \"5\"}}\n  podSecurity:\n    warn: baseline\n",
        random_name("bad-everything")
    );
    let dry = env
        .kubectl_with_stdin(
            &env.plane().kubeconfig,
            ["apply", "--server-side", "--dry-run=server", "-f", "-"],
            Some(&everything),
        )
        .await?;
    ensure!(
        dry.success,
        "the API server refuses selector {{}}: {}",
        dry.stderr
    );
    ensure!(
        validate_documents(&everything)[0].is_valid(),
        "offline refuses selector {{}}"
    );

    let dir = std::env::temp_dir().join(random_name("bad-everything"));
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("everything.yaml");
    std::fs::write(&file, &everything)?;
    let binary = operator_binary()?;
    let render = |namespace: &str| {
        std::process::Command::new(&binary)
            .args(["render", "--profile"])
            .arg(&file)
            .args(["--namespace", namespace])
            .output()
    };
    let ordinary = render("shop")?;
    ensure!(
        ordinary.status.success()
            && String::from_utf8_lossy(&ordinary.stdout).contains("baseliner-quota"),
        "selector {{}} must select an ordinary namespace: {ordinary:?}"
    );
    for system in ["kube-system", "kube-public", "kube-node-lease"] {
        let output = render(system)?;
        ensure!(
            output.status.code() == Some(3) && output.stdout.is_empty(),
            "selector {{}} must not select {system}: {output:?}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);

    // On the real operator: every system namespace by name, and ours.
    let ns = env.namespace("bad-sys").await?;
    let profile = random_name("bad-sys");
    let yaml = format!(
        "apiVersion: baseliner.dev/v1alpha1\nkind: ProductionProfile\nmetadata:\n  name: {profile}\nspec:\n  namespaces:\n    selector:\n      matchExpressions:\n        - {{key: kubernetes.io/metadata.name, operator: In, values: [kube-system, kube-public, kube-node-lease, {}]}}\n  resourceQuota:\n    hard: {{pods: \"5\"}}\n  podSecurity:\n    warn: baseline\n",
        ns.name()
    );
    kubectl_apply(&env, &yaml).await?;
    let profiles: Api<ProductionProfile> = Api::all(client.clone());
    wait_until(
        "the profile to own exactly one namespace",
        SETTLE,
        || async {
            managed_objects(&client, ns.name())
                .await
                .is_ok_and(|o| o.len() == 1)
                && profiles.get_opt(&profile).await.is_ok_and(|p| {
                    p.and_then(|p| p.status)
                        .is_some_and(|s| s.matched_namespaces == 1 && s.compliant_namespaces == 1)
                })
        },
    )
    .await?;
    for system in ["kube-system", "kube-public", "kube-node-lease"] {
        ensure!(
            managed_objects(&client, system).await?.is_empty(),
            "{system} got managed objects"
        );
        let labels = baseliner_e2e::baseline::namespace_labels(&client, system).await?;
        ensure!(
            !labels.contains_key("pod-security.kubernetes.io/warn"),
            "{system} was labelled: {labels:?}"
        );
    }
    delete_profile(&env, &profile).await?;
    ns.cleanup().await
}
