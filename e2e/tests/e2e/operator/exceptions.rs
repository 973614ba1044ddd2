//! ProfileExceptions end to end: a waiver takes effect in the namespaces it
//! covers and nowhere else, shows in status, `why` and `report`, ends at
//! its expiry with an Event (the control back within a second), and is
//! refused or reported when it is wrong or its author lacks the rights.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use baseliner_e2e::baseline::{STRICT_SPEC, kubectl_apply, profile_field, profile_yaml};
use baseliner_e2e::inspect::{Reader, describe};
use baseliner_e2e::operator::shared_operator;
use baseliner_e2e::{
    DEFAULT_TIMEOUT, Grant, TestEnv, TestNamespace, Velero, random_name, wait_for, wait_until,
};
use k8s_openapi::api::core::v1::ResourceQuota;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, ListParams};
use serde_json::Value;

const DEFAULT_DENY: &str = "baseliner-default-deny";

fn labels(case: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("e2e-case".to_owned(), case.to_owned()),
        ("team".to_owned(), "legacy".to_owned()),
    ])
}

/// `seconds` from now, on a whole second (as Kubernetes stores times).
fn in_seconds(seconds: i64) -> Timestamp {
    let at = Timestamp::now() + SignedDuration::from_secs(seconds);
    Timestamp::from_second(at.as_second() + 1).unwrap_or(at)
}

fn exception_yaml(name: &str, profile: &str, namespace: &str, body: &str, expires: &str) -> String {
    format!(
        "apiVersion: baseliner.dev/v1alpha1\nkind: ProfileException\nmetadata:\n  name: {name}\nspec:\n  profile: {profile}\n  namespaces:\n    names: [{namespace}]\n  expires: \"{expires}\"\n{body}"
    )
}

async fn has_default_deny(env: &TestEnv, namespace: &str) -> bool {
    Api::<NetworkPolicy>::namespaced(env.client(), namespace)
        .get_opt(DEFAULT_DENY)
        .await
        .is_ok_and(|p| p.is_some())
}

async fn quota_pods(env: &TestEnv, namespace: &str) -> Option<String> {
    let quota = Api::<ResourceQuota>::namespaced(env.client(), namespace)
        .get_opt("baseliner-quota")
        .await
        .ok()??;
    quota.spec?.hard?.get("pods").map(|q| q.0.clone())
}

async fn exception_field(env: &TestEnv, name: &str, jsonpath: &str) -> Result<String> {
    let out = env
        .kubectl([
            "get",
            "profileexception",
            name,
            "-o",
            &format!("jsonpath={jsonpath}"),
        ])
        .await?
        .ok()?;
    Ok(out.trim().to_owned())
}

/// Events about an exception.
async fn exception_events(env: &TestEnv, name: &str) -> Result<Vec<Event>> {
    super::support::events_about(env, "ProfileException", name).await
}

async fn strict_profile(
    env: &TestEnv,
    case: &str,
) -> Result<(String, TestNamespace, TestNamespace)> {
    let profile = format!("{case}-strict");
    let legacy = env
        .namespace_with_labels("exc-legacy", labels(case))
        .await?;
    let other = env.namespace_with_labels("exc-other", labels(case)).await?;
    kubectl_apply(env, &profile_yaml(&profile, case, STRICT_SPEC)).await?;
    for namespace in [&legacy, &other] {
        wait_until("the strict baseline", DEFAULT_TIMEOUT, || async {
            has_default_deny(env, namespace.name()).await
                && quota_pods(env, namespace.name()).await.as_deref() == Some("20")
        })
        .await?;
    }
    Ok((profile, legacy, other))
}

#[tokio::test]
async fn a_waiver_holds_where_it_says_until_it_expires() -> Result<()> {
    let env = TestEnv::with_velero(Velero::Any).await?;
    shared_operator(env.plane())?;
    let case = random_name("exc");
    let (profile, legacy, other) = strict_profile(&env, &case).await?;

    // Waive default-deny and raise the pod quota in one namespace, for 40 s.
    let expires = in_seconds(40);
    let name = format!("{case}-migration");
    kubectl_apply(
        &env,
        &exception_yaml(
            &name,
            &profile,
            legacy.name(),
            "  waive: {defaultDeny: true}\n  replace: {resourceQuota: {hard: {pods: \"50\"}}}\n  reason: the legacy app cannot take default-deny before its migration\n  ticket: https://tracker.example/OPS-1234\n",
            &expires.to_string(),
        ),
    )
    .await?;
    wait_until("the waiver in force", DEFAULT_TIMEOUT, || async {
        !has_default_deny(&env, legacy.name()).await
            && quota_pods(&env, legacy.name()).await.as_deref() == Some("50")
    })
    .await?;
    let policies = |ns: String| {
        let env = &env;
        async move {
            Api::<NetworkPolicy>::namespaced(env.client(), &ns)
                .list(&ListParams::default().labels("app.kubernetes.io/managed-by=baseliner"))
                .await
                .map(|l| {
                    let mut names: Vec<String> = l
                        .items
                        .into_iter()
                        .filter_map(|p| p.metadata.name)
                        .collect();
                    names.sort();
                    names
                })
        }
    };
    ensure!(
        policies(legacy.name().to_owned()).await?
            == ["baseliner-allow-dns", "baseliner-allow-same-namespace"],
        "everything else stays in the excepted namespace"
    );
    ensure!(
        has_default_deny(&env, other.name()).await
            && quota_pods(&env, other.name()).await.as_deref() == Some("20"),
        "the other namespace keeps the whole baseline"
    );

    // Status counts it apart, and the exception says where it applies.
    wait_until(
        "excepted in the profile's status",
        DEFAULT_TIMEOUT,
        || async {
            profile_field(&env, &profile, "{.status.exceptedNamespaces}")
                .await
                .is_ok_and(|v| v == "1")
                && profile_field(&env, &profile, "{.status.compliantNamespaces}")
                    .await
                    .is_ok_and(|v| v == "1")
        },
    )
    .await?;
    let table = env
        .kubectl(["get", "productionprofile", &profile])
        .await?
        .ok()?;
    ensure!(
        table.lines().next().is_some_and(|h| h.contains("EXCEPTED")),
        "kubectl get shows the Excepted column: {table}"
    );
    // It ends within the warning time (72 h by default): in force, and
    // expiring soon, with a warning Event.
    wait_until("the exception's status", DEFAULT_TIMEOUT, || async {
        exception_field(&env, &name, "{.status.conditions[0].status}")
            .await
            .is_ok_and(|r| r == "True")
            && exception_field(&env, &name, "{.status.conditions[0].reason}")
                .await
                .is_ok_and(|r| r == "ExpiringSoon")
    })
    .await?;
    wait_until("an ExpiringSoon Event", DEFAULT_TIMEOUT, || async {
        exception_events(&env, &name).await.is_ok_and(|events| {
            events.iter().any(|e| {
                e.reason.as_deref() == Some("ExpiringSoon") && e.type_.as_deref() == Some("Warning")
            })
        })
    })
    .await?;
    ensure!(exception_field(&env, &name, "{.status.namespaces[0]}").await? == legacy.name());

    // why and report, as the read-only identity, show reason, ticket and expiry.
    let reader = Reader::new(&env).await?;
    let why = reader.baseliner(&["why", legacy.name()])?;
    let text = String::from_utf8_lossy(&why.stdout);
    ensure!(
        why.status.success()
            && text.contains(&name)
            && text.contains("cannot take default-deny")
            && text.contains("OPS-1234")
            && text.contains("excepted"),
        "why shows the exception: {}",
        describe(&why)
    );
    let report = reader.baseliner(&["report", "-o", "json"])?;
    ensure!(report.status.success(), "{}", describe(&report));
    let report: Value = serde_json::from_slice(&report.stdout).context("report JSON")?;
    let mine = report["profiles"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["name"] == profile.as_str()))
        .cloned()
        .context("the profile is in the report")?;
    ensure!(mine["exceptedNamespaces"] == 1, "{mine}");
    let excepted = mine["namespaces"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["namespace"] == legacy.name()))
        .cloned()
        .context("the excepted namespace is in the report")?;
    ensure!(
        excepted["excepted"] == true
            && excepted["exceptions"][0]["reason"]
                .as_str()
                .is_some_and(|r| r.contains("migration"))
            && excepted["exceptions"][0]["ticket"] == "https://tracker.example/OPS-1234",
        "{excepted}"
    );
    reader.finish(&env).await?;

    // At the expiry the control is back within a second, and an Event says so.
    let expiry = std::time::SystemTime::UNIX_EPOCH
        + Duration::from_secs(u64::try_from(expires.as_second()).unwrap_or_default());
    let back = wait_for(
        "default-deny back after the expiry",
        Duration::from_secs(60),
        || async {
            has_default_deny(&env, legacy.name())
                .await
                .then(std::time::SystemTime::now)
        },
    )
    .await?;
    let late = back.duration_since(expiry).unwrap_or_default();
    let early = expiry
        .duration_since(back)
        .is_ok_and(|d| d > Duration::ZERO);
    ensure!(!early, "default-deny came back before the expiry");
    ensure!(
        late <= Duration::from_secs(1),
        "default-deny came back {late:?} after the expiry"
    );
    wait_until("the original quota back", DEFAULT_TIMEOUT, || async {
        quota_pods(&env, legacy.name()).await.as_deref() == Some("20")
    })
    .await?;
    wait_until("an Expired Event", DEFAULT_TIMEOUT, || async {
        exception_events(&env, &name).await.is_ok_and(|events| {
            events.iter().any(|e| {
                e.reason.as_deref() == Some("Expired")
                    && e.note
                        .as_deref()
                        .is_some_and(|n| n.contains("default-deny"))
            })
        })
    })
    .await?;
    ensure!(exception_field(&env, &name, "{.status.conditions[0].reason}").await? == "Expired");
    wait_until("no longer excepted", DEFAULT_TIMEOUT, || async {
        profile_field(&env, &profile, "{.status.compliantNamespaces}")
            .await
            .is_ok_and(|v| v == "2")
    })
    .await?;
    eprintln!("default-deny back {late:?} after the expiry");

    env.kubectl(["delete", "profileexception", &name])
        .await?
        .ok()?;
    env.kubectl(["delete", "productionprofile", &profile])
        .await?
        .ok()?;
    legacy.cleanup().await?;
    other.cleanup().await
}

#[tokio::test]
async fn a_wrong_exception_is_refused_or_reported_and_waives_nothing() -> Result<()> {
    let env = TestEnv::with_velero(Velero::Any).await?;
    shared_operator(env.plane())?;
    let case = random_name("excbad");
    let (profile, legacy, other) = strict_profile(&env, &case).await?;
    let expires = in_seconds(3600).to_string();

    // Refused by the API server, naming the field.
    let refused = [
        (
            "  waive: {defaultDeny: true}\n  reason: \" \"\n",
            expires.as_str(),
            "spec.reason",
        ),
        (
            "  waive: {defaultDeny: true}\n  reason: r\n",
            "next week",
            "spec.expires",
        ),
        (
            "  reason: nothing waived\n",
            expires.as_str(),
            "must name at least one control",
        ),
    ];
    for (i, (body, expires, field)) in refused.into_iter().enumerate() {
        let yaml = exception_yaml(
            &format!("{case}-refused-{i}"),
            &profile,
            legacy.name(),
            body,
            expires,
        );
        let out = env
            .kubectl_with_stdin(
                &env.plane().kubeconfig,
                ["apply", "--server-side", "-f", "-"],
                Some(&yaml),
            )
            .await?;
        ensure!(
            !out.success && out.stderr.contains(field),
            "{field}: want a refusal naming it, got {} {}",
            out.stdout,
            out.stderr
        );
    }

    // Stored, but reported and not in force.
    let reported = [
        (
            "no-profile",
            format!("{case}-nothing"),
            "  waive: {defaultDeny: true}\n  reason: r\n".to_owned(),
            expires.clone(),
            "ProfileNotFound",
            "spec.profile",
        ),
        (
            "no-control",
            profile.clone(),
            "  waive: {defaultDeny: true, backup: true}\n  reason: r\n".to_owned(),
            expires.clone(),
            "ControlNotInProfile",
            "spec.waive.backup",
        ),
        (
            "too-long",
            profile.clone(),
            "  waive: {defaultDeny: true}\n  reason: r\n".to_owned(),
            in_seconds(91 * 86_400).to_string(),
            "ExpiryTooFar",
            "spec.expires",
        ),
    ];
    for (suffix, target, body, expires, reason, field) in &reported {
        let name = format!("{case}-{suffix}");
        kubectl_apply(
            &env,
            &exception_yaml(&name, target, legacy.name(), body, expires),
        )
        .await?;
        wait_until(&format!("{name} reported"), DEFAULT_TIMEOUT, || async {
            exception_field(&env, &name, "{.status.conditions[0].reason}")
                .await
                .is_ok_and(|r| r == *reason)
        })
        .await?;
        ensure!(exception_field(&env, &name, "{.status.conditions[0].status}").await? == "False");
        let problems = exception_field(&env, &name, "{.status.problems[*].field}").await?;
        ensure!(
            problems.contains(field),
            "{name}: problems name {field}: {problems}"
        );
    }
    // None of them waived anything.
    tokio::time::sleep(Duration::from_secs(2)).await;
    ensure!(
        has_default_deny(&env, legacy.name()).await,
        "an exception that is not in force waives nothing"
    );
    ensure!(
        profile_field(&env, &profile, "{.status.exceptedNamespaces}").await? == "0",
        "nothing is excepted"
    );

    for (suffix, ..) in &reported {
        env.kubectl(["delete", "profileexception", &format!("{case}-{suffix}")])
            .await?
            .ok()?;
    }
    env.kubectl(["delete", "productionprofile", &profile])
        .await?
        .ok()?;
    legacy.cleanup().await?;
    other.cleanup().await
}

/// ClusterRoles this test combines, named `<home>-<suffix>`.
const ROLES: [(&str, &str); 2] = [
    (
        "write-exceptions",
        r#"[{"apiGroups": ["baseliner.dev"], "resources": ["profileexceptions"], "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]}]"#,
    ),
    (
        "label-namespaces",
        r#"[{"apiGroups": [""], "resources": ["namespaces"], "verbs": ["patch"]}]"#,
    ),
];

#[tokio::test]
async fn an_exception_needs_the_rights_it_waives() -> Result<()> {
    let env = TestEnv::with_velero(Velero::Any).await?;
    shared_operator(env.plane())?;
    let case = random_name("excrights");
    let home = env.namespace("exc-authors").await?;
    for (suffix, rules) in ROLES {
        let role = serde_json::json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": format!("{}-{suffix}", home.name()), "ownerReferences": [home.owner_reference()]},
            "rules": serde_json::from_str::<Value>(rules)?,
        });
        kubectl_apply(&env, &role.to_string()).await?;
    }
    let own = |suffix: &str| Grant::ClusterRole(format!("{}-{suffix}", home.name()));
    let (profile, legacy, other) = strict_profile(&env, &case).await?;
    // `edit` cluster-wide writes NetworkPolicies anywhere, not namespaces.
    let editor = env
        .service_account(
            &home,
            "editor",
            &[Grant::ClusterRole("edit".into()), own("write-exceptions")],
        )
        .await?;
    // The legacy namespace's own admin, who may write exceptions.
    let lead = env
        .service_account(
            &home,
            "lead",
            &[
                Grant::cluster_role_in(legacy.name(), "admin"),
                own("write-exceptions"),
            ],
        )
        .await?;
    // The same admin without any right on exceptions.
    let owner = env
        .service_account(
            &home,
            "owner",
            &[Grant::cluster_role_in(legacy.name(), "admin")],
        )
        .await?;
    let labeller = env
        .service_account(
            &home,
            "labeller",
            &[own("write-exceptions"), own("label-namespaces")],
        )
        .await?;

    let expires = in_seconds(3600).to_string();
    let apply_as = |who: &baseliner_e2e::Identity, name: &str, body: &str| {
        let yaml = exception_yaml(name, &profile, legacy.name(), body, &expires);
        let env = &env;
        let kubeconfig = who.kubeconfig.clone();
        async move {
            env.kubectl_with_stdin(
                &kubeconfig,
                ["apply", "--server-side", "-f", "-"],
                Some(&yaml),
            )
            .await
        }
    };
    let pod_security = "  waive: {podSecurity: true}\n  reason: privileged pods\n";
    let default_deny = "  waive: {defaultDeny: true}\n  reason: no isolation\n";
    let attempts = [
        (
            &editor,
            "editor-ps",
            pod_security,
            "spec.waive.podSecurity",
            "patch on namespaces",
        ),
        (
            &lead,
            "lead-dd",
            default_deny,
            "spec.waive.defaultDeny",
            "networkpolicies.networking.k8s.io cluster-wide",
        ),
        (
            &lead,
            "lead-ps",
            pod_security,
            "spec.waive.podSecurity",
            "patch on namespaces",
        ),
        (
            &labeller,
            "labeller-dd",
            default_deny,
            "spec.waive.defaultDeny",
            "networkpolicies.networking.k8s.io cluster-wide",
        ),
        (
            &owner,
            "owner-dd",
            default_deny,
            "forbidden",
            "profileexceptions",
        ),
    ];
    let mut failures = Vec::new();
    for (who, suffix, body, field, permission) in attempts {
        let out = apply_as(who, &format!("{case}-{suffix}"), body).await?;
        let answer = format!("{}{}", out.stdout, out.stderr);
        if out.success || !answer.contains(field) || !answer.contains(permission) {
            failures.push(format!(
                "{suffix}: accepted={}; want a refusal naming {field} and {permission}: {answer}",
                out.success
            ));
        }
    }
    ensure!(
        failures.is_empty(),
        "not refused as they should be:\n{}",
        failures.join("\n")
    );

    // `validate --as-user` gives admission's verdict before a merge.
    let binary = baseliner_e2e::operator::operator_binary()?;
    let scratch = std::env::temp_dir().join(&case);
    std::fs::create_dir_all(&scratch)?;
    let group = format!("system:serviceaccounts:{}", home.name());
    let mut disagreements = Vec::new();
    for (who, label) in [
        (&editor, "editor"),
        (&lead, "lead"),
        (&labeller, "labeller"),
    ] {
        for (suffix, body) in [("ps", pod_security), ("dd", default_deny)] {
            let yaml = exception_yaml(
                &format!("{case}-check-{suffix}"),
                &profile,
                legacy.name(),
                body,
                &expires,
            );
            let file = scratch.join(format!("{label}-{suffix}.yaml"));
            std::fs::write(&file, &yaml)?;
            let admitted = env
                .kubectl_with_stdin(
                    &who.kubeconfig,
                    ["create", "--dry-run=server", "-f", "-"],
                    Some(&yaml),
                )
                .await?
                .success;
            let cli = tokio::process::Command::new(&binary)
                .args(["validate", "--as-user", &who.user])
                .args(["--as-group", "system:serviceaccounts", "--as-group", &group])
                .args(["--as-group", "system:authenticated"])
                .arg(&file)
                .env("KUBECONFIG", &env.plane().kubeconfig)
                .output()
                .await?;
            if cli.status.success() != admitted {
                disagreements.push(format!(
                    "{label} {suffix}: admitted={admitted}, validate said {}",
                    String::from_utf8_lossy(&cli.stderr)
                ));
            }
        }
    }
    std::fs::remove_dir_all(&scratch)?;
    ensure!(
        disagreements.is_empty(),
        "validate --as-user disagrees with admission:\n{}",
        disagreements.join("\n")
    );
    ensure!(
        has_default_deny(&env, legacy.name()).await,
        "nothing was waived"
    );

    // Precision: what each could do by hand is not refused. The editor may
    // delete NetworkPolicies anywhere, so may waive default-deny; the
    // labeller may lower Pod Security itself, so may waive it.
    for (who, suffix, body) in [
        (&editor, "editor-dd", default_deny),
        (&labeller, "labeller-ps", pod_security),
    ] {
        let out = apply_as(who, &format!("{case}-{suffix}"), body).await?;
        ensure!(
            out.success,
            "{suffix} refused: {} {}",
            out.stdout,
            out.stderr
        );
    }
    // Deleting an exception restores what it waived: the editor may not
    // delete the labeller's Pod Security waiver.
    let out = env
        .kubectl_as(
            &editor.kubeconfig,
            ["delete", "profileexception", &format!("{case}-labeller-ps")],
        )
        .await?;
    ensure!(
        !out.success && out.stderr.contains("spec.waive.podSecurity"),
        "the editor deleted a Pod Security waiver: {} {}",
        out.stdout,
        out.stderr
    );
    wait_until("the editor's waiver in force", DEFAULT_TIMEOUT, || async {
        !has_default_deny(&env, legacy.name()).await
    })
    .await?;

    for suffix in ["editor-dd", "labeller-ps"] {
        env.kubectl(["delete", "profileexception", &format!("{case}-{suffix}")])
            .await?
            .ok()?;
    }
    wait_until(
        "default-deny back once the waiver is deleted",
        DEFAULT_TIMEOUT,
        || async { has_default_deny(&env, legacy.name()).await },
    )
    .await?;
    env.kubectl(["delete", "productionprofile", &profile])
        .await?
        .ok()?;
    legacy.cleanup().await?;
    other.cleanup().await?;
    home.cleanup().await
}
