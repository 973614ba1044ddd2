//! Steady state costs nothing: once converged, resyncs and a restart make
//! zero write requests, and a restart reads the managed objects by LIST
//! pages, not one GET each, counted by the API server itself.
//!
//! A test binary of its own, so no other test's activity (or operator) runs
//! while it counts. The operator runs as a ServiceAccount whose every write,
//! and every GET and LIST of managed objects, API Priority and Fairness
//! counts ([`RequestCounter`]).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use baseliner_e2e::baseline::{
    STRICT_SPEC, delete_profile, keys, kubectl_apply, managed_objects, profile_field, profile_yaml,
    strict_objects,
};
use baseliner_e2e::operator::Operator;
use baseliner_e2e::requests::{RequestCounter, Requests, counted_operator_identity};
use baseliner_e2e::{TestEnv, random_name, wait_until};

const RESYNC_SECONDS: u64 = 3;
const NAMESPACES: usize = 20;

#[tokio::test]
async fn converged_operator_makes_no_writes_on_resync_or_restart() -> Result<()> {
    let env = TestEnv::new().await?;
    let (home, identity, writes) =
        counted_operator_identity(&env, "steady-home", Requests::All).await?;
    let gets = RequestCounter::install(
        &env,
        home.name(),
        &random_name("baseliner-gets"),
        Requests::ObjectGets,
    )
    .await?;
    let lists = RequestCounter::install(
        &env,
        home.name(),
        &random_name("baseliner-lists"),
        Requests::ObjectLists,
    )
    .await?;

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
    let converged = writes.settled(&env, Duration::from_secs(2)).await?;
    ensure!(
        converged > 0,
        "the FlowSchema must see the operator's writes, or this test proves nothing"
    );

    // Several resync periods with nothing to do.
    tokio::time::sleep(Duration::from_secs(RESYNC_SECONDS * 4)).await;
    let idle = writes.count(&env).await? - converged;
    ensure!(
        idle == 0,
        "{idle} writes during idle resyncs; operator log:\n{}",
        operator.output()
    );

    // A restart re-reads everything, by LIST, and writes nothing.
    let (gets_before, lists_before) = (gets.count(&env).await?, lists.count(&env).await?);
    operator.terminate(Duration::from_secs(10))?;
    let mut restarted = Operator::start(&identity.kubeconfig, &args)?;
    tokio::time::sleep(Duration::from_secs(RESYNC_SECONDS * 3)).await;
    ensure!(
        restarted.is_running(),
        "restarted operator exited:\n{}",
        restarted.output()
    );
    let after_restart = writes.count(&env).await? - converged;
    ensure!(
        after_restart == 0,
        "{after_restart} writes after a restart; log:\n{}",
        restarted.output()
    );
    // Four kinds of 20 namespaces' objects, each a page: the watches' first
    // lists and the verification's, 8 pages. One GET per object would be
    // 20 × (objects per namespace) GETs.
    let restart_gets = gets.count(&env).await? - gets_before;
    let restart_lists = lists.count(&env).await? - lists_before;
    eprintln!("restart: {restart_gets} GETs, {restart_lists} LIST pages of managed objects");
    ensure!(
        restart_gets == 0,
        "{restart_gets} GETs of managed objects after a restart (a LIST verifies them); log:\n{}",
        restarted.output()
    );
    ensure!(
        (4..=12).contains(&restart_lists),
        "{restart_lists} LIST pages of managed objects after a restart (the watches' and the verification's: 8)"
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
        writes.count(&env).await? > converged,
        "healing shows up as a write"
    );

    restarted.terminate(Duration::from_secs(10))?;
    delete_profile(&env, &profile).await?;
    writes.remove(&env).await?;
    gets.remove(&env).await?;
    lists.remove(&env).await?;
    for ns in namespaces {
        ns.cleanup().await?;
    }
    home.cleanup().await
}
