//! etcd restarted after the apiserver compacted the history the operator's
//! watches would resume from: the watches get `410 Gone`, re-list, and the
//! operator writes only what actually needs fixing.
//!
//! The operator must miss changes for its watches to fall behind, so it is
//! paused (SIGSTOP, as a long pause or a network partition would) while
//! objects are deleted, edited and merely touched, namespaces created and
//! relabelled. The apiserver compacts etcd every 10 s on the faults plane;
//! once that has passed the changes, etcd restarts: the apiserver's watch
//! caches re-list from the compacted store and end the watches they served,
//! and the resumed operator's watches ask for a resourceVersion that is gone.

use std::time::Duration;

use anyhow::{Result, anyhow, ensure};
use baseliner_e2e::baseline::{STRICT_SPEC, strict_objects};
use baseliner_e2e::random_name;
use baseliner_e2e::requests::{RequestCounter, Requests};
use k8s_openapi::api::core::v1::{LimitRange, Namespace, ResourceQuota};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::json;

use crate::support::{
    CASE_LABEL, CaseNamespaces, Expected, Faults, Paused, Profile, concurrently, log_end, secs,
    start_operator, summary, wait_converged,
};

const NAMESPACES: usize = 60;
/// LimitRanges deleted: one write each to restore.
const DELETED: usize = 10;
/// ResourceQuotas edited: one write each to put back.
const EDITED: usize = 10;
/// NetworkPolicies annotated: they still comply, so no write.
const TOUCHED: usize = 20;
/// Namespaces created: six objects and the Pod Security labels each.
const CREATED: usize = 5;
/// Namespaces that stop matching: six deletions and the labels released each.
const LEAVING: usize = 5;

#[tokio::test]
#[ignore = "stops the control plane's processes: run with `make test-faults`"]
async fn etcd_restart_with_compacted_history_relists_without_a_write_storm() -> Result<()> {
    let faults = Faults::new().await?;
    let interval = faults
        .compaction_interval()
        .filter(|i| *i <= Duration::from_secs(30))
        .ok_or_else(|| {
            anyhow!(
                "this test needs the apiserver to compact etcd every few seconds: start the plane \
                 with BASELINER_ETCD_COMPACTION_INTERVAL=10s (make test-faults does)"
            )
        })?;
    let client = faults.client();
    let (home, identity) = faults.operator_account("faults-etcd").await?;
    let writes = RequestCounter::install(
        &faults.env,
        home.name(),
        &random_name("faults-etcd-writes"),
        Requests::ManagedObjects,
    )
    .await?;
    let case = random_name("fetcd");
    let mut namespaces = CaseNamespaces::create(&faults, &case, NAMESPACES).await?;
    let profile = Profile::apply(&faults.env, "faults-etcd", &case, STRICT_SPEC).await?;
    let mut operator = start_operator(&identity, home.name(), &[])?;
    let mut expected = Expected::default();
    expected.own(&profile.name, &namespaces.names, &strict_objects());
    wait_converged(
        &client,
        &[&case],
        &expected,
        Duration::from_secs(180),
        &operator,
    )
    .await?;
    let before = writes.settled(&faults.env, Duration::from_secs(2)).await?;
    ensure!(before > 0, "the FlowSchema must see the operator's writes");

    let paused = Paused::new(operator.pid());
    let leaving = change_objects_and_labels(&client, &namespaces.names, &case).await?;
    let created = namespaces.add(CREATED).await?;
    let per_namespace = strict_objects().len() + 1;
    let needed = DELETED + EDITED + (CREATED + LEAVING) * per_namespace;

    // Past two compaction intervals, etcd has forgotten the history of all
    // of the above (the apiserver compacts to the revision it saw one
    // interval earlier).
    tokio::time::sleep(interval * 2 + Duration::from_secs(5)).await;
    let stopped = faults.stop("etcd", false).await?;
    stopped.start().await?;
    faults.wait_ready(Duration::from_secs(120)).await?;

    let log_from = log_end(&operator);
    drop(paused);
    for ns in &leaving {
        expected.owned.remove(ns);
    }
    expected.released = leaving.iter().cloned().collect();
    expected.own(&profile.name, &created, &strict_objects());
    let (took, _) = wait_converged(
        &client,
        &[&case],
        &expected,
        Duration::from_secs(180),
        &operator,
    )
    .await?;
    let after = writes.settled(&faults.env, Duration::from_secs(3)).await? - before;
    let log = operator.output();
    let relists = log[log_from.min(log.len())..]
        .lines()
        .filter(|l| l.contains("too old resource version") || l.contains("410"))
        .count();
    ensure!(
        relists > 0,
        "no watch of the operator got 410 Gone, so this run proved nothing; log: {}",
        operator.log.display()
    );
    ensure!(
        operator.is_running(),
        "the operator exited; log: {}",
        operator.log.display()
    );
    ensure!(
        after as usize <= needed,
        "{after} writes after the re-list, but only {needed} objects needed fixing; log: {}",
        operator.log.display()
    );
    summary(
        "etcd restarted, history compacted",
        &format!(
            "{relists} watch errors 410 Gone, re-listed; converged {} after the operator resumed \
             (from SIGCONT, etcd and apiserver up again); {after} writes for {needed} objects that \
             needed fixing ({DELETED} deleted, {EDITED} edited, {CREATED} namespaces new, {LEAVING} \
             leaving; {TOUCHED} touched but compliant); checked {} namespaces, {} objects",
            secs(took),
            expected.namespace_count(),
            expected.object_count(),
        ),
    );

    operator.terminate(Duration::from_secs(10))?;
    profile.delete(&faults.env).await?;
    drop(writes);
    namespaces.cleanup().await?;
    home.cleanup().await
}

/// While the operator is paused: deletes LimitRanges, edits quotas,
/// annotates policies (still compliant) and relabels namespaces out of the
/// profile, each in namespaces of its own from `names`. Returns the
/// relabelled ones.
async fn change_objects_and_labels(
    client: &Client,
    names: &[String],
    case: &str,
) -> Result<Vec<String>> {
    let mut at = 0;
    let mut take = |n: usize| {
        let slice = names[at..at + n].to_vec();
        at += n;
        slice
    };
    let (deleted, edited, touched, leaving) =
        (take(DELETED), take(EDITED), take(TOUCHED), take(LEAVING));
    let c = client.clone();
    concurrently(deleted, move |ns| {
        let api: Api<LimitRange> = Api::namespaced(c.clone(), &ns);
        async move {
            api.delete("baseliner-limits", &DeleteParams::default())
                .await?;
            Ok(())
        }
    })
    .await?;
    let c = client.clone();
    concurrently(edited, move |ns| {
        let api: Api<ResourceQuota> = Api::namespaced(c.clone(), &ns);
        let patch = json!({"spec": {"hard": {"pods": "99"}}});
        async move {
            api.patch(
                "baseliner-quota",
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
            Ok(())
        }
    })
    .await?;
    let c = client.clone();
    concurrently(touched, move |ns| {
        let api: Api<NetworkPolicy> = Api::namespaced(c.clone(), &ns);
        let patch = json!({"metadata": {"annotations": {"faults.baseliner.dev/touched": "yes"}}});
        async move {
            api.patch(
                "baseliner-default-deny",
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
            Ok(())
        }
    })
    .await?;
    let c = client.clone();
    let moved = format!("{case}-left");
    concurrently(leaving.clone(), move |ns| {
        let api: Api<Namespace> = Api::all(c.clone());
        let patch = json!({"metadata": {"labels": {CASE_LABEL: moved}}});
        async move {
            api.patch(&ns, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
            Ok(())
        }
    })
    .await?;
    Ok(leaving)
}
