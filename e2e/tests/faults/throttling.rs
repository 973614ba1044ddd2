//! The API server answering 429 Too Many Requests to the operator, through
//! API Priority and Fairness: a FlowSchema sends every request of the
//! operator's ServiceAccount to a priority level with no concurrency shares
//! and no queue (`limitResponse: Reject`). APF still lets one request run
//! when none is running, so the operator gets one request at a time through
//! and 429 for every other. Work arrives meanwhile; the operator backs off
//! instead of retrying in a loop, and converges once the FlowSchema is
//! deleted.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use baseliner_e2e::baseline::{STRICT_SPEC, kubectl_apply, strict_objects};
use baseliner_e2e::requests::flow_schema_metric;
use baseliner_e2e::{Identity, TestEnv, kubectl_delete, random_name, wait_until};
use k8s_openapi::api::core::v1::{Namespace, ResourceQuota};
use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use crate::support::{
    CaseNamespaces, Expected, Faults, Observed, Profile, log_end, problems_since, secs,
    start_operator, summary, wait_converged,
};

/// Namespaces converged before the pressure.
const BEFORE: usize = 20;
/// Namespaces created under pressure.
const DURING: usize = 30;
/// How long every request of the operator is rejected.
const PRESSURE: Duration = Duration::from_secs(20);
/// The operator's reconcile concurrency (its default).
const WORKERS: usize = 32;

/// The priority level and FlowSchema that reject the operator's requests.
struct Jail {
    name: String,
    kubectl: std::path::PathBuf,
    kubeconfig: std::path::PathBuf,
}

impl Jail {
    async fn install(env: &TestEnv, home: &str) -> Result<Self> {
        let name = random_name("faults-jail");
        kubectl_apply(
            env,
            &format!(
                "apiVersion: flowcontrol.apiserver.k8s.io/v1
kind: PriorityLevelConfiguration
metadata: {{name: {name}}}
spec:
  type: Limited
  limited:
    nominalConcurrencyShares: 0
    lendablePercent: 0
    borrowingLimitPercent: 0
    limitResponse: {{type: Reject}}
---
apiVersion: flowcontrol.apiserver.k8s.io/v1
kind: FlowSchema
metadata: {{name: {name}}}
spec:
  priorityLevelConfiguration: {{name: {name}}}
  matchingPrecedence: 100
  distinguisherMethod: {{type: ByUser}}
  rules:
    - subjects:
        - kind: ServiceAccount
          serviceAccount: {{name: baseliner, namespace: {home}}}
      resourceRules:
        - verbs: ['*']
          apiGroups: ['*']
          resources: ['*']
          clusterScope: true
          namespaces: ['*']
      nonResourceRules:
        - verbs: ['*']
          nonResourceURLs: ['*']
"
            ),
        )
        .await?;
        Ok(Self {
            name,
            kubectl: env.plane().kubectl.clone(),
            kubeconfig: env.plane().kubeconfig.clone(),
        })
    }

    /// Requests rejected so far.
    async fn rejected(&self, env: &TestEnv) -> Result<u64> {
        flow_schema_metric(
            env,
            "apiserver_flowcontrol_rejected_requests_total",
            &self.name,
        )
        .await
    }

    /// Requests let through so far.
    async fn dispatched(&self, env: &TestEnv) -> Result<u64> {
        flow_schema_metric(
            env,
            "apiserver_flowcontrol_dispatched_requests_total",
            &self.name,
        )
        .await
    }

    /// Deletes the FlowSchema (the pressure lifts) and the priority level.
    async fn remove(&self, env: &TestEnv) -> Result<()> {
        env.kubectl(["delete", "flowschema", &self.name])
            .await?
            .ok()?;
        env.kubectl(["delete", "prioritylevelconfiguration", &self.name])
            .await?
            .ok()?;
        Ok(())
    }
}

impl Drop for Jail {
    fn drop(&mut self) {
        kubectl_delete(&self.kubectl, &self.kubeconfig, &["flowschema", &self.name]);
        kubectl_delete(
            &self.kubectl,
            &self.kubeconfig,
            &["prioritylevelconfiguration", &self.name],
        );
    }
}

/// A client of `identity` that does not retry 429 by itself (kube's
/// default does), to see the answer.
async fn client_without_retries(identity: &Identity) -> Result<Client> {
    let kubeconfig = Kubeconfig::read_from(&identity.kubeconfig)?;
    let mut config =
        Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    config.default_retry = false;
    Client::try_from(config).context("building a client")
}

async fn quotas_allow(client: &Client, profile: &str, pods: &str) -> Result<usize> {
    let list = Api::<ResourceQuota>::all(client.clone())
        .list(&ListParams::default().labels(&format!("baseliner.dev/profile={profile}")))
        .await?;
    Ok(list
        .iter()
        .filter(|q| {
            q.spec
                .as_ref()
                .and_then(|s| s.hard.as_ref())
                .and_then(|h| h.get("pods"))
                .is_some_and(|p| p.0 == pods)
        })
        .count())
}

#[tokio::test]
#[ignore = "stops the control plane's processes: run with `make test-faults`"]
async fn api_server_rejecting_with_429_operator_backs_off_and_converges_after() -> Result<()> {
    let faults = Faults::new().await?;
    let client = faults.client();
    let (home, identity) = faults.operator_account("faults-429").await?;
    let case = random_name("f429");
    let mut namespaces = CaseNamespaces::create(&faults, &case, BEFORE).await?;
    let profile = Profile::apply(&faults.env, "faults-429", &case, STRICT_SPEC).await?;
    let mut operator = start_operator(&identity, home.name(), &[])?;
    let mut expected = Expected::default();
    expected.own(&profile.name, &namespaces.names, &strict_objects());
    wait_converged(
        &client,
        &[&case],
        &expected,
        Duration::from_secs(120),
        &operator,
    )
    .await?;

    let jail = Jail::install(&faults.env, home.name()).await?;
    let probe = client_without_retries(&identity).await?;
    wait_until(
        "a burst of the operator's requests to meet 429",
        Duration::from_secs(30),
        || burst_meets_429(&probe),
    )
    .await?;
    let (rejected_before, through_before) = (
        jail.rejected(&faults.env).await?,
        jail.dispatched(&faults.env).await?,
    );

    // Work arrives under pressure: new namespaces, and a profile change
    // that touches every converged one.
    let pressure = Instant::now();
    let log_from = log_end(&operator);
    let added = namespaces.add(DURING).await?;
    let raised = STRICT_SPEC.replace("pods: \"20\"", "pods: \"30\"");
    ensure!(
        raised != STRICT_SPEC,
        "STRICT_SPEC no longer sets pods: \"20\""
    );
    profile.update(&faults.env, &raised).await?;
    tokio::time::sleep(PRESSURE.saturating_sub(pressure.elapsed())).await;
    let held = pressure.elapsed();
    let rejected = jail.rejected(&faults.env).await? - rejected_before;
    let through = jail.dispatched(&faults.env).await? - through_before;
    let under = Observed::list(&client, &[&case]).await?;
    let written_under: usize = added
        .iter()
        .map(|ns| under.objects.get(ns).map_or(0, |o| o.len()))
        .sum();
    let updated_under = quotas_allow(&client, &profile.name, "30").await?;
    let errors_under = problems_since(&operator, log_from).len();
    ensure!(
        rejected > 0,
        "nothing was rejected: the pressure was not real"
    );
    ensure!(
        operator.is_running(),
        "the operator exited under pressure; log: {}",
        operator.log.display()
    );
    // Backing off: every request in flight (at most WORKERS namespaces, each
    // with its objects and labels) retried at most about once a second. A
    // retry loop without backoff makes thousands a second.
    let in_flight = WORKERS * (strict_objects().len() + 1);
    let bound = in_flight as f64 * held.as_secs_f64();
    ensure!(
        rejected as f64 <= bound,
        "{rejected} requests rejected in {held:?}: more than {in_flight} a second, no backoff; log: {}",
        operator.log.display()
    );

    jail.remove(&faults.env).await?;
    let lifted = Instant::now();
    expected.own(&profile.name, &added, &strict_objects());
    wait_converged(
        &client,
        &[&case],
        &expected,
        Duration::from_secs(180),
        &operator,
    )
    .await?;
    let all = BEFORE + DURING;
    wait_until(
        "every quota to allow 30 pods",
        Duration::from_secs(120),
        || async {
            quotas_allow(&client, &profile.name, "30")
                .await
                .is_ok_and(|n| n == all)
        },
    )
    .await?;
    let took = lifted.elapsed();
    let quiet_from = log_end(&operator);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let late = problems_since(&operator, quiet_from);
    ensure!(
        late.is_empty(),
        "problems still logged after recovery:\n{}",
        late.join("\n")
    );
    summary(
        "429 from API Priority and Fairness",
        &format!(
            "one request at a time for {}: {rejected} rejected ({:.0}/s, bound {in_flight}/s), \
             {through} let through, {errors_under} warning/error lines; {written_under} of {} new \
             objects and {updated_under} of {all} quota changes written under pressure; converged \
             {} after the FlowSchema was deleted; checked {all} namespaces, {} objects",
            secs(held),
            rejected as f64 / held.as_secs_f64(),
            DURING * strict_objects().len(),
            secs(took),
            expected.object_count(),
        ),
    );

    operator.terminate(Duration::from_secs(10))?;
    profile.delete(&faults.env).await?;
    drop(jail);
    namespaces.cleanup().await?;
    home.cleanup().await
}

/// Twenty requests of the operator's identity at once: true if any got 429.
async fn burst_meets_429(client: &Client) -> bool {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let requests: Vec<_> = (0..20)
        .map(|_| {
            let namespaces = namespaces.clone();
            tokio::spawn(async move { namespaces.get("default").await })
        })
        .collect();
    let mut rejected = false;
    for request in requests {
        rejected |= matches!(request.await, Ok(Err(kube::Error::Api(s))) if s.code == 429);
    }
    rejected
}
