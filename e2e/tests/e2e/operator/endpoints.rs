//! `/metrics`, `/healthz` and `/readyz` tell the truth.

use std::time::Duration;

use anyhow::{Result, ensure};
use baseliner_e2e::{TestEnv, Velero, random_name, wait_for, wait_until};

use super::replica::Replica;
use super::support::{CONVERGE, TestProfile, case_labels, operator_identity, wait_for_baseline};

#[tokio::test]
async fn endpoints_report_liveness_readiness_and_reconciles() -> Result<()> {
    let env = TestEnv::with_velero(Velero::Any).await?;
    let home = env.namespace("http").await?;
    let identity = operator_identity(&env, &home, None).await?;
    let replica = Replica::start(&identity, home.name(), &["--leader-elect=false"])?;
    let (code, body) = wait_for("/healthz to answer", CONVERGE, || async {
        replica.get("/healthz").await.ok()
    })
    .await?;
    ensure!((code, body.as_str()) == (200, "ok\n"));
    // Generous: the whole suite shares one API server, and a first list of
    // every namespace can queue behind other tests' bursts.
    wait_until("/readyz to be 200", Duration::from_secs(120), || {
        replica.is_ready()
    })
    .await?;

    let case = random_name("http");
    let _profile = TestProfile::strict(&env, &case).await?;
    let selected = env
        .namespace_with_labels("http-sel", case_labels(&case, Some("platform")))
        .await?;
    wait_for_baseline(&env, selected.name()).await?;
    let (code, metrics) = replica.get("/metrics").await?;
    ensure!(code == 200);
    for series in [
        r#"baseliner_reconciles_total{result="success"}"#,
        "baseliner_reconcile_duration_seconds_count",
        "baseliner_leader",
    ] {
        let value = metrics.lines().find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .parse::<f64>()
                .ok()
        });
        ensure!(
            value.is_some_and(|v| v >= 1.0),
            "{series} counts the work done:\n{metrics}"
        );
    }
    for series in [
        r#"baseliner_objects_applied_total{kind="NetworkPolicy"}"#,
        r#"baseliner_objects_pruned_total{kind="NetworkPolicy"}"#,
        r#"baseliner_drift_corrections_total{kind="NetworkPolicy"}"#,
        r#"baseliner_reconciles_total{result="error"}"#,
    ] {
        ensure!(
            metrics.lines().any(|l| l.starts_with(series)),
            "{series} is exported from the start:\n{metrics}"
        );
    }

    drop(replica);
    selected.cleanup().await?;
    home.cleanup().await
}

#[tokio::test]
async fn a_cache_that_cannot_sync_fails_readyz_and_is_logged() -> Result<()> {
    let env = TestEnv::with_velero(Velero::Any).await?;
    let home = env.namespace("unsynced").await?;
    // RBAC denies listing LimitRanges, so that cache never syncs.
    let identity = operator_identity(&env, &home, Some("limitranges")).await?;
    let replica = Replica::start(
        &identity,
        home.name(),
        &["--leader-elect=false", "--cache-sync-grace-seconds", "1"],
    )?;
    let (code, body) = wait_for("/healthz to answer", CONVERGE, || async {
        replica.get("/healthz").await.ok()
    })
    .await?;
    ensure!(code == 200, "alive though not ready: {body}");
    wait_until("the unsynced cache to be logged", CONVERGE, || async {
        replica.operator.output().contains("caches have not synced")
    })
    .await?;
    let (code, body) = replica.get("/readyz").await?;
    ensure!(
        // The verification pass waits for every cache, so it is pending too.
        (code, body.as_str()) == (503, "caches not synced: LimitRange, verified-objects\n"),
        "/readyz names the cache: {code} {body}"
    );
    let log = replica.operator.output();
    ensure!(
        log.lines()
            .any(|l| l.contains("ERROR") && l.contains("caches not synced: LimitRange")),
        "the error log names the cache:\n{log}"
    );
    drop(replica);
    home.cleanup().await
}
