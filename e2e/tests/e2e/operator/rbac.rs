//! The operator's RBAC (`config/rbac`): exactly what it uses, `bind` only
//! on the allowed ClusterRoles, enough to reconcile a whole profile as its
//! own ServiceAccount; and the viewer role gives `view` its rights on
//! profiles, while writing them takes the editor role, bound explicitly.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Result, bail, ensure};
use baseliner_e2e::baseline::{delete_profile, keys, kubectl_apply, managed_objects, profile_yaml};
use baseliner_e2e::operator::Operator;
use baseliner_e2e::velero::VELERO_NAMESPACE;
use baseliner_e2e::{
    Grant, Identity, TestEnv, TestNamespace, Velero, random_name, wait_until, workspace_root,
};
use k8s_openapi::api::rbac::v1::{ClusterRole, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};

use super::replica::LEASE_NAME;
use super::support::{
    CONVERGE, case_labels, current_status, has_condition, object, objects, operator_identity,
    profile_schedules, rendered_install, rules_of,
};

// ---------------------------------------------------------------------------
// Exactly what the operator uses

/// `kubectl auth can-i --list` rows: (resource, resource names, verb).
async fn can_i_list(
    env: &TestEnv,
    identity: &Identity,
    namespace: &str,
) -> Result<BTreeSet<(String, String, String)>> {
    let out = env
        .kubectl_as(
            &identity.kubeconfig,
            ["auth", "can-i", "--list", "-n", namespace, "--no-headers"],
        )
        .await?
        .ok()?;
    let mut rows = BTreeSet::new();
    for line in out.lines().filter(|l| !l.trim().is_empty()) {
        // Columns: resource, non-resource URLs, resource names, verbs, each
        // list in brackets; only resource rows matter here.
        let Some((resource, rest)) = line.trim().split_once(char::is_whitespace) else {
            continue;
        };
        if resource.starts_with('[') {
            // A non-resource URL row: its resource column is empty.
            continue;
        }
        let lists: Vec<&str> = rest
            .split(']')
            .map(|s| s.trim().trim_start_matches('['))
            .collect();
        let [urls, names, verbs, ..] = lists.as_slice() else {
            bail!("unexpected kubectl auth can-i line: {line}");
        };
        if !urls.is_empty() {
            continue;
        }
        // One row per name: kubectl lists a rule's names together.
        let names: Vec<&str> = match names.split_whitespace().collect::<Vec<_>>() {
            split if split.is_empty() => vec![""],
            split => split,
        };
        for name in names {
            for verb in verbs.split_whitespace() {
                rows.insert((resource.to_owned(), name.to_owned(), verb.to_owned()));
            }
        }
    }
    Ok(rows)
}

/// What the operator may do, written out by hand: each row should be
/// explainable by a line of the operator's code (see config/rbac/role.yaml).
fn expected_operator_rights(with_lease: bool) -> BTreeSet<(String, String, String)> {
    let mut rows = vec![
        ("productionprofiles.baseliner.dev", "", "list"),
        ("productionprofiles.baseliner.dev", "", "watch"),
        ("productionprofiles.baseliner.dev/status", "", "patch"),
        ("profileexceptions.baseliner.dev", "", "list"),
        ("profileexceptions.baseliner.dev", "", "watch"),
        ("profileexceptions.baseliner.dev/status", "", "patch"),
        (
            "customresourcedefinitions.apiextensions.k8s.io",
            "productionprofiles.baseliner.dev",
            "get",
        ),
        (
            "customresourcedefinitions.apiextensions.k8s.io",
            "profileexceptions.baseliner.dev",
            "get",
        ),
        ("namespaces", "", "list"),
        ("namespaces", "", "watch"),
        ("namespaces", "", "patch"),
        ("clusterroles.rbac.authorization.k8s.io", "admin", "bind"),
        ("clusterroles.rbac.authorization.k8s.io", "edit", "bind"),
        ("clusterroles.rbac.authorization.k8s.io", "view", "bind"),
        ("events.events.k8s.io", "", "create"),
        ("events.events.k8s.io", "", "patch"),
    ];
    for resource in [
        "validatingadmissionpolicies.admissionregistration.k8s.io",
        "validatingadmissionpolicybindings.admissionregistration.k8s.io",
    ] {
        for verb in ["get", "list", "watch"] {
            rows.push((resource, "baseliner-author-rights", verb));
            rows.push((resource, "baseliner-exception-rights", verb));
        }
    }
    let managed = [
        "limitranges",
        "resourcequotas",
        "networkpolicies.networking.k8s.io",
        "rolebindings.rbac.authorization.k8s.io",
        "schedules.velero.io",
    ];
    for resource in managed {
        for verb in ["get", "list", "watch", "create", "patch", "delete"] {
            rows.push((resource, "", verb));
        }
    }
    if with_lease {
        rows.push(("leases.coordination.k8s.io", "", "create"));
        rows.push(("leases.coordination.k8s.io", LEASE_NAME, "get"));
        rows.push(("leases.coordination.k8s.io", LEASE_NAME, "update"));
    }
    rows.into_iter()
        .map(|(r, n, v)| (r.to_owned(), n.to_owned(), v.to_owned()))
        .collect()
}

#[tokio::test]
async fn operator_rbac_is_least_privilege() -> Result<()> {
    let env = TestEnv::with_velero(Velero::Any).await?;
    let objects = rendered_install(&env).await?;
    let manager = rules_of(&objects, "ClusterRole", "baseliner-manager")?;
    let leases = rules_of(&objects, "Role", "baseliner-leader-election")?;
    for rule in manager.iter().chain(&leases) {
        let everything = [
            rule.api_groups.clone().unwrap_or_default(),
            rule.resources.clone().unwrap_or_default(),
            rule.verbs.clone(),
            rule.resource_names.clone().unwrap_or_default(),
        ]
        .concat();
        ensure!(
            !everything.iter().any(|s| s.contains('*')),
            "no wildcards: {rule:?}"
        );
        for verb in ["escalate", "impersonate"] {
            ensure!(!rule.verbs.iter().any(|v| v == verb), "no {verb}: {rule:?}");
        }
        if rule.verbs.iter().any(|v| v == "bind") {
            ensure!(
                rule.resources.as_deref() == Some(&["clusterroles".to_owned()][..])
                    && rule.resource_names.as_ref().is_some_and(|n| !n.is_empty()),
                "bind only on named ClusterRoles: {rule:?}"
            );
        }
        if rule.resources.iter().flatten().any(|r| r == "namespaces") {
            ensure!(
                !rule.verbs.iter().any(|v| v == "create" || v == "delete"),
                "the operator never creates or deletes namespaces: {rule:?}"
            );
        }
    }

    let namespace = env.namespace("rbac-least").await?;
    let operator = operator_identity(&env, &namespace, None).await?;
    // What any ServiceAccount may do (discovery, self-reviews) is not the
    // operator's doing: subtract it.
    let nobody = env.service_account(&namespace, "nobody", &[]).await?;
    let baseline = can_i_list(&env, &nobody, namespace.name()).await?;
    for (where_, with_lease) in [(namespace.name(), true), ("default", false)] {
        let rights: BTreeSet<_> = can_i_list(&env, &operator, where_)
            .await?
            .difference(&baseline)
            .cloned()
            .collect();
        let expected = expected_operator_rights(with_lease);
        ensure!(
            rights == expected,
            "in namespace {where_}, the operator may do exactly what it uses\nextra: {:?}\nmissing: {:?}",
            rights.difference(&expected).collect::<Vec<_>>(),
            expected.difference(&rights).collect::<Vec<_>>()
        );
    }
    namespace.cleanup().await
}

// ---------------------------------------------------------------------------
// The operator as its own ServiceAccount

/// `kubectl auth can-i ARGS...` as `identity`: true for "yes".
async fn can_i(env: &TestEnv, identity: &Identity, args: &[&str]) -> Result<bool> {
    let out = env
        .kubectl_as(
            &identity.kubeconfig,
            ["auth", "can-i"].iter().chain(args).copied(),
        )
        .await?;
    match out.stdout.trim() {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => anyhow::bail!("kubectl auth can-i {args:?}: {out:?}"),
    }
}

/// `kubectl auth can-i --list` rows as printed.
async fn can_i_rows(
    env: &TestEnv,
    identity: &Identity,
    namespace: &str,
) -> Result<BTreeSet<String>> {
    let out = env
        .kubectl_as(
            &identity.kubeconfig,
            ["auth", "can-i", "--list", "-n", namespace, "--no-headers"],
        )
        .await?
        .ok()?;
    Ok(out
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect())
}

fn role_binding(name: &str, role: &str) -> RoleBinding {
    RoleBinding {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".to_owned()),
            kind: "ClusterRole".to_owned(),
            name: role.to_owned(),
        },
        subjects: Some(vec![Subject {
            kind: "Group".to_owned(),
            name: "e2e-nobody".to_owned(),
            api_group: Some("rbac.authorization.k8s.io".to_owned()),
            namespace: None,
        }]),
    }
}

const SERVICE_ACCOUNT_SPEC: &str = r#"  networkPolicy:
    defaultDeny: true
    allowDNS: true
  resourceQuota:
    hard: {pods: "5"}
  podSecurity:
    enforce: restricted
  roleBindings:
    - name: viewers
      clusterRole: view
      subjects:
        - {kind: Group, name: "team-{{labels.team}}-viewers"}
    - name: owners
      clusterRole: admin
      subjects:
        - {kind: Group, name: "team-{{labels.team}}-owners"}
  backup:
    schedule: "15 3 * * *"
    ttl: 240h
    storageLocation: e2e-bsl
    snapshotVolumes: false
"#;

#[tokio::test]
async fn operator_as_its_service_account_binds_only_allowed_roles() -> Result<()> {
    let manifest = workspace_root()
        .join("config")
        .join("rbac")
        .join("role.yaml");
    if !manifest.exists() {
        eprintln!("skipped: {} does not exist", manifest.display());
        return Ok(());
    }
    let env = TestEnv::new().await?;
    let home = env.namespace("rb-sa").await?;
    let case = random_name("rb-sa");
    let target = env
        .namespace_with_labels("rb-sa-target", case_labels(&case, Some("payments")))
        .await?;
    let t = target.name();

    let (operator_id, nobody) = manifest_service_account(&env, &home, &manifest).await?;
    rbac_allows_binding_only_the_allowed_roles(&env, &operator_id, &nobody, t).await?;
    reconciles_a_profile_as_the_service_account(&env, &operator_id, &case, t).await?;
    target.cleanup().await?;
    home.cleanup().await
}

/// ServiceAccount `baseliner` in `home` holding exactly the manifests'
/// ClusterRole (under a name of this test's: it goes with `home`), and
/// ServiceAccount `nobody` holding nothing. With --leader-elect=false no
/// Lease is needed.
async fn manifest_service_account(
    env: &TestEnv,
    home: &TestNamespace,
    manifest: &std::path::Path,
) -> Result<(Identity, Identity)> {
    let mut role: ClusterRole = serde_saphyr::from_str(&std::fs::read_to_string(manifest)?)?;
    let role_name = format!("{}-manager", home.name());
    role.metadata = ObjectMeta {
        name: Some(role_name.clone()),
        owner_references: Some(vec![home.owner_reference()]),
        ..ObjectMeta::default()
    };
    Api::<ClusterRole>::all(env.client())
        .create(&PostParams::default(), &role)
        .await?;
    let operator_id = env
        .service_account(home, "baseliner", &[Grant::ClusterRole(role_name)])
        .await?;
    let nobody = env.service_account(home, "nobody", &[]).await?;

    Ok((operator_id, nobody))
}

/// What RBAC says the operator may do in namespace `t`, and the API server
/// agrees.
async fn rbac_allows_binding_only_the_allowed_roles(
    env: &TestEnv,
    operator_id: &Identity,
    nobody: &Identity,
    t: &str,
) -> Result<()> {
    for (args, want) in [
        (&["bind", "clusterroles/view"][..], true),
        (&["bind", "clusterroles/edit"][..], true),
        (&["bind", "clusterroles/admin"][..], true),
        (&["bind", "clusterroles/cluster-admin"][..], false),
        (&["bind", "clusterroles"][..], false),
        (&["escalate", "clusterroles"][..], false),
        (&["escalate", "roles", "-n", t][..], false),
        (&["create", "clusterrolebindings"][..], false),
        (&["impersonate", "users"][..], false),
        (&["*", "*"][..], false),
        // It does not hold view's rights itself: `bind` is what lets it
        // grant them.
        (&["get", "pods", "-n", t][..], false),
        (&["list", "configmaps", "-n", t][..], false),
    ] {
        ensure!(
            can_i(env, operator_id, args).await? == want,
            "kubectl auth can-i {args:?} should say {}",
            if want { "yes" } else { "no" }
        );
    }
    for namespace in [t, "default", VELERO_NAMESPACE] {
        let baseline = can_i_rows(env, nobody, namespace).await?;
        let added: Vec<String> = can_i_rows(env, operator_id, namespace)
            .await?
            .difference(&baseline)
            .cloned()
            .collect();
        ensure!(!added.is_empty(), "the operator's own rules are listed");
        ensure!(
            added.iter().all(|row| !row.contains('*')),
            "no wildcard in the operator's rights in {namespace}: {added:#?}"
        );
    }
    // The API server agrees: a RoleBinding of view is allowed (dry run), one
    // of cluster-admin is refused.
    let as_operator = Api::<RoleBinding>::namespaced(operator_id.client.clone(), t);
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    as_operator
        .create(&dry_run, &role_binding("e2e-view", "view"))
        .await?;
    match as_operator
        .create(&dry_run, &role_binding("e2e-root", "cluster-admin"))
        .await
    {
        Err(kube::Error::Api(s)) if s.code == 403 => {}
        other => anyhow::bail!("binding cluster-admin should be Forbidden, got {other:?}"),
    }

    Ok(())
}

/// It reconciles a whole profile selecting namespace `t` with nothing more
/// than its RBAC, and writes the RoleBindings itself.
async fn reconciles_a_profile_as_the_service_account(
    env: &TestEnv,
    operator_id: &Identity,
    case: &str,
    t: &str,
) -> Result<()> {
    let mut operator = Operator::start(
        &operator_id.kubeconfig,
        &[
            "--resync-seconds",
            "30",
            "--leader-elect=false",
            "--http-addr",
            "127.0.0.1:0",
        ],
    )?;
    let profile = random_name("prof");
    kubectl_apply(env, &profile_yaml(&profile, case, SERVICE_ACCOUNT_SPEC)).await?;
    let expected = objects(&[
        ("NetworkPolicy", "baseliner-default-deny"),
        ("NetworkPolicy", "baseliner-allow-dns"),
        ("ResourceQuota", "baseliner-quota"),
        ("RoleBinding", "baseliner-viewers"),
        ("RoleBinding", "baseliner-owners"),
    ]);
    wait_until("the baseline", CONVERGE, || async {
        managed_objects(&env.client(), t)
            .await
            .is_ok_and(|o| keys(&o) == expected)
    })
    .await?;
    wait_until("the Schedule", CONVERGE, || async {
        profile_schedules(env, &profile)
            .await
            .is_ok_and(|s| s.contains_key(t))
    })
    .await?;
    wait_until("the profile to be Ready", CONVERGE, || async {
        current_status(env, &profile)
            .await
            .is_some_and(|s| has_condition(&s, "Ready", "True", "Compliant"))
    })
    .await?;

    // Other operators on the plane (the suite's shared one) may have written
    // those first. Delete the bindings until this one has written them
    // itself: each write of a RoleBinding is authorized by `bind` alone.
    let bindings = Api::<RoleBinding>::namespaced(env.client(), t);
    let written_by_it = |name: &str| {
        let line = format!("applied key=RoleBinding {t}/{name}");
        operator.output().lines().any(|l| l.contains(&line))
    };
    let mut attempts = 0;
    while !(written_by_it("baseliner-viewers") && written_by_it("baseliner-owners")) {
        attempts += 1;
        ensure!(
            attempts <= 5,
            "the ServiceAccount's operator never wrote the RoleBindings itself; log: {}",
            operator.log.display()
        );
        for name in ["baseliner-viewers", "baseliner-owners"] {
            bindings.delete(name, &Default::default()).await?;
        }
        wait_until("the bindings to be back", CONVERGE, || async {
            managed_objects(&env.client(), t)
                .await
                .is_ok_and(|o| keys(&o) == expected)
        })
        .await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let output = operator.output();
    let refused: Vec<&str> = output
        .lines()
        .filter(|l| l.to_lowercase().contains("forbidden"))
        .collect();
    ensure!(refused.is_empty(), "requests refused: {refused:#?}");
    ensure!(operator.is_running(), "the operator exited: {output}");

    delete_profile(env, &profile).await?;
    operator.terminate(Duration::from_secs(10))?;
    Ok(())
}

// ---------------------------------------------------------------------------
// The aggregated roles for users

#[tokio::test]
async fn view_reads_profiles_and_only_the_editor_role_writes_them() -> Result<()> {
    let env = TestEnv::with_velero(Velero::Any).await?;
    let objects = rendered_install(&env).await?;
    // The roles, applied as the install applies them (they are cluster-wide
    // and the same for every test).
    for name in [
        "baseliner-productionprofile-viewer",
        "baseliner-productionprofile-editor",
    ] {
        env.kubectl_with_stdin(
            &env.plane().kubeconfig,
            [
                "apply",
                "--server-side",
                "--field-manager=e2e-install",
                "-f",
                "-",
            ],
            Some(&object(&objects, "ClusterRole", name)?.to_string()),
        )
        .await?
        .ok()?;
    }
    let owner = env.namespace("aggregate").await?;
    let viewer = random_name("viewer");
    let editor = random_name("editor");
    let author = random_name("author");
    for (user, role) in [
        (&viewer, "view"),
        (&editor, "edit"),
        (&author, "baseliner-productionprofile-editor"),
    ] {
        let subject = k8s_openapi::api::rbac::v1::Subject {
            kind: "User".to_owned(),
            name: user.clone(),
            api_group: Some("rbac.authorization.k8s.io".to_owned()),
            namespace: None,
        };
        env.bind(&owner, &subject, user, &Grant::ClusterRole(role.to_owned()))
            .await?;
    }
    let can = |user: String, verb: &'static str| {
        let env = &env;
        async move {
            env.kubectl([
                "auth",
                "can-i",
                verb,
                "productionprofiles.baseliner.dev",
                "--as",
                &user,
            ])
            .await
            .is_ok_and(|out| out.success)
        }
    };
    // The controller manager folds the labelled viewer role into view.
    wait_until("view to include profiles", CONVERGE, || {
        can(viewer.clone(), "list")
    })
    .await?;
    wait_until("the editor role to be bound", CONVERGE, || {
        can(author.clone(), "create")
    })
    .await?;
    ensure!(can(viewer.clone(), "watch").await, "view watches profiles");
    ensure!(
        !can(viewer.clone(), "create").await,
        "view does not write profiles"
    );
    // Profiles make baseliner write RoleBindings and Pod Security labels in
    // many namespaces: `edit` no longer includes them.
    wait_until("edit to read profiles (through view)", CONVERGE, || {
        can(editor.clone(), "list")
    })
    .await?;
    for verb in ["create", "update", "delete"] {
        ensure!(
            !can(editor.clone(), verb).await,
            "edit does not {verb} profiles"
        );
    }
    ensure!(
        can(author.clone(), "delete").await,
        "the editor role deletes profiles"
    );
    let status = env
        .kubectl([
            "auth",
            "can-i",
            "patch",
            "productionprofiles.baseliner.dev",
            "--subresource=status",
            "--as",
            &author,
        ])
        .await?;
    ensure!(!status.success, "status stays the operator's: {status:?}");
    owner.cleanup().await
}
