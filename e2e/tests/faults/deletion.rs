//! A namespace deleted while it is being reconciled, and a profile deleted
//! while its namespaces are: errors do not loop, nothing is recreated in a
//! namespace that is going away, and the deleted profile's namespaces are
//! released.
//!
//! The deleted namespaces are held in Terminating by a ConfigMap with a
//! finalizer of the test's, so for as long as the test looks they are
//! "going away": emptied by the namespace controller, and never written to
//! by the operator again.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use baseliner_e2e::baseline::{STRICT_SPEC, strict_objects};
use baseliner_e2e::random_name;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::support::{
    CaseNamespaces, Expected, Faults, Observed, Profile, concurrently, delete_namespaces, log_end,
    problems_since, secs, start_operator, summary, wait_converged, wait_observed,
};

/// Namespaces of the profile that stays.
const KEPT: usize = 30;
/// Namespaces of that profile deleted mid-reconcile.
const DOOMED: usize = 10;
/// Namespaces of the profile that is deleted.
const ORPHANED: usize = 30;
const FINALIZER: &str = "faults.baseliner.dev/hold";
/// How long the end state must hold with no new error in the log.
const QUIET: Duration = Duration::from_secs(10);
/// Few workers, so that the deletions land while namespaces are being
/// reconciled and others wait their turn.
const WORKERS: &str = "4";

#[tokio::test]
#[ignore = "stops the control plane's processes: run with `make test-faults`"]
async fn namespace_and_profile_deleted_mid_reconcile_no_error_loop_nothing_recreated() -> Result<()>
{
    let faults = Faults::new().await?;
    let client = faults.client();
    let (home, identity) = faults.operator_account("faults-delete").await?;
    let case_kept = random_name("fdel-kept");
    let case_gone = random_name("fdel-gone");
    let kept = CaseNamespaces::create(&faults, &case_kept, DOOMED + KEPT).await?;
    let orphaned = CaseNamespaces::create(&faults, &case_gone, ORPHANED).await?;
    let doomed: Vec<String> = kept.names[..DOOMED].to_vec();
    hold(&client, &doomed).await?;

    let mut operator = start_operator(&identity, home.name(), &["--workers", WORKERS])?;
    let staying = Profile::apply(&faults.env, "faults-kept", &case_kept, STRICT_SPEC).await?;
    let going = Profile::apply(&faults.env, "faults-gone", &case_gone, STRICT_SPEC).await?;
    let runs = [case_kept.as_str(), case_gone.as_str()];
    let all = (DOOMED + KEPT + ORPHANED) * strict_objects().len();
    let under_way = wait_observed(
        &client,
        &runs,
        "reconciles to be under way",
        Duration::from_secs(180),
        |o| o.count_of(&staying.name) + o.count_of(&going.name) >= all / 10,
    )
    .await?;

    let faulted = Instant::now();
    let (namespaces_deleted, profile_deleted) = tokio::join!(
        delete_namespaces(&client, &doomed),
        going.delete(&faults.env)
    );
    namespaces_deleted?;
    profile_deleted?;

    let mut expected = Expected::default();
    expected.own(&staying.name, &kept.names[DOOMED..], &strict_objects());
    expected.profiles.insert(going.name.clone());
    expected.emptied = doomed.iter().cloned().collect();
    expected.released = orphaned.names.iter().cloned().collect();
    wait_converged(
        &client,
        &runs,
        &expected,
        Duration::from_secs(180),
        &operator,
    )
    .await?;
    let took = faulted.elapsed();

    // The end state holds, the deleted namespaces are still going away, and
    // nothing about any of it is still being logged as a problem.
    let quiet_from = log_end(&operator);
    tokio::time::sleep(QUIET).await;
    let observed = Observed::list(&client, &runs).await?;
    let differences = expected.differences(&observed);
    ensure!(differences.is_empty(), "after {QUIET:?}: {differences:?}");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for ns in &doomed {
        let terminating = namespaces
            .get_opt(ns)
            .await?
            .is_some_and(|n| n.metadata.deletion_timestamp.is_some());
        ensure!(
            terminating,
            "{ns} is no longer terminating: the test held it too briefly"
        );
    }
    let involved: Vec<&str> = doomed
        .iter()
        .chain(&orphaned.names)
        .map(String::as_str)
        .chain([going.name.as_str()])
        .collect();
    let late: Vec<String> = problems_since(&operator, quiet_from)
        .into_iter()
        .filter(|l| involved.iter().any(|n| l.contains(n)))
        .collect();
    ensure!(
        late.is_empty(),
        "problems still logged {QUIET:?} after recovery (an error loop):\n{}",
        late.join("\n")
    );
    // A reconcile caught in the middle may fail once (a create refused in a
    // terminating namespace); a second failure of the same namespace would
    // be the start of a loop.
    let problems = problems_since(&operator, 0);
    let mut failures: BTreeMap<&str, usize> = BTreeMap::new();
    for line in problems.iter().filter(|l| l.contains("reconcile failed")) {
        if let Some(ns) = involved
            .iter()
            .find(|n| line.contains(&format!("namespace={n} ")))
        {
            *failures.entry(ns).or_default() += 1;
        }
    }
    let worst = failures.values().copied().max().unwrap_or(0);
    ensure!(
        worst <= 1,
        "reconciles failed repeatedly: {failures:?}; log: {}",
        operator.log.display()
    );
    let related = problems
        .iter()
        .filter(|l| involved.iter().any(|n| l.contains(n)))
        .count();
    summary(
        "namespace and profile deleted mid-reconcile",
        &format!(
            "deleted at {} of {all} objects; end state reached {} after the deletions and held {} \
             with no new problem logged; {} failed reconciles ({} warning/error lines) about them in \
             all, none repeated; checked {} namespaces ({DOOMED} terminating and empty, {ORPHANED} \
             released), {} objects",
            under_way.count_of(&staying.name) + under_way.count_of(&going.name),
            secs(took),
            secs(QUIET),
            failures.values().sum::<usize>(),
            related,
            expected.namespace_count(),
            expected.object_count(),
        ),
    );

    // Let the held namespaces go.
    let_go(&client, &doomed).await?;
    operator.terminate(Duration::from_secs(10))?;
    staying.delete(&faults.env).await?;
    kept.cleanup().await?;
    orphaned.cleanup().await?;
    home.cleanup().await
}

/// Holds each of `doomed` in Terminating once it is deleted: a ConfigMap
/// with a finalizer of the test's.
async fn hold(client: &Client, doomed: &[String]) -> Result<()> {
    let c = client.clone();
    concurrently(doomed.to_vec(), move |ns| {
        let api: Api<ConfigMap> = Api::namespaced(c.clone(), &ns);
        let hold = ConfigMap {
            metadata: ObjectMeta {
                name: Some("hold".to_owned()),
                finalizers: Some(vec![FINALIZER.to_owned()]),
                ..Default::default()
            },
            data: Some(BTreeMap::new()),
            ..Default::default()
        };
        async move {
            api.create(&PostParams::default(), &hold).await?;
            Ok(())
        }
    })
    .await
}

/// Removes the finalizers [`hold`] added.
async fn let_go(client: &Client, doomed: &[String]) -> Result<()> {
    let c = client.clone();
    concurrently(doomed.to_vec(), move |ns| {
        let api: Api<ConfigMap> = Api::namespaced(c.clone(), &ns);
        let patch = json!({"metadata": {"finalizers": null}});
        async move {
            api.patch("hold", &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
            Ok(())
        }
    })
    .await
}
