//! The elected leader killed with SIGKILL in the middle of converging: the
//! standby takes over once the Lease expires and finishes the job without
//! writing again what the dead leader wrote.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{Result, bail, ensure};
use baseliner_e2e::baseline::{STRICT_SPEC, strict_objects};
use baseliner_e2e::operator::Operator;
use baseliner_e2e::requests::{RequestCounter, Requests};
use baseliner_e2e::{Identity, random_name, wait_until};

use crate::support::{
    CaseNamespaces, Expected, Faults, Observed, Profile, free_port, holder_identity, http_status,
    lease_holder, secs, summary, wait_converged, wait_observed,
};

const NAMESPACES: usize = 150;
const LEASE: &str = "baseliner-leader";
const LEASE_DURATION_SECONDS: u64 = 6;
const RENEW_DEADLINE_SECONDS: u64 = 4;
const RETRY_PERIOD_SECONDS: u64 = 1;
/// After the kill, when the dead leader's requests are surely answered and
/// the standby surely does not lead yet (it waits a lease duration from
/// the last renewal it saw).
const SNAPSHOT_AFTER: Duration = Duration::from_millis(1500);

struct Replica {
    operator: Operator,
    port: u16,
}

impl Replica {
    fn start(identity: &Identity, home: &str) -> Result<Self> {
        let port = free_port()?;
        let addr = format!("127.0.0.1:{port}");
        let (duration, deadline, retry) = (
            LEASE_DURATION_SECONDS.to_string(),
            RENEW_DEADLINE_SECONDS.to_string(),
            RETRY_PERIOD_SECONDS.to_string(),
        );
        let operator = Operator::start(
            &identity.kubeconfig,
            &[
                "--http-addr",
                &addr,
                "--operator-namespace",
                home,
                "--leader-elect=true",
                "--lease-namespace",
                home,
                "--lease-name",
                LEASE,
                "--lease-duration-seconds",
                &duration,
                "--lease-renew-deadline-seconds",
                &deadline,
                "--lease-retry-period-seconds",
                &retry,
                // Two workers stretch the convergence to a few seconds, so
                // the kill lands in the middle of it, not at its end.
                "--workers",
                "2",
            ],
        )?;
        Ok(Self { operator, port })
    }

    fn identity(&self) -> String {
        holder_identity(self.operator.pid())
    }

    async fn is_ready(&self) -> bool {
        http_status(self.port, "/readyz")
            .await
            .is_ok_and(|c| c == 200)
    }
}

#[tokio::test]
#[ignore = "stops the control plane's processes: run with `make test-faults`"]
async fn leader_killed_mid_convergence_standby_finishes_writing_nothing_twice() -> Result<()> {
    let faults = Faults::new().await?;
    let client = faults.client();
    let (home, identity) = faults.operator_account("faults-leader").await?;
    let writes = RequestCounter::install(
        &faults.env,
        home.name(),
        &random_name("faults-leader-writes"),
        Requests::ManagedObjects,
    )
    .await?;
    let case = random_name("flead");
    let namespaces = CaseNamespaces::create(&faults, &case, NAMESPACES).await?;

    let mut replicas = [
        Replica::start(&identity, home.name())?,
        Replica::start(&identity, home.name())?,
    ];
    let limit = Duration::from_secs(90);
    wait_until("both replicas to sync their caches", limit, || async {
        replicas[0].is_ready().await && replicas[1].is_ready().await
    })
    .await?;
    wait_until("a leader", limit, || async {
        lease_holder(&client, home.name(), LEASE).await.is_some()
    })
    .await?;
    let holder = lease_holder(&client, home.name(), LEASE).await;
    let (leader, standby) = match holder {
        Some(h) if h == replicas[0].identity() => (0, 1),
        Some(h) if h == replicas[1].identity() => (1, 0),
        other => bail!("the Lease is held by {other:?}, neither replica"),
    };
    let before = writes.count(&faults.env).await?;
    ensure!(before == 0, "{before} writes before there was a profile");

    let profile = Profile::apply(&faults.env, "faults-leader", &case, STRICT_SPEC).await?;
    let per_namespace = strict_objects().len();
    // Every object once, and each namespace's Pod Security labels once.
    let once = NAMESPACES * (per_namespace + 1);
    wait_observed(
        &client,
        &[&case],
        "convergence to be under way",
        Duration::from_secs(180),
        |o| o.count_of(&profile.name) >= NAMESPACES * per_namespace * 3 / 10,
    )
    .await?;
    replicas[leader].operator.kill();
    let killed = Instant::now();
    let dead = replicas[leader].identity();

    tokio::time::sleep(SNAPSHOT_AFTER).await;
    let by_leader = writes.count(&faults.env).await?;
    let at_takeover = Observed::list(&client, &[&case]).await?;
    ensure!(
        lease_holder(&client, home.name(), LEASE).await.as_deref() == Some(dead.as_str()),
        "the standby took over before {SNAPSHOT_AFTER:?}: the snapshot is not the dead leader's work"
    );
    let existing = at_takeover.count_of(&profile.name) + at_takeover.labelled();
    ensure!(
        existing > 0 && existing < once,
        "the leader was killed at {existing} of {once} writes: not mid-convergence"
    );
    let missing = once - existing;

    let new_leader = replicas[standby].identity();
    wait_until(
        "the standby to take the Lease",
        Duration::from_secs(60),
        || async {
            lease_holder(&client, home.name(), LEASE).await.as_deref() == Some(new_leader.as_str())
        },
    )
    .await?;
    let handover = killed.elapsed();
    let mut expected = Expected::default();
    expected.own(&profile.name, &namespaces.names, &strict_objects());
    let (_, _) = wait_converged(
        &client,
        &[&case],
        &expected,
        Duration::from_secs(240),
        &replicas[standby].operator,
    )
    .await?;
    let recovered = killed.elapsed();
    let total = writes.settled(&faults.env, Duration::from_secs(3)).await?;
    let by_standby = total - by_leader;
    // The bound: every object and every namespace's labels are written once,
    // by whichever replica leads while they are missing. The dead leader's
    // writes in flight at the kill may never be committed; the standby then
    // writes those again. So the standby writes at most what was missing
    // when it took over, and all writes come to at most `once` plus the
    // leader's writes that left nothing behind.
    ensure!(
        by_standby as usize <= missing,
        "the standby made {by_standby} writes, but only {missing} objects and labels were missing \
         when it took over: it wrote again what the dead leader had written; log: {}",
        replicas[standby].operator.log.display()
    );
    let cut_off = (by_leader as usize).saturating_sub(existing);
    ensure!(
        total as usize <= once + cut_off,
        "{total} writes for {once} objects and labels written once"
    );
    // Neither replica wrote anything twice that it saw answered (its log
    // has a line per answered write).
    let answered = answered_writes(&replicas[leader].operator.output());
    let answered_by_standby = answered_writes(&replicas[standby].operator.output());
    for (who, keys) in [
        ("dead leader", &answered),
        ("standby", &answered_by_standby),
    ] {
        let distinct: BTreeSet<&String> = keys.iter().collect();
        ensure!(
            distinct.len() == keys.len(),
            "the {who} wrote {} objects more than once",
            keys.len() - distinct.len()
        );
    }
    summary(
        "leader SIGKILL",
        &format!(
            "{existing} of {once} writes done when it died; standby led after {}, converged {} after \
             the kill; writes: {by_leader} by the dead leader ({} answered before the kill, {cut_off} \
             dispatched but never committed), {by_standby} by the standby for {missing} missing, \
             {total} in all for {once} needed, none twice; checked {} namespaces, {} objects",
            secs(handover),
            secs(recovered),
            answered.len(),
            expected.namespace_count(),
            expected.object_count(),
        ),
    );

    let status = replicas[standby]
        .operator
        .terminate(Duration::from_secs(10))?;
    ensure!(
        status.success(),
        "the new leader exits 0 on SIGTERM: {status}"
    );
    profile.delete(&faults.env).await?;
    drop(writes);
    namespaces.cleanup().await?;
    home.cleanup().await
}

/// The objects (and namespaces' labels) a replica's log says it wrote and
/// got an answer for, one entry per write.
fn answered_writes(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|l| {
            l.split_once(" applied key=")
                .map(|(_, key)| key.trim().to_owned())
        })
        .collect()
}
