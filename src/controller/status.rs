//! Profile status and Events.
//!
//! Namespace reconciles only record what they found ([`super::report`]); this
//! module summarises those records per profile once a moment, writes a
//! status only when it differs from the one the profile already has, and
//! sends the Events gathered meanwhile, one per profile and reason.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use super::Context;
use super::exceptions::write_exception_statuses;
use super::report::NamespaceReport;
use crate::api::{
    MANAGER_NAME, MAX_REPORTED_NAMESPACES, NamespaceProblem, ProductionProfile,
    ProductionProfileStatus,
};
use crate::exception::covers;
use crate::namespace::NamespaceInfo;
use crate::reason::Reason;
use crate::selection::decide_owner;

/// How often at most statuses are recomputed and Events sent.
const STATUS_INTERVAL: Duration = Duration::from_millis(500);
/// Most namespaces named in one Event's note.
const NAMESPACES_PER_EVENT: usize = 10;

/// The status a profile should have, given which namespaces it should own and
/// what the last reconcile of each found. Pure, so it is unit-tested; `now`
/// is used only for conditions whose status changed.
pub fn compute_status(
    profile: &ProductionProfile,
    owned: &[String],
    selected_but_lost: &[(String, String)],
    reports: &HashMap<String, NamespaceReport>,
    now: &Time,
) -> ProductionProfileStatus {
    let name = profile.name_any();
    let generation = profile.metadata.generation.unwrap_or_default();
    let previous = profile.status.clone().unwrap_or_default();

    let Tally {
        current,
        compliant,
        excepted,
        mut problems,
    } = tally(&name, generation, owned, reports);
    for (namespace, winner) in selected_but_lost {
        problems.push(NamespaceProblem {
            namespace: namespace.clone(),
            reason: Reason::Conflict.as_str().to_owned(),
            message: format!("selected, but owned by higher-priority profile {winner}"),
        });
    }
    problems.sort();
    let stalled_by = problems
        .iter()
        .find(|p| p.reason.parse().is_ok_and(Reason::stalls_profile))
        .cloned();
    let any_owned_problem = problems
        .iter()
        .any(|p| p.reason != Reason::Conflict.as_str());
    problems.truncate(MAX_REPORTED_NAMESPACES);

    let reconciled = current == owned.len();
    let observed_generation = if reconciled {
        Some(generation)
    } else {
        previous.observed_generation
    };
    let (ready, ready_reason, ready_message) =
        ready_condition(profile.spec.mode, current, compliant, excepted, owned.len());
    let reconciling = reconciling_condition(current, owned.len(), generation);
    let stalled = match (&stalled_by, reconciled && any_owned_problem) {
        (Some(problem), true) => (
            "True",
            problem.reason.as_str(),
            format!("{}: {}", problem.namespace, problem.message),
        ),
        _ => (
            "False",
            Reason::NotStalled.as_str(),
            "no problem needs a change to the profile".to_owned(),
        ),
    };
    let conditions = [
        ("Ready", ready, ready_reason, ready_message),
        ("Reconciling", reconciling.0, reconciling.1, reconciling.2),
        ("Stalled", stalled.0, stalled.1, stalled.2),
    ]
    .into_iter()
    .map(|(type_, status, reason, message)| {
        condition(
            &previous.conditions,
            type_,
            status,
            reason,
            message,
            observed_generation,
            now,
        )
    })
    .collect();

    ProductionProfileStatus {
        observed_generation,
        conditions,
        matched_namespaces: owned.len() as i32,
        compliant_namespaces: compliant as i32,
        excepted_namespaces: excepted as i32,
        non_compliant: problems,
    }
}

/// What the reports of a profile's namespaces add up to.
struct Tally {
    /// Namespaces reconciled for this profile at its current generation.
    current: usize,
    /// Of those, the compliant ones, with no exception in force.
    compliant: usize,
    /// Of those, the ones that comply only because exceptions waive
    /// controls.
    excepted: usize,
    /// The first problem of each of the others.
    problems: Vec<NamespaceProblem>,
}

fn tally(
    profile: &str,
    generation: i64,
    owned: &[String],
    reports: &HashMap<String, NamespaceReport>,
) -> Tally {
    let mut tally = Tally {
        current: 0,
        compliant: 0,
        excepted: 0,
        problems: Vec::new(),
    };
    for namespace in owned {
        let Some(report) = reports.get(namespace).filter(|report| {
            report.owner.as_deref() == Some(profile) && report.generation == generation
        }) else {
            continue;
        };
        tally.current += 1;
        if report.is_excepted() {
            tally.excepted += 1;
        } else if report.is_compliant() {
            tally.compliant += 1;
        } else if let Some(first) = report.problems.first() {
            let more = report.problems.len() - 1;
            let message = if more > 0 {
                format!("{} (and {more} more)", first.message)
            } else {
                first.message.clone()
            };
            tally.problems.push(NamespaceProblem {
                namespace: namespace.clone(),
                reason: first.reason.as_str().to_owned(),
                message,
            });
        }
    }
    tally
}

/// A condition's status, reason and message.
type ConditionValue = (&'static str, &'static str, String);

/// Ready: every owned namespace reconciled and compliant (some perhaps by
/// exception).
fn ready_condition(
    mode: crate::api::Mode,
    current: usize,
    compliant: usize,
    excepted: usize,
    owned: usize,
) -> ConditionValue {
    let reconciled = current == owned;
    let by_exception = if excepted > 0 {
        format!(", {excepted} of them by exception")
    } else {
        String::new()
    };
    if !reconciled {
        (
            "False",
            Reason::Progressing.as_str(),
            format!("{current} of {} namespaces reconciled", owned),
        )
    } else if compliant + excepted == owned {
        (
            "True",
            Reason::Compliant.as_str(),
            format!("all {owned} namespaces comply{by_exception}"),
        )
    } else {
        let compliant = compliant + excepted;
        let reason = if mode == crate::api::Mode::Audit {
            Reason::Drifted
        } else {
            Reason::NotCompliant
        };
        (
            "False",
            reason.as_str(),
            format!("{compliant} of {owned} namespaces comply{by_exception}"),
        )
    }
}

/// Reconciling: not every owned namespace reconciled at this generation.
fn reconciling_condition(current: usize, owned: usize, generation: i64) -> ConditionValue {
    if current == owned {
        (
            "False",
            Reason::Reconciled.as_str(),
            format!("generation {generation} applied to every namespace"),
        )
    } else {
        (
            "True",
            Reason::Progressing.as_str(),
            format!(
                "{current} of {} namespaces reconciled at generation {generation}",
                owned
            ),
        )
    }
}

/// True while this process has not yet reconciled every namespace of a
/// profile whose status already describes its current generation: a restart
/// is no news, so the status stays as the previous process left it instead
/// of flapping to Reconciling and back (and costing two writes).
fn is_catching_up_after_restart(
    profile: &ProductionProfile,
    owned: &[String],
    reports: &HashMap<String, NamespaceReport>,
) -> bool {
    let name = profile.name_any();
    let already_observed =
        profile.status.as_ref().and_then(|s| s.observed_generation) == profile.metadata.generation;
    let all_reported = owned.iter().all(|ns| {
        reports
            .get(ns)
            .is_some_and(|r| r.owner.as_deref() == Some(name.as_str()))
    });
    already_observed && !all_reported
}

/// A condition that keeps its previous transition time unless its status changed.
fn condition(
    previous: &[Condition],
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    observed_generation: Option<i64>,
    now: &Time,
) -> Condition {
    let last_transition_time = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| now.clone());
    Condition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        message,
        observed_generation,
        last_transition_time,
    }
}

/// Keeps every profile's status current and sends gathered Events, until
/// the process stops.
pub async fn run_status_writer(ctx: Arc<Context>, recorder: Recorder) {
    let mut wake = ctx.config.resync;
    loop {
        tokio::select! {
            () = ctx.reports.changed.notified() => {}
            () = tokio::time::sleep(wake) => {}
        }
        // Let a burst of reconciles settle into one pass.
        tokio::time::sleep(STATUS_INTERVAL).await;
        wake = ctx.config.resync;
        // Before every cache is listed, counts would be wrong (a namespace
        // not listed yet looks unmatched): say nothing rather than that.
        if !ctx.is_leader() || !ctx.caches.is_ready() {
            continue;
        }
        let next_change = write_statuses(&ctx, &recorder).await;
        // An exception's phase changes at set times, with no event to wake us.
        if let Some(until) =
            next_change.and_then(|at| Duration::try_from(at.duration_since(Timestamp::now())).ok())
        {
            wake = wake.min(until);
        }
        send_events(&ctx, &recorder).await;
    }
}

/// Writes every profile's and exception's status where it changed; gives
/// back when an exception's phase next changes.
async fn write_statuses(ctx: &Context, recorder: &Recorder) -> Option<Timestamp> {
    let profiles = ctx.profiles.state();
    let names: Vec<String> = profiles.iter().map(|p| p.name_any()).collect();
    ctx.metrics.retain_profiles(&names);
    let namespaces = ctx.namespaces.state();
    let exceptions = ctx.exceptions.state();
    let reports = ctx.reports.snapshot();
    let mut owned: HashMap<String, Vec<String>> = HashMap::new();
    let mut lost: HashMap<String, Vec<(String, String)>> = HashMap::new();
    let mut covered: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for namespace in &namespaces {
        if namespace.is_terminating() {
            continue;
        }
        let info = NamespaceInfo {
            name: namespace.name_any(),
            labels: namespace.labels(),
        };
        let ownership = decide_owner(
            profiles.iter().map(Arc::as_ref),
            &info,
            &ctx.config.selection,
        );
        if let Some(owner) = ownership.owner {
            let owner_name = owner.name_any();
            for exception in exceptions
                .iter()
                .filter(|e| e.spec.profile == owner_name && covers(e, &info))
            {
                covered
                    .entry(exception.name_any())
                    .or_default()
                    .push(info.name.clone());
            }
            owned.entry(owner_name).or_default().push(info.name.clone());
            for loser in ownership.conflicts {
                lost.entry(loser.name_any())
                    .or_default()
                    .push((info.name.clone(), owner.name_any()));
            }
        }
    }
    for names in covered.values_mut() {
        names.sort();
    }
    let existing: HashSet<String> = namespaces.iter().map(|n| n.name_any()).collect();
    let pass =
        write_exception_statuses(ctx, recorder, &covered, |name| existing.contains(name)).await;
    ctx.metrics.set_exception_counts(pass.counts);

    let now = Time(Timestamp::now());
    for profile in profiles
        .iter()
        .filter(|p| p.meta().deletion_timestamp.is_none())
    {
        let name = profile.name_any();
        let mut mine = owned.remove(&name).unwrap_or_default();
        mine.sort();
        let theirs = lost.remove(&name).unwrap_or_default();
        if is_catching_up_after_restart(profile, &mine, &reports) {
            continue;
        }
        let status = compute_status(profile, &mine, &theirs, &reports, &now);
        // Gauges follow every pass, so a new leader reports them too.
        ctx.metrics.set_profile_counts(
            &name,
            status.matched_namespaces,
            status.compliant_namespaces,
            status.excepted_namespaces,
        );
        if profile.status.as_ref() == Some(&status) {
            continue;
        }
        match apply_status::<ProductionProfile>(ctx, &name, &status).await {
            Ok(_) => {
                info!(profile = %name, matched = status.matched_namespaces, compliant = status.compliant_namespaces, "status updated")
            }
            Err(error) => warn!(profile = %name, %error, "writing status failed"),
        }
    }
    pass.next_change
}

/// Writes `status` to the cluster-scoped object `name` of kind `K` with
/// server-side apply, as the operator's field manager.
pub(super) async fn apply_status<K>(
    ctx: &Context,
    name: &str,
    status: &impl serde::Serialize,
) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = (), Scope = kube::core::ClusterResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let patch = json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    Api::<K>::all(ctx.client.clone())
        .patch_status(
            name,
            &PatchParams::apply(MANAGER_NAME).force(),
            &Patch::Apply(&patch),
        )
        .await
        .map(|_| ())
}

async fn send_events(ctx: &Context, recorder: &Recorder) {
    for ((profile, reason, warning), items) in ctx.events.take() {
        let Some(object) = ctx
            .profiles
            .state()
            .into_iter()
            .find(|p| p.name_any() == profile)
        else {
            continue;
        };
        let mut note = format!(
            "{reason} {}: {}",
            items.len(),
            items
                .iter()
                .take(NAMESPACES_PER_EVENT)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ")
        );
        if items.len() > NAMESPACES_PER_EVENT {
            note.push_str(&format!(
                "; and {} more",
                items.len() - NAMESPACES_PER_EVENT
            ));
        }
        // The API caps a note at 1 kB; cut on a character boundary.
        if let Some((cut, _)) = note.char_indices().nth(1000) {
            note.truncate(cut);
        }
        let event = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.as_str().to_owned(),
            note: Some(note),
            action: "Reconcile".to_owned(),
            secondary: None,
        };
        if let Err(error) = recorder.publish(&event, &object.object_ref(&())).await {
            warn!(%profile, %reason, %error, "sending event failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::report::Problem;

    fn profile(generation: i64, mode: &str) -> ProductionProfile {
        let mut p: ProductionProfile = serde_saphyr::from_str(&format!(
            "apiVersion: baseliner.dev/v1alpha1\nkind: ProductionProfile\nmetadata: {{name: prod}}\nspec:\n  mode: {mode}\n  namespaces: {{selector: {{}}}}\n"
        ))
        .expect("fixture parses");
        p.metadata.generation = Some(generation);
        p
    }

    fn report(owner: &str, generation: i64, problems: &[(&str, &str)]) -> NamespaceReport {
        NamespaceReport {
            owner: Some(owner.to_owned()),
            generation,
            conflicts: vec![],
            exceptions: vec![],
            problems: problems
                .iter()
                .map(|(r, m)| Problem::new(r.parse().expect("a reason"), *m))
                .collect(),
        }
    }

    fn condition_status<'a>(
        status: &'a ProductionProfileStatus,
        type_: &str,
    ) -> (&'a str, &'a str) {
        let c = status
            .conditions
            .iter()
            .find(|c| c.type_ == type_)
            .expect("condition present");
        (c.status.as_str(), c.reason.as_str())
    }

    fn now() -> Time {
        Time(Timestamp::from_second(1_800_000_000).expect("valid time"))
    }

    struct Case {
        name: &'static str,
        mode: &'static str,
        reports: Vec<(&'static str, NamespaceReport)>,
        lost: Vec<(String, String)>,
        want_ready: (&'static str, &'static str),
        want_reconciling: &'static str,
        want_stalled: &'static str,
        want_compliant: i32,
        want_observed: Option<i64>,
    }

    fn status_cases_table_1() -> Vec<Case> {
        let cases: Vec<Case> = vec![
            Case {
                name: "all compliant",
                mode: "Enforce",
                reports: vec![("a", report("prod", 2, &[])), ("b", report("prod", 2, &[]))],
                lost: vec![],
                want_ready: ("True", "Compliant"),
                want_reconciling: "False",
                want_stalled: "False",
                want_compliant: 2,
                want_observed: Some(2),
            },
            Case {
                name: "one namespace still at the old generation",
                mode: "Enforce",
                reports: vec![("a", report("prod", 2, &[])), ("b", report("prod", 1, &[]))],
                lost: vec![],
                want_ready: ("False", "Progressing"),
                want_reconciling: "True",
                want_stalled: "False",
                want_compliant: 1,
                want_observed: None,
            },
            Case {
                name: "role refused stalls",
                mode: "Enforce",
                reports: vec![
                    (
                        "a",
                        report("prod", 2, &[("RoleNotAllowed", "cluster-admin")]),
                    ),
                    ("b", report("prod", 2, &[])),
                ],
                lost: vec![],
                want_ready: ("False", "NotCompliant"),
                want_reconciling: "False",
                want_stalled: "True",
                want_compliant: 1,
                want_observed: Some(2),
            },
        ];
        cases
    }

    fn status_cases_table_2() -> Vec<Case> {
        let cases: Vec<Case> = vec![
            Case {
                name: "audit drift is not stalled",
                mode: "Audit",
                reports: vec![
                    ("a", report("prod", 2, &[("Drifted", "missing")])),
                    ("b", report("prod", 2, &[])),
                ],
                lost: vec![],
                want_ready: ("False", "Drifted"),
                want_reconciling: "False",
                want_stalled: "False",
                want_compliant: 1,
                want_observed: Some(2),
            },
            Case {
                name: "conflicts are listed but do not spoil readiness",
                mode: "Enforce",
                reports: vec![("a", report("prod", 2, &[])), ("b", report("prod", 2, &[]))],
                lost: vec![("c".to_owned(), "urgent".to_owned())],
                want_ready: ("True", "Compliant"),
                want_reconciling: "False",
                want_stalled: "False",
                want_compliant: 2,
                want_observed: Some(2),
            },
        ];
        cases
    }

    #[test]
    fn status_cases() {
        let cases: Vec<Case> = [status_cases_table_1(), status_cases_table_2()]
            .into_iter()
            .flatten()
            .collect();
        let owned = vec!["a".to_owned(), "b".to_owned()];
        for case in cases {
            let p = profile(2, case.mode);
            let reports: HashMap<String, NamespaceReport> = case
                .reports
                .into_iter()
                .map(|(n, r)| (n.to_owned(), r))
                .collect();
            let status = compute_status(&p, &owned, &case.lost, &reports, &now());
            assert_eq!(
                condition_status(&status, "Ready"),
                case.want_ready,
                "{}",
                case.name
            );
            assert_eq!(
                condition_status(&status, "Reconciling").0,
                case.want_reconciling,
                "{}",
                case.name
            );
            assert_eq!(
                condition_status(&status, "Stalled").0,
                case.want_stalled,
                "{}",
                case.name
            );
            assert_eq!(status.matched_namespaces, 2, "{}", case.name);
            assert_eq!(
                status.compliant_namespaces, case.want_compliant,
                "{}",
                case.name
            );
            assert_eq!(
                status.observed_generation, case.want_observed,
                "{}",
                case.name
            );
            let conflicts = status
                .non_compliant
                .iter()
                .filter(|p| p.reason == "Conflict")
                .count();
            assert_eq!(conflicts, case.lost.len(), "{}", case.name);
        }
    }

    #[test]
    fn excepted_namespaces_count_apart_and_still_make_ready() {
        let p = profile(2, "Enforce");
        let owned = vec!["a".to_owned(), "b".to_owned(), "c".to_owned()];
        let excepted = |problems: &[(&str, &str)]| NamespaceReport {
            exceptions: vec!["legacy".to_owned()],
            ..report("prod", 2, problems)
        };
        let reports: HashMap<String, NamespaceReport> = [
            ("a", report("prod", 2, &[])),
            ("b", excepted(&[])),
            ("c", excepted(&[])),
        ]
        .into_iter()
        .map(|(n, r)| (n.to_owned(), r))
        .collect();
        let status = compute_status(&p, &owned, &[], &reports, &now());
        assert_eq!(
            (status.compliant_namespaces, status.excepted_namespaces),
            (1, 2)
        );
        assert_eq!(condition_status(&status, "Ready"), ("True", "Compliant"));
        let ready = status.conditions.iter().find(|c| c.type_ == "Ready");
        assert!(
            ready.is_some_and(|c| c.message.contains("2 of them by exception")),
            "{ready:?}"
        );

        // An excepted namespace that drifted is not compliant at all.
        let mut reports = reports;
        reports.insert("c".to_owned(), excepted(&[("ApiError", "timeout")]));
        let status = compute_status(&p, &owned, &[], &reports, &now());
        assert_eq!(
            (status.compliant_namespaces, status.excepted_namespaces),
            (1, 1)
        );
        assert_eq!(condition_status(&status, "Ready").0, "False");
    }

    #[test]
    fn status_is_stable_across_passes() {
        // Writing status must not cause another write: a second pass over
        // the same facts yields an equal status, even at a later time.
        let mut p = profile(1, "Enforce");
        let owned = vec!["a".to_owned()];
        let reports = HashMap::from([("a".to_owned(), report("prod", 1, &[]))]);
        let first = compute_status(&p, &owned, &[], &reports, &now());
        p.status = Some(first.clone());
        let later = Time(Timestamp::from_second(1_800_000_600).expect("valid time"));
        let second = compute_status(&p, &owned, &[], &reports, &later);
        assert_eq!(first, second);
    }

    #[test]
    fn non_compliant_list_is_bounded() {
        let p = profile(1, "Enforce");
        let owned: Vec<String> = (0..50).map(|i| format!("ns-{i:02}")).collect();
        let reports: HashMap<String, NamespaceReport> = owned
            .iter()
            .map(|n| (n.clone(), report("prod", 1, &[("Drifted", "x")])))
            .collect();
        let status = compute_status(&p, &owned, &[], &reports, &now());
        assert_eq!(status.non_compliant.len(), MAX_REPORTED_NAMESPACES);
        assert_eq!(status.compliant_namespaces, 0);
        assert_eq!(status.non_compliant[0].namespace, "ns-00");
    }
}
