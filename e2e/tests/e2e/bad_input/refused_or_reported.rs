//! Every row of the table, in one test beside a healthy control profile:
//! refused, or accepted and then reported or harmless; the operator stays
//! up, the control profile converges, and deleting the profiles leaves
//! nothing behind.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{Result, ensure};
use baseliner::api::ProductionProfile;
use baseliner::validate::validate_documents;
use baseliner_e2e::baseline::{
    STRICT_SPEC, keys, kubectl_apply, managed_objects, profile_yaml, strict_objects,
};
use baseliner_e2e::operator::shared_operator;
use baseliner_e2e::velero::{VELERO_NAMESPACE, schedules};
use baseliner_e2e::{TestEnv, TestNamespace, random_name, wait_until};
use k8s_openapi::api::events::v1::Event;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use serde_json::json;

use super::checks::{
    check_refused, check_written, condition, shared_operator_health, status_matches,
};
use super::fixtures::fixture_cases;
use super::table::{Accepted, Expect, Refused};
use super::{SETTLE, hostile_accepted, hostile_refused};

/// One accepted case, running.
struct Running {
    case: Accepted,
    profile: String,
    namespace: TestNamespace,
}

/// The healthy profile that runs alongside the bad ones.
struct Control {
    profile: String,
    namespace: TestNamespace,
}

#[tokio::test]
async fn bad_profiles_are_refused_or_reported_and_harm_nothing() -> Result<()> {
    let env = TestEnv::new().await?;
    shared_operator(env.plane())?;
    let mut failures: Vec<String> = Vec::new();

    // (a) Fixtures the API server must refuse, and hostile ones likewise.
    let (mut refused, semantic) = fixture_cases()?;
    refused.extend(hostile_refused());
    let mut tried = refused.len();
    let refused_count = check_all_refused(&env, &refused, &mut failures).await?;

    // (b) Profiles the API server accepts: each selects a namespace of its
    // own; a healthy control profile runs alongside.
    let mut cases = semantic;
    cases.extend(hostile_accepted());
    tried += cases.len();
    let running = apply_accepted(&env, cases, &mut failures).await?;
    let control = start_control(&env).await?;

    // Every case's status settles to what it should say.
    let pending = settle(&env, &running).await?;
    for (id, why) in &pending {
        failures.push(format!("{id}: status did not settle as expected: {why}"));
    }

    // What each case wrote (or did not).
    let (reported_count, harmless_count) =
        check_outcomes(&env, &running, &pending, &mut failures).await?;

    // The control profile converged alongside, untouched by the others, and
    // the operator is still up and healthy.
    check_control_and_operator(&env, &control, &mut failures).await;

    println!(
        "bad input: tried {tried}, rejected by the API server {refused_count}, reported in status {reported_count}, accepted and harmless {harmless_count}, failures {}",
        failures.len()
    );

    // Nothing left behind: deleting the profiles prunes what they made,
    // Velero Schedules in the Velero namespace included.
    delete_and_check_pruned(&env, &running, &control, &mut failures).await?;
    for run in running {
        run.namespace.cleanup().await?;
    }
    control.namespace.cleanup().await?;

    ensure!(tried >= 40, "only {tried} bad profiles tried");
    ensure!(
        failures.is_empty(),
        "{} of {tried} bad profiles were not handled as they should be:\n{}",
        failures.len(),
        failures.join("\n")
    );
    Ok(())
}

/// Checks every profile the API server must refuse; returns how many were
/// refused as they should be.
async fn check_all_refused(
    env: &TestEnv,
    refused: &[Refused],
    failures: &mut Vec<String>,
) -> Result<usize> {
    let mut refused_count = 0usize;
    for case in refused {
        match check_refused(env, &case.id, &case.yaml, &case.path).await? {
            None => refused_count += 1,
            Some(failure) => failures.push(failure),
        }
    }
    Ok(refused_count)
}

/// Applies every accepted case, each selecting a namespace of its own;
/// returns those the API server took.
async fn apply_accepted(
    env: &TestEnv,
    cases: Vec<Accepted>,
    failures: &mut Vec<String>,
) -> Result<Vec<Running>> {
    let mut running = Vec::new();
    for mut case in cases {
        let key = random_name("bad");
        let mut labels = case.labels.clone();
        labels.insert("e2e-case".to_owned(), key.clone());
        let prefix = case
            .namespace_prefix
            .clone()
            .unwrap_or_else(|| format!("bad-{}", case.id.trim_end_matches(".yaml")));
        let namespace = env.namespace_with_labels(&prefix, labels).await?;
        let profile = case
            .profile_name
            .clone()
            .unwrap_or_else(|| random_name(&format!("bad-{}", case.id.trim_end_matches(".yaml"))));
        case.profile["metadata"] = json!({"name": profile});
        if case.own_selector && case.id != "huge-lists" {
            case.profile["spec"]["namespaces"] =
                json!({"selector": {"matchLabels": {"e2e-case": key}}});
        }
        if case.id == "huge-lists" {
            case.profile["spec"]["namespaces"]["selector"] =
                json!({"matchLabels": {"e2e-case": key}});
        }
        let yaml = serde_json::to_string(&case.profile)?;
        // Same verdict offline: nothing the API server would refuse.
        let enforced: Vec<String> = validate_documents(&yaml)
            .iter()
            .flat_map(|r| &r.problems)
            .filter(|p| p.stage.enforced_by_api_server())
            .map(ToString::to_string)
            .collect();
        if !enforced.is_empty() {
            failures.push(format!(
                "{}: the offline validator refuses what the API server accepts: {enforced:?}",
                case.id
            ));
        }
        if let Err(error) = kubectl_apply(env, &yaml).await {
            failures.push(format!("{}: the API server refused it: {error:#}", case.id));
            namespace.cleanup().await?;
            continue;
        }
        running.push(Running {
            case,
            profile,
            namespace,
        });
    }
    Ok(running)
}

/// The strict baseline, in a namespace of its own.
async fn start_control(env: &TestEnv) -> Result<Control> {
    let control_key = random_name("ctl");
    let control = random_name("bad-control");
    let control_ns = env
        .namespace_with_labels(
            "bad-control",
            BTreeMap::from([
                ("e2e-case".to_owned(), control_key.clone()),
                ("team".to_owned(), "payments".to_owned()),
            ]),
        )
        .await?;
    kubectl_apply(env, &profile_yaml(&control, &control_key, STRICT_SPEC)).await?;
    Ok(Control {
        profile: control,
        namespace: control_ns,
    })
}

/// Polls every case's status until each says what it should, or
/// [`SETTLE`] has passed; returns the cases that did not, with what their
/// status said instead.
async fn settle(env: &TestEnv, running: &[Running]) -> Result<BTreeMap<String, String>> {
    let profiles: Api<ProductionProfile> = Api::all(env.client());
    let mut pending: BTreeMap<String, String> = running
        .iter()
        .map(|r| (r.case.id.clone(), "not checked yet".to_owned()))
        .collect();
    let deadline = std::time::Instant::now() + SETTLE;
    while !pending.is_empty() && std::time::Instant::now() < deadline {
        for run in running {
            if !pending.contains_key(&run.case.id) {
                continue;
            }
            let verdict = match profiles.get_opt(&run.profile).await? {
                None => Err("the profile is gone".to_owned()),
                Some(profile) => status_matches(&profile, run.namespace.name(), &run.case.expect),
            };
            match verdict {
                Ok(()) => {
                    pending.remove(&run.case.id);
                }
                Err(why) => {
                    pending.insert(run.case.id.clone(), why);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(pending)
}

/// What each settled case wrote (or did not), and the Warning Events of
/// those reported; returns how many were reported and how many harmless.
async fn check_outcomes(
    env: &TestEnv,
    running: &[Running],
    pending: &BTreeMap<String, String>,
    failures: &mut Vec<String>,
) -> Result<(usize, usize)> {
    let client = env.client();
    let mut reported_count = 0usize;
    let mut harmless_count = 0usize;
    let events = Api::<Event>::namespaced(client.clone(), "default")
        .list(&ListParams::default())
        .await?
        .items;
    for run in running {
        if pending.contains_key(&run.case.id) {
            continue;
        }
        let result = match &run.case.expect {
            Expect::Reported { reason, .. } => {
                reported_count += 1;
                // Problems found while rendering are also Warning Events.
                let rendered = [
                    "RoleNotAllowed",
                    "InvalidSubject",
                    "InvalidSchedule",
                    "EgressAllowsNothing",
                ];
                if rendered.contains(reason) {
                    let found = events.iter().any(|e| {
                        e.reason.as_deref() == Some(*reason)
                            && e.type_.as_deref() == Some("Warning")
                            && e.regarding.as_ref().and_then(|r| r.name.as_deref())
                                == Some(run.profile.as_str())
                    });
                    if found {
                        Ok(())
                    } else {
                        Err(anyhow::anyhow!(
                            "no Warning Event {reason} about the profile"
                        ))
                    }
                } else {
                    Ok(())
                }
            }
            Expect::Compliant(check) => {
                harmless_count += 1;
                check_written(env, *check, &run.profile, run.namespace.name()).await
            }
            Expect::SelectsNothing => {
                harmless_count += 1;
                let objects = managed_objects(&client, run.namespace.name()).await?;
                if objects.is_empty() {
                    Ok(())
                } else {
                    Err(anyhow::anyhow!("it wrote {objects:?}"))
                }
            }
        };
        if let Err(error) = result {
            failures.push(format!("{}: {error:#}", run.case.id));
        }
    }
    Ok((reported_count, harmless_count))
}

/// The control profile converged alongside, untouched by the others; the
/// operator is still up and `/healthz` answers 200.
async fn check_control_and_operator(env: &TestEnv, control: &Control, failures: &mut Vec<String>) {
    let client = env.client();
    let profiles: Api<ProductionProfile> = Api::all(client.clone());
    let control_ok = wait_until("the control profile to be compliant", SETTLE, || async {
        let objects = managed_objects(&client, control.namespace.name()).await;
        let status = profiles.get_opt(&control.profile).await;
        objects.is_ok_and(|o| {
            keys(&o) == strict_objects() && o.values().all(|p| p == &control.profile)
        }) && status.is_ok_and(|p| {
            p.and_then(|p| p.status).is_some_and(|s| {
                s.matched_namespaces == 1
                    && s.compliant_namespaces == 1
                    && condition(&s, "Ready") == Some("True")
            })
        })
    })
    .await;
    if let Err(error) = control_ok {
        failures.push(format!("control profile: {error:#}"));
    }

    // The operator is still up and healthy.
    if let Err(error) = shared_operator(env.plane()) {
        failures.push(format!("the operator stopped: {error:#}"));
    }
    match shared_operator_health().await {
        Ok(response) if response.starts_with("HTTP/1.1 200") => {}
        Ok(response) => failures.push(format!("/healthz: {response}")),
        Err(error) => failures.push(format!("/healthz: {error:#}")),
    }
}

/// Deletes every profile, the control one included, and waits for their
/// Schedules and managed objects to be pruned.
async fn delete_and_check_pruned(
    env: &TestEnv,
    running: &[Running],
    control: &Control,
    failures: &mut Vec<String>,
) -> Result<()> {
    let client = env.client();
    let mut names: Vec<String> = running.iter().map(|r| r.profile.clone()).collect();
    names.push(control.profile.clone());
    let mut args = vec![
        "delete".to_owned(),
        "productionprofile".to_owned(),
        "--wait=true".to_owned(),
    ];
    args.extend(names.iter().cloned());
    env.kubectl(&args).await?.ok()?;
    let namespaces: BTreeSet<String> = running
        .iter()
        .map(|r| r.namespace.name().to_owned())
        .chain([control.namespace.name().to_owned()])
        .collect();
    let left = wait_until(
        "Schedules of deleted profiles to be pruned",
        SETTLE,
        || async {
            schedules(client.clone(), VELERO_NAMESPACE)
                .list(&ListParams::default().labels("app.kubernetes.io/managed-by=baseliner"))
                .await
                .is_ok_and(|list| {
                    !list.items.iter().any(|s| {
                        s.labels()
                            .get("baseliner.dev/namespace")
                            .is_some_and(|n| namespaces.contains(n))
                    })
                })
        },
    )
    .await;
    if let Err(error) = left {
        failures.push(format!("left behind: {error:#}"));
    }
    let left = wait_until(
        "managed objects of deleted profiles to be pruned",
        SETTLE,
        || async {
            for namespace in &namespaces {
                if !managed_objects(&client, namespace)
                    .await
                    .is_ok_and(|o| o.is_empty())
                {
                    return false;
                }
            }
            true
        },
    )
    .await;
    if let Err(error) = left {
        failures.push(format!("left behind: {error:#}"));
    }
    Ok(())
}
