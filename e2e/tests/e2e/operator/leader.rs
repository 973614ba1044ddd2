//! Leader election: replicas elect one writer, hand over quickly on SIGTERM
//! and on a crash without writing anything twice or reading anything again
//! (a standby keeps its record of what is in sync warm), and a leader that
//! loses its Lease exits instead of writing on.

use std::time::{Duration, Instant};

use anyhow::{Result, bail, ensure};
use baseliner::kind::ManagedKind;
use baseliner_e2e::baseline::all_object_versions;
use baseliner_e2e::{TestEnv, Velero, random_name, wait_until};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, PostParams};

use super::replica::{
    LEASE_DURATION_SECONDS, LEASE_NAME, RENEW_DEADLINE_SECONDS, RETRY_PERIOD_SECONDS, Replica,
};
use super::support::{CONVERGE, TestProfile, case_labels, operator_identity, wait_for_baseline};

async fn lease_holder(env: &TestEnv, namespace: &str) -> Option<String> {
    Api::<Lease>::namespaced(env.client(), namespace)
        .get_opt(LEASE_NAME)
        .await
        .ok()
        .flatten()
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
}

/// Polls every 20 ms until `replica` leads; returns how long that took.
async fn time_until_leader(replica: &Replica, since: Instant, limit: Duration) -> Result<Duration> {
    loop {
        if replica.is_leader().await {
            return Ok(since.elapsed());
        }
        if since.elapsed() > limit {
            bail!(
                "no new leader within {limit:?}; its log:\n{}",
                replica.operator.output()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn one_replica_leads_and_hands_over_on_sigterm_and_on_crash() -> Result<()> {
    let env = TestEnv::with_velero(Velero::Any).await?;
    let home = env.namespace("ha").await?;
    let identity = operator_identity(&env, &home, None).await?;
    let case = random_name("ha");
    let _profile = TestProfile::strict(&env, &case).await?;
    let first_ns = env
        .namespace_with_labels("ha-a", case_labels(&case, Some("platform")))
        .await?;

    let mut first = Replica::elected(&identity, home.name())?;
    wait_until("the first replica to lead", CONVERGE, || first.is_leader()).await?;
    let mut second = Replica::elected(&identity, home.name())?;
    wait_until("the standby to sync its caches", CONVERGE, || {
        second.is_ready()
    })
    .await?;
    wait_for_baseline(&env, first_ns.name()).await?;

    // Exactly one holds the Lease, and only it writes.
    ensure!(lease_holder(&env, home.name()).await == Some(first.identity()));
    ensure!(!second.is_leader().await, "the standby does not lead");
    ensure!(
        second
            .metric(r#"baseliner_objects_applied_total{kind="NetworkPolicy"}"#)
            .await
            .unwrap_or(0.0)
            == 0.0,
        "the standby wrote nothing"
    );
    let client = env.client();
    let versions_before = all_object_versions(&client, first_ns.name()).await?;
    // Warm: the standby has read every object once, by LIST.
    wait_until("the standby to know every object", CONVERGE, || async {
        second.metric("baseliner_unverified_objects").await == Some(0.0)
    })
    .await?;
    let (standby_gets, standby_lists) = (
        second.object_reads("get").await?,
        second.object_reads("list").await?,
    );

    // SIGTERM: the leader releases the Lease; the standby takes over at its
    // next look (one retry period at most).
    let terminated = Instant::now();
    first.send(libc::SIGTERM);
    let sigterm_handover = time_until_leader(&second, terminated, CONVERGE).await?;
    let status = first.operator.terminate(Duration::from_secs(10))?;
    ensure!(status.success(), "a SIGTERM'd replica exits 0: {status}");
    ensure!(lease_holder(&env, home.name()).await == Some(second.identity()));
    eprintln!(
        "handover after SIGTERM: {} ms",
        sigterm_handover.as_millis()
    );
    ensure!(
        sigterm_handover < Duration::from_secs(2),
        "handover after SIGTERM took {sigterm_handover:?}"
    );

    // Taking over read nothing: every namespace's reconcile found its
    // objects verified already.
    wait_until("the new leader to settle", CONVERGE, || async {
        second.metric("baseliner_unverified_objects").await == Some(0.0)
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    // A cold replica reads every managed object it takes over, this test's
    // included. A warm one has read them: alone it reads nothing at all
    // (the bench's failover), but its watches see the whole cluster, where
    // tests running beside this one keep changing theirs, and it may catch
    // up on some of those by a GET or a LIST of a kind.
    let own_objects = versions_before.len() as f64;
    let takeover_gets = second.object_reads("get").await? - standby_gets;
    let takeover_lists = second.object_reads("list").await? - standby_lists;
    ensure!(
        takeover_gets < own_objects && takeover_lists <= ManagedKind::ALL.len() as f64,
        "the new leader read {takeover_gets} objects by GET and {takeover_lists} LIST pages taking over; its log:\n{}",
        second.operator.output()
    );

    // The new leader carries on: a namespace created now gets its baseline.
    let second_ns = env
        .namespace_with_labels("ha-b", case_labels(&case, Some("platform")))
        .await?;
    wait_for_baseline(&env, second_ns.name()).await?;

    // SIGKILL: nothing is released; the standby waits out the lease it saw
    // last renewed, then takes it.
    let mut third = Replica::elected(&identity, home.name())?;
    wait_until("the new standby to sync its caches", CONVERGE, || {
        third.is_ready()
    })
    .await?;
    // Let the standby see at least one renewal, as it would in a long run.
    tokio::time::sleep(Duration::from_secs(RETRY_PERIOD_SECONDS)).await;
    let killed = Instant::now();
    second.operator.kill();
    let sigkill_handover = time_until_leader(&third, killed, CONVERGE).await?;
    eprintln!(
        "handover after SIGKILL: {} ms (lease duration {LEASE_DURATION_SECONDS} s, retry period {RETRY_PERIOD_SECONDS} s)",
        sigkill_handover.as_millis()
    );
    // The standby waits a full lease duration from the last version it saw;
    // it saw that at most one retry period after the renewal, which came at
    // most one retry period before the kill.
    ensure!(
        sigkill_handover <= Duration::from_secs(LEASE_DURATION_SECONDS + RETRY_PERIOD_SECONDS),
        "handover after SIGKILL took {sigkill_handover:?}"
    );
    ensure!(lease_holder(&env, home.name()).await == Some(third.identity()));
    let third_ns = env
        .namespace_with_labels("ha-c", case_labels(&case, Some("platform")))
        .await?;
    wait_for_baseline(&env, third_ns.name()).await?;

    // Nothing was written twice: two new leaders found the first
    // namespace's objects as they were.
    let versions_after = all_object_versions(&client, first_ns.name()).await?;
    ensure!(
        versions_after == versions_before,
        "objects were rewritten across handovers:\nbefore {versions_before:?}\nafter  {versions_after:?}"
    );

    let status = third.operator.terminate(Duration::from_secs(10))?;
    ensure!(status.success(), "{status}");
    for ns in [first_ns, second_ns, third_ns, home] {
        ns.cleanup().await?;
    }
    Ok(())
}

/// Waits for `replica` to exit; returns its exit status.
async fn exit_status(replica: &mut Replica, limit: Duration) -> Result<std::process::ExitStatus> {
    let started = Instant::now();
    loop {
        if let Some(status) = replica.operator.try_wait()? {
            return Ok(status);
        }
        if started.elapsed() > limit {
            bail!(
                "still running after {limit:?}; its log:\n{}",
                replica.operator.output()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_leader_that_loses_its_lease_exits_instead_of_writing_on() -> Result<()> {
    let env = TestEnv::with_velero(Velero::Any).await?;
    let home = env.namespace("lost").await?;
    let identity = operator_identity(&env, &home, None).await?;
    let leases = Api::<Lease>::namespaced(env.client(), home.name());

    // Someone else takes the Lease (as a partitioned leader would find on
    // its return): the next renewal sees it and the process exits.
    let mut taken_over = Replica::elected(&identity, home.name())?;
    wait_until("the replica to lead", CONVERGE, || taken_over.is_leader()).await?;
    let mut lease = leases.get(LEASE_NAME).await?;
    if let Some(spec) = lease.spec.as_mut() {
        spec.holder_identity = Some("another-replica".to_owned());
    }
    leases
        .replace(LEASE_NAME, &PostParams::default(), &lease)
        .await?;
    let status = exit_status(&mut taken_over, CONVERGE).await?;
    ensure!(!status.success(), "exits non-zero: {status}");
    ensure!(
        taken_over
            .operator
            .output()
            .contains("another-replica holds it now"),
        "says why:\n{}",
        taken_over.operator.output()
    );

    // The Lease cannot be renewed at all (its RBAC is revoked): the leader
    // gives up once the renew deadline has passed, before the Lease could
    // expire for anyone else.
    leases.delete(LEASE_NAME, &Default::default()).await?;
    let mut cut_off = Replica::elected(&identity, home.name())?;
    wait_until("the replica to lead", CONVERGE, || cut_off.is_leader()).await?;
    env.kubectl([
        "delete",
        "rolebinding",
        "-n",
        home.name(),
        "-l",
        "baseliner.dev/e2e=true",
    ])
    .await?
    .ok()?;
    let revoked = Instant::now();
    let status = exit_status(&mut cut_off, CONVERGE).await?;
    let took = revoked.elapsed();
    ensure!(!status.success(), "exits non-zero: {status}");
    ensure!(
        took >= Duration::from_secs(RENEW_DEADLINE_SECONDS - RETRY_PERIOD_SECONDS)
            && took < Duration::from_secs(LEASE_DURATION_SECONDS + RETRY_PERIOD_SECONDS),
        "exits at the renew deadline, not before and not after the lease expires: {took:?}"
    );
    ensure!(
        cut_off
            .operator
            .output()
            .contains("not renewed for the renew deadline"),
        "says why:\n{}",
        cut_off.operator.output()
    );
    home.cleanup().await
}
