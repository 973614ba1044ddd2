//! The author-rights rule, end to end: a profile asks baseliner for only
//! what the user who writes it may do cluster-wide, and the API server
//! refuses the rest at admission (the ValidatingAdmissionPolicy in
//! `crds/baseliner.dev_author-rights.yaml`, installed with the CRD).
//!
//! Every attempt runs as a real non-admin identity (a ServiceAccount with a
//! token from the TokenRequest API) through kubectl, as a user would. What
//! happens when the policy is removed is a fault test
//! (`e2e/tests/faults/author_rights.rs`): it changes the whole plane.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Result, bail, ensure};
use baseliner_e2e::baseline::{kubectl_apply, profile_yaml};
use baseliner_e2e::operator::shared_operator;
use baseliner_e2e::{
    DEFAULT_TIMEOUT, Grant, Identity, TestEnv, TestNamespace, Velero, random_name, wait_until,
};
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::Api;
use serde_json::json;

/// The rights a profile section implies, as ClusterRoles the tests combine.
const ROLES: [(&str, &str); 5] = [
    (
        "write-baseline",
        r#"[{"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"], "verbs": ["create", "patch", "delete"]},
            {"apiGroups": [""], "resources": ["limitranges", "resourcequotas"], "verbs": ["create", "patch", "delete"]},
            {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["rolebindings"], "verbs": ["create", "patch", "delete"]},
            {"apiGroups": ["velero.io"], "resources": ["schedules"], "verbs": ["create", "patch", "delete"]}]"#,
    ),
    (
        "label-namespaces",
        r#"[{"apiGroups": [""], "resources": ["namespaces"], "verbs": ["patch"]}]"#,
    ),
    (
        "bind-view",
        r#"[{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"], "resourceNames": ["view"], "verbs": ["bind"]}]"#,
    ),
    (
        "bind-all",
        r#"[{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"], "resourceNames": ["admin", "edit", "view"], "verbs": ["bind"]}]"#,
    ),
    (
        "write-profiles",
        r#"[{"apiGroups": ["baseliner.dev"], "resources": ["productionprofiles"], "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]}]"#,
    ),
];

/// Cluster-scoped ClusterRoles named `<home>-<suffix>`, owned by `home` so
/// the garbage collector removes them with it.
async fn create_roles(env: &TestEnv, home: &TestNamespace) -> Result<()> {
    for (suffix, rules) in ROLES {
        let role = json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {
                "name": format!("{}-{suffix}", home.name()),
                "ownerReferences": [home.owner_reference()],
            },
            "rules": serde_json::from_str::<serde_json::Value>(rules)?,
        });
        kubectl_apply(env, &role.to_string()).await?;
    }
    Ok(())
}

/// A ServiceAccount in `home` holding, cluster-wide, the built-in roles in
/// `builtin` and this test's roles in `own`.
async fn identity(
    env: &TestEnv,
    home: &TestNamespace,
    name: &str,
    builtin: &[&str],
    own: &[&str],
) -> Result<Identity> {
    let grants: Vec<Grant> = builtin
        .iter()
        .map(|r| Grant::ClusterRole((*r).to_owned()))
        .chain(
            own.iter()
                .map(|r| Grant::ClusterRole(format!("{}-{r}", home.name()))),
        )
        .collect();
    env.service_account(home, name, &grants).await
}

/// kubectl as `who`: the answer, success or not, with stderr.
async fn as_user(
    env: &TestEnv,
    who: &Path,
    args: &[&str],
    stdin: Option<&str>,
) -> Result<(bool, String)> {
    let out = env.kubectl_with_stdin(who, args, stdin).await?;
    Ok((out.success, format!("{}{}", out.stderr, out.stdout)))
}

/// `kubectl auth can-i` answers for `user`: what escalation would change.
async fn rights_of(env: &TestEnv, user: &str, namespaces: &[&str]) -> Result<Vec<String>> {
    let mut answers = Vec::new();
    for ns in namespaces {
        for (verb, resource) in [
            ("create", "rolebindings"),
            ("bind", "clusterroles/admin"),
            ("bind", "clusterroles/edit"),
            ("patch", "namespaces"),
            ("create", "pods"),
            ("delete", "networkpolicies"),
            ("get", "secrets"),
        ] {
            let out = env
                .kubectl(["auth", "can-i", verb, resource, "-n", ns, "--as", user])
                .await?;
            answers.push(format!("{ns} {verb} {resource}: {}", out.stdout.trim()));
        }
    }
    Ok(answers)
}

/// One escalation attempt: who, what, and what the refusal must name.
struct Attempt {
    name: &'static str,
    who: &'static str,
    /// `apply`: the YAML is applied; `delete`: the profile is deleted.
    action: Action,
    field: &'static str,
    permission: &'static str,
}

enum Action {
    Apply(String),
    /// A JSON patch of the protective profile (what removes a field that
    /// another field manager applied).
    Patch(&'static str),
    Delete(String),
}

/// The attackers, each holding profile writing and some rights: `edit`
/// cluster-wide (common for CI identities and senior developers); `admin`
/// of one namespace (a team lead); everything but binding `admin` and
/// `edit`; everything but labelling namespaces.
async fn attackers(
    env: &TestEnv,
    home: &TestNamespace,
    team: &TestNamespace,
) -> Result<[(&'static str, Identity); 4]> {
    let lead = env
        .service_account(
            home,
            "lead",
            &[
                Grant::cluster_role_in(team.name(), "admin"),
                Grant::ClusterRole(format!("{}-write-profiles", home.name())),
            ],
        )
        .await?;
    let baseline = ["write-profiles", "write-baseline"];
    Ok([
        (
            "editor",
            identity(env, home, "editor", &["edit"], &["write-profiles"]).await?,
        ),
        ("lead", lead),
        (
            "granter",
            identity(
                env,
                home,
                "granter",
                &[],
                &[&baseline[..], &["label-namespaces", "bind-view"]].concat(),
            )
            .await?,
        ),
        (
            "unlabelled",
            identity(
                env,
                home,
                "unlabelled",
                &[],
                &[&baseline[..], &["bind-all"]].concat(),
            )
            .await?,
        ),
    ])
}

/// Runs one attempt as its identity; a failure line unless the API server
/// refused it naming the field and the permission.
async fn try_attempt(
    env: &TestEnv,
    users: &BTreeMap<&str, &Identity>,
    protect: &str,
    attempt: &Attempt,
) -> Result<Option<String>> {
    let who = &users[attempt.who].kubeconfig;
    let (accepted, answer) = match &attempt.action {
        Action::Apply(yaml) => {
            let apply = [
                "apply",
                "--server-side",
                "--force-conflicts",
                "--field-manager=attacker",
                "-f",
                "-",
            ];
            as_user(env, who, &apply, Some(yaml)).await?
        }
        Action::Patch(patch) => {
            let args = [
                "patch",
                "productionprofile",
                protect,
                "--type=json",
                "-p",
                patch,
            ];
            as_user(env, who, &args, None).await?
        }
        Action::Delete(name) => {
            let args = ["delete", "productionprofile", name, "--wait=false"];
            as_user(env, who, &args, None).await?
        }
    };
    let names_both = answer.contains(attempt.field) && answer.contains(attempt.permission);
    Ok((accepted || !names_both || !answer.contains("baseliner-author-rights")).then(|| {
        format!(
            "{} (as {}): accepted={accepted}; want a refusal naming `{}` and `{}`, got: {answer}",
            attempt.name, attempt.who, attempt.field, attempt.permission
        )
    }))
}

#[tokio::test]
async fn escalation_through_a_profile_is_refused_at_admission() -> Result<()> {
    let env = TestEnv::with_velero(Velero::Any).await?;
    shared_operator(env.plane())?;
    let home = env.namespace("authors").await?;
    create_roles(&env, &home).await?;
    let case = random_name("rights");
    let team = env
        .namespace_with_labels("rights-team", team_labels(&case, "payments"))
        .await?;
    let other = env
        .namespace_with_labels("rights-other", team_labels(&case, "search"))
        .await?;

    let attackers = attackers(&env, &home, &team).await?;
    let users: BTreeMap<&str, &Identity> = attackers.iter().map(|(n, id)| (*n, id)).collect();
    let (editor, lead) = (&attackers[0].1, &attackers[1].1);

    // The platform team's profile protecting both namespaces, written by an
    // administrator.
    let protect = format!("{case}-protect");
    let protect_spec = protective_spec("view", "restricted");
    kubectl_apply(&env, &profile_yaml(&protect, &case, &protect_spec)).await?;
    wait_until("the protective baseline", DEFAULT_TIMEOUT, || async {
        Api::<RoleBinding>::namespaced(env.client(), team.name())
            .get_opt("baseliner-viewers")
            .await
            .is_ok_and(|rb| rb.is_some())
    })
    .await?;
    let generation = profile_generation(&env, &protect).await?;
    let namespaces = [team.name(), other.name(), "kube-system"];
    let mut rights_before = BTreeMap::new();
    for (name, id) in &users {
        rights_before.insert(*name, rights_of(&env, &id.user, &namespaces).await?);
    }

    let attempts = attempts(
        &case,
        &protect,
        &editor.user,
        &lead.user,
        team.name(),
        other.name(),
    );
    ensure!(attempts.len() >= 20, "at least 20 attempts");
    let mut failures = Vec::new();
    for attempt in &attempts {
        failures.extend(try_attempt(&env, &users, &protect, attempt).await?);
    }
    ensure!(
        failures.is_empty(),
        "attempts not refused as they should be:\n{}",
        failures.join("\n")
    );

    // Nothing moved: the protective profile is as the administrator left
    // it, no attacker's profile exists, and nobody gained a right.
    ensure!(
        profile_generation(&env, &protect).await? == generation,
        "the protective profile was not changed"
    );
    let listed = env
        .kubectl(["get", "productionprofiles", "-o", "name"])
        .await?
        .ok()?;
    ensure!(
        !listed.lines().any(|l| l.contains(&format!("{case}-evil"))),
        "no attacker profile was stored: {listed}"
    );
    for (name, id) in &users {
        let after = rights_of(&env, &id.user, &namespaces).await?;
        ensure!(
            after == rights_before[name],
            "{name}'s rights changed:\nbefore {:?}\nafter  {after:?}",
            rights_before[name]
        );
    }

    // Precision: what an attacker could do by hand is not refused. `edit`
    // writes NetworkPolicies anywhere, so it may change that section.
    let narrower = protective_spec("view", "restricted")
        .replace("allowSameNamespace: true", "allowSameNamespace: false");
    let (accepted, answer) = as_user(
        &env,
        &editor.kubeconfig,
        &[
            "apply",
            "--server-side",
            "--field-manager=e2e-user",
            "--force-conflicts",
            "-f",
            "-",
        ],
        Some(&profile_yaml(&protect, &case, &narrower)),
    )
    .await?;
    ensure!(
        accepted,
        "an edit holder may change the networkPolicy section: {answer}"
    );

    env.kubectl(["delete", "productionprofile", &protect])
        .await?
        .ok()?;
    for ns in [team, other, home] {
        ns.cleanup().await?;
    }
    Ok(())
}

#[tokio::test]
async fn an_author_with_the_rights_is_accepted_and_reconciled() -> Result<()> {
    let env = TestEnv::with_velero(Velero::Any).await?;
    shared_operator(env.plane())?;
    let home = env.namespace("author").await?;
    create_roles(&env, &home).await?;
    let author = identity(
        &env,
        &home,
        "author",
        &[],
        &[
            "write-profiles",
            "write-baseline",
            "label-namespaces",
            "bind-all",
        ],
    )
    .await?;
    let case = random_name("granted");
    let team = env
        .namespace_with_labels("granted-team", team_labels(&case, "payments"))
        .await?;
    let name = format!("{case}-admin");
    let apply = |spec: String| {
        let yaml = profile_yaml(&name, &case, &spec);
        let env = &env;
        let kubeconfig = author.kubeconfig.clone();
        async move {
            as_user(
                env,
                &kubeconfig,
                &[
                    "apply",
                    "--server-side",
                    "--field-manager=author",
                    "-f",
                    "-",
                ],
                Some(&yaml),
            )
            .await
        }
    };
    // The same profiles the attackers were refused: admin bound, Pod
    // Security privileged.
    let (accepted, answer) = apply(protective_spec("admin", "privileged")).await?;
    ensure!(
        accepted,
        "the author may bind admin and set privileged: {answer}"
    );
    let bindings = Api::<RoleBinding>::namespaced(env.client(), team.name());
    wait_until("the admin binding", DEFAULT_TIMEOUT, || async {
        bindings
            .get_opt("baseliner-viewers")
            .await
            .ok()
            .flatten()
            .is_some_and(|rb| rb.role_ref.name == "admin")
    })
    .await?;
    wait_until("Pod Security privileged", DEFAULT_TIMEOUT, || async {
        baseliner_e2e::baseline::namespace_labels(&env.client(), team.name())
            .await
            .is_ok_and(|l| {
                l.get("pod-security.kubernetes.io/enforce")
                    .map(String::as_str)
                    == Some("privileged")
            })
    })
    .await?;
    // Raised by update, then removed with the profile.
    let (accepted, answer) = apply(protective_spec("view", "restricted")).await?;
    ensure!(accepted, "{answer}");
    wait_until("the binding replaced by view", DEFAULT_TIMEOUT, || async {
        bindings
            .get_opt("baseliner-viewers")
            .await
            .ok()
            .flatten()
            .is_some_and(|rb| rb.role_ref.name == "view")
    })
    .await?;
    let (deleted, answer) = as_user(
        &env,
        &author.kubeconfig,
        &["delete", "productionprofile", &name],
        None,
    )
    .await?;
    ensure!(deleted, "the author may delete the profile: {answer}");
    wait_until("the binding pruned", DEFAULT_TIMEOUT, || async {
        bindings
            .get_opt("baseliner-viewers")
            .await
            .is_ok_and(|rb| rb.is_none())
    })
    .await?;
    team.cleanup().await?;
    home.cleanup().await
}

fn team_labels(case: &str, team: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("e2e-case".to_owned(), case.to_owned()),
        ("team".to_owned(), team.to_owned()),
    ])
}

/// A baseline with every section but backups.
fn protective_spec(role: &str, level: &str) -> String {
    format!(
        "  networkPolicy:
    defaultDeny: true
    allowDNS: true
    allowSameNamespace: true
  limitRange:
    default: {{cpu: 500m, memory: 512Mi}}
  resourceQuota:
    hard: {{pods: \"20\"}}
  podSecurity:
    enforce: {level}
  roleBindings:
    - name: viewers
      clusterRole: {role}
      subjects:
        - kind: Group
          name: \"team-{{{{labels.team}}}}-viewers\"
"
    )
}

async fn profile_generation(env: &TestEnv, name: &str) -> Result<String> {
    let out = env
        .kubectl([
            "get",
            "productionprofile",
            name,
            "-o",
            "jsonpath={.metadata.generation}",
        ])
        .await?
        .ok()?;
    if out.trim().is_empty() {
        bail!("profile {name} has no generation");
    }
    Ok(out.trim().to_owned())
}

/// A profile of the attacker's own, selecting the case's namespaces.
fn evil(case: &str, suffix: &str, spec: &str) -> String {
    profile_yaml(&format!("{case}-evil-{suffix}"), case, spec)
}

fn binding(name: &str, role: &str, subject: &str) -> String {
    format!("    - name: {name}\n      clusterRole: {role}\n      subjects:\n{subject}")
}

fn user_subject(user: &str) -> String {
    format!("        - kind: User\n          name: \"{user}\"\n")
}

fn attempts(
    case: &str,
    protect: &str,
    editor: &str,
    lead: &str,
    team: &str,
    other: &str,
) -> Vec<Attempt> {
    let ctx = Table {
        case: case.to_owned(),
        protect: protect.to_owned(),
        editor: editor.to_owned(),
        lead: lead.to_owned(),
        team: team.to_owned(),
        other: other.to_owned(),
        base: protective_spec("view", "restricted"),
        np: "  networkPolicy:\n    defaultDeny: true\n",
        kube_system_sa: "        - kind: ServiceAccount\n          name: default\n          namespace: kube-system\n",
        bind_admin: "bind on clusterroles/admin",
    };
    [
        role_binding_attempts(&ctx),
        pod_security_attempts(&ctx),
        selection_attempts(&ctx),
        subject_attempts(&ctx),
        section_attempts(&ctx),
    ]
    .into_iter()
    .flatten()
    .collect()
}

impl Table {
    /// The protective profile with `spec`.
    fn edit_protect(&self, spec: String) -> Action {
        Action::Apply(profile_yaml(&self.protect, &self.case, &spec))
    }

    /// An attacker's profile naming `names` in `include`.
    fn include(&self, names: &[&str], spec: &str) -> Action {
        Action::Apply(format!(
            "apiVersion: baseliner.dev/v1alpha1\nkind: ProductionProfile\nmetadata:\n  name: {}-evil-include\nspec:\n  namespaces:\n    include: [{}]\n{spec}",
            self.case,
            names.join(", ")
        ))
    }
}

/// What the attempts are made of.
struct Table {
    case: String,
    protect: String,
    editor: String,
    lead: String,
    team: String,
    other: String,
    base: String,
    np: &'static str,
    kube_system_sa: &'static str,
    bind_admin: &'static str,
}

fn role_binding_attempts(t: &Table) -> Vec<Attempt> {
    let case = t.case.as_str();
    let editor = t.editor.as_str();
    let bind_admin = t.bind_admin;
    vec![
        Attempt {
            name: "bind admin to oneself as an edit holder",
            who: "editor",
            action: Action::Apply(evil(
                case,
                "admin",
                &format!(
                    "  roleBindings:\n{}",
                    binding("me", "admin", &user_subject(editor))
                ),
            )),
            field: "spec.roleBindings[0].clusterRole",
            permission: bind_admin,
        },
        Attempt {
            name: "bind edit as an edit holder",
            who: "editor",
            action: Action::Apply(evil(
                case,
                "edit",
                &format!(
                    "  roleBindings:\n{}",
                    binding("me", "edit", &user_subject(editor))
                ),
            )),
            field: "spec.roleBindings[0].clusterRole",
            permission: "bind on clusterroles/edit",
        },
        Attempt {
            name: "bind admin second to a view binding one may grant",
            who: "granter",
            action: Action::Apply(evil(
                case,
                "second",
                &format!(
                    "  roleBindings:\n{}{}",
                    binding("viewers", "view", &user_subject("someone")),
                    binding("me", "admin", &user_subject(editor))
                ),
            )),
            field: "spec.roleBindings[1].clusterRole",
            permission: bind_admin,
        },
        Attempt {
            name: "raise the protective binding from view to admin",
            who: "editor",
            action: t.edit_protect(protective_spec("admin", "restricted")),
            field: "spec.roleBindings[0].clusterRole",
            permission: bind_admin,
        },
        Attempt {
            name: "raise a binding by update as a view granter",
            who: "granter",
            action: t.edit_protect(protective_spec("edit", "restricted")),
            field: "spec.roleBindings[0].clusterRole",
            permission: "bind on clusterroles/edit",
        },
    ]
}

fn pod_security_attempts(t: &Table) -> Vec<Attempt> {
    let case = t.case.as_str();
    vec![
        Attempt {
            name: "Pod Security privileged in a new profile",
            who: "editor",
            action: Action::Apply(evil(
                case,
                "privileged",
                "  podSecurity:\n    enforce: privileged\n",
            )),
            field: "spec.podSecurity",
            permission: "patch on namespaces",
        },
        Attempt {
            name: "lower the protective Pod Security to privileged",
            who: "editor",
            action: t.edit_protect(protective_spec("view", "privileged")),
            field: "spec.podSecurity",
            permission: "patch on namespaces",
        },
        Attempt {
            name: "remove podSecurity from the protective profile",
            who: "editor",
            action: Action::Patch(r#"[{"op": "remove", "path": "/spec/podSecurity"}]"#),
            field: "spec.podSecurity",
            permission: "patch on namespaces",
        },
        Attempt {
            name: "lower Pod Security holding everything but namespace patch",
            who: "unlabelled",
            action: t.edit_protect(protective_spec("view", "baseline")),
            field: "spec.podSecurity",
            permission: "patch on namespaces",
        },
    ]
}

fn selection_attempts(t: &Table) -> Vec<Attempt> {
    let case = t.case.as_str();
    let protect = t.protect.as_str();
    let lead = t.lead.as_str();
    let team = t.team.as_str();
    let other = t.other.as_str();
    let base = t.base.as_str();
    let np = t.np;
    let bind_admin = t.bind_admin;
    vec![
        Attempt {
            name: "include kube-system with a default-deny",
            who: "editor",
            action: t.include(&["kube-system"], np),
            field: "spec.namespaces",
            permission: "delete on limitranges",
        },
        Attempt {
            name: "include one's own namespace and bind admin as its admin",
            who: "lead",
            action: t.include(
                &[team],
                &format!(
                    "  roleBindings:\n{}",
                    binding("me", "admin", &user_subject(lead))
                ),
            ),
            field: "spec.roleBindings[0].clusterRole",
            permission: bind_admin,
        },
        Attempt {
            name: "include one's own namespace with privileged Pod Security as its admin",
            who: "lead",
            action: t.include(&[team], "  podSecurity:\n    enforce: privileged\n"),
            field: "spec.podSecurity",
            permission: "patch on namespaces",
        },
        Attempt {
            name: "include another team's namespace as a namespace admin",
            who: "lead",
            action: t.include(&[other], np),
            field: "spec.networkPolicy",
            permission: "networkpolicies.networking.k8s.io",
        },
        Attempt {
            name: "move another team's namespaces out by selector",
            who: "editor",
            action: Action::Apply(format!(
                "apiVersion: baseliner.dev/v1alpha1\nkind: ProductionProfile\nmetadata:\n  name: {protect}\nspec:\n  namespaces:\n    selector:\n      matchLabels:\n        e2e-case: {case}\n        team: payments\n{base}"
            )),
            field: "spec.roleBindings[0].clusterRole",
            permission: "bind on clusterroles/view",
        },
        Attempt {
            name: "take every namespace with a higher-priority profile",
            who: "editor",
            action: Action::Apply(evil(case, "takeover", &format!("  priority: 1000\n{np}"))),
            field: "spec.namespaces",
            permission: "delete on limitranges",
        },
        Attempt {
            name: "raise the protective profile's priority",
            who: "editor",
            action: t.edit_protect(format!("  priority: 5\n{base}")),
            field: "spec.roleBindings[0].clusterRole",
            permission: "bind on clusterroles/view",
        },
        Attempt {
            name: "turn the protective profile to Audit",
            who: "editor",
            action: t.edit_protect(format!("  mode: Audit\n{base}")),
            field: "spec.roleBindings[0].clusterRole",
            permission: "bind on clusterroles/view",
        },
        Attempt {
            name: "delete the protective profile",
            who: "editor",
            action: Action::Delete(protect.to_owned()),
            field: "spec.roleBindings",
            permission: "rolebindings.rbac.authorization.k8s.io",
        },
        Attempt {
            name: "delete the protective profile as a namespace admin",
            who: "lead",
            action: Action::Delete(protect.to_owned()),
            field: "spec.roleBindings",
            permission: "rolebindings.rbac.authorization.k8s.io",
        },
    ]
}

fn subject_attempts(t: &Table) -> Vec<Attempt> {
    let case = t.case.as_str();
    let kube_system_sa = t.kube_system_sa;
    let bind_admin = t.bind_admin;
    vec![
        Attempt {
            name: "a subject template aimed at system: groups",
            who: "editor",
            action: Action::Apply(evil(
                case,
                "system",
                &format!(
                    "  roleBindings:\n{}",
                    binding(
                        "all",
                        "view",
                        "        - kind: Group\n          name: \"system:{{labels.team}}\"\n"
                    )
                ),
            )),
            field: "spec.roleBindings[0].clusterRole",
            permission: "bind on clusterroles/view",
        },
        Attempt {
            name: "edit for every authenticated user as a view granter",
            who: "granter",
            action: Action::Apply(evil(
                case,
                "authenticated",
                &format!(
                    "  roleBindings:\n{}",
                    binding(
                        "all",
                        "edit",
                        "        - kind: Group\n          name: system:authenticated\n"
                    )
                ),
            )),
            field: "spec.roleBindings[0].clusterRole",
            permission: "bind on clusterroles/edit",
        },
        Attempt {
            name: "a ServiceAccount subject in kube-system",
            who: "editor",
            action: Action::Apply(evil(
                case,
                "sa",
                &format!(
                    "  roleBindings:\n{}",
                    binding("sa", "admin", kube_system_sa)
                ),
            )),
            field: "spec.roleBindings[0].clusterRole",
            permission: bind_admin,
        },
        Attempt {
            name: "a ServiceAccount subject in kube-system as a view granter",
            who: "granter",
            action: Action::Apply(evil(
                case,
                "sa-edit",
                &format!("  roleBindings:\n{}", binding("sa", "edit", kube_system_sa)),
            )),
            field: "spec.roleBindings[0].clusterRole",
            permission: "bind on clusterroles/edit",
        },
    ]
}

fn section_attempts(t: &Table) -> Vec<Attempt> {
    let base = t.base.as_str();
    vec![
        Attempt {
            name: "raise the protective quota",
            who: "editor",
            action: t.edit_protect(base.replace("pods: \"20\"", "pods: \"2000\"")),
            field: "spec.resourceQuota",
            permission: "resourcequotas",
        },
        Attempt {
            name: "remove the protective LimitRange",
            who: "editor",
            action: Action::Patch(r#"[{"op": "remove", "path": "/spec/limitRange"}]"#),
            field: "spec.limitRange",
            permission: "limitranges",
        },
        Attempt {
            name: "add a backup schedule",
            who: "editor",
            action: t.edit_protect(format!("{base}  backup:\n    schedule: \"@daily\"\n")),
            field: "spec.backup",
            permission: "schedules.velero.io in namespace velero",
        },
    ]
}

#[test]
fn every_attempt_has_a_distinct_name() {
    let attempts = attempts("c", "p", "u", "l", "t", "o");
    let names: std::collections::BTreeSet<_> = attempts.iter().map(|a| a.name).collect();
    assert_eq!(names.len(), attempts.len());
}

/// `baseliner validate --as-user` asks with SubjectAccessReviews what the
/// admission policy decides with its authorizer: on a table of identities
/// and profiles, both accept and refuse the same, naming the same field.
#[tokio::test]
async fn validate_as_user_agrees_with_admission() -> Result<()> {
    let env = TestEnv::with_velero(Velero::Any).await?;
    let home = env.namespace("verdicts").await?;
    create_roles(&env, &home).await?;
    let identities = [
        identity(&env, &home, "editor", &["edit"], &["write-profiles"]).await?,
        identity(
            &env,
            &home,
            "granter",
            &[],
            &[
                "write-profiles",
                "write-baseline",
                "label-namespaces",
                "bind-view",
            ],
        )
        .await?,
        identity(
            &env,
            &home,
            "unlabelled",
            &[],
            &["write-profiles", "write-baseline", "bind-all"],
        )
        .await?,
        identity(
            &env,
            &home,
            "author",
            &[],
            &[
                "write-profiles",
                "write-baseline",
                "label-namespaces",
                "bind-all",
            ],
        )
        .await?,
    ];
    let case = random_name("verdict");
    let profiles = [
        ("admin", protective_spec("admin", "restricted")),
        ("view", protective_spec("view", "restricted")),
        (
            "privileged",
            "  podSecurity:\n    enforce: privileged\n".to_owned(),
        ),
        (
            "netpol",
            "  networkPolicy:\n    defaultDeny: true\n".to_owned(),
        ),
        ("backup", "  backup:\n    schedule: \"@daily\"\n".to_owned()),
    ];
    let binary = baseliner_e2e::operator::operator_binary()?;
    let scratch = std::env::temp_dir().join(&case);
    std::fs::create_dir_all(&scratch)?;
    let namespace_group = format!("system:serviceaccounts:{}", home.name());
    let mut disagreements = Vec::new();
    let mut refused = 0;
    for (suffix, spec) in &profiles {
        let yaml = profile_yaml(&format!("{case}-{suffix}"), &case, spec);
        let file = scratch.join(format!("{suffix}.yaml"));
        std::fs::write(&file, &yaml)?;
        for id in &identities {
            let (admitted, answer) = as_user(
                &env,
                &id.kubeconfig,
                &["create", "--dry-run=server", "-f", "-"],
                Some(&yaml),
            )
            .await?;
            let cli = tokio::process::Command::new(&binary)
                .args(["validate", "--as-user", &id.user])
                .args([
                    "--as-group",
                    "system:serviceaccounts",
                    "--as-group",
                    &namespace_group,
                ])
                .args(["--as-group", "system:authenticated"])
                .arg(&file)
                .env("KUBECONFIG", &env.plane().kubeconfig)
                .output()
                .await?;
            let stderr = String::from_utf8_lossy(&cli.stderr).into_owned();
            let valid = cli.status.success();
            // The policy reports the first rule that fails; the CLI lists
            // them all in the same order, so its first line names the same field.
            let cli_field = stderr
                .lines()
                .next()
                .and_then(|l| l.split(": ").nth(2))
                .unwrap_or_default()
                .to_owned();
            let field_agrees =
                admitted || answer.contains(&format!("denied request: {cli_field}:"));
            if admitted != valid || !field_agrees {
                disagreements.push(format!(
                    "{suffix} as {}: admission {admitted} ({answer}); validate {valid} ({stderr})",
                    id.user
                ));
            }
            refused += usize::from(!admitted);
        }
    }
    ensure!(
        disagreements.is_empty(),
        "validate --as-user and admission disagree:\n{}",
        disagreements.join("\n")
    );
    ensure!(
        refused > 0 && refused < profiles.len() * identities.len(),
        "the table has both verdicts ({refused} refused)"
    );
    let _ = std::fs::remove_dir_all(&scratch);
    home.cleanup().await
}
