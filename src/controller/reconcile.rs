//! The per-namespace reconcile: read (from caches) → plan (pure, in
//! [`super::plan`]) → execute → report.
//!
//! This is the only place that writes managed objects and namespace
//! labels. It carries out exactly the steps of the plan, and writes only
//! where the plan says the live state differs from the desired one, so a
//! resync where nothing drifted makes no write requests. An Audit plan holds
//! no writing steps; the executor still refuses to write for one.

use std::sync::Arc;

use futures::future::join_all;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::runtime::controller::Action;
use serde_json::json;
use tracing::{debug, info, warn};

use super::index::{LiveObject, ObjectKey, WatchState};
use super::namespace::CachedNamespace;
use super::plan::{
    Desired, LabelStep, NamespacePlan, ObjectPlan, PlanInput, Step, Strategy, decide_after_read,
    plan_namespace,
};
use super::report::{NamespaceReport, Problem};
use super::{Context, Error};
use crate::api::{
    DELETION_POLICY_ANNOTATION, MANAGED_BY_LABEL, MANAGER_NAME, POD_SECURITY_ANNOTATION,
    PROFILE_LABEL,
};
use crate::kind::ManagedKind;
use crate::reason::Reason;

pub async fn reconcile_namespace(
    namespace: Arc<CachedNamespace>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    if !ctx.is_leader() {
        // Standby: caches stay warm; the leader does the work. Becoming
        // leader triggers a pass over every namespace.
        return Ok(Action::await_change());
    }
    if !ctx.caches_complete() || !ctx.verification.is_warm_leader() {
        // Until the caches are complete the plan would be wrong (see
        // `Context::caches_complete`); until verification has read what
        // changed before this replica led (at start: everything), each
        // such object would be read on its own, the read storm that
        // verification's LISTs exist to avoid.
        return Ok(Action::requeue(std::time::Duration::from_millis(200)));
    }
    let (plan, now) = plan_from_caches(&ctx, &namespace);
    if plan.terminating {
        ctx.reports.forget(&plan.namespace);
        return Ok(Action::await_change());
    }

    let mut report = NamespaceReport {
        owner: plan.owner.as_ref().map(|owner| owner.profile.clone()),
        generation: plan.owner.as_ref().map_or(0, |owner| owner.generation),
        conflicts: plan.conflicts.clone(),
        exceptions: plan.exceptions.names(),
        ..NamespaceReport::default()
    };
    let next = next_reconcile(ctx.config.resync, plan.exceptions.ends, now);
    let result = execute(&ctx, &namespace, plan, &mut report).await;
    if let Err(error) = &result {
        report
            .problems
            .push(Problem::new(Reason::ApiError, error.to_string()));
    }
    ctx.reports.record(&namespace.name_any(), report);
    result.map(|()| Action::requeue(next))
}

/// Plans `namespace`'s reconcile from the caches as they are now; gives
/// back the moment it was planned for, too.
pub(super) fn plan_from_caches(
    ctx: &Context,
    namespace: &CachedNamespace,
) -> (NamespacePlan, Timestamp) {
    let profiles = ctx.profiles.state();
    let live = if namespace.is_terminating() {
        Default::default()
    } else {
        ctx.managed.objects_serving(&namespace.name_any())
    };
    let grants = ctx.author_rights.borrow().clone();
    let exceptions = ctx.exceptions.state();
    let now = Timestamp::now();
    let input = PlanInput {
        namespace,
        profiles: &profiles,
        selection: &ctx.config.selection,
        render: &ctx.config.render,
        live: &live,
        schedules_served: ctx.managed.state(ManagedKind::Schedule) != Some(WatchState::NotServed),
        grants: &grants,
        exceptions: &exceptions,
        now,
        exception_settings: &ctx.config.exceptions,
    };
    (plan_namespace(&input, &ctx.verified), now)
}

/// When to reconcile a namespace again: at the resync, or just after the
/// first of its exceptions ends, so the control is back at that moment
/// rather than at the next resync.
fn next_reconcile(
    resync: std::time::Duration,
    exception_ends: Option<Timestamp>,
    now: Timestamp,
) -> std::time::Duration {
    // Timestamps have whole seconds; a little after the expiry it is over.
    const AFTER_EXPIRY: std::time::Duration = std::time::Duration::from_millis(50);
    exception_ends
        .and_then(|ends| std::time::Duration::try_from(ends.duration_since(now)).ok())
        .map_or(resync, |until| resync.min(until + AFTER_EXPIRY))
}

/// Carries a plan out and reports what happened. The first API error is
/// returned (the namespace is retried); every step is attempted.
async fn execute(
    ctx: &Context,
    namespace: &CachedNamespace,
    plan: NamespacePlan,
    report: &mut NamespaceReport,
) -> Result<(), Error> {
    let owner = plan.owner.as_ref();
    let profile = owner.map(|owner| owner.profile.as_str());
    let strategy = owner.map_or(Strategy::Enforce, |owner| owner.strategy);
    for problem in &plan.render_problems {
        report.problems.push(Problem::new(
            problem.reason,
            format!("{}: {}", problem.field, problem.message),
        ));
        if let Some(profile) = profile {
            ctx.events.warning(
                profile,
                problem.reason,
                format!("{}: {}: {}", plan.namespace, problem.field, problem.message),
            );
        }
    }
    report.problems.extend(plan.problems.iter().cloned());

    let (desired, no_longer_desired): (Vec<&ObjectPlan>, Vec<&ObjectPlan>) = plan
        .objects
        .iter()
        .partition(|object| object.desired.is_some());
    let mut first_error = None;
    let results = join_all(
        desired
            .iter()
            .map(|object| ensure_object(ctx, object, strategy)),
    )
    .await;
    for (object, result) in desired.iter().zip(results) {
        let key = &object.key;
        match (result, profile) {
            (Ok(Step::Held(what)), Some(profile)) => hold_back(
                ctx,
                profile,
                &plan,
                report,
                format!("{key} not written ({what})"),
            ),
            (result, _) => {
                if let Err(error) = report_object(ctx, profile, key, result, report) {
                    first_error.get_or_insert(error);
                }
            }
        }
    }

    if let Err(error) = execute_labels(ctx, namespace, &plan, report).await {
        first_error.get_or_insert(error);
    }

    for object in no_longer_desired {
        let key = &object.key;
        if let Step::Drifted(what) = &object.step {
            report
                .problems
                .push(Problem::new(Reason::Drifted, format!("{key} {what}")));
            continue;
        }
        let Some(live) = &object.live else { continue };
        match prune(ctx, key, live, strategy).await {
            Ok(reason) => {
                // A namespace no profile owns: the event goes to the profile
                // that made the object.
                if let Some(profile) = profile.or(live.profile.as_deref()) {
                    ctx.events.normal(profile, reason, format!("{key}"));
                }
            }
            Err(error) => {
                report.problems.push(Problem::new(
                    Reason::ApiError,
                    format!("pruning {key}: {error}"),
                ));
                first_error.get_or_insert(error);
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Reports what happened to one desired object: Events, metrics and
/// problems. Gives back an error the namespace is to be retried for.
fn report_object(
    ctx: &Context,
    profile: Option<&str>,
    key: &ObjectKey,
    result: Result<Step, Error>,
    report: &mut NamespaceReport,
) -> Result<(), Error> {
    let profile = profile.unwrap_or_default();
    match result {
        Ok(Step::Create) => ctx
            .events
            .normal(profile, Reason::Created, format!("{key}")),
        Ok(Step::Heal) => {
            ctx.metrics.drift_corrected(key.kind);
            ctx.events.normal(profile, Reason::Healed, format!("{key}"));
        }
        Ok(Step::Replace) => {
            ctx.metrics.drift_corrected(key.kind);
            ctx.events.normal(
                profile,
                Reason::Replaced,
                format!("{key} (roleRef changed)"),
            );
        }
        Ok(Step::Drifted(what)) => {
            report
                .problems
                .push(Problem::new(Reason::Drifted, format!("{key}: {what}")));
            ctx.events
                .warning(profile, Reason::Drifted, format!("{key}: {what}"));
        }
        Ok(_) => {}
        Err(error) if is_not_found_error(&error) && key.kind == ManagedKind::Schedule => {
            report.problems.push(Problem::new(
                Reason::BackupsUnavailable,
                format!(
                    "cannot create {key}: {error}; is Velero installed in namespace {}?",
                    key.namespace
                ),
            ));
        }
        Err(error) if is_invalid_error(&error) => {
            // The API server will refuse this object until the profile
            // changes: report it and do not retry in a loop.
            warn!(%key, %error, "the API server refused the rendered object");
            report.problems.push(Problem::new(
                Reason::Rejected,
                format!(
                    "{key} was refused by the API server: {}",
                    api_message(&error)
                ),
            ));
            ctx.events.warning(
                profile,
                Reason::Rejected,
                format!("{key}: {}", api_message(&error)),
            );
        }
        Err(error) => {
            warn!(%key, %error, "applying object failed");
            report
                .problems
                .push(Problem::new(Reason::ApiError, format!("{key}: {error}")));
            return Err(error);
        }
    }
    Ok(())
}

/// Carries out one desired object's step, reading it first where the plan
/// says so. Gives back the step taken.
async fn ensure_object(
    ctx: &Context,
    object: &ObjectPlan,
    strategy: Strategy,
) -> Result<Step, Error> {
    let key = &object.key;
    let Some(desired) = &object.desired else {
        return Ok(Step::InSync);
    };
    let api = object_api(ctx, key);
    let step = match &object.step {
        Step::NeedsRead => {
            ctx.metrics.read(key.kind, "get");
            let current = api
                .get_opt(&key.name)
                .await
                .map_err(Error::kube("get", key))?;
            let current_json = current
                .as_ref()
                .map(|current| serde_json::to_value(current).unwrap_or_default());
            let step = decide_after_read(key, desired, current_json.as_ref(), strategy);
            let rv = current
                .and_then(|current| current.resource_version())
                .unwrap_or_default();
            if step == Step::InSync {
                ctx.verified.record(key, &rv, desired.fingerprint);
            } else {
                ctx.verified.note_read(key, &rv);
            }
            step
        }
        step => step.clone(),
    };
    if step.writes() && !strategy.for_kind(key.kind).writes() {
        // Plans under Audit (and grants held back) hold no such writes;
        // never carry one out.
        return Ok(Step::InSync);
    }
    match step {
        Step::Create | Step::Heal => apply(ctx, &api, key, desired).await?,
        Step::Replace => {
            api.delete(&key.name, &DeleteParams::default())
                .await
                .map_err(Error::kube("delete", key))?;
            apply(ctx, &api, key, desired).await?;
        }
        _ => {}
    }
    Ok(step)
}

async fn apply(
    ctx: &Context,
    api: &Api<DynamicObject>,
    key: &ObjectKey,
    desired: &Desired,
) -> Result<(), Error> {
    let params = PatchParams::apply(MANAGER_NAME).force();
    let mut request = kube::core::Request::new(api.resource_url())
        .patch(&key.name, &params, &Patch::Apply(&desired.body))
        .map_err(|error| Error::kube("apply", key)(kube::Error::BuildRequest(error)))?;
    request.extensions_mut().insert("patch");
    // The answer is the whole object, managedFields included; only its
    // resourceVersion is needed. Parsing all of it was 6% of the operator's
    // CPU while converging 10,000 namespaces.
    let applied: AppliedObject = ctx
        .client
        .request(request)
        .await
        .map_err(Error::kube("apply", key))?;
    ctx.metrics.applied(key.kind);
    debug!(%key, "applied");
    ctx.verified
        .record(key, &applied.metadata.resource_version, desired.fingerprint);
    Ok(())
}

/// The part of an apply's answer baseliner reads.
#[derive(serde::Deserialize)]
struct AppliedObject {
    metadata: AppliedMetadata,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct AppliedMetadata {
    #[serde(default)]
    resource_version: String,
}

/// Removes an object that is no longer desired, or orphans it (drops the
/// managed-by label and owner reference) when its profile says so. Gives
/// back the Event reason.
async fn prune(
    ctx: &Context,
    key: &ObjectKey,
    object: &LiveObject,
    strategy: Strategy,
) -> Result<Reason, Error> {
    debug_assert!(strategy.writes(), "an Audit plan prunes nothing");
    let api = object_api(ctx, key);
    ctx.verified.forget(key);
    let (result, reason, action) = if object.orphan_on_prune {
        let patch = json!({
            "metadata": {
                "labels": { MANAGED_BY_LABEL: null, PROFILE_LABEL: null },
                "annotations": { DELETION_POLICY_ANNOTATION: null },
                "ownerReferences": null,
            }
        });
        let result = api
            .patch(&key.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(drop);
        (result, Reason::Orphaned, "orphan")
    } else {
        let result = api
            .delete(&key.name, &DeleteParams::background())
            .await
            .map(drop);
        (result, Reason::Pruned, "delete")
    };
    match result {
        Err(error) if !is_not_found(&error) => return Err(Error::kube(action, key)(error)),
        _ => {}
    }
    ctx.verified
        .record_pruned(key.clone(), object.resource_version.clone());
    ctx.metrics.pruned(key.kind);
    info!(%key, "{}", if object.orphan_on_prune { "orphaned" } else { "pruned" });
    Ok(reason)
}

/// Carries out the plan's step for the namespace's Pod Security labels and
/// reports it (for an owned namespace; releasing an unowned one is silent).
async fn execute_labels(
    ctx: &Context,
    namespace: &CachedNamespace,
    plan: &NamespacePlan,
    report: &mut NamespaceReport,
) -> Result<(), Error> {
    let name = &plan.namespace;
    let owner = plan.owner.as_ref();
    let result = match &plan.labels {
        LabelStep::InSync => return Ok(()),
        LabelStep::Drifted(what) => {
            report.problems.push(Problem::new(
                Reason::Drifted,
                format!("Namespace {name}: {what}"),
            ));
            return Ok(());
        }
        LabelStep::Held(what) => {
            match owner {
                Some(owner) => hold_back(
                    ctx,
                    &owner.profile,
                    plan,
                    report,
                    format!("Namespace {name} Pod Security not lowered ({what})"),
                ),
                None => {
                    let message = format!(
                        "Namespace {name} Pod Security labels not removed ({what}): {}",
                        plan.held_because.as_deref().unwrap_or_default()
                    );
                    warn!("{message}");
                    if let Some(profile) = namespace.annotation(PROFILE_LABEL) {
                        ctx.events
                            .warning(profile, Reason::AuthorRightsNotEnforced, message);
                    }
                }
            }
            return Ok(());
        }
        _ if owner.is_some_and(|owner| !owner.strategy.writes()) => return Ok(()),
        LabelStep::Apply { body, fingerprint } => {
            patch_namespace(ctx, namespace, Patch::Apply(body), "apply", *fingerprint).await
        }
        LabelStep::Release {
            orphan: true,
            fingerprint,
        } => {
            let patch = json!({"metadata": {"annotations": {
                POD_SECURITY_ANNOTATION: null, PROFILE_LABEL: null, DELETION_POLICY_ANNOTATION: null,
            }}});
            patch_namespace(ctx, namespace, Patch::Merge(&patch), "orphan", *fingerprint).await
        }
        LabelStep::Release {
            orphan: false,
            fingerprint,
        } => {
            // Server-side apply of an empty configuration removes exactly
            // the fields baseliner owned.
            let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
            patch_namespace(ctx, namespace, Patch::Apply(&body), "release", *fingerprint).await
        }
    };
    let Some(owner) = owner else {
        return result;
    };
    match result {
        Ok(()) => {
            ctx.events.normal(
                &owner.profile,
                Reason::Labelled,
                format!("Namespace {name} Pod Security labels"),
            );
            Ok(())
        }
        Err(error) => {
            report.problems.push(Problem::new(
                Reason::ApiError,
                format!("Namespace {name}: {error}"),
            ));
            Err(error)
        }
    }
}

/// Reports a write the author-rights guard holds back, in status, Events
/// and the log.
fn hold_back(
    ctx: &Context,
    profile: &str,
    plan: &NamespacePlan,
    report: &mut NamespaceReport,
    what: String,
) {
    let message = format!(
        "{what}: {}",
        plan.held_because.as_deref().unwrap_or_default()
    );
    warn!(profile, "{message}");
    ctx.events
        .warning(profile, Reason::AuthorRightsNotEnforced, message.clone());
    report
        .problems
        .push(Problem::new(Reason::AuthorRightsNotEnforced, message));
}

/// Patches the namespace (server-side apply with our field manager, or a
/// merge patch) and remembers the patch until the cache moves.
async fn patch_namespace<P: serde::Serialize + std::fmt::Debug>(
    ctx: &Context,
    namespace: &CachedNamespace,
    patch: Patch<P>,
    action: &'static str,
    fingerprint: u64,
) -> Result<(), Error> {
    let name = namespace.name_any();
    let seen = namespace.resource_version().unwrap_or_default();
    let params = match &patch {
        Patch::Apply(_) => PatchParams::apply(MANAGER_NAME).force(),
        _ => PatchParams::default(),
    };
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    api.patch(&name, &params, &patch)
        .await
        .map_err(Error::kube(action, &format!("Namespace {name}")))?;
    ctx.verified.record_namespace(&name, seen, fingerprint);
    debug!(key = %format!("Namespace {name}"), action, "patched");
    Ok(())
}

fn object_api(ctx: &Context, key: &ObjectKey) -> Api<DynamicObject> {
    Api::namespaced_with(ctx.client.clone(), &key.namespace, &key.kind.api_resource())
}

fn is_not_found_error(error: &Error) -> bool {
    matches!(error, Error::Kube { source, .. } if is_not_found(source))
}

/// 422: the object itself is invalid (e.g. a LimitRange default above its max).
fn is_invalid_error(error: &Error) -> bool {
    matches!(error, Error::Kube { source: kube::Error::Api(status), .. } if status.code == 422)
}

fn api_message(error: &Error) -> String {
    match error {
        Error::Kube {
            source: kube::Error::Api(status),
            ..
        } => status.message.clone(),
        other => other.to_string(),
    }
}

fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 404)
}

/// After a namespace is deleted, removes what served it from elsewhere
/// (Velero Schedules); its own objects went with it.
pub async fn release_departed(ctx: &Context, namespace: &str) {
    ctx.reports.forget(namespace);
    ctx.verified.forget_namespace(namespace);
    if !ctx.is_leader() {
        return;
    }
    for (key, object) in ctx.managed.objects_serving(namespace) {
        if key.namespace == namespace || ctx.verified.is_pruned(&key, &object.resource_version) {
            continue;
        }
        match prune(ctx, &key, &object, Strategy::Enforce).await {
            Ok(reason) => {
                info!(%key, action = reason.as_str(), "namespace deleted; released what served it")
            }
            Err(error) => warn!(%key, %error, "releasing object of a deleted namespace failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apply_answer_reads_only_the_resource_version() {
        let answer = r#"{"apiVersion":"v1","kind":"ResourceQuota","metadata":{"name":"baseline","namespace":"shop","resourceVersion":"4711","managedFields":[{"manager":"baseliner","operation":"Apply","fieldsType":"FieldsV1","fieldsV1":{"f:spec":{"f:hard":{}}}}]},"spec":{"hard":{"pods":"20"}},"status":{}}"#;
        let applied: AppliedObject = serde_json::from_str(answer).unwrap();
        assert_eq!(applied.metadata.resource_version, "4711");
        let missing: AppliedObject = serde_json::from_str(r#"{"metadata":{}}"#).unwrap();
        assert_eq!(missing.metadata.resource_version, "");
        assert!(serde_json::from_str::<AppliedObject>(r#"{"kind":"Status"}"#).is_err());
    }
}
