//! The control plane is real: objects round-trip through the API and
//! kubectl, server-side apply tracks field ownership, and
//! kube-controller-manager does its part (ServiceAccounts, garbage
//! collection via namespace deletion, aggregated ClusterRoles).

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result, ensure};
use baseliner_e2e::velero::schedules;
use baseliner_e2e::{DEFAULT_TIMEOUT, KUBERNETES_VERSION, TestEnv, wait_for, wait_until};
use k8s_openapi::api::core::v1::{
    ConfigMap, LimitRange, LimitRangeItem, LimitRangeSpec, ServiceAccount,
};
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicySpec};
use k8s_openapi::api::rbac::v1::{ClusterRole, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

const MANAGER: &str = "baseliner-e2e-test";

fn limit_range(ns: &str, default_cpu: &str) -> LimitRange {
    LimitRange {
        metadata: ObjectMeta {
            name: Some("defaults".into()),
            namespace: Some(ns.into()),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/managed-by".into(),
                "baseliner-e2e".into(),
            )])),
            ..Default::default()
        },
        spec: Some(LimitRangeSpec {
            limits: vec![LimitRangeItem {
                type_: "Container".into(),
                default: Some(BTreeMap::from([
                    ("cpu".into(), Quantity(default_cpu.into())),
                    ("memory".into(), Quantity("256Mi".into())),
                ])),
                default_request: Some(BTreeMap::from([
                    ("cpu".into(), Quantity("100m".into())),
                    ("memory".into(), Quantity("128Mi".into())),
                ])),
                ..Default::default()
            }],
        }),
    }
}

#[tokio::test]
async fn namespace_objects_round_trip_and_namespace_deletion_completes() -> Result<()> {
    let env = TestEnv::new().await?;
    let client = env.client();
    let ns = env.namespace("plane").await?;
    let n = ns.name().to_owned();

    // kube-controller-manager's serviceaccount controller.
    let sas = Api::<ServiceAccount>::namespaced(client.clone(), &n);
    wait_until("the default ServiceAccount", DEFAULT_TIMEOUT, || async {
        matches!(sas.get_opt("default").await, Ok(Some(_)))
    })
    .await?;

    create_objects(&client, &n).await?;
    server_side_apply_tracks_field_ownership(&client, &n).await?;
    a_field_created_by_post_outlives_its_removal_from_the_applied_config(&client, &n).await?;
    kubectl_reads_everything_back(&env, &n).await?;
    kubectl_apply_works(&env, &n).await?;

    // Deleting the namespace empties it and removes it: kube-controller-manager at work.
    ns.delete_and_wait(DEFAULT_TIMEOUT).await?;
    let left = Api::<NetworkPolicy>::namespaced(client.clone(), &n)
        .list(&ListParams::default())
        .await?;
    ensure!(
        left.items.is_empty(),
        "NetworkPolicies survived their namespace"
    );
    let left = schedules(client.clone(), &n)
        .list(&ListParams::default())
        .await?;
    ensure!(left.items.is_empty(), "Schedules survived their namespace");
    Ok(())
}

/// A NetworkPolicy, a RoleBinding and a custom resource (a Velero
/// Schedule), created through the API in namespace `n`.
async fn create_objects(client: &Client, n: &str) -> Result<()> {
    let pp = PostParams::default();
    Api::<NetworkPolicy>::namespaced(client.clone(), n)
        .create(
            &pp,
            &NetworkPolicy {
                metadata: ObjectMeta {
                    name: Some("default-deny".into()),
                    ..Default::default()
                },
                spec: Some(NetworkPolicySpec {
                    pod_selector: Some(LabelSelector::default()),
                    policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
                    ..Default::default()
                }),
            },
        )
        .await?;

    Api::<RoleBinding>::namespaced(client.clone(), n)
        .create(
            &pp,
            &RoleBinding {
                metadata: ObjectMeta {
                    name: Some("team-viewers".into()),
                    ..Default::default()
                },
                role_ref: RoleRef {
                    api_group: Some("rbac.authorization.k8s.io".into()),
                    kind: "ClusterRole".into(),
                    name: "view".into(),
                },
                subjects: Some(vec![Subject {
                    kind: "Group".into(),
                    name: format!("team-{n}-viewers"),
                    api_group: Some("rbac.authorization.k8s.io".into()),
                    namespace: None,
                }]),
            },
        )
        .await?;

    // A custom resource: a Velero Schedule.
    let schedule: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "velero.io/v1",
        "kind": "Schedule",
        "metadata": {"name": "daily"},
        "spec": {
            "schedule": "0 3 * * *",
            "template": {"includedNamespaces": [n], "ttl": "720h0m0s", "snapshotVolumes": false},
        },
    }))?;
    schedules(client.clone(), n).create(&pp, &schedule).await?;
    Ok(())
}

/// Server-side apply of LimitRange `defaults`: create, then change one
/// field, then apply again unchanged, which must not write (same
/// resourceVersion); another manager changing an owned field conflicts.
async fn server_side_apply_tracks_field_ownership(client: &Client, n: &str) -> Result<()> {
    let limits = Api::<LimitRange>::namespaced(client.clone(), n);
    let ssa = PatchParams::apply(MANAGER);
    let first = limits
        .patch("defaults", &ssa, &Patch::Apply(&limit_range(n, "500m")))
        .await?;
    let managers: Vec<_> = first
        .metadata
        .managed_fields
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m.manager.as_deref() == Some(MANAGER))
        .collect();
    ensure!(
        managers.len() == 1 && managers[0].operation.as_deref() == Some("Apply"),
        "expected one Apply entry for {MANAGER} in managedFields, got {managers:?}"
    );
    let second = limits
        .patch("defaults", &ssa, &Patch::Apply(&limit_range(n, "750m")))
        .await?;
    ensure!(second.metadata.resource_version != first.metadata.resource_version);
    let third = limits
        .patch("defaults", &ssa, &Patch::Apply(&limit_range(n, "750m")))
        .await?;
    ensure!(
        third.metadata.resource_version == second.metadata.resource_version,
        "an unchanged server-side apply wrote the object"
    );
    // Another manager changing an owned field conflicts.
    let conflict = limits
        .patch(
            "defaults",
            &PatchParams::apply("someone-else"),
            &Patch::Apply(&limit_range(n, "2")),
        )
        .await;
    match conflict {
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        other => anyhow::bail!("expected a 409 conflict from another field manager, got {other:?}"),
    }
    Ok(())
}

/// Why baseliner creates objects with server-side apply, not with the
/// cheaper POST: a field created by POST belongs to an `Update` entry of
/// the field manager, which a later apply of a config without the field
/// does not remove. A label dropped from a profile would stay forever.
async fn a_field_created_by_post_outlives_its_removal_from_the_applied_config(
    client: &Client,
    n: &str,
) -> Result<()> {
    let limits = Api::<LimitRange>::namespaced(client.clone(), n);
    let labelled = |name: &str, extra: bool| {
        let mut object = limit_range(n, "500m");
        object.metadata.name = Some(name.to_owned());
        if extra {
            object
                .metadata
                .labels
                .get_or_insert_default()
                .insert("extra".into(), "yes".into());
        }
        object
    };
    let ssa = PatchParams::apply(MANAGER).force();
    let post = PostParams {
        field_manager: Some(MANAGER.to_owned()),
        ..Default::default()
    };
    let mut kept = BTreeMap::new();
    for (name, created_by_post) in [("by-post", true), ("by-apply", false)] {
        if created_by_post {
            limits.create(&post, &labelled(name, true)).await?;
        } else {
            limits
                .patch(name, &ssa, &Patch::Apply(&labelled(name, true)))
                .await?;
        }
        let after = limits
            .patch(name, &ssa, &Patch::Apply(&labelled(name, false)))
            .await?;
        kept.insert(name, after.labels().contains_key("extra"));
        limits.delete(name, &Default::default()).await?;
    }
    ensure!(
        kept == BTreeMap::from([("by-apply", false), ("by-post", true)]),
        "a label removed from the applied config: kept {kept:?} (by-post is expected to keep it, by-apply to lose it)"
    );
    Ok(())
}

/// Everything in namespace `n` read back the way a user would, with kubectl.
async fn kubectl_reads_everything_back(env: &TestEnv, n: &str) -> Result<()> {
    let out = env
        .kubectl([
            "get",
            "networkpolicies,limitranges,rolebindings,schedules.velero.io",
            "-n",
            n,
            "-o",
            "json",
        ])
        .await?
        .ok()?;
    let list: Value = serde_json::from_str(&out)?;
    let found: BTreeSet<(String, String)> = list["items"]
        .as_array()
        .context("kubectl get -o json has items")?
        .iter()
        .map(|i| {
            (
                i["kind"].as_str().unwrap_or_default().to_owned(),
                i["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    let want: BTreeSet<(String, String)> = [
        ("NetworkPolicy", "default-deny"),
        ("LimitRange", "defaults"),
        ("RoleBinding", "team-viewers"),
        ("Schedule", "daily"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    ensure!(found == want, "kubectl listed {found:?}, expected {want:?}");
    let cpu = env
        .kubectl([
            "get",
            "limitrange",
            "defaults",
            "-n",
            n,
            "-o",
            "jsonpath={.spec.limits[0].default.cpu}",
        ])
        .await?
        .ok()?;
    ensure!(cpu == "750m", "kubectl read default cpu {cpu:?}");
    Ok(())
}

/// kubectl apply works too (it needs the apiserver's OpenAPI documents).
async fn kubectl_apply_works(env: &TestEnv, n: &str) -> Result<()> {
    let cm = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied\n  namespace: {n}\ndata:\n  k: v\n"
    );
    env.kubectl_with_stdin(
        &env.plane().kubeconfig,
        ["apply", "--server-side", "-f", "-"],
        Some(&cm),
    )
    .await?
    .ok()?;
    let applied = Api::<ConfigMap>::namespaced(env.client(), n)
        .get("applied")
        .await?;
    ensure!(
        applied
            .data
            .unwrap_or_default()
            .get("k")
            .map(String::as_str)
            == Some("v")
    );
    Ok(())
}

#[tokio::test]
async fn builtin_cluster_roles_are_aggregated() -> Result<()> {
    let env = TestEnv::with_velero(baseliner_e2e::Velero::Any).await?;
    let roles = Api::<ClusterRole>::all(env.client());
    // The rules of view/edit/admin are filled in by kube-controller-manager's
    // clusterrole-aggregation controller.
    for name in ["view", "edit", "admin"] {
        let role = wait_for(
            &format!("ClusterRole {name} rules"),
            DEFAULT_TIMEOUT,
            || {
                let roles = roles.clone();
                async move {
                    roles
                        .get(name)
                        .await
                        .ok()
                        .filter(|r| !r.rules.clone().unwrap_or_default().is_empty())
                }
            },
        )
        .await?;
        let covers_configmaps = role.rules.unwrap_or_default().iter().any(|r| {
            r.resources
                .as_ref()
                .is_some_and(|rs| rs.iter().any(|x| x == "configmaps"))
        });
        ensure!(
            covers_configmaps,
            "ClusterRole {name} does not cover configmaps"
        );
    }
    Ok(())
}

#[tokio::test]
async fn kubectl_and_server_report_the_pinned_release() -> Result<()> {
    let env = TestEnv::with_velero(baseliner_e2e::Velero::Any).await?;
    let out = env.kubectl(["version", "-o", "json"]).await?.ok()?;
    let v: Value = serde_json::from_str(&out)?;
    ensure!(
        v["clientVersion"]["gitVersion"] == KUBERNETES_VERSION,
        "client version {}",
        v["clientVersion"]
    );
    ensure!(
        v["serverVersion"]["gitVersion"] == KUBERNETES_VERSION,
        "server version {}",
        v["serverVersion"]
    );
    let ready = env.kubectl(["get", "--raw", "/readyz"]).await?.ok()?;
    ensure!(ready.trim() == "ok", "/readyz said {ready:?}");
    let info = env.client().apiserver_version().await?;
    ensure!(info.git_version == KUBERNETES_VERSION);
    Ok(())
}
