//! The author-rights policies removed and altered while the operator runs:
//! it stops writing RoleBindings, lowering Pod Security and honouring
//! exceptions, says why in status, Events and log, keeps reconciling the
//! rest, and takes up the held writes once the policy is back, without a
//! restart.
//!
//! The policy guards the whole plane, so this runs with the fault tests (a
//! plane of their own, one test at a time).

use std::time::Duration;

use anyhow::{Result, ensure};
use baseliner_e2e::baseline::{STRICT_SPEC, namespace_labels, profile_field};
use baseliner_e2e::{TestEnv, random_name, wait_until, workspace_root};
use k8s_openapi::api::core::v1::ResourceQuota;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::Api;

use crate::support::{CaseNamespaces, Faults, Profile, start_operator, summary};

const POLICY: &str = "baseliner-author-rights";
const EXCEPTION_POLICY: &str = "baseliner-exception-rights";
const REASON: &str = "AuthorRightsNotEnforced";
const ENFORCE: &str = "pod-security.kubernetes.io/enforce";
/// How long held writes are watched for not happening.
const HELD: Duration = Duration::from_secs(8);
const CONVERGE: Duration = Duration::from_secs(60);

/// Puts the shipped policy back, also when the test fails midway.
struct Reinstall<'a>(&'a TestEnv);

impl Reinstall<'_> {
    async fn now(&self) -> Result<()> {
        let file = workspace_root().join("crds/baseliner.dev_author-rights.yaml");
        self.0
            .kubectl([
                "apply",
                "--server-side",
                "--force-conflicts",
                "-f",
                &file.to_string_lossy(),
            ])
            .await?
            .ok()?;
        Ok(())
    }
}

impl Drop for Reinstall<'_> {
    fn drop(&mut self) {
        let plane = self.0.plane();
        let file = workspace_root().join("crds/baseliner.dev_author-rights.yaml");
        let _ = std::process::Command::new(&plane.kubectl)
            .env("KUBECONFIG", &plane.kubeconfig)
            .args(["apply", "--server-side", "--force-conflicts", "-f"])
            .arg(file)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

#[tokio::test]
#[ignore = "removes the plane's author-rights policy: run with `make test-faults`"]
async fn without_the_author_rights_policy_nothing_is_granted_and_it_resumes_when_reinstalled()
-> Result<()> {
    let faults = Faults::new().await?;
    let env = &faults.env;
    let client = faults.client();
    let (home, identity) = faults.operator_account("faults-rights").await?;
    let case = random_name("frights");
    let mut namespaces = CaseNamespaces::create(&faults, &case, 3).await?;
    let reinstall = Reinstall(env);
    reinstall.now().await?;
    let operator = start_operator(&identity, home.name(), &[])?;
    let profile = Profile::apply(env, "faults-rights", &case, STRICT_SPEC).await?;
    let first = namespaces.names[0].clone();
    let role_of = |ns: String| {
        let api = Api::<RoleBinding>::namespaced(client.clone(), &ns);
        async move {
            api.get_opt("baseliner-viewers")
                .await
                .ok()
                .flatten()
                .map(|rb| rb.role_ref.name)
        }
    };
    let enforce_of = |ns: String| {
        let client = client.clone();
        async move {
            namespace_labels(&client, &ns)
                .await
                .ok()
                .and_then(|l| l.get(ENFORCE).cloned())
        }
    };
    wait_until("the baseline with its RoleBinding", CONVERGE, || async {
        role_of(first.clone()).await.as_deref() == Some("view")
    })
    .await?;

    // The binding goes: the policy no longer denies anything.
    env.kubectl(["delete", "validatingadmissionpolicybinding", POLICY])
        .await?
        .ok()?;
    wait_until("the operator to notice", CONVERGE, || async {
        operator
            .output()
            .contains("author-rights policy not enforced")
    })
    .await?;
    // A change that raises a RoleBinding, lowers Pod Security and raises
    // the quota; and a namespace that joins.
    let changed = STRICT_SPEC
        .replace("clusterRole: view", "clusterRole: edit")
        .replace("enforce: restricted", "enforce: baseline")
        .replace("pods: \"20\"", "pods: \"30\"");
    profile.update(env, &changed).await?;
    let joined = namespaces.add(1).await?.remove(0);
    let quota_of = |ns: String| {
        let api = Api::<ResourceQuota>::namespaced(client.clone(), &ns);
        async move {
            api.get_opt("baseliner-quota")
                .await
                .ok()
                .flatten()
                .and_then(|q| q.spec?.hard?.get("pods").map(|p| p.0.clone()))
        }
    };
    wait_until(
        "the rest of the profile to be applied",
        CONVERGE,
        || async {
            quota_of(first.clone()).await.as_deref() == Some("30")
                && quota_of(joined.clone()).await.as_deref() == Some("30")
                && enforce_of(joined.clone()).await.as_deref() == Some("baseline")
        },
    )
    .await?;
    wait_until("the status to say why", CONVERGE, || async {
        profile_field(env, &profile.name, "{.status.nonCompliant[*].reason}")
            .await
            .is_ok_and(|r| r.contains(REASON))
    })
    .await?;
    tokio::time::sleep(HELD).await;
    ensure!(
        role_of(first.clone()).await.as_deref() == Some("view"),
        "the RoleBinding was not raised to edit"
    );
    ensure!(
        role_of(joined.clone()).await.is_none(),
        "no RoleBinding in the namespace that joined"
    );
    ensure!(
        enforce_of(first.clone()).await.as_deref() == Some("restricted"),
        "Pod Security was not lowered"
    );
    let message = profile_field(env, &profile.name, "{.status.nonCompliant[0].message}").await?;
    ensure!(
        message
            .contains("ValidatingAdmissionPolicyBinding baseliner-author-rights is not installed"),
        "the status names what is missing: {message}"
    );
    let stalled = profile_field(
        env,
        &profile.name,
        "{.status.conditions[?(@.type==\"Stalled\")].status}",
    )
    .await?;
    ensure!(
        stalled == "True",
        "the profile is Stalled until an administrator acts: {stalled}"
    );
    let events = env
        .kubectl([
            "get",
            "events.events.k8s.io",
            "-n",
            "default",
            "--field-selector",
            &format!("reason={REASON}"),
            "-o",
            "jsonpath={.items[*].regarding.name}",
        ])
        .await?
        .ok()?;
    ensure!(
        events.contains(&profile.name),
        "an Event says so: {events:?}"
    );

    // Reinstalled: the held writes happen, without a restart.
    let reinstalled = std::time::Instant::now();
    reinstall.now().await?;
    wait_until("the held writes", CONVERGE, || async {
        role_of(first.clone()).await.as_deref() == Some("edit")
            && role_of(joined.clone()).await.as_deref() == Some("edit")
            && enforce_of(first.clone()).await.as_deref() == Some("baseline")
    })
    .await?;
    let resumed = reinstalled.elapsed();
    wait_until("the status to clear", CONVERGE, || async {
        profile_field(env, &profile.name, "{.status.nonCompliant[*].reason}")
            .await
            .is_ok_and(|r| !r.contains(REASON))
    })
    .await?;

    // Weakened in place: a rule that always passes is as good as none.
    env.kubectl([
        "patch",
        "validatingadmissionpolicy",
        POLICY,
        "--type=json",
        "-p",
        r#"[{"op": "replace", "path": "/spec/validations/0/expression", "value": "true"}]"#,
    ])
    .await?
    .ok()?;
    wait_until(
        "the operator to refuse the altered policy",
        CONVERGE,
        || async {
            operator
                .output()
                .contains("differs from the one this operator ships")
        },
    )
    .await?;
    profile.update(env, STRICT_SPEC).await?;
    tokio::time::sleep(HELD).await;
    ensure!(
        role_of(first.clone()).await.as_deref() == Some("edit"),
        "nothing is rebound while the policy is altered"
    );
    reinstall.now().await?;
    wait_until("the binding back to view", CONVERGE, || async {
        role_of(first.clone()).await.as_deref() == Some("view")
    })
    .await?;

    summary(
        "author-rights policy removed",
        &format!(
            "RoleBindings and Pod Security held, the rest applied; reinstalled: held writes done {:.1} s later, same operator process",
            resumed.as_secs_f64()
        ),
    );
    drop(operator);
    drop(profile);
    namespaces.cleanup().await?;
    home.cleanup().await
}

#[tokio::test]
#[ignore = "removes the plane's exception-rights policy: run with `make test-faults`"]
async fn without_the_exception_rights_policy_no_exception_is_honoured() -> Result<()> {
    let faults = Faults::new().await?;
    let env = &faults.env;
    let client = faults.client();
    let (home, identity) = faults.operator_account("faults-excrights").await?;
    let case = random_name("fexc");
    let namespaces = CaseNamespaces::create(&faults, &case, 2).await?;
    let reinstall = Reinstall(env);
    reinstall.now().await?;
    let operator = start_operator(&identity, home.name(), &[])?;
    let profile = Profile::apply(env, "faults-excrights", &case, STRICT_SPEC).await?;
    let (legacy, other) = (namespaces.names[0].clone(), namespaces.names[1].clone());
    let default_deny = |ns: String| {
        let api = Api::<NetworkPolicy>::namespaced(client.clone(), &ns);
        async move {
            api.get_opt("baseliner-default-deny")
                .await
                .is_ok_and(|p| p.is_some())
        }
    };
    wait_until("the baseline", CONVERGE, || async {
        default_deny(legacy.clone()).await && default_deny(other.clone()).await
    })
    .await?;
    let exception = random_name("fexc-waiver");
    let expires = (k8s_openapi::jiff::Timestamp::now()
        + k8s_openapi::jiff::SignedDuration::from_hours(24))
    .to_string();
    baseliner_e2e::baseline::kubectl_apply(
        env,
        &format!(
            "apiVersion: baseliner.dev/v1alpha1\nkind: ProfileException\nmetadata: {{name: {exception}}}\nspec: {{profile: {}, namespaces: {{names: [{legacy}]}}, waive: {{defaultDeny: true}}, reason: fault test, expires: '{expires}'}}\n",
            profile.name
        ),
    )
    .await?;
    wait_until("the waiver in force", CONVERGE, || async {
        !default_deny(legacy.clone()).await
    })
    .await?;

    // Without the exception policy's binding, anyone who may write
    // exceptions could waive anything: none is honoured.
    env.kubectl([
        "delete",
        "validatingadmissionpolicybinding",
        EXCEPTION_POLICY,
    ])
    .await?
    .ok()?;
    wait_until("default-deny back", CONVERGE, || async {
        default_deny(legacy.clone()).await
    })
    .await?;
    let reason = || async {
        env.kubectl([
            "get",
            "profileexception",
            &exception,
            "-o",
            "jsonpath={.status.conditions[0].reason}",
        ])
        .await
        .map(|o| o.stdout.trim().to_owned())
        .unwrap_or_default()
    };
    wait_until("the exception to say why", CONVERGE, || async {
        reason().await == REASON
    })
    .await?;
    ensure!(
        operator
            .output()
            .contains("author-rights policy not enforced"),
        "the log says so"
    );

    // Reinstalled: the waiver holds again, without a restart.
    reinstall.now().await?;
    wait_until("the waiver back in force", CONVERGE, || async {
        !default_deny(legacy.clone()).await && reason().await != REASON
    })
    .await?;
    ensure!(
        default_deny(other.clone()).await,
        "the other namespace kept its baseline"
    );
    summary(
        "exception-rights policy removed",
        "no exception honoured (the waived control restored), the exception's status names the reason; reinstalled: the waiver holds again, same operator process",
    );
    env.kubectl(["delete", "profileexception", &exception])
        .await?
        .ok()?;
    drop(operator);
    drop(profile);
    namespaces.cleanup().await?;
    home.cleanup().await
}
