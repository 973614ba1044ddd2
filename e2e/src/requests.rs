//! The operator's requests, counted by the API server itself: a FlowSchema
//! that matches only some verbs and resources of the operator's
//! ServiceAccount (its writes, say, or its GETs of managed objects) makes
//! API Priority and Fairness count exactly those requests in
//! `apiserver_flowcontrol_dispatched_requests_total{flow_schema=...}`
//! (reset when the apiserver restarts). A request matches one FlowSchema
//! only, so the counters of one ServiceAccount must not overlap.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, bail};

use crate::baseline::kubectl_apply;
use crate::{Grant, Identity, TestEnv, TestNamespace, kubectl_delete, random_name};

/// A home namespace `home_prefix-…` holding ServiceAccount `baseliner`
/// (bound to `cluster-admin`), for an operator process whose `writes` the
/// returned counter counts ([`RequestCounter::install`] adds more).
pub async fn counted_operator_identity(
    env: &TestEnv,
    home_prefix: &str,
    writes: Requests,
) -> Result<(TestNamespace, Identity, RequestCounter)> {
    let home = env.namespace(home_prefix).await?;
    let identity = env
        .service_account(
            &home,
            "baseliner",
            &[Grant::ClusterRole("cluster-admin".into())],
        )
        .await?;
    let counter =
        RequestCounter::install(env, home.name(), &random_name("baseliner-writes"), writes).await?;
    Ok((home, identity, counter))
}

/// Which of the ServiceAccount's requests a [`RequestCounter`] counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Requests {
    /// Every write, of any resource: status and Events included.
    All,
    /// Writes of what the operator converges: NetworkPolicies, LimitRanges,
    /// ResourceQuotas, RoleBindings and Namespaces (Pod Security labels).
    /// Status writes and Events are not counted.
    ManagedObjects,
    /// Writes of Velero Schedules.
    Schedules,
    /// GETs of one NetworkPolicy, LimitRange, ResourceQuota or RoleBinding.
    ObjectGets,
    /// LISTs (each page one request) of those four kinds. Watches are
    /// verb `watch` and not counted.
    ObjectLists,
}

impl Requests {
    /// `matchingPrecedence` and the FlowSchema's `resourceRules` entry.
    fn rule(self) -> (u32, &'static str) {
        match self {
            Self::All => (
                200,
                "        - verbs: [create, update, patch, delete, deletecollection]
          apiGroups: ['*']
          resources: ['*']
          clusterScope: true
          namespaces: ['*']
",
            ),
            Self::ManagedObjects => (
                150,
                "        - verbs: [create, update, patch, delete, deletecollection]
          apiGroups: ['', networking.k8s.io, rbac.authorization.k8s.io]
          resources: [networkpolicies, limitranges, resourcequotas, rolebindings, namespaces]
          clusterScope: true
          namespaces: ['*']
",
            ),
            Self::Schedules => (
                140,
                "        - verbs: [create, update, patch, delete, deletecollection]
          apiGroups: [velero.io]
          resources: [schedules]
          namespaces: ['*']
",
            ),
            Self::ObjectGets => (
                130,
                "        - verbs: [get]
          apiGroups: ['', networking.k8s.io, rbac.authorization.k8s.io]
          resources: [networkpolicies, limitranges, resourcequotas, rolebindings]
          clusterScope: true
          namespaces: ['*']
",
            ),
            Self::ObjectLists => (
                120,
                "        - verbs: [list]
          apiGroups: ['', networking.k8s.io, rbac.authorization.k8s.io]
          resources: [networkpolicies, limitranges, resourcequotas, rolebindings]
          clusterScope: true
          namespaces: ['*']
",
            ),
        }
    }
}

/// A FlowSchema counting requests of ServiceAccount `baseliner` in one
/// namespace; deleted on drop unless [`RequestCounter::remove`] was called.
pub struct RequestCounter {
    pub flow_schema: String,
    kubectl: PathBuf,
    kubeconfig: PathBuf,
    removed: bool,
}

impl RequestCounter {
    /// Creates FlowSchema `flow_schema` counting `requests` by
    /// ServiceAccount `baseliner` of namespace `home`.
    pub async fn install(
        env: &TestEnv,
        home: &str,
        flow_schema: &str,
        requests: Requests,
    ) -> Result<Self> {
        let (precedence, resource_rule) = requests.rule();
        kubectl_apply(
            env,
            &format!(
                "apiVersion: flowcontrol.apiserver.k8s.io/v1
kind: FlowSchema
metadata:
  name: {flow_schema}
spec:
  priorityLevelConfiguration: {{name: workload-high}}
  matchingPrecedence: {precedence}
  distinguisherMethod: {{type: ByUser}}
  rules:
    - subjects:
        - kind: ServiceAccount
          serviceAccount: {{name: baseliner, namespace: {home}}}
      resourceRules:
{resource_rule}"
            ),
        )
        .await?;
        Ok(Self {
            flow_schema: flow_schema.to_owned(),
            kubectl: env.plane().kubectl.clone(),
            kubeconfig: env.plane().kubeconfig.clone(),
            removed: false,
        })
    }

    /// Requests dispatched so far.
    pub async fn count(&self, env: &TestEnv) -> Result<u64> {
        flow_schema_metric(
            env,
            "apiserver_flowcontrol_dispatched_requests_total",
            &self.flow_schema,
        )
        .await
    }

    /// Waits until the count stops moving for `quiet`, and returns it.
    pub async fn settled(&self, env: &TestEnv, quiet: Duration) -> Result<u64> {
        let mut last = self.count(env).await?;
        for _ in 0..60 {
            tokio::time::sleep(quiet).await;
            let now = self.count(env).await?;
            if now == last {
                return Ok(now);
            }
            last = now;
        }
        bail!("the count never stopped moving (last {last})")
    }

    /// Deletes the FlowSchema; an error if kubectl fails.
    pub async fn remove(mut self, env: &TestEnv) -> Result<()> {
        self.removed = true;
        env.kubectl(["delete", "flowschema", &self.flow_schema])
            .await?
            .ok()?;
        Ok(())
    }
}

impl Drop for RequestCounter {
    fn drop(&mut self) {
        if !self.removed {
            kubectl_delete(
                &self.kubectl,
                &self.kubeconfig,
                &["flowschema", &self.flow_schema],
            );
        }
    }
}

/// The sum of one APF counter's series for `flow_schema`, from the
/// apiserver's /metrics.
pub async fn flow_schema_metric(env: &TestEnv, metric: &str, flow_schema: &str) -> Result<u64> {
    let metrics = env.kubectl(["get", "--raw", "/metrics"]).await?.ok()?;
    let prefix = format!("{metric}{{");
    let needle = format!("flow_schema=\"{flow_schema}\"");
    Ok(metrics
        .lines()
        .filter(|l| l.starts_with(&prefix) && l.contains(&needle))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64)
}
