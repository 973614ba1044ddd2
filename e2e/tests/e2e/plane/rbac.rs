//! RBAC is enforced for real: non-admin identities get exactly what they
//! are granted and Forbidden for everything else.

use std::collections::BTreeMap;

use anyhow::{Result, bail, ensure};
use baseliner_e2e::{Grant, TestEnv, Velero};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams, PostParams};
use serde_json::Value;

fn config_map(name: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([("k".into(), "v".into())])),
        ..Default::default()
    }
}

fn expect_forbidden<T: std::fmt::Debug>(what: &str, r: kube::Result<T>) -> Result<()> {
    match r {
        Err(kube::Error::Api(s)) if s.is_forbidden() && s.code == 403 => Ok(()),
        other => bail!("{what}: expected 403 Forbidden, got {other:?}"),
    }
}

#[tokio::test]
async fn service_account_is_forbidden_outside_its_grants() -> Result<()> {
    let env = TestEnv::with_velero(Velero::Any).await?;
    let home = env.namespace("rbac-home").await?;
    let other = env.namespace("rbac-other").await?;
    let (h, o) = (home.name().to_owned(), other.name().to_owned());

    let id = env
        .service_account(&home, "reader", &[Grant::cluster_role_in(&h, "view")])
        .await?;
    ensure!(id.user == format!("system:serviceaccount:{h}:reader"));

    // The token from the TokenRequest API authenticates as the ServiceAccount.
    let who = env
        .kubectl_as(&id.kubeconfig, ["auth", "whoami", "-o", "json"])
        .await?
        .ok()?;
    let who: Value = serde_json::from_str(&who)?;
    ensure!(
        who["status"]["userInfo"]["username"] == id.user.as_str(),
        "whoami: {who}"
    );

    // Granted: reading in its own namespace.
    let home_cms = Api::<ConfigMap>::namespaced(id.client.clone(), &h);
    home_cms.list(&ListParams::default()).await?;

    // Not granted: writing there, reading elsewhere, cluster-scoped reads.
    let pp = PostParams::default();
    expect_forbidden(
        "create in own namespace",
        home_cms.create(&pp, &config_map("nope")).await,
    )?;
    expect_forbidden(
        "list in another namespace",
        Api::<ConfigMap>::namespaced(id.client.clone(), &o)
            .list(&ListParams::default())
            .await,
    )?;
    expect_forbidden(
        "list namespaces",
        Api::<Namespace>::all(id.client.clone())
            .list(&ListParams::default())
            .await,
    )?;

    // The same through kubectl, as a user would see it.
    let can = env
        .kubectl_as(
            &id.kubeconfig,
            ["auth", "can-i", "create", "configmaps", "-n", &h],
        )
        .await?;
    ensure!(
        !can.success && can.stdout.trim() == "no",
        "can-i create: {can:?}"
    );
    let can = env
        .kubectl_as(
            &id.kubeconfig,
            ["auth", "can-i", "list", "configmaps", "-n", &h],
        )
        .await?;
    ensure!(
        can.success && can.stdout.trim() == "yes",
        "can-i list: {can:?}"
    );
    let denied = env
        .kubectl_as(&id.kubeconfig, ["get", "configmaps", "-n", &o])
        .await?;
    ensure!(
        !denied.success && denied.stderr.contains("Forbidden"),
        "kubectl get in another namespace: {denied:?}"
    );

    // Granting more takes effect: a Role that allows creating ConfigMaps.
    Api::<Role>::namespaced(env.client(), &h)
        .create(
            &pp,
            &Role {
                metadata: ObjectMeta {
                    name: Some("cm-writer".into()),
                    ..Default::default()
                },
                rules: Some(vec![PolicyRule {
                    api_groups: Some(vec!["".into()]),
                    resources: Some(vec!["configmaps".into()]),
                    verbs: vec!["create".into()],
                    ..Default::default()
                }]),
            },
        )
        .await?;
    let subject = k8s_openapi::api::rbac::v1::Subject {
        kind: "ServiceAccount".into(),
        name: "reader".into(),
        namespace: Some(h.clone()),
        api_group: None,
    };
    env.bind(
        &home,
        &subject,
        "reader-cm-writer",
        &Grant::role_in(&h, "cm-writer"),
    )
    .await?;
    home_cms.create(&pp, &config_map("now-allowed")).await?;
    expect_forbidden(
        "create in another namespace after the grant",
        Api::<ConfigMap>::namespaced(id.client.clone(), &o)
            .create(&pp, &config_map("nope"))
            .await,
    )?;

    home.cleanup().await?;
    other.cleanup().await?;
    Ok(())
}

#[tokio::test]
async fn impersonated_user_has_only_its_groups_rights() -> Result<()> {
    let env = TestEnv::with_velero(Velero::Any).await?;
    let ns = env.namespace("rbac-user").await?;
    let n = ns.name().to_owned();
    let group = format!("team-{n}-editors");
    let subject = k8s_openapi::api::rbac::v1::Subject {
        kind: "Group".into(),
        name: group.clone(),
        api_group: Some("rbac.authorization.k8s.io".into()),
        namespace: None,
    };
    env.bind(
        &ns,
        &subject,
        "editors",
        &Grant::cluster_role_in(&n, "edit"),
    )
    .await?;

    let alice = env.impersonate("alice", &[&group]).await?;
    let bob = env.impersonate("bob", &["some-other-team"]).await?;
    let pp = PostParams::default();
    Api::<ConfigMap>::namespaced(alice.clone(), &n)
        .create(&pp, &config_map("by-alice"))
        .await?;
    expect_forbidden(
        "bob creates a ConfigMap",
        Api::<ConfigMap>::namespaced(bob, &n)
            .create(&pp, &config_map("by-bob"))
            .await,
    )?;
    // `edit` does not include RBAC: no escalation through RoleBindings.
    let rb = k8s_openapi::api::rbac::v1::RoleBinding {
        metadata: ObjectMeta {
            name: Some("alice-admin".into()),
            ..Default::default()
        },
        role_ref: k8s_openapi::api::rbac::v1::RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "ClusterRole".into(),
            name: "admin".into(),
        },
        subjects: Some(vec![k8s_openapi::api::rbac::v1::Subject {
            kind: "User".into(),
            name: "alice".into(),
            api_group: Some("rbac.authorization.k8s.io".into()),
            namespace: None,
        }]),
    };
    expect_forbidden(
        "alice binds herself admin",
        Api::<k8s_openapi::api::rbac::v1::RoleBinding>::namespaced(alice, &n)
            .create(&pp, &rb)
            .await,
    )?;
    ns.cleanup().await
}
