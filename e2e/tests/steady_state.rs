//! Steady state costs nothing: once converged, resyncs and a restart make
//! zero write requests, counted by the API server itself.
//!
//! A test binary of its own, so no other test's activity (or operator) runs
//! while it counts. The operator runs as a ServiceAccount; a FlowSchema that
//! matches only that ServiceAccount's write verbs makes API Priority and
//! Fairness count exactly its writes in
//! `apiserver_flowcontrol_dispatched_requests_total{flow_schema=...}`.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use baseliner_e2e::baseline::{
    STRICT_SPEC, delete_profile, keys, kubectl_apply, managed_objects, profile_field, profile_yaml,
    strict_objects,
};
use baseliner_e2e::operator::Operator;
use baseliner_e2e::{Grant, TestEnv, random_name, wait_until};

const RESYNC_SECONDS: u64 = 3;
const NAMESPACES: usize = 20;

/// Writes the API server dispatched for `flow_schema`, from its metrics.
async fn dispatched_writes(env: &TestEnv, flow_schema: &str) -> Result<u64> {
    let metrics = env.kubectl(["get", "--raw", "/metrics"]).await?.ok()?;
    let needle = format!("flow_schema=\"{flow_schema}\"");
    Ok(metrics
        .lines()
        .filter(|l| {
            l.starts_with("apiserver_flowcontrol_dispatched_requests_total{") && l.contains(&needle)
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64)
}

/// Waits until the count stops moving for `quiet`, and returns it.
async fn settled_writes(env: &TestEnv, flow_schema: &str, quiet: Duration) -> Result<u64> {
    let mut last = dispatched_writes(env, flow_schema).await?;
    for _ in 0..60 {
        tokio::time::sleep(quiet).await;
        let now = dispatched_writes(env, flow_schema).await?;
        if now == last {
            return Ok(now);
        }
        last = now;
    }
    anyhow::bail!("the operator never stopped writing (last count {last})")
}

#[tokio::test]
async fn converged_operator_makes_no_writes_on_resync_or_restart() -> Result<()> {
    let env = TestEnv::new().await?;
    let home = env.namespace("steady-home").await?;
    let identity = env
        .service_account(
            &home,
            "baseliner",
            &[Grant::ClusterRole("cluster-admin".into())],
        )
        .await?;
    let flow_schema = random_name("baseliner-writes");
    let flow_schema_yaml = format!(
        "apiVersion: flowcontrol.apiserver.k8s.io/v1
kind: FlowSchema
metadata:
  name: {flow_schema}
spec:
  priorityLevelConfiguration: {{name: workload-high}}
  matchingPrecedence: 200
  distinguisherMethod: {{type: ByUser}}
  rules:
    - subjects:
        - kind: ServiceAccount
          serviceAccount: {{name: baseliner, namespace: {home}}}
      resourceRules:
        - verbs: [create, update, patch, delete, deletecollection]
          apiGroups: ['*']
          resources: ['*']
          clusterScope: true
          namespaces: ['*']
",
        home = home.name()
    );
    kubectl_apply(&env, &flow_schema_yaml).await?;

    let case = random_name("steady");
    let profile = random_name("steady");
    let mut namespaces = Vec::new();
    for _ in 0..NAMESPACES {
        let labels = BTreeMap::from([
            ("e2e-case".to_owned(), case.clone()),
            ("team".to_owned(), "quiet".to_owned()),
        ]);
        namespaces.push(env.namespace_with_labels("steady", labels).await?);
    }
    kubectl_apply(&env, &profile_yaml(&profile, &case, STRICT_SPEC)).await?;

    let resync = RESYNC_SECONDS.to_string();
    let args = [
        "--resync-seconds",
        resync.as_str(),
        "--leader-elect=false",
        "--http-addr",
        "127.0.0.1:0",
    ];
    let mut operator = Operator::start(&identity.kubeconfig, &args)?;
    let client = env.client();
    wait_until(
        "every namespace compliant",
        Duration::from_secs(120),
        || async {
            profile_field(&env, &profile, "{.status.compliantNamespaces}")
                .await
                .is_ok_and(|c| c == NAMESPACES.to_string())
        },
    )
    .await
    .with_context(|| operator.output())?;
    for ns in &namespaces {
        ensure!(
            keys(&managed_objects(&client, ns.name()).await?) == strict_objects(),
            "{} incomplete",
            ns.name()
        );
    }
    let converged = settled_writes(&env, &flow_schema, Duration::from_secs(2)).await?;
    ensure!(
        converged > 0,
        "the FlowSchema must see the operator's writes, or this test proves nothing"
    );

    // Several resync periods with nothing to do.
    tokio::time::sleep(Duration::from_secs(RESYNC_SECONDS * 4)).await;
    let idle = dispatched_writes(&env, &flow_schema).await? - converged;
    ensure!(
        idle == 0,
        "{idle} writes during idle resyncs; operator log:\n{}",
        operator.output()
    );

    // A restart re-reads everything and writes nothing.
    operator.terminate(Duration::from_secs(10))?;
    let mut restarted = Operator::start(&identity.kubeconfig, &args)?;
    tokio::time::sleep(Duration::from_secs(RESYNC_SECONDS * 3)).await;
    ensure!(
        restarted.is_running(),
        "restarted operator exited:\n{}",
        restarted.output()
    );
    let after_restart = dispatched_writes(&env, &flow_schema).await? - converged;
    ensure!(
        after_restart == 0,
        "{after_restart} writes after a restart; log:\n{}",
        restarted.output()
    );

    // And it is not idle because it is deaf: drift is still healed.
    env.kubectl([
        "delete",
        "limitrange",
        "baseliner-limits",
        "-n",
        namespaces[0].name(),
    ])
    .await?
    .ok()?;
    wait_until(
        "the deleted LimitRange to be restored",
        Duration::from_secs(10),
        || async {
            managed_objects(&client, namespaces[0].name())
                .await
                .is_ok_and(|o| keys(&o) == strict_objects())
        },
    )
    .await?;
    ensure!(
        dispatched_writes(&env, &flow_schema).await? > converged,
        "healing shows up as a write"
    );

    restarted.terminate(Duration::from_secs(10))?;
    delete_profile(&env, &profile).await?;
    env.kubectl(["delete", "flowschema", &flow_schema])
        .await?
        .ok()?;
    for ns in namespaces {
        ns.cleanup().await?;
    }
    home.cleanup().await
}
