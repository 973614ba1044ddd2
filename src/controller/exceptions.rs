//! ProfileException status, Events and metrics.
//!
//! What an exception does to a namespace is decided in the plan (see
//! [`crate::exception`]); this module says where each exception stands:
//! its `InForce` condition, the namespaces it applies to, what keeps it
//! from applying, and an Event when it starts to expire and when it ends.
//! Statuses change only at the moments an exception's spec sets, so the
//! status writer wakes for those ([`ExceptionPass::next_change`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Resource, ResourceExt};
use tracing::{info, warn};

use super::Context;
use super::author_rights::AuthorRights;
use super::status::apply_status;
use crate::api::ProductionProfile;
use crate::api::exception::{
    ExceptionProblem, MAX_LISTED_NAMESPACES, ProfileException, ProfileExceptionStatus,
};
use crate::exception::{ExceptionSettings, Phase, assess, describe_controls};
use crate::reason::Reason;

/// What one pass over the exceptions found.
#[derive(Debug, Default, PartialEq)]
pub struct ExceptionPass {
    /// The soonest moment some exception's phase changes by itself.
    pub next_change: Option<Timestamp>,
    /// Exceptions per state, in the order of [`crate::metrics::EXCEPTION_STATES`].
    pub counts: [i64; 4],
}

/// The status `exception` should have. `covered` are the namespaces it
/// names or selects that its profile owns, sorted; `missing` the names it
/// gives that match no namespace. Pure, so it is unit-tested; `now` judges
/// the expiry and stamps conditions whose status changed.
pub fn compute_exception_status(
    exception: &ProfileException,
    profile: Option<&ProductionProfile>,
    grants: &AuthorRights,
    covered: &[String],
    missing: &[String],
    settings: &ExceptionSettings,
    now: Timestamp,
) -> (ProfileExceptionStatus, Phase, Option<Timestamp>) {
    let assessment = assess(exception, profile, now, settings);
    let previous = exception.status.clone().unwrap_or_default();
    let expires = exception.spec.expires.0;
    let controls = describe_controls(&exception.spec).join(", ");
    let mut problems = match &assessment.phase {
        Phase::Invalid(problems) => problems.clone(),
        _ => Vec::new(),
    };
    let (status, reason, message) = match &assessment.phase {
        Phase::InForce | Phase::ExpiringSoon if !grants.allows_grants() => (
            "False",
            Reason::AuthorRightsNotEnforced,
            format!("not honoured: {}", grants.reason()),
        ),
        Phase::InForce => (
            "True",
            Reason::InForce,
            format!(
                "waives {controls} in {} namespaces until {expires}",
                covered.len()
            ),
        ),
        Phase::ExpiringSoon => (
            "True",
            Reason::ExpiringSoon,
            format!(
                "waives {controls} in {} namespaces; ends at {expires}, then they are enforced again",
                covered.len()
            ),
        ),
        Phase::Expired => (
            "False",
            Reason::Expired,
            format!("ended at {expires}; {controls} enforced again"),
        ),
        Phase::Invalid(problems) => (
            "False",
            assessment.phase.reason(),
            problems
                .first()
                .map(|p| format!("{}: {}", p.field, p.message))
                .unwrap_or_default(),
        ),
    };
    for (i, name) in exception.spec.namespaces.names.iter().enumerate() {
        if missing.contains(name) {
            problems.push(ExceptionProblem {
                field: format!("spec.namespaces.names[{i}]"),
                message: format!("namespace {name:?} does not exist"),
            });
        }
    }
    let observed_generation = exception.metadata.generation;
    let last_transition_time = previous
        .conditions
        .iter()
        .find(|c| c.type_ == "InForce" && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    let in_force = status == "True";
    let status = ProfileExceptionStatus {
        observed_generation,
        conditions: vec![k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
            type_: "InForce".to_owned(),
            status: status.to_owned(),
            reason: reason.as_str().to_owned(),
            message,
            observed_generation,
            last_transition_time,
        }],
        namespace_count: if in_force { covered.len() as i32 } else { 0 },
        namespaces: if in_force {
            covered
                .iter()
                .take(MAX_LISTED_NAMESPACES)
                .cloned()
                .collect()
        } else {
            Vec::new()
        },
        problems,
    };
    (status, assessment.phase, assessment.next_change)
}

/// The reason of the `InForce` condition a status holds.
fn reason_of(status: Option<&ProfileExceptionStatus>) -> Option<&str> {
    status?
        .conditions
        .iter()
        .find(|c| c.type_ == "InForce")
        .map(|c| c.reason.as_str())
}

/// Writes every exception's status where it changed, sends the Events of
/// phases newly entered, and counts exceptions for the metrics.
/// `covered` holds, per exception name, the namespaces it applies to;
/// `existing` says whether a namespace exists.
pub async fn write_exception_statuses(
    ctx: &Context,
    recorder: &Recorder,
    covered: &BTreeMap<String, Vec<String>>,
    existing: impl Fn(&str) -> bool,
) -> ExceptionPass {
    let now = Timestamp::now();
    let grants = ctx.author_rights.borrow().clone();
    let profiles = ctx.profiles.state();
    let mut pass = ExceptionPass::default();
    for exception in ctx.exceptions.state() {
        if exception.meta().deletion_timestamp.is_some() {
            continue;
        }
        let name = exception.name_any();
        let profile = profiles
            .iter()
            .find(|p| p.name_any() == exception.spec.profile)
            .map(Arc::as_ref);
        let covers = covered.get(&name).map(Vec::as_slice).unwrap_or_default();
        let missing: Vec<String> = exception
            .spec
            .namespaces
            .names
            .iter()
            .filter(|n| !existing(n))
            .cloned()
            .collect();
        let (status, phase, next) = compute_exception_status(
            &exception,
            profile,
            &grants,
            covers,
            &missing,
            &ctx.config.exceptions,
            now,
        );
        pass.next_change = match (pass.next_change, next) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let state = match phase {
            Phase::InForce => 0,
            Phase::ExpiringSoon => 1,
            Phase::Expired => 2,
            Phase::Invalid(_) => 3,
        };
        pass.counts[state] += 1;
        if state == 1 {
            pass.counts[0] += 1;
        }
        if exception.status.as_ref() == Some(&status) {
            continue;
        }
        let before = reason_of(exception.status.as_ref()).map(str::to_owned);
        match apply_status::<ProfileException>(ctx, &name, &status).await {
            Ok(_) => {
                info!(exception = %name, reason = reason_of(Some(&status)), "exception status updated")
            }
            Err(error) => {
                warn!(exception = %name, %error, "writing exception status failed");
                continue;
            }
        }
        let after = reason_of(Some(&status));
        if before.as_deref() != after {
            send_phase_event(recorder, &exception, &phase, &status).await;
        }
    }
    pass
}

/// The Event of a phase newly entered: a warning as an exception starts to
/// expire, a note when it ends (its controls are back).
async fn send_phase_event(
    recorder: &Recorder,
    exception: &ProfileException,
    phase: &Phase,
    status: &ProfileExceptionStatus,
) {
    let controls = describe_controls(&exception.spec).join(", ");
    let expires = exception.spec.expires.0;
    let (type_, note) = match phase {
        Phase::ExpiringSoon => (
            EventType::Warning,
            format!(
                "ends at {expires}: {controls} will be enforced again in {} namespaces of profile {}",
                status.namespace_count, exception.spec.profile
            ),
        ),
        Phase::Expired => (
            EventType::Normal,
            format!(
                "ended at {expires}: {controls} enforced again in profile {}",
                exception.spec.profile
            ),
        ),
        _ => return,
    };
    let event = Event {
        type_,
        reason: phase.reason().as_str().to_owned(),
        note: Some(note),
        action: "Reconcile".to_owned(),
        secondary: None,
    };
    if let Err(error) = recorder.publish(&event, &exception.object_ref(&())).await {
        warn!(exception = %exception.name_any(), %error, "sending event failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().expect("a timestamp")
    }

    fn exception(yaml: &str) -> ProfileException {
        let yaml = format!(
            "apiVersion: baseliner.dev/v1alpha1\nkind: ProfileException\nmetadata: {{name: legacy, generation: 2, creationTimestamp: '2026-12-01T00:00:00Z'}}\nspec: {{profile: prod, namespaces: {{names: [shop, gone]}}, reason: migration, expires: '2026-12-20T00:00:00Z', {yaml}}}"
        );
        serde_saphyr::from_str(&yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"))
    }

    fn profile() -> ProductionProfile {
        serde_saphyr::from_str(
            "apiVersion: baseliner.dev/v1alpha1\nkind: ProductionProfile\nmetadata: {name: prod}\nspec: {namespaces: {selector: {}}, networkPolicy: {}}",
        )
        .expect("a profile")
    }

    #[test]
    fn the_condition_says_where_the_exception_stands() {
        let e = exception("waive: {defaultDeny: true}");
        let p = profile();
        let settings = ExceptionSettings::default();
        let covered = ["shop".to_owned()];
        let missing = ["gone".to_owned()];
        let status_at = |now: &str, grants: &AuthorRights, profile: Option<&ProductionProfile>| {
            compute_exception_status(&e, profile, grants, &covered, &missing, &settings, at(now))
        };
        let enforced = AuthorRights::Enforced;
        let cases = [
            (
                "2026-12-02T00:00:00Z",
                &enforced,
                Some(&p),
                "True",
                "InForce",
                1,
            ),
            (
                "2026-12-18T00:00:00Z",
                &enforced,
                Some(&p),
                "True",
                "ExpiringSoon",
                1,
            ),
            (
                "2026-12-20T00:00:00Z",
                &enforced,
                Some(&p),
                "False",
                "Expired",
                0,
            ),
            (
                "2026-12-02T00:00:00Z",
                &enforced,
                None,
                "False",
                "ProfileNotFound",
                0,
            ),
        ];
        for (now, grants, profile, in_force, reason, count) in cases {
            let (status, _, _) = status_at(now, grants, profile);
            let condition = &status.conditions[0];
            assert_eq!(
                (condition.status.as_str(), condition.reason.as_str()),
                (in_force, reason),
                "at {now}: {}",
                condition.message
            );
            assert_eq!(status.namespace_count, count, "at {now}");
            assert!(
                status
                    .problems
                    .iter()
                    .any(|p| p.field == "spec.namespaces.names[1]"),
                "a missing namespace is reported: {:?}",
                status.problems
            );
        }
        let held = AuthorRights::NotEnforced("policy missing".to_owned());
        let (status, _, _) = status_at("2026-12-02T00:00:00Z", &held, Some(&p));
        assert_eq!(status.conditions[0].reason, "AuthorRightsNotEnforced");
        assert!(status.conditions[0].message.contains("policy missing"));

        // Stable: the same moment's status computed again over the written
        // one is equal, so it is not written twice.
        let (first, _, _) = status_at("2026-12-02T00:00:00Z", &enforced, Some(&p));
        let mut written = e.clone();
        written.status = Some(first.clone());
        let (again, _, _) = compute_exception_status(
            &written,
            Some(&p),
            &enforced,
            &covered,
            &missing,
            &settings,
            at("2026-12-03T00:00:00Z"),
        );
        assert_eq!(again, first);
    }
}
