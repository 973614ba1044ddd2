//! `baseliner plan`, `why` and `report` against the live cluster, run as a
//! read-only identity (`config/rbac/reader_role.yaml`) whose writes are
//! counted: a plan lists exactly what the operator then does, none missing
//! and none extra; `why` and `report` agree with the live state after drift;
//! the HTML report opens in headless Chromium; `kubectl baseliner` works as
//! a plugin. Nothing is written by any of them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail, ensure};
use baseliner::api::NAMESPACE_LABEL;
use baseliner::kind::ManagedKind;
use baseliner_e2e::baseline::{delete_profile, kubectl_apply};
use baseliner_e2e::inspect::{Reader, describe};
use baseliner_e2e::velero::VELERO_NAMESPACE;
use baseliner_e2e::{TestEnv, random_name, wait_until, workspace_root};
use kube::ResourceExt;
use kube::api::{Api, DynamicObject, ListParams};
use serde_json::Value;

use super::support::{CONVERGE, current_status, setup};

/// (kind, namespace, name) of an object.
type Key = (String, String, String);

/// What happened to an object between two reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Change {
    Created,
    Changed,
    Replaced,
    Deleted,
}

/// An object as compared: its uid and everything but status and the
/// server's bookkeeping.
#[derive(Clone, Debug, PartialEq)]
struct Seen {
    uid: String,
    content: Value,
}

/// Every object of the managed kinds in `namespaces` (managed or not: an
/// orphaned object loses baseliner's labels), their Schedules, and the
/// namespaces' labels and annotations.
async fn cluster_state(
    env: &TestEnv,
    namespaces: &[&str],
) -> Result<(BTreeMap<Key, Seen>, BTreeMap<String, Value>)> {
    let client = env.client();
    let mut objects = BTreeMap::new();
    for kind in ManagedKind::ALL {
        let resource = kind.api_resource();
        let lists: Vec<(String, ListParams)> = match kind {
            ManagedKind::Schedule => vec![(
                VELERO_NAMESPACE.to_owned(),
                ListParams::default()
                    .labels(&format!("{NAMESPACE_LABEL} in ({})", namespaces.join(","))),
            )],
            _ => namespaces
                .iter()
                .map(|ns| ((*ns).to_owned(), ListParams::default()))
                .collect(),
        };
        for (namespace, params) in lists {
            let api: Api<DynamicObject> =
                Api::namespaced_with(client.clone(), &namespace, &resource);
            for object in api.list(&params).await? {
                let mut content = serde_json::to_value(&object)?;
                if let Some(map) = content.as_object_mut() {
                    map.remove("status");
                }
                if let Some(meta) = content["metadata"].as_object_mut() {
                    for field in [
                        "resourceVersion",
                        "managedFields",
                        "generation",
                        "uid",
                        "creationTimestamp",
                    ] {
                        meta.remove(field);
                    }
                }
                objects.insert(
                    (
                        kind.as_str().to_owned(),
                        namespace.clone(),
                        object.name_any(),
                    ),
                    Seen {
                        uid: object.uid().unwrap_or_default(),
                        content,
                    },
                );
            }
        }
    }
    let mut labels = BTreeMap::new();
    let api = Api::<k8s_openapi::api::core::v1::Namespace>::all(client);
    for namespace in namespaces {
        let ns = api.get(namespace).await?;
        labels.insert(
            (*namespace).to_owned(),
            serde_json::json!({"labels": ns.labels(), "annotations": ns.annotations()}),
        );
    }
    Ok((objects, labels))
}

/// What changed from `before` to `after`.
fn changes(
    before: &(BTreeMap<Key, Seen>, BTreeMap<String, Value>),
    after: &(BTreeMap<Key, Seen>, BTreeMap<String, Value>),
) -> (BTreeMap<Key, Change>, BTreeSet<String>) {
    let mut objects = BTreeMap::new();
    let keys: BTreeSet<&Key> = before.0.keys().chain(after.0.keys()).collect();
    for key in keys {
        let change = match (before.0.get(key), after.0.get(key)) {
            (None, Some(_)) => Change::Created,
            (Some(_), None) => Change::Deleted,
            (Some(a), Some(b)) if a.uid != b.uid => Change::Replaced,
            (Some(a), Some(b)) if a.content != b.content => Change::Changed,
            _ => continue,
        };
        objects.insert(key.clone(), change);
    }
    let namespaces = after
        .1
        .iter()
        .filter(|(name, value)| before.1.get(*name) != Some(value))
        .map(|(name, _)| name.clone())
        .collect();
    (objects, namespaces)
}

/// What the plan says will happen in `namespaces`.
fn predicted(
    plan: &Value,
    namespaces: &[&str],
) -> Result<(BTreeMap<Key, Change>, BTreeSet<String>)> {
    let mut objects = BTreeMap::new();
    let mut relabelled = BTreeSet::new();
    for namespace in plan["namespaces"].as_array().into_iter().flatten() {
        let name = namespace["namespace"].as_str().unwrap_or_default();
        if !namespaces.contains(&name) {
            continue;
        }
        if namespace["labels"]["writes"] == true {
            relabelled.insert(name.to_owned());
        }
        for object in namespace["objects"].as_array().into_iter().flatten() {
            let change = match object["action"].as_str() {
                Some("create") => Change::Created,
                Some("update" | "orphan") => Change::Changed,
                Some("replace") => Change::Replaced,
                Some("delete") => Change::Deleted,
                Some("report" | "held") => continue,
                other => bail!("unknown action {other:?} in {object}"),
            };
            let key = (
                object["kind"].as_str().unwrap_or_default().to_owned(),
                object["namespace"].as_str().unwrap_or_default().to_owned(),
                object["name"].as_str().unwrap_or_default().to_owned(),
            );
            objects.insert(key, change);
        }
    }
    Ok((objects, relabelled))
}

/// A profile over namespaces labelled `tier` in `tiers` of this case.
fn profile(name: &str, case: &str, tiers: &[&str], body: &str) -> String {
    format!(
        "apiVersion: baseliner.dev/v1alpha1\nkind: ProductionProfile\nmetadata:\n  name: {name}\nspec:\n  namespaces:\n    selector:\n      matchLabels: {{e2e-case: {case}}}\n      matchExpressions:\n        - {{key: tier, operator: In, values: [{}]}}\n{body}",
        tiers.join(", ")
    )
}

const BASE_BODY: &str = "  networkPolicy: {defaultDeny: true, allowDNS: true}
  limitRange:
    default: {cpu: 500m, memory: 512Mi}
  podSecurity: {enforce: baseline}
  roleBindings:
    - name: viewers
      clusterRole: view
      subjects: [{kind: Group, name: \"team-{{labels.team}}\"}]
  backup: {schedule: \"0 1 * * *\", ttl: 72h}
";

const TEAM_BODY: &str = "  priority: 10
  networkPolicy: {defaultDeny: true, allowSameNamespace: true}
  limitRange:
    default: {cpu: \"1\", memory: 1Gi}
  resourceQuota:
    hard: {pods: \"30\"}
  podSecurity: {enforce: restricted, warn: restricted}
  roleBindings:
    - name: viewers
      clusterRole: view
      subjects: [{kind: Group, name: \"team-{{labels.team}}\"}]
";

/// The profile files of one step: written to `dir` (replacing the last
/// step's), planned as the reader, then applied with kubectl.
fn write_files(dir: &Path, files: &[(&str, String)]) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        std::fs::remove_file(entry?.path())?;
    }
    for (name, yaml) in files {
        std::fs::write(dir.join(format!("{name}.yaml")), yaml)?;
    }
    Ok(())
}

fn plan_json(reader: &Reader, dir: &Path) -> Result<(Option<i32>, Value)> {
    let output = reader.baseliner(&["plan", "-f", &dir.to_string_lossy(), "-o", "json"])?;
    let plan = serde_json::from_slice(&output.stdout)
        .with_context(|| format!("plan -o json: {}", describe(&output)))?;
    Ok((output.status.code(), plan))
}

fn scratch_dir(case: &str) -> Result<PathBuf> {
    let dir = workspace_root().join("target").join("e2e-plans").join(case);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

#[tokio::test]
async fn plan_lists_exactly_what_the_operator_then_does() -> Result<()> {
    let env = setup().await?;
    let reader = Reader::new(&env).await?;
    let case = random_name("plan");
    let base = format!("{case}-base");
    let team = format!("{case}-team");
    let labels = |tier: &str| {
        BTreeMap::from([
            ("e2e-case".to_owned(), case.clone()),
            ("tier".to_owned(), tier.to_owned()),
            ("team".to_owned(), "web".to_owned()),
        ])
    };
    let a = env.namespace_with_labels("plan-a", labels("a")).await?;
    let b = env.namespace_with_labels("plan-b", labels("b")).await?;
    let namespaces = [a.name(), b.name()];
    let dir = scratch_dir(&case)?;

    let team_without_quota = TEAM_BODY.replace("  resourceQuota:\n    hard: {pods: \"30\"}\n", "");
    let team_edit = team_without_quota.replace("clusterRole: view", "clusterRole: edit");
    let team_orphan = format!("{team_edit}  deletionPolicy: Orphan\n");
    let team_orphan_no_limits = team_orphan.replace(
        "  limitRange:\n    default: {cpu: \"1\", memory: 1Gi}\n",
        "",
    );
    let team_audit = format!(
        "{team_orphan_no_limits}  mode: Audit\n  resourceQuota:\n    hard: {{pods: \"5\"}}\n"
    );
    ensure!(team_without_quota != TEAM_BODY && team_edit != team_without_quota);
    ensure!(team_orphan_no_limits != team_orphan);
    let steps: Vec<(&str, Vec<(&str, String)>)> = vec![
        (
            "a new profile",
            vec![(&base, profile(&base, &case, &["a"], BASE_BODY))],
        ),
        (
            "its selector widened",
            vec![(&base, profile(&base, &case, &["a", "b"], BASE_BODY))],
        ),
        (
            "its selector narrowed",
            vec![(&base, profile(&base, &case, &["a"], BASE_BODY))],
        ),
        (
            "a profile of higher priority over the same namespace",
            vec![
                (&base, profile(&base, &case, &["a"], BASE_BODY)),
                (&team, profile(&team, &case, &["a"], TEAM_BODY)),
            ],
        ),
        (
            "a section removed",
            vec![(&team, profile(&team, &case, &["a"], &team_without_quota))],
        ),
        (
            "a RoleBinding's role changed",
            vec![(&team, profile(&team, &case, &["a"], &team_edit))],
        ),
        (
            "deletionPolicy Orphan",
            vec![(&team, profile(&team, &case, &["a"], &team_orphan))],
        ),
        (
            "a section removed under Orphan",
            vec![(&team, profile(&team, &case, &["a"], &team_orphan_no_limits))],
        ),
        (
            "Audit mode, with a section added",
            vec![(&team, profile(&team, &case, &["a"], &team_audit))],
        ),
    ];
    for (step, files) in &steps {
        write_files(&dir, files)?;
        let (code, plan) = plan_json(&reader, &dir)?;
        ensure!(
            code == Some(2),
            "{step}: plan exited {code:?}, not 2 (changes)\n{plan:#}"
        );
        let expected = predicted(&plan, &namespaces)?;
        check_step_details(step, &plan, a.name(), &base, &team)?;

        let before = cluster_state(&env, &namespaces).await?;
        env.kubectl([
            "apply",
            "--server-side",
            "--field-manager=e2e-user",
            "-f",
            &dir.to_string_lossy(),
        ])
        .await?
        .ok()?;
        for (name, _) in files {
            wait_until(&format!("{step}: status of {name}"), CONVERGE, || async {
                current_status(&env, name).await.is_some()
            })
            .await?;
        }
        let deadline = std::time::Instant::now() + CONVERGE;
        loop {
            let done = changes(&before, &cluster_state(&env, &namespaces).await?);
            if done == expected {
                break;
            }
            if std::time::Instant::now() > deadline {
                bail!(
                    "{step}: the plan said\n{expected:#?}\nthe operator did\n{done:#?}\nplan:\n{plan:#}"
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        // Nothing more follows (no write the plan did not list).
        tokio::time::sleep(Duration::from_secs(3)).await;
        let settled = changes(&before, &cluster_state(&env, &namespaces).await?);
        ensure!(
            settled == expected,
            "{step}: after settling the operator had done\n{settled:#?}\nthe plan said\n{expected:#?}"
        );
    }

    // Nothing left to change: exit 0, here and through kubectl's plugin
    // mechanism.
    let (code, plan) = plan_json(&reader, &dir)?;
    ensure!(
        code == Some(0),
        "an applied plan exited {code:?}, not 0\n{plan:#}"
    );
    let plugin = reader.kubectl_plugin(
        &env.plane().kubectl,
        &["plan", "-f", &dir.to_string_lossy()],
    )?;
    let text = String::from_utf8_lossy(&plugin.stdout);
    ensure!(
        plugin.status.code() == Some(0)
            && text.contains("Profiles: no change")
            && text.contains("Summary"),
        "kubectl baseliner plan: {}",
        describe(&plugin)
    );
    // A change shown through the plugin exits 2, with the Markdown form.
    write_files(
        &dir,
        &[(&team, profile(&team, &case, &["a", "b"], &team_audit))],
    )?;
    let plugin = reader.kubectl_plugin(
        &env.plane().kubectl,
        &["plan", "-f", &dir.to_string_lossy(), "-o", "markdown"],
    )?;
    let text = String::from_utf8_lossy(&plugin.stdout);
    ensure!(
        plugin.status.code() == Some(2) && text.contains(&format!("#### Namespace `{}`", b.name())),
        "kubectl baseliner plan -o markdown: {}",
        describe(&plugin)
    );
    // Invalid manifests: exit 1, the field named.
    std::fs::write(
        dir.join("bad.yaml"),
        profile("bad", &case, &["a"], "  priority: 5000\n"),
    )?;
    let output = reader.baseliner(&["plan", "-f", &dir.to_string_lossy()])?;
    ensure!(
        output.status.code() == Some(1)
            && String::from_utf8_lossy(&output.stderr).contains("spec.priority"),
        "an invalid profile: {}",
        describe(&output)
    );

    for name in [&team, &base] {
        delete_profile(&env, name).await?;
    }
    reader.finish(&env).await?;
    a.cleanup().await?;
    b.cleanup().await
}

/// What the plan must say beyond which objects change: owners and
/// conflicts at the priority swap, grants and revocations at the role
/// change, no writes under Audit.
fn check_step_details(step: &str, plan: &Value, a: &str, base: &str, team: &str) -> Result<()> {
    let namespace = |name: &str| {
        plan["namespaces"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|n| n["namespace"] == name)
            .cloned()
            .ok_or_else(|| anyhow!("{step}: the plan does not list namespace {name}\n{plan:#}"))
    };
    match step {
        "a profile of higher priority over the same namespace" => {
            let a = namespace(a)?;
            ensure!(
                a["ownerBefore"]["profile"] == base && a["ownerAfter"]["profile"] == team,
                "{step}: owners {} → {}",
                a["ownerBefore"],
                a["ownerAfter"]
            );
            ensure!(
                a["conflicts"] == serde_json::json!([base]),
                "{step}: conflicts {}",
                a["conflicts"]
            );
        }
        "a RoleBinding's role changed" => {
            let role_of = |list: &Value| -> Vec<String> {
                list.as_array()
                    .into_iter()
                    .flatten()
                    .filter(|g| g["namespace"] == a)
                    .map(|g| g["clusterRole"].as_str().unwrap_or_default().to_owned())
                    .collect()
            };
            let summary = &plan["summary"];
            ensure!(
                role_of(&summary["granted"]) == ["edit"]
                    && role_of(&summary["revoked"]) == ["view"],
                "{step}: granted {} revoked {}",
                summary["granted"],
                summary["revoked"]
            );
        }
        "Audit mode, with a section added" => {
            let a = namespace(a)?;
            let actions: Vec<&str> = a["objects"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|o| o["action"].as_str())
                .collect();
            ensure!(
                actions.contains(&"report") && actions.iter().all(|x| *x == "report"),
                "{step}: Audit plans only reports, got {actions:?}"
            );
        }
        _ => {}
    }
    Ok(())
}

/// The reader's `why` and `report` (JSON, CSV, HTML) of a namespace whose
/// profile went to Audit, after an object was deleted and a label removed.
#[tokio::test]
async fn why_and_report_agree_with_the_live_state_after_drift() -> Result<()> {
    let env = setup().await?;
    let reader = Reader::new(&env).await?;
    let case = random_name("why");
    let name = format!("{case}-prof");
    let ns = env
        .namespace_with_labels(
            "why",
            BTreeMap::from([
                ("e2e-case".to_owned(), case.clone()),
                ("tier".to_owned(), "a".to_owned()),
                ("team".to_owned(), "web".to_owned()),
            ]),
        )
        .await?;
    let client = env.client();
    kubectl_apply(&env, &profile(&name, &case, &["a"], BASE_BODY)).await?;
    wait_until("the baseline", CONVERGE, || async {
        current_status(&env, &name)
            .await
            .is_some_and(|s| s.matched_namespaces == 1 && s.compliant_namespaces == 1)
    })
    .await?;
    kubectl_apply(
        &env,
        &profile(&name, &case, &["a"], &format!("{BASE_BODY}  mode: Audit\n")),
    )
    .await?;
    wait_until("Audit mode", CONVERGE, || async {
        current_status(&env, &name).await.is_some()
    })
    .await?;
    env.kubectl(["delete", "limitrange", "baseliner-limits", "-n", ns.name()])
        .await?
        .ok()?;
    env.kubectl([
        "label",
        "namespace",
        ns.name(),
        "pod-security.kubernetes.io/enforce-",
    ])
    .await?
    .ok()?;

    let output = reader.baseliner(&["why", ns.name(), "-o", "json"])?;
    let why: Value = serde_json::from_slice(&output.stdout).with_context(|| describe(&output))?;
    ensure!(why["owner"] == name.as_str(), "why: owner {}", why["owner"]);
    let status = |evidence: &Value, control: &str| {
        evidence["controls"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["control"] == control)
            .map(|c| c["status"].as_str().unwrap_or_default().to_owned())
            .unwrap_or_default()
    };
    let evidence = &why["evidence"];
    for (control, expected) in [
        ("limits", "missing"),
        ("podSecurity", "drifted"),
        ("networkIsolation", "compliant"),
        ("dnsAllow", "compliant"),
        ("roleBindings", "compliant"),
        ("backups", "compliant"),
        ("quota", "notRequired"),
    ] {
        ensure!(
            status(evidence, control) == expected,
            "why: {control} is {}, not {expected}\n{why:#}",
            status(evidence, control)
        );
    }
    // The evidence names the live object's very version.
    let deny = Api::<k8s_openapi::api::networking::v1::NetworkPolicy>::namespaced(
        client.clone(),
        ns.name(),
    )
    .get("baseliner-default-deny")
    .await?;
    let shown = evidence["controls"][0]["evidence"][0]["resourceVersion"].clone();
    ensure!(
        shown == deny.resource_version().unwrap_or_default().as_str(),
        "why: default-deny at {shown}, live {:?}",
        deny.resource_version()
    );
    ensure!(
        why["recentActions"]
            .as_array()
            .is_some_and(|a| !a.is_empty()),
        "why: no recent actions from Events\n{why:#}"
    );

    // The report says the same of this namespace, in every format.
    let output = reader.baseliner(&["report", "-o", "json"])?;
    let report: Value =
        serde_json::from_slice(&output.stdout).with_context(|| describe(&output))?;
    let in_report = report["profiles"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == name.as_str())
        .and_then(|p| {
            p["namespaces"]
                .as_array()?
                .iter()
                .find(|n| n["namespace"] == ns.name())
                .cloned()
        })
        .ok_or_else(|| anyhow!("the report does not list {} under {name}", ns.name()))?;
    ensure!(
        &in_report == evidence,
        "report and why differ:\n{in_report:#}\n{evidence:#}"
    );
    let csv = reader.baseliner(&["report", "-o", "csv"])?;
    let csv = String::from_utf8_lossy(&csv.stdout);
    ensure!(
        csv.lines().any(|l| l.starts_with(&format!(
            "{name},Audit,{},limits,missing,LimitRange",
            ns.name()
        ))),
        "report -o csv has no missing LimitRange row for {}",
        ns.name()
    );
    let html = reader.baseliner(&["report", "-o", "html"])?;
    ensure!(html.status.success(), "report -o html: {}", describe(&html));
    let page = String::from_utf8_lossy(&html.stdout);
    ensure!(
        page.contains(ns.name()) && page.contains("missing"),
        "the HTML report does not show {}",
        ns.name()
    );
    screenshot(&html.stdout)?;

    delete_profile(&env, &name).await?;
    reader.finish(&env).await?;
    ns.cleanup().await
}

/// Opens the HTML report in headless Chromium and keeps its screenshot in
/// `target/e2e-artifacts/report.png`.
fn screenshot(html: &[u8]) -> Result<()> {
    let dir = workspace_root().join("target").join("e2e-artifacts");
    std::fs::create_dir_all(&dir)?;
    let page = dir.join("report.html");
    let png = dir.join("report.png");
    std::fs::write(&page, html)?;
    let _ = std::fs::remove_file(&png);
    let chromium = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|c| std::process::Command::new(c).arg("--version").output().is_ok_and(|o| o.status.success()))
        .ok_or_else(|| anyhow!("headless Chromium is needed for the HTML report test: apt-get install chromium (.ci/run installs it)"))?;
    let output = std::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1400,1000",
        ])
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", page.display()))
        .output()?;
    let image = std::fs::read(&png)
        .with_context(|| format!("chromium wrote no screenshot: {}", describe(&output)))?;
    ensure!(
        image.starts_with(b"\x89PNG") && image.len() > 10_000,
        "the screenshot is not a rendered page ({} bytes)",
        image.len()
    );
    Ok(())
}
